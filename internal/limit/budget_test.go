package limit

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/testutil/redistest"
)

// fakeClock is a settable clock for day and month rollovers, which
// synctest cannot reach on Redis' side.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func budgetStores(t *testing.T) map[string]func(*fakeClock) BudgetStore {
	return map[string]func(*fakeClock) BudgetStore{
		"local": func(c *fakeClock) BudgetStore { return NewLocalBudgetStoreAt(c.Now) },
		"redis": func(c *fakeClock) BudgetStore {
			srv := redistest.Start(t)
			return NewRedisBudgetStore(redisClient(t, srv), NewLocalBudgetStoreAt(c.Now), RedisOptions{Now: c.Now})
		},
	}
}

// spend reserves max and settles actual, failing the test on a refusal.
func spend(t *testing.T, b *Budgets, p *Principal, max, actual float64) {
	t.Helper()
	r, err := b.Reserve(t.Context(), p, max)
	if err != nil {
		t.Fatalf("Reserve $%v: %v", max, err)
	}
	if err := r.Settle(t.Context(), actual); err != nil {
		t.Fatal(err)
	}
}

func TestBudgetExhaustionResetAndRollover(t *testing.T) {
	for name, newStore := range budgetStores(t) {
		t.Run(name, func(t *testing.T) {
			clock := &fakeClock{t: time.Date(2026, 11, 26, 22, 0, 0, 0, time.UTC)}
			b := NewBudgets(newStore(clock), BudgetOptions{Now: clock.Now})
			ctx := t.Context()
			p := newPrincipal(Principal{Name: "team-a", BudgetDailyUSD: 1, BudgetMonthlyUSD: 2.5})

			for range 2 {
				spend(t, b, p, 0.4, 0.4)
			}
			// $0.80 spent: a request that may cost $0.40 no longer fits,
			// before it runs.
			_, err := b.Reserve(ctx, p, 0.4)
			wantAPIError(t, err, http.StatusTooManyRequests, "budget_exceeded")
			e := api.FromError(err)
			if e.Type != TypeInsufficientQuota || !strings.Contains(e.Message, "daily budget of $1.00") ||
				!strings.Contains(e.Message, `"team-a"`) || !strings.Contains(e.Message, "may cost up to $0.4000") {
				t.Fatalf("refusal = %+v", e)
			}
			if e.RetryAfter != 2*time.Hour {
				t.Fatalf("RetryAfter = %v, want 2h (until midnight UTC)", e.RetryAfter)
			}
			spend(t, b, p, 0.2, 0.2) // a smaller one still fits, exactly
			_, err = b.Reserve(ctx, p, 0)
			wantAPIError(t, err, http.StatusTooManyRequests, "budget_exceeded")
			if !strings.Contains(err.Error(), "is used up") {
				t.Fatalf("a spent budget refuses even a free request, saying so: %v", err)
			}
			s, err := b.Spend(ctx, "team-a")
			if err != nil || s.Day != "2026-11-26" || s.Month != "2026-11" || !near(s.Daily, 1) || !near(s.Monthly, 1) || s.Held != 0 {
				t.Fatalf("Spend = %+v, %v", s, err)
			}

			// The next UTC day starts a new daily budget; the month goes on.
			clock.Set(time.Date(2026, 11, 27, 0, 0, 1, 0, time.UTC))
			spend(t, b, p, 0.9, 0.9)
			if s, _ := b.Spend(ctx, "team-a"); !near(s.Daily, 0.9) || !near(s.Monthly, 1.9) {
				t.Fatalf("Spend on the new day = %+v, want 0.9 daily, 1.9 monthly", s)
			}
			// Over both: the daily budget is named first.
			_, err = b.Reserve(ctx, p, 0.7)
			wantAPIError(t, err, http.StatusTooManyRequests, "budget_exceeded")
			if !strings.Contains(err.Error(), "daily") {
				t.Fatalf("want the daily budget named first when both are over: %v", err)
			}

			// An admin reset clears the current periods.
			if err := b.Reset(ctx, "team-a"); err != nil {
				t.Fatal(err)
			}
			if s, _ := b.Spend(ctx, "team-a"); s.Daily != 0 || s.Monthly != 0 {
				t.Fatalf("Spend after reset = %+v", s)
			}

			// The monthly budget, alone over, is named.
			for d := 28; d <= 30; d++ {
				clock.Set(time.Date(2026, 11, d, 12, 0, 0, 0, time.UTC))
				spend(t, b, p, 0.9, 0.8)
			}
			_, err = b.Reserve(ctx, p, 0.2)
			wantAPIError(t, err, http.StatusTooManyRequests, "budget_exceeded")
			if e := api.FromError(err); !strings.Contains(e.Message, "monthly budget of $2.50") || e.RetryAfter != 12*time.Hour {
				t.Fatalf("monthly refusal = %+v", e)
			}
			clock.Set(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
			spend(t, b, p, 0.2, 0.1)
		})
	}
}

func TestHoldsOfRequestsInFlightCountAgainstTheBudgetUntilTheySettle(t *testing.T) {
	for name, newStore := range budgetStores(t) {
		t.Run(name, func(t *testing.T) {
			clock := &fakeClock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
			b := NewBudgets(newStore(clock), BudgetOptions{Now: clock.Now})
			p := newPrincipal(Principal{Name: "k", BudgetDailyUSD: 1})
			var held []*Reservation
			for range 3 {
				r, err := b.Reserve(t.Context(), p, 0.3)
				if err != nil {
					t.Fatal(err)
				}
				held = append(held, r)
			}
			if s, _ := b.Spend(t.Context(), "k"); !near(s.Held, 0.9) || s.Daily != 0 {
				t.Fatalf("Spend with three holds = %+v, want $0.90 held, nothing spent", s)
			}
			_, err := b.Reserve(t.Context(), p, 0.3)
			wantAPIError(t, err, http.StatusTooManyRequests, "budget_exceeded")
			if e := api.FromError(err); !strings.Contains(e.Message, "in flight") || e.RetryAfter != time.Second {
				t.Fatalf("refusal by holds = %+v, want one saying requests in flight hold it, retry in 1s", e)
			}
			// One settles below its maximum: the difference is free again.
			if err := held[0].Settle(t.Context(), 0.05); err != nil {
				t.Fatal(err)
			}
			r, err := b.Reserve(t.Context(), p, 0.3)
			if err != nil {
				t.Fatalf("after a settle: %v", err)
			}
			for _, r := range append(held[1:], r) {
				if err := r.Settle(t.Context(), 0.3); err != nil {
					t.Fatal(err)
				}
			}
			if s, _ := b.Spend(t.Context(), "k"); !near(s.Daily, 0.95) || !near(s.Held, 0) {
				t.Fatalf("Spend = %+v, want $0.95 spent and nothing held", s)
			}
		})
	}
}

func TestAHoldWhoseRequestNeverSettlesExpires(t *testing.T) {
	for name, newStore := range budgetStores(t) {
		t.Run(name, func(t *testing.T) {
			clock := &fakeClock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
			b := NewBudgets(newStore(clock), BudgetOptions{Now: clock.Now, HoldTTL: 300 * time.Millisecond})
			p := newPrincipal(Principal{Name: "crash", BudgetDailyUSD: 1})
			if _, err := b.Reserve(t.Context(), p, 0.9); err != nil { // never settled: the instance "crashed"
				t.Fatal(err)
			}
			_, err := b.Reserve(t.Context(), p, 0.9)
			wantAPIError(t, err, http.StatusTooManyRequests, "budget_exceeded")
			// Redis expires holds on its own clock; the local store on ours.
			clock.Set(clock.Now().Add(time.Second))
			time.Sleep(400 * time.Millisecond)
			if _, err := b.Reserve(t.Context(), p, 0.9); err != nil {
				t.Fatalf("the expired hold still counts: %v", err)
			}
		})
	}
}

func TestATeamBudgetIsSharedByTheTeamsKeys(t *testing.T) {
	for name, newStore := range budgetStores(t) {
		t.Run(name, func(t *testing.T) {
			clock := &fakeClock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
			b := NewBudgets(newStore(clock), BudgetOptions{Now: clock.Now, Teams: map[string]TeamBudget{"red": {DailyUSD: 1}}})
			one := newPrincipal(Principal{Name: "red-1", Team: "red"})
			two := newPrincipal(Principal{Name: "red-2", Team: "red", BudgetDailyUSD: 5})
			spend(t, b, one, 0.6, 0.6)
			_, err := b.Reserve(t.Context(), two, 0.6)
			wantAPIError(t, err, http.StatusTooManyRequests, "budget_exceeded")
			if !strings.Contains(err.Error(), `team "red"`) {
				t.Fatalf("refusal names %v, want the team's budget", err)
			}
			spend(t, b, two, 0.4, 0.3)
			if s, _ := b.Spend(t.Context(), TeamScope("red")); !near(s.Daily, 0.9) {
				t.Fatalf("team spend = %+v, want 0.9", s)
			}
			if s, _ := b.Spend(t.Context(), "red-2"); !near(s.Daily, 0.3) {
				t.Fatalf("key spend = %+v, want its own 0.3", s)
			}
			if err := b.Reset(t.Context(), TeamScope("red")); err != nil {
				t.Fatal(err)
			}
			spend(t, b, one, 0.6, 0.6)
		})
	}
}

func TestConcurrentReservationsOnTwoInstancesNeverOvershootTheBudget(t *testing.T) {
	srv := redistest.Start(t)
	stores := []*Budgets{
		NewBudgets(NewRedisBudgetStore(redisClient(t, srv), NewLocalBudgetStore(), RedisOptions{Timeout: 5 * time.Second}), BudgetOptions{}),
		NewBudgets(NewRedisBudgetStore(redisClient(t, srv), NewLocalBudgetStore(), RedisOptions{Timeout: 5 * time.Second}), BudgetOptions{}),
	}
	p := newPrincipal(Principal{Name: "tight", BudgetDailyUSD: 0.0105})
	var admitted, refused atomic.Int64
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			r, err := stores[i%2].Reserve(t.Context(), p, 0.001)
			if err != nil {
				if api.FromError(err).Code != "budget_exceeded" {
					t.Errorf("Reserve: %v", err)
				}
				refused.Add(1)
				return
			}
			admitted.Add(1)
			_ = r.Settle(t.Context(), 0.001)
		})
	}
	wg.Wait()
	s, err := stores[0].Spend(t.Context(), "tight")
	if err != nil {
		t.Fatal(err)
	}
	if admitted.Load() != 10 || s.Daily > 0.0105 || s.Held != 0 {
		t.Fatalf("%d admitted (%d refused), $%v spent, $%v held; want 10 and spend within $0.0105", admitted.Load(), refused.Load(), s.Daily, s.Held)
	}
}

func TestBudgetsTrackSpendOfKeysWithoutBudget(t *testing.T) {
	b := NewBudgets(NewLocalBudgetStore(), BudgetOptions{})
	p := principal("free")
	for range 100 {
		spend(t, b, p, 0, 1)
	}
	if s, _ := b.Spend(t.Context(), "free"); s.Daily != 100 {
		t.Fatalf("spend = %+v, want 100", s)
	}
}

func TestRedisBudgetStoreSharesSpendAndFallsBackWhenRedisIsDown(t *testing.T) {
	srv := redistest.Start(t)
	opts := RedisOptions{Backoff: 100 * time.Millisecond}
	one := NewBudgets(NewRedisBudgetStore(redisClient(t, srv), NewLocalBudgetStore(), opts), BudgetOptions{})
	two := NewBudgets(NewRedisBudgetStore(redisClient(t, srv), NewLocalBudgetStore(), opts), BudgetOptions{})
	p := newPrincipal(Principal{Name: "shared", BudgetDailyUSD: 1})
	ctx := t.Context()
	spend(t, one, p, 0.6, 0.6)
	spend(t, two, p, 0.4, 0.4)
	for _, b := range []*Budgets{one, two} {
		_, err := b.Reserve(ctx, p, 0.01)
		wantAPIError(t, err, http.StatusTooManyRequests, "budget_exceeded")
	}

	srv.Stop()
	// The local fallback knows nothing of the shared spend, but answers,
	// and holds on its own.
	r, err := one.Reserve(ctx, p, 0.9)
	if err != nil {
		t.Fatalf("Reserve with Redis down: %v", err)
	}
	_, err = one.Reserve(ctx, p, 0.2)
	wantAPIError(t, err, http.StatusTooManyRequests, "budget_exceeded")
	if err := r.Settle(ctx, 0.5); err != nil {
		t.Fatalf("Settle with Redis down: %v", err)
	}
	spend(t, one, p, 0.5, 0.5)
	_, err = one.Reserve(ctx, p, 0.01)
	wantAPIError(t, err, http.StatusTooManyRequests, "budget_exceeded")
}

func near(a, b float64) bool { d := a - b; return d < 1e-9 && d > -1e-9 }
