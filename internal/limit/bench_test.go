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
