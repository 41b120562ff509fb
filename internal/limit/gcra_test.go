package limit

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

// burstOf spends n single units from key at the current instant and counts
// the refusals, checking each carries a Retry-After.
func burstOf(t *testing.T, lim Limiter, key string, l Limit, n int) (allowed, denied int) {
	t.Helper()
	for range n {
		d, err := lim.Allow(t.Context(), key, l, 1)
		if err != nil {
			t.Fatalf("Allow: %v", err)
		}
		if d.Allowed {
			allowed++
			continue
		}
		denied++
		if d.RetryAfter <= 0 {
			t.Fatalf("denied without RetryAfter: %+v", d)
		}
	}
	return allowed, denied
}

func TestLocalLimiterRPM100Refuses50Of150InstantRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lim := NewLocalLimiter(nil)
		l := Limit{Rate: 100, Burst: 100}
		allowed, denied := burstOf(t, lim, "k", l, 150)
		if allowed != 100 || denied != 50 {
			t.Fatalf("allowed %d, denied %d; want 100 and 50", allowed, denied)
		}
		d, _ := lim.Allow(t.Context(), "k", l, 1)
		if d.Allowed || d.Remaining != 0 || d.Limit != 100 {
			t.Fatalf("decision after the burst = %+v", d)
		}
		// One unit refills every 600ms.
		if d.RetryAfter != 600*time.Millisecond {
			t.Fatalf("RetryAfter = %v, want 600ms", d.RetryAfter)
		}
		if d.Reset != time.Minute {
			t.Fatalf("Reset = %v, want 1m (until full)", d.Reset)
		}
	})
}

func TestLocalLimiterOneKeyDoesNotTouchAnother(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lim := NewLocalLimiter(nil)
		l := Limit{Rate: 10}
		if a, _ := burstOf(t, lim, "a", l, 20); a != 10 {
			t.Fatalf("key a allowed %d, want 10", a)
		}
		if b, _ := burstOf(t, lim, "b", l, 20); b != 10 {
			t.Fatalf("key b allowed %d after key a was exhausted, want 10", b)
		}
	})
}

func TestLocalLimiterRefillsOverTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lim := NewLocalLimiter(nil)
		l := Limit{Rate: 60, Burst: 10} // one per second, ten at once
		if a, _ := burstOf(t, lim, "k", l, 10); a != 10 {
			t.Fatalf("allowed %d, want 10", a)
		}
		d, _ := lim.Allow(t.Context(), "k", l, 1)
		if d.Allowed || d.RetryAfter != time.Second {
			t.Fatalf("11th = %+v, want denied with RetryAfter 1s", d)
		}
		time.Sleep(d.RetryAfter)
		if d, _ := lim.Allow(t.Context(), "k", l, 1); !d.Allowed {
			t.Fatalf("after RetryAfter = %+v, want allowed", d)
		}
		time.Sleep(3 * time.Second)
		if a, _ := burstOf(t, lim, "k", l, 10); a != 3 {
			t.Fatalf("after 3s allowed %d, want 3", a)
		}
		time.Sleep(time.Minute)
		d, _ = lim.Allow(t.Context(), "k", l, 0)
		if !d.Allowed || d.Remaining != 10 || d.Reset != 0 {
			t.Fatalf("after a minute = %+v, want a full bucket", d)
		}
	})
}

func TestLimiterCostLargerThanBurstPassesWhenFullThenWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lim := NewLocalLimiter(nil)
		l := Limit{Rate: 1000} // tokens per minute
		d, _ := lim.Allow(t.Context(), "k", l, 3000)
		if !d.Allowed {
			t.Fatalf("a request bigger than the bucket must pass when it is full: %+v", d)
		}
		d, _ = lim.Allow(t.Context(), "k", l, 1)
		if d.Allowed || d.RetryAfter != 2*time.Minute+60*time.Millisecond {
			t.Fatalf("next = %+v, want denied until the debt is repaid (2m0.06s)", d)
		}
	})
}

func TestLimiterAdjustChargesAndRefunds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lim := NewLocalLimiter(nil)
		l := Limit{Rate: 1000}
		ctx := t.Context()
		if d, _ := lim.Allow(ctx, "k", l, 100); d.Remaining != 900 {
			t.Fatalf("remaining %d, want 900", d.Remaining)
		}
		if err := lim.Adjust(ctx, "k", l, 400); err != nil {
			t.Fatal(err)
		}
		if d, _ := lim.Allow(ctx, "k", l, 0); d.Remaining != 500 {
			t.Fatalf("after charging 400 more: remaining %d, want 500", d.Remaining)
		}
		if err := lim.Adjust(ctx, "k", l, -450); err != nil {
			t.Fatal(err)
		}
		if d, _ := lim.Allow(ctx, "k", l, 0); d.Remaining != 950 {
			t.Fatalf("after a refund of 450: remaining %d, want 950", d.Remaining)
		}
		if err := lim.Adjust(ctx, "k", l, -5000); err != nil {
			t.Fatal(err)
		}
		if d, _ := lim.Allow(ctx, "k", l, 0); d.Remaining != 1000 {
			t.Fatalf("a refund never fills past the bucket: remaining %d, want 1000", d.Remaining)
		}
	})
}

func TestLimiterUnlimitedAlwaysAllows(t *testing.T) {
	lim := NewLocalLimiter(nil)
	for range 1000 {
		d, err := lim.Allow(t.Context(), "k", Limit{}, 1_000_000)
		if err != nil || !d.Allowed || d.Limit != 0 {
			t.Fatalf("Allow = %+v, %v", d, err)
		}
	}
	if lim.Len() != 0 {
		t.Fatalf("unlimited calls stored %d buckets", lim.Len())
	}
}

func TestLocalLimiterMemoryStaysBoundedAsKeysChurn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lim := NewLocalLimiter(nil)
		l := Limit{Rate: 60}
		const perRound = 5000
		for round := range 10 {
			for i := range perRound {
				lim.Allow(context.Background(), fmt.Sprintf("r%d-%d", round, i), l, 1)
			}
			time.Sleep(2 * time.Minute) // every bucket is full again
		}
		if n := lim.Len(); n > 3*perRound {
			t.Fatalf("%d buckets held after 10 rounds of %d short-lived keys; want at most %d", n, perRound, 3*perRound)
		}
	})
}

func TestFormatResetMatchesOpenAI(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                        "0s",
		-time.Second:             "0s",
		300 * time.Microsecond:   "1ms",
		12 * time.Millisecond:    "12ms",
		time.Second:              "1s",
		1500 * time.Millisecond:  "1.5s",
		6 * time.Minute:          "6m0s",
		time.Minute + 1234567890: "1m1.235s",
	} {
		if got := FormatReset(d); got != want {
			t.Errorf("FormatReset(%v) = %q, want %q", d, got, want)
		}
	}
}
