package telemetry

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestStatsSnapshotCountsHitsTokensCostAndErrors(t *testing.T) {
	s := NewStats()
	for _, r := range []Record{
		{Provider: "openai", Model: "gpt-4o", Cache: CacheMiss, Status: 200, TotalLatency: 100 * time.Millisecond,
			PromptTokens: 100, CompletionTokens: 50, CostUSD: 0.00075, CostKnown: true},
		{Provider: "openai", Model: "gpt-4o", Cache: CacheL1, Status: 200, TotalLatency: time.Millisecond,
			PromptTokens: 100, CompletionTokens: 50, SavedUSD: 0.00075},
		{Provider: "openai", Model: "gpt-4o", Cache: CacheL2, Status: 200, TotalLatency: 2 * time.Millisecond, SavedUSD: 0.00075},
		{Provider: "local", Model: "llama", Cache: CacheMiss, Status: 200, TotalLatency: time.Second,
			PromptTokens: 10, CompletionTokens: 10, CostEstimated: true},
		{Cache: CacheBypass, Status: 400},
		{Provider: "openai", Model: "gpt-4o", Status: 503},
	} {
		s.Observe(&r)
	}
	got := s.Snapshot()
	if got.Requests != 6 || got.Cache.L1Hits != 1 || got.Cache.L2Hits != 1 || got.Cache.Misses != 2 || got.Cache.Bypassed != 2 {
		t.Fatalf("counts: %+v", got)
	}
	if got.Cache.HitRate != 0.5 || got.Cache.L1HitRate != 0.25 || got.Cache.L2HitRate != 0.25 {
		t.Errorf("hit rates: %+v", got.Cache)
	}
	if got.Tokens.Prompt != 110 || got.Tokens.Completion != 60 || got.Tokens.Total != 170 {
		t.Errorf("tokens (hits count none): %+v", got.Tokens)
	}
	if math.Abs(got.CostUSD-0.00075) > 1e-15 || math.Abs(got.SavedCostUSD-0.0015) > 1e-15 {
		t.Errorf("cost %v saved %v", got.CostUSD, got.SavedCostUSD)
	}
	if got.CostUnknownRequests != 2 || got.CostEstimatedRequests != 1 {
		t.Errorf("unknown %d estimated %d", got.CostUnknownRequests, got.CostEstimatedRequests)
	}
	if got.Errors.Client != 1 || got.Errors.Server != 1 || got.Errors.Total != 2 || math.Abs(got.Errors.Rate-2.0/6) > 1e-12 {
		t.Errorf("errors: %+v", got.Errors)
	}
	if got.HitLatencyMs.Count != 2 || got.MissLatencyMs.Count != 2 || got.LatencyMs.Count != 6 {
		t.Errorf("latency counts: all %d hit %d miss %d", got.LatencyMs.Count, got.HitLatencyMs.Count, got.MissLatencyMs.Count)
	}
	if got.LatencyMs.Max != 1000 {
		t.Errorf("max = %v ms", got.LatencyMs.Max)
	}
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil || back["cache"].(map[string]any)["hit_rate"] != 0.5 {
		t.Fatalf("JSON %s: %v", b, err)
	}
}

func TestStatsPercentilesAreWithinBucketPrecision(t *testing.T) {
	s := NewStats()
	// 1..10000 µs once each: the true q-quantile is q*10 ms.
	rng := rand.New(rand.NewPCG(3, 4))
	for _, i := range rng.Perm(10000) {
		s.Observe(&Record{Cache: CacheMiss, Status: 200, TotalLatency: time.Duration(i+1) * time.Microsecond})
	}
	p := s.Snapshot().LatencyMs
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"p50", p.P50, 5}, {"p95", p.P95, 9.5}, {"p99", p.P99, 9.9}, {"mean", p.Mean, 5.0005}, {"max", p.Max, 10}} {
		if rel := math.Abs(c.got-c.want) / c.want; rel > 1.0/histSub {
			t.Errorf("%s = %v ms; want %v within %.2f%% (off by %.2f%%)", c.name, c.got, c.want, 100.0/histSub, rel*100)
		}
	}
}

func TestStatsPercentileOfASingleValueIsThatValue(t *testing.T) {
	s := NewStats()
	s.Observe(&Record{Cache: CacheL1, Status: 200, TotalLatency: 300 * time.Microsecond})
	p := s.Snapshot().HitLatencyMs
	for _, v := range []float64{p.P50, p.P95, p.P99, p.Max, p.Mean} {
		if math.Abs(v-0.3)/0.3 > 1.0/histSub {
			t.Fatalf("percentiles of one 0.3 ms hit: %+v", p)
		}
	}
}

func TestHistogramBucketsTileTheRangeAtBoundedRelativeWidth(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	values := []uint64{0, 1, 15, 16, 17, 31, 32, 1 << 20, 1<<40 - 1}
	for range 10000 {
		values = append(values, rng.Uint64N(1<<40))
	}
	for _, v := range values {
		i := bucketOf(v)
		lo, hi := bucketBounds(i)
		if float64(v) < lo || float64(v) >= hi {
			t.Fatalf("value %d in bucket %d [%v, %v)", v, i, lo, hi)
		}
		if v >= histSub && (hi-lo)/lo > 1.0/histSub {
			t.Fatalf("bucket %d [%v, %v) wider than 1/%d", i, lo, hi, histSub)
		}
	}
	if got := bucketOf(math.MaxUint64); got != histBuckets-1 {
		t.Fatalf("huge value in bucket %d; want the last", got)
	}
	for i := 1; i < histBuckets; i++ {
		_, prevHi := bucketBounds(i - 1)
		if lo, _ := bucketBounds(i); lo != prevHi {
			t.Fatalf("gap between buckets %d and %d", i-1, i)
		}
	}
}

func TestStatsUptimeFollowsTheClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewStats()
		time.Sleep(90 * time.Second)
		if got := s.Snapshot().UptimeSeconds; got != 90 {
			t.Fatalf("uptime = %v s; want 90", got)
		}
	})
}

func TestStatsObserveIsSafeUnderConcurrency(t *testing.T) {
	s := NewStats()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				s.Observe(&Record{Provider: "openai", Cache: CacheMiss, Status: 200, PromptTokens: 1,
					TotalLatency: time.Duration(g*1000+i) * time.Microsecond, CostUSD: 0.25, CostKnown: true})
			}
		})
	}
	wg.Wait()
	got := s.Snapshot()
	if got.Requests != 8000 || got.Tokens.Prompt != 8000 || got.CostUSD != 2000 || got.LatencyMs.Count != 8000 {
		t.Fatalf("lost updates: requests %d tokens %d cost %v latency count %d",
			got.Requests, got.Tokens.Prompt, got.CostUSD, got.LatencyMs.Count)
	}
}

func TestStatsCountCoalescedWaitsApartFromHitsAndMisses(t *testing.T) {
	s := NewStats()
	for _, r := range []Record{
		{Provider: "openai", Model: "gpt-4o", Cache: CacheMiss, Status: 200, TotalLatency: 500 * time.Millisecond,
			PromptTokens: 100, CompletionTokens: 50, CostUSD: 0.00075, CostKnown: true},
		{Provider: "openai", Model: "gpt-4o", Cache: CacheCoalesced, Status: 200, TotalLatency: 499 * time.Millisecond, SavedUSD: 0.00075},
		{Provider: "openai", Model: "gpt-4o", Cache: CacheL1, Status: 200, TotalLatency: time.Millisecond, SavedUSD: 0.00075},
	} {
		s.Observe(&r)
	}
	got := s.Snapshot()
	if got.Cache.Coalesced != 1 || got.Cache.L1Hits != 1 || got.Cache.Misses != 1 || got.Cache.Bypassed != 0 {
		t.Fatalf("counts: %+v", got.Cache)
	}
	if got.Cache.HitRate != 0.5 {
		t.Errorf("hit rate %v: coalesced waits are neither hits nor misses", got.Cache.HitRate)
	}
	if got.HitLatencyMs.P99 > 10 {
		t.Errorf("hit latency p99 %v ms: a coalesced wait (the provider's time) counted as a hit", got.HitLatencyMs.P99)
	}
	if got.Tokens.Total != 150 || math.Abs(got.SavedCostUSD-0.0015) > 1e-15 {
		t.Errorf("tokens %+v saved %v: a coalesced wait bills nothing and saves the provider's price", got.Tokens, got.SavedCostUSD)
	}
}
