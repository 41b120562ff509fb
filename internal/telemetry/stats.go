package telemetry

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Stats aggregates Records for GET /admin/stats. Every field is an atomic,
// so Observe takes no lock and memory stays fixed however long the process
// runs.
type Stats struct {
	start time.Time

	requests, hitsL1, hitsL2, misses, bypass atomic.Uint64
	coalesced                                atomic.Uint64
	errors4xx, errors5xx                     atomic.Uint64
	promptTokens, completionTokens           atomic.Uint64
	costUnknown, costEstimated               atomic.Uint64
	costUSD, savedUSD                        atomicFloat

	latency, hitLatency, missLatency latencyHistogram
}

// NewStats starts the uptime clock.
func NewStats() *Stats { return &Stats{start: time.Now()} }

// Observe adds one finished request. Tokens and cost count what providers
// billed (a hit adds to saved cost instead), like the metrics.
func (s *Stats) Observe(r *Record) {
	s.requests.Add(1)
	switch r.Cache {
	case CacheL1:
		s.hitsL1.Add(1)
	case CacheL2:
		s.hitsL2.Add(1)
	case CacheMiss:
		s.misses.Add(1)
	case CacheCoalesced:
		s.coalesced.Add(1)
	default:
		s.bypass.Add(1)
	}
	switch {
	case r.Status >= 500:
		s.errors5xx.Add(1)
	case r.Status >= 400:
		s.errors4xx.Add(1)
	}
	if r.Replayed() {
		s.savedUSD.Add(r.SavedUSD)
		if r.Hit() { // a coalesced wait lasts as long as the provider call
			s.hitLatency.observe(r.TotalLatency)
		}
	} else {
		s.promptTokens.Add(uint64(max(r.PromptTokens, 0)))
		s.completionTokens.Add(uint64(max(r.CompletionTokens, 0)))
		switch {
		case r.CostKnown:
			s.costUSD.Add(r.CostUSD)
		case r.Provider != "":
			s.costUnknown.Add(1)
		}
		if r.CostEstimated {
			s.costEstimated.Add(1)
		}
		if r.Cache == CacheMiss {
			s.missLatency.observe(r.TotalLatency)
		}
	}
	s.latency.observe(r.TotalLatency)
}

// StatsSnapshot is the JSON body of GET /admin/stats.
type StatsSnapshot struct {
	StartedAt     time.Time `json:"started_at"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	Requests      uint64    `json:"requests"`

	Cache struct {
		L1Hits    uint64  `json:"l1_hits"`
		L2Hits    uint64  `json:"l2_hits"`
		Misses    uint64  `json:"misses"`
		Bypassed  uint64  `json:"bypassed"`
		Coalesced uint64  `json:"coalesced"`   // waited for an identical request's answer; not in the rates
		HitRate   float64 `json:"hit_rate"`    // (l1+l2) / (l1+l2+misses); bypassed requests excluded
		L1HitRate float64 `json:"l1_hit_rate"` // l1 / (l1+l2+misses)
		L2HitRate float64 `json:"l2_hit_rate"`
	} `json:"cache"`

	Tokens struct {
		Prompt     uint64 `json:"prompt"`
		Completion uint64 `json:"completion"`
		Total      uint64 `json:"total"`
	} `json:"tokens"`

	CostUSD               float64 `json:"cost_usd"`
	SavedCostUSD          float64 `json:"saved_cost_usd"`
	CostUnknownRequests   uint64  `json:"cost_unknown_requests"`   // provider answered, model has no price
	CostEstimatedRequests uint64  `json:"cost_estimated_requests"` // tokens estimated, no usage reported

	Errors struct {
		Client uint64  `json:"4xx"`
		Server uint64  `json:"5xx"`
		Total  uint64  `json:"total"`
		Rate   float64 `json:"rate"` // total / requests
	} `json:"errors"`

	LatencyMs     Percentiles `json:"latency_ms"`
	HitLatencyMs  Percentiles `json:"hit_latency_ms"`
	MissLatencyMs Percentiles `json:"miss_latency_ms"`
}

// Percentiles are latency estimates in milliseconds, within about 3% of the
// true value (see latencyHistogram); all zero before the first request.
type Percentiles struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P95   float64 `json:"p95"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

// Snapshot reads the counters. Concurrent Observe calls may land partly in
// a snapshot; each counter is individually exact.
func (s *Stats) Snapshot() StatsSnapshot {
	var out StatsSnapshot
	out.StartedAt = s.start
	out.UptimeSeconds = time.Since(s.start).Seconds()
	out.Requests = s.requests.Load()

	l1, l2, miss := s.hitsL1.Load(), s.hitsL2.Load(), s.misses.Load()
	out.Cache.L1Hits, out.Cache.L2Hits, out.Cache.Misses = l1, l2, miss
	out.Cache.Bypassed = s.bypass.Load()
	out.Cache.Coalesced = s.coalesced.Load()
	if looked := l1 + l2 + miss; looked > 0 {
		out.Cache.HitRate = float64(l1+l2) / float64(looked)
		out.Cache.L1HitRate = float64(l1) / float64(looked)
		out.Cache.L2HitRate = float64(l2) / float64(looked)
	}

	out.Tokens.Prompt = s.promptTokens.Load()
	out.Tokens.Completion = s.completionTokens.Load()
	out.Tokens.Total = out.Tokens.Prompt + out.Tokens.Completion

	out.CostUSD = s.costUSD.Load()
	out.SavedCostUSD = s.savedUSD.Load()
	out.CostUnknownRequests = s.costUnknown.Load()
	out.CostEstimatedRequests = s.costEstimated.Load()

	out.Errors.Client, out.Errors.Server = s.errors4xx.Load(), s.errors5xx.Load()
	out.Errors.Total = out.Errors.Client + out.Errors.Server
	if out.Requests > 0 {
		out.Errors.Rate = float64(out.Errors.Total) / float64(out.Requests)
	}

	out.LatencyMs = s.latency.percentiles()
	out.HitLatencyMs = s.hitLatency.percentiles()
	out.MissLatencyMs = s.missLatency.percentiles()
	return out
}

// atomicFloat is a float64 updated with compare-and-swap.
type atomicFloat struct{ bits atomic.Uint64 }

func (f *atomicFloat) Add(v float64) {
	if v == 0 {
		return
	}
	for {
		old := f.bits.Load()
		if f.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

func (f *atomicFloat) Load() float64 { return math.Float64frombits(f.bits.Load()) }

// latencyHistogram is a log-linear histogram of nanosecond durations: each
// power of two is split into histSub equal buckets, so a bucket is at most
// 1/histSub (6.25%) wide relative to its lower bound, and an interpolated
// percentile is within that of the true value — about 3% on average. It
// covers 1 ns to 2^histMaxExp ns (~18 minutes; longer durations land in the
// last bucket) in a fixed 4.7 KB.
type latencyHistogram struct {
	buckets [histBuckets]atomic.Uint64
	count   atomic.Uint64
	sumNs   atomic.Uint64
	maxNs   atomic.Uint64
}

const (
	histSubBits = 4
	histSub     = 1 << histSubBits
	histMaxExp  = 40
	histBuckets = (histMaxExp - histSubBits + 1) * histSub
)

// bucketOf maps v to its bucket: values below histSub have one bucket each;
// above, the bucket is the exponent and the next histSubBits bits.
func bucketOf(v uint64) int {
	if v < histSub {
		return int(v)
	}
	exp := bits.Len64(v) - 1
	if exp >= histMaxExp {
		return histBuckets - 1
	}
	sub := (v >> (exp - histSubBits)) & (histSub - 1)
	return (exp-histSubBits+1)*histSub + int(sub)
}

// bucketBounds returns the [lo, hi) range of bucket i in nanoseconds.
func bucketBounds(i int) (lo, hi float64) {
	if i < histSub {
		return float64(i), float64(i + 1)
	}
	exp := i/histSub + histSubBits - 1
	sub := i % histSub
	width := math.Ldexp(1, exp-histSubBits)
	lo = float64(histSub+sub) * width
	return lo, lo + width
}

func (h *latencyHistogram) observe(d time.Duration) {
	v := uint64(max(d, 0))
	h.buckets[bucketOf(v)].Add(1)
	h.count.Add(1)
	h.sumNs.Add(v)
	for {
		old := h.maxNs.Load()
		if v <= old || h.maxNs.CompareAndSwap(old, v) {
			break
		}
	}
}

func (h *latencyHistogram) percentiles() Percentiles {
	var counts [histBuckets]uint64
	var total uint64
	for i := range h.buckets {
		counts[i] = h.buckets[i].Load()
		total += counts[i]
	}
	if total == 0 {
		return Percentiles{}
	}
	const nsPerMs = float64(time.Millisecond)
	p := Percentiles{
		Count: total,
		Mean:  float64(h.sumNs.Load()) / float64(h.count.Load()) / nsPerMs,
		Max:   float64(h.maxNs.Load()) / nsPerMs,
	}
	p.P50 = min(quantile(&counts, total, 0.50)/nsPerMs, p.Max)
	p.P95 = min(quantile(&counts, total, 0.95)/nsPerMs, p.Max)
	p.P99 = min(quantile(&counts, total, 0.99)/nsPerMs, p.Max)
	return p
}

// quantile finds the bucket holding the q-th observation and interpolates
// linearly inside it.
func quantile(counts *[histBuckets]uint64, total uint64, q float64) float64 {
	rank := q * float64(total)
	var cum float64
	for i, c := range counts {
		if c == 0 {
			continue
		}
		if cum+float64(c) >= rank {
			lo, hi := bucketBounds(i)
			return lo + (hi-lo)*(rank-cum)/float64(c)
		}
		cum += float64(c)
	}
	_, hi := bucketBounds(histBuckets - 1)
	return hi
}
