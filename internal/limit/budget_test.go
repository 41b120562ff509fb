package limit

import (
	"net/http"
	"strings"
	"sync"
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
		"local": func(*fakeClock) BudgetStore { return NewLocalBudgetStore() },
		"redis": func(c *fakeClock) BudgetStore {
			srv := redistest.Start(t)
			return NewRedisBudgetStore(redisClient(t, srv), NewLocalBudgetStore(), RedisOptions{Now: c.Now})
		},
	}
}

func TestBudgetExhaustionResetAndRollover(t *testing.T) {
	for name, newStore := range budgetStores(t) {
		t.Run(name, func(t *testing.T) {
			clock := &fakeClock{t: time.Date(2026, 11, 26, 22, 0, 0, 0, time.UTC)}
			b := NewBudgets(newStore(clock), clock.Now)
			ctx := t.Context()
			p := newPrincipal(Principal{Name: "team-a", BudgetDailyUSD: 1, BudgetMonthlyUSD: 2.5})

			for range 3 {
				if err := b.Check(ctx, p); err != nil {
					t.Fatalf("Check under budget: %v", err)
				}
				if err := b.Add(ctx, p, 0.4); err != nil {
					t.Fatal(err)
				}
			}
			err := b.Check(ctx, p)
			wantAPIError(t, err, http.StatusTooManyRequests, "budget_exceeded")
			e := api.FromError(err)
			if e.Type != TypeInsufficientQuota || !strings.Contains(e.Message, "daily budget of $1.00") || !strings.Contains(e.Message, `"team-a"`) {
				t.Fatalf("refusal = %+v", e)
			}
			if e.RetryAfter != 2*time.Hour {
				t.Fatalf("RetryAfter = %v, want 2h (until midnight UTC)", e.RetryAfter)
			}
			s, err := b.Spend(ctx, "team-a")
			if err != nil || s.Day != "2026-11-26" || s.Month != "2026-11" || !near(s.Daily, 1.2) || !near(s.Monthly, 1.2) {
				t.Fatalf("Spend = %+v, %v", s, err)
			}

			// The next UTC day starts a new daily budget; the month goes on.
			clock.Set(time.Date(2026, 11, 27, 0, 0, 1, 0, time.UTC))
			if err := b.Check(ctx, p); err != nil {
				t.Fatalf("Check on a new day: %v", err)
			}
			if err := b.Add(ctx, p, 0.9); err != nil {
				t.Fatal(err)
			}
			if s, _ := b.Spend(ctx, "team-a"); !near(s.Daily, 0.9) || !near(s.Monthly, 2.1) {
				t.Fatalf("Spend on the new day = %+v, want 0.9 daily, 2.1 monthly", s)
			}
			if err := b.Add(ctx, p, 0.5); err != nil {
				t.Fatal(err)
			}
			err = b.Check(ctx, p)
			wantAPIError(t, err, http.StatusTooManyRequests, "budget_exceeded")
			if !strings.Contains(err.Error(), "daily") {
				t.Fatalf("want the daily budget named first when both are over: %v", err)
			}

			// An admin reset clears the current periods.
			if err := b.Reset(ctx, "team-a"); err != nil {
				t.Fatal(err)
			}
			if err := b.Check(ctx, p); err != nil {
				t.Fatalf("Check after reset: %v", err)
			}
			if s, _ := b.Spend(ctx, "team-a"); s.Daily != 0 || s.Monthly != 0 {
				t.Fatalf("Spend after reset = %+v", s)
			}

			// The monthly budget, alone over, is named.
			if err := b.Add(ctx, p, 0.9); err != nil {
				t.Fatal(err)
			}
			clock.Set(time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC))
			if err := b.Add(ctx, p, 0.9); err != nil {
				t.Fatal(err)
			}
			clock.Set(time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC))
			if err := b.Add(ctx, p, 0.9); err != nil {
				t.Fatal(err)
			}
			err = b.Check(ctx, p)
			wantAPIError(t, err, http.StatusTooManyRequests, "budget_exceeded")
			if e := api.FromError(err); !strings.Contains(e.Message, "monthly budget of $2.50") || e.RetryAfter != 36*time.Hour {
				t.Fatalf("monthly refusal = %+v", e)
			}
			clock.Set(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
			if err := b.Check(ctx, p); err != nil {
				t.Fatalf("Check in a new month: %v", err)
			}
		})
	}
}

func TestBudgetsTrackSpendOfKeysWithoutBudget(t *testing.T) {
	b := NewBudgets(NewLocalBudgetStore(), nil)
	p := principal("free")
	for range 100 {
		if err := b.Check(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		if err := b.Add(t.Context(), p, 1); err != nil {
			t.Fatal(err)
		}
	}
	if s, _ := b.Spend(t.Context(), "free"); s.Daily != 100 {
		t.Fatalf("spend = %+v, want 100", s)
	}
}

func TestRedisBudgetStoreSharesSpendAndFallsBackWhenRedisIsDown(t *testing.T) {
	srv := redistest.Start(t)
	opts := RedisOptions{Backoff: 100 * time.Millisecond}
	one := NewBudgets(NewRedisBudgetStore(redisClient(t, srv), NewLocalBudgetStore(), opts), nil)
	two := NewBudgets(NewRedisBudgetStore(redisClient(t, srv), NewLocalBudgetStore(), opts), nil)
	p := newPrincipal(Principal{Name: "shared", BudgetDailyUSD: 1})
	ctx := t.Context()
	if err := one.Add(ctx, p, 0.6); err != nil {
		t.Fatal(err)
	}
	if err := two.Add(ctx, p, 0.6); err != nil {
		t.Fatal(err)
	}
	for _, b := range []*Budgets{one, two} {
		wantAPIError(t, b.Check(ctx, p), http.StatusTooManyRequests, "budget_exceeded")
	}

	srv.Stop()
	// The local fallback knows nothing of the shared spend, but answers.
	if err := one.Check(ctx, p); err != nil {
		t.Fatalf("Check with Redis down: %v", err)
	}
	if err := one.Add(ctx, p, 1.5); err != nil {
		t.Fatalf("Add with Redis down: %v", err)
	}
	wantAPIError(t, one.Check(ctx, p), http.StatusTooManyRequests, "budget_exceeded")
}

func near(a, b float64) bool { d := a - b; return d < 1e-9 && d > -1e-9 }
