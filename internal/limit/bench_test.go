package limit

import (
	"context"
	"fmt"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func BenchmarkAuthenticate(b *testing.B) {
	keys := make([]KeyConfig, 20)
	for i := range keys {
		keys[i] = KeyConfig{Name: fmt.Sprintf("k%d", i), Key: fmt.Sprintf("sk-edge-%032d", i)}
	}
	a, err := NewAuth(keys, adminKey)
	if err != nil {
		b.Fatal(err)
	}
	r := request("Authorization", "Bearer "+keys[13].Key)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLocalLimiterAllow(b *testing.B) {
	lim := NewLocalLimiter(nil)
	l := Limit{Rate: 1 << 30}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		lim.Allow(ctx, "k:alpha:r", l, 1)
	}
}

func BenchmarkLimitsCheckLocal(b *testing.B) {
	ls := NewLimits(NewLocalLimiter(nil), Options{KeyRPM: 1 << 30, KeyTPM: 1 << 30, GlobalRPM: 1 << 30, GlobalTPM: 1 << 30})
	p := principal("alpha")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ls.Check(ctx, p, 100); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBudgetPerRequest is the budget's share of one request: the hold
// before it and the settle after it, in memory.
func BenchmarkBudgetPerRequest(b *testing.B) {
	for _, c := range []struct {
		name   string
		budget float64
	}{{"no-budget", 0}, {"budget", 1e9}} {
		b.Run(c.name, func(b *testing.B) {
			bud := NewBudgets(NewLocalBudgetStore(), BudgetOptions{})
			p := newPrincipal(Principal{Name: "bench", BudgetDailyUSD: c.budget})
			ctx := b.Context()
			b.ReportAllocs()
			for b.Loop() {
				if !bud.Budgeted(p) { // as the guard does
					_ = bud.Add(ctx, p, 0.001)
					continue
				}
				r, err := bud.Reserve(ctx, p, 0.002)
				if err != nil {
					b.Fatal(err)
				}
				_ = r.Settle(ctx, 0.001)
			}
		})
	}
}
