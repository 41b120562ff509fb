package limit

import (
	"sync/atomic"
	"testing"

	"github.com/redis/rueidis"

	"github.com/edge-agent/edge-agent/internal/testutil/redistest"
)

// spoil stores values of the wrong kind under keys: a list, or a string that
// is not a number.
func spoil(t *testing.T, c rueidis.Client, list, str string) {
	t.Helper()
	if err := c.Do(t.Context(), c.B().Lpush().Key(list).Element("junk").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if err := c.Do(t.Context(), c.B().Set().Key(str).Value("not a number").Build()).Error(); err != nil {
		t.Fatal(err)
	}
}

func TestRedisLimiterRepairsWrongTypeKeysAndStaysShared(t *testing.T) {
	srv := redistest.Start(t)
	admin := redisClient(t, srv)
	var repairs, fallbacks atomic.Int64
	opts := RedisOptions{OnRepair: func() { repairs.Add(1) }, OnFallback: func(error) { fallbacks.Add(1) }}
	one := NewRedisLimiter(redisClient(t, srv), NewLocalLimiter(nil), opts)
	two := NewRedisLimiter(redisClient(t, srv), NewLocalLimiter(nil), opts)
	spoil(t, admin, "llm-edge:rl:list-key", "llm-edge:rl:string-key")
	l := Limit{Rate: 100, Burst: 100}
	for _, key := range []string{"list-key", "string-key"} {
		if denied := alternate(t, []Limiter{one, two}, key, l, 150); denied < 47 || denied > 50 {
			t.Fatalf("%s: two instances denied %d of 150, want about 50 (one shared limit)", key, denied)
		}
	}
	if fallbacks.Load() != 0 || one.Degraded() || two.Degraded() {
		t.Fatalf("fell back to local limits %d times over a wrong-type key", fallbacks.Load())
	}
	if repairs.Load() != 2 {
		t.Fatalf("%d repairs counted, want 2 (one per spoiled key)", repairs.Load())
	}
	if typ, _ := admin.Do(t.Context(), admin.B().Type().Key("llm-edge:rl:list-key").Build()).ToString(); typ != "string" {
		t.Fatalf("the list key is now a %s, want the limiter's string", typ)
	}
}

func TestRedisBudgetStoreRepairsWrongTypeKeysAndStaysShared(t *testing.T) {
	srv := redistest.Start(t)
	admin := redisClient(t, srv)
	var repairs, fallbacks atomic.Int64
	opts := RedisOptions{OnRepair: func() { repairs.Add(1) }, OnFallback: func(error) { fallbacks.Add(1) }}
	one := NewRedisBudgetStore(redisClient(t, srv), NewLocalBudgetStore(), opts)
	two := NewRedisBudgetStore(redisClient(t, srv), NewLocalBudgetStore(), opts)
	const day, month = "2026-12-01", "2026-12"
	spoil(t, admin, "llm-edge:budget:team:d:"+day, "llm-edge:budget:team:m:"+month)

	if s, err := one.Get(t.Context(), "team", day, month); err != nil || s.Daily != 0 || s.Monthly != 0 {
		t.Fatalf("Get over spoiled keys = %+v, %v; want no spend and no error", s, err)
	}
	if s, err := one.Add(t.Context(), "team", 1.5, day, month); err != nil || s.Daily != 1.5 || s.Monthly != 1.5 {
		t.Fatalf("Add over spoiled keys = %+v, %v; want 1.5 each", s, err)
	}
	if s, err := two.Add(t.Context(), "team", 0.25, day, month); err != nil || s.Daily != 1.75 || s.Monthly != 1.75 {
		t.Fatalf("the other instance's Add = %+v, %v; want the shared 1.75", s, err)
	}
	if s, err := two.Get(t.Context(), "team", day, month); err != nil || s.Daily != 1.75 {
		t.Fatalf("the other instance reads %+v, %v; want 1.75", s, err)
	}
	if fallbacks.Load() != 0 || one.Degraded() {
		t.Fatalf("fell back to local budgets %d times over a wrong-type key", fallbacks.Load())
	}
	if repairs.Load() != 2 {
		t.Fatalf("%d repairs counted, want 2 (one per spoiled key)", repairs.Load())
	}
	if ttl, _ := admin.Do(t.Context(), admin.B().Ttl().Key("llm-edge:budget:team:d:"+day).Build()).AsInt64(); ttl <= 0 {
		t.Fatalf("repaired key has TTL %d, want the day key's", ttl)
	}
}
