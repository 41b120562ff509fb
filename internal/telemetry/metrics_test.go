package telemetry

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/edge-agent/edge-agent/internal/cost"
)

func newTestMetrics(t testing.TB) *Metrics {
	t.Helper()
	return NewMetrics(MetricsOptions{
		Providers:             []string{"openai", "anthropic"},
		Models:                []string{"my-alias"},
		Prices:                cost.Default(),
		DisableRuntimeMetrics: true,
	})
}

// family gathers the registry and returns the named metric family.
func family(t *testing.T, m *Metrics, name string) *dto.MetricFamily {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf
		}
	}
	return nil
}

// sample finds the series of name whose labels include want and returns its
// counter or gauge value, or its histogram sample count.
func sample(t *testing.T, m *Metrics, name string, want map[string]string) (float64, *dto.Metric) {
	t.Helper()
	mf := family(t, m, name)
	if mf == nil {
		t.Fatalf("metric %s not exported", name)
	}
	var found *dto.Metric
	for _, s := range mf.GetMetric() {
		labels := map[string]string{}
		for _, lp := range s.GetLabel() {
			labels[lp.GetName()] = lp.GetValue()
		}
		match := true
		for k, v := range want {
			if labels[k] != v {
				match = false
			}
		}
		if match {
			if found != nil {
				t.Fatalf("%s%v matches more than one series", name, want)
			}
			found = s
		}
	}
	if found == nil {
		t.Fatalf("%s%v: no such series", name, want)
	}
	switch {
	case found.Counter != nil:
		return found.Counter.GetValue(), found
	case found.Gauge != nil:
		return found.Gauge.GetValue(), found
	case found.Histogram != nil:
		return float64(found.Histogram.GetSampleCount()), found
	}
	return math.NaN(), found
}

func assertValue(t *testing.T, m *Metrics, name string, labels map[string]string, want float64) {
	t.Helper()
	got, _ := sample(t, m, name, labels)
	if math.Abs(got-want) > 1e-12 {
		t.Errorf("%s%v = %v; want %v", name, labels, got, want)
	}
}

func TestObserveRequestCountsEachRequestOnceWithExactTokensAndCost(t *testing.T) {
	m := newTestMetrics(t)
	prices := cost.Default()
	openaiCost, _ := prices.Cost("gpt-4o-2024-08-06", cost.Usage{PromptTokens: 1200, CompletionTokens: 300})
	claudeCost, _ := prices.Cost("claude-3-5-sonnet-20241022", cost.Usage{PromptTokens: 2000, CompletionTokens: 1000})
	records := []Record{
		{Provider: "openai", Model: "gpt-4o-2024-08-06", Cache: CacheMiss, Status: 200, TotalLatency: 120 * time.Millisecond,
			ProviderLatency: 118 * time.Millisecond, PromptTokens: 1200, CompletionTokens: 300, CostUSD: openaiCost, CostKnown: true},
		{Provider: "openai", Model: "gpt-4o-2024-08-06", Cache: CacheL1, Status: 200, TotalLatency: 300 * time.Microsecond,
			PromptTokens: 1200, CompletionTokens: 300, SavedUSD: openaiCost},
		{Provider: "anthropic", Model: "claude-3-5-sonnet-20241022", Cache: CacheMiss, Status: 200, Stream: true,
			TotalLatency: 2 * time.Second, ProviderLatency: 1990 * time.Millisecond, TTFT: 400 * time.Millisecond,
			PromptTokens: 2000, CompletionTokens: 1000, CostUSD: claudeCost, CostKnown: true},
		{Provider: "anthropic", Model: "claude-3-5-sonnet-20241022", Cache: CacheL2, Status: 200, TotalLatency: 2 * time.Millisecond,
			PromptTokens: 2000, CompletionTokens: 1000, SavedUSD: claudeCost},
		{Provider: "openai", Model: "gpt-4o", Cache: CacheBypass, Status: 502, TotalLatency: 50 * time.Millisecond,
			ProviderLatency: 49 * time.Millisecond, ErrorCode: "upstream_error"},
	}
	for i := range records {
		m.ObserveRequest(&records[i])
	}

	assertValue(t, m, "llm_edge_cache_hits_total", map[string]string{"tier": "l1", "provider": "openai", "model": "gpt-4o"}, 1)
	assertValue(t, m, "llm_edge_cache_hits_total", map[string]string{"tier": "l2", "provider": "anthropic", "model": "claude-3-5-sonnet"}, 1)
	assertValue(t, m, "llm_edge_cache_misses_total", map[string]string{"provider": "openai", "model": "gpt-4o"}, 1)
	assertValue(t, m, "llm_edge_cache_misses_total", map[string]string{"provider": "anthropic", "model": "claude-3-5-sonnet"}, 1)

	assertValue(t, m, "llm_edge_requests_total", map[string]string{"provider": "openai", "model": "gpt-4o", "status": "2xx"}, 2)
	assertValue(t, m, "llm_edge_requests_total", map[string]string{"provider": "openai", "model": "gpt-4o", "status": "5xx"}, 1)
	assertValue(t, m, "llm_edge_requests_total", map[string]string{"provider": "anthropic", "model": "claude-3-5-sonnet", "status": "2xx"}, 2)

	assertValue(t, m, "llm_edge_tokens_total", map[string]string{"provider": "openai", "model": "gpt-4o", "type": "input"}, 1200)
	assertValue(t, m, "llm_edge_tokens_total", map[string]string{"provider": "openai", "model": "gpt-4o", "type": "output"}, 300)
	assertValue(t, m, "llm_edge_tokens_total", map[string]string{"provider": "anthropic", "model": "claude-3-5-sonnet", "type": "input"}, 2000)
	assertValue(t, m, "llm_edge_tokens_total", map[string]string{"provider": "anthropic", "model": "claude-3-5-sonnet", "type": "output"}, 1000)

	// 1200*2.5/1e6 + 300*10/1e6 = 0.006; 2000*3/1e6 + 1000*15/1e6 = 0.021
	assertValue(t, m, "llm_edge_cost_usd_total", map[string]string{"provider": "openai", "model": "gpt-4o"}, 0.006)
	assertValue(t, m, "llm_edge_cost_usd_total", map[string]string{"provider": "anthropic", "model": "claude-3-5-sonnet"}, 0.021)
	assertValue(t, m, "llm_edge_cache_saved_cost_usd_total", map[string]string{"provider": "openai", "model": "gpt-4o"}, 0.006)
	assertValue(t, m, "llm_edge_cache_saved_cost_usd_total", map[string]string{"provider": "anthropic", "model": "claude-3-5-sonnet"}, 0.021)

	assertValue(t, m, "llm_edge_request_duration_ms", map[string]string{"provider": "openai", "cache": "hit"}, 1)
	assertValue(t, m, "llm_edge_request_duration_ms", map[string]string{"provider": "openai", "cache": "miss"}, 1)
	assertValue(t, m, "llm_edge_request_duration_ms", map[string]string{"provider": "openai", "cache": "bypass", "status": "5xx"}, 1)
	assertValue(t, m, "llm_edge_provider_duration_ms", map[string]string{"provider": "openai"}, 2)
	assertValue(t, m, "llm_edge_provider_duration_ms", map[string]string{"provider": "anthropic"}, 1)
	assertValue(t, m, "llm_edge_time_to_first_token_ms", map[string]string{"provider": "anthropic"}, 1)
	assertValue(t, m, "llm_edge_time_to_first_token_ms", map[string]string{"provider": "openai"}, 0)

	_, s := sample(t, m, "llm_edge_time_to_first_token_ms", map[string]string{"provider": "anthropic"})
	if got := s.Histogram.GetSampleSum(); got != 400 {
		t.Errorf("ttft sum = %v ms; want 400", got)
	}
}

func TestRequestDurationLandsInTheRightBucket(t *testing.T) {
	tests := []struct {
		latency time.Duration
		le      float64 // smallest bucket bound that holds it
	}{
		{30 * time.Microsecond, 0.05},
		{300 * time.Microsecond, 0.5},
		{time.Millisecond, 1}, // bounds are inclusive
		{7 * time.Millisecond, 10},
		{100 * time.Millisecond, 100},
		{100*time.Millisecond + time.Microsecond, 250},
		{45 * time.Second, 60000},
	}
	for _, tt := range tests {
		t.Run(tt.latency.String(), func(t *testing.T) {
			m := newTestMetrics(t)
			m.ObserveRequest(&Record{Provider: "openai", Model: "gpt-4o", Cache: CacheL1, Status: 200, TotalLatency: tt.latency})
			_, s := sample(t, m, "llm_edge_request_duration_ms", nil)
			for _, b := range s.Histogram.GetBucket() {
				want := uint64(0)
				if b.GetUpperBound() >= tt.le {
					want = 1
				}
				if b.GetCumulativeCount() != want {
					t.Errorf("bucket le=%v count %d; want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
				}
			}
			if got, want := s.Histogram.GetSampleSum(), ms(tt.latency); got != want {
				t.Errorf("sum = %v; want %v", got, want)
			}
		})
	}
}

func TestHistogramBucketsSpanFiftyMicrosecondsToSixtySeconds(t *testing.T) {
	if latencyBucketsMs[0] != 0.05 || latencyBucketsMs[len(latencyBucketsMs)-1] != 60000 {
		t.Fatalf("buckets %v", latencyBucketsMs)
	}
	for i := 1; i < len(latencyBucketsMs); i++ {
		if latencyBucketsMs[i] <= latencyBucketsMs[i-1] {
			t.Fatalf("buckets not increasing at %d: %v", i, latencyBucketsMs)
		}
	}
}

func TestLabelCardinalityStaysBoundedUnderRandomModelNames(t *testing.T) {
	m := newTestMetrics(t)
	rng := rand.New(rand.NewPCG(1, 2))
	statuses := []int{200, 400, 429, 500, 503}
	caches := []string{CacheL1, CacheL2, CacheMiss, CacheBypass}
	for i := range 1000 {
		m.ObserveRequest(&Record{
			Provider:     fmt.Sprintf("prov-%d", rng.IntN(1000)),
			Model:        fmt.Sprintf("model-%d-%x", i, rng.Uint64()),
			Cache:        caches[rng.IntN(len(caches))],
			Status:       statuses[rng.IntN(len(statuses))],
			Stream:       true,
			TotalLatency: time.Duration(rng.IntN(1e9)),
			TTFT:         time.Millisecond,
			PromptTokens: 1, CompletionTokens: 1,
		})
		m.UpstreamError(fmt.Sprintf("p%d", i), fmt.Sprintf("weird-%d", i))
		m.UpstreamAttempt(fmt.Sprintf("p%d", i), fmt.Sprintf("weird-%d", i))
		m.CacheError(fmt.Sprintf("t%d", i), fmt.Sprintf("op%d", i))
	}
	allowed := map[string]bool{labelOther: true, CacheL1: true, CacheL2: true,
		"get": true, "set": true, "delete": true, "encode": true, "decode": true}
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, s := range mf.GetMetric() {
			for _, lp := range s.GetLabel() {
				switch lp.GetName() {
				case "model", "provider", "code", "tier", "op", "outcome":
					// Configured providers' attempt series exist from the
					// start, so that alerts see zeros.
					preset := mf.GetName() == "llm_edge_upstream_attempts_total" && (lp.GetValue() == "openai" || lp.GetValue() == "anthropic")
					if v := lp.GetValue(); !allowed[v] && !preset {
						t.Errorf("%s{%s=%q} leaked a client-supplied value", mf.GetName(), lp.GetName(), v)
					}
				}
			}
		}
		// 1 provider x 1 model x 5 status classes x 3 cache labels at most.
		if n := len(mf.GetMetric()); n > 36 {
			t.Errorf("%s has %d series", mf.GetName(), n)
		}
	}
}

func TestModelLabelsKeepConfiguredAndPricedNames(t *testing.T) {
	m := newTestMetrics(t)
	for _, tt := range []struct{ provider, model, wantProvider, wantModel string }{
		{"openai", "my-alias", "openai", "my-alias"},
		{"openai", "openai/gpt-4.1-mini-2025-04-14", "openai", "gpt-4.1-mini"},
		{"anthropic", "claude-sonnet-4-20250514", "anthropic", "claude-sonnet-4"},
		{"", "", labelNone, labelNone},
		{"mystery", "llama-3", labelOther, labelOther},
	} {
		if got := m.providerLabel(tt.provider); got != tt.wantProvider {
			t.Errorf("providerLabel(%q) = %q; want %q", tt.provider, got, tt.wantProvider)
		}
		if got := m.modelLabel(tt.model); got != tt.wantModel {
			t.Errorf("modelLabel(%q) = %q; want %q", tt.model, got, tt.wantModel)
		}
	}
}

func TestErrorCountersUseBoundedLabels(t *testing.T) {
	m := newTestMetrics(t)
	m.CacheError("l2", "get")
	m.CacheError("l2", "get")
	m.CacheError("l1", "frobnicate")
	m.UpstreamError("openai", "429")
	m.UpstreamError("openai", "timeout")
	m.UpstreamError("openai", "dial tcp 10.0.0.1:443: secret-ish detail")
	m.UpstreamError("anthropic", "529")

	assertValue(t, m, "llm_edge_cache_errors_total", map[string]string{"tier": "l2", "op": "get"}, 2)
	assertValue(t, m, "llm_edge_cache_errors_total", map[string]string{"tier": "l1", "op": "other"}, 1)
	assertValue(t, m, "llm_edge_cache_errors_total", map[string]string{"tier": "l1", "op": "set"}, 0)
	assertValue(t, m, "llm_edge_upstream_errors_total", map[string]string{"provider": "openai", "code": "429"}, 1)
	assertValue(t, m, "llm_edge_upstream_errors_total", map[string]string{"provider": "openai", "code": "timeout"}, 1)
	assertValue(t, m, "llm_edge_upstream_errors_total", map[string]string{"provider": "openai", "code": "other"}, 1)
	assertValue(t, m, "llm_edge_upstream_errors_total", map[string]string{"provider": "anthropic", "code": "529"}, 1)
}

func TestGaugesReadTheCallbacksOnEveryScrape(t *testing.T) {
	entries, up := int64(10), true
	m := NewMetrics(MetricsOptions{
		L1Stats:               func() (int64, int64) { return entries, entries * 100 },
		L2Stats:               func() (int64, int64) { return 7, 7000 },
		L2Up:                  func() bool { return up },
		DisableRuntimeMetrics: true,
	})
	m.InflightInc()
	m.InflightInc()
	m.InflightDec()
	assertValue(t, m, "llm_edge_inflight_requests", nil, 1)
	assertValue(t, m, "llm_edge_cache_entries", map[string]string{"tier": "l1"}, 10)
	assertValue(t, m, "llm_edge_cache_bytes", map[string]string{"tier": "l1"}, 1000)
	assertValue(t, m, "llm_edge_cache_entries", map[string]string{"tier": "l2"}, 7)
	assertValue(t, m, "llm_edge_cache_l2_up", nil, 1)
	entries, up = 11, false
	assertValue(t, m, "llm_edge_cache_entries", map[string]string{"tier": "l1"}, 11)
	assertValue(t, m, "llm_edge_cache_l2_up", nil, 0)
}

func TestL2UpIsAbsentWithoutL2(t *testing.T) {
	m := newTestMetrics(t)
	if family(t, m, "llm_edge_cache_l2_up") != nil {
		t.Fatal("llm_edge_cache_l2_up exported without an L2 callback")
	}
}

func TestHandlerServesTheGuideMetricsWithRuntimeCollectors(t *testing.T) {
	m := NewMetrics(MetricsOptions{Providers: []string{"openai"}, Prices: cost.Default()})
	m.ObserveRequest(&Record{Provider: "openai", Model: "gpt-4o", Cache: CacheL1, Status: 200, TotalLatency: time.Millisecond})
	m.ObserveRequest(&Record{Provider: "openai", Model: "gpt-4o", Cache: CacheMiss, Status: 200, TotalLatency: time.Second,
		PromptTokens: 10, CompletionTokens: 5, CostUSD: 0.0000750, CostKnown: true})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	// The guide's `curl .../metrics | grep NAME` lines.
	for _, want := range []string{
		`llm_edge_cache_hits_total{model="gpt-4o",provider="openai",tier="l1"} 1`,
		`llm_edge_cache_misses_total{model="gpt-4o",provider="openai"} 1`,
		`llm_edge_request_duration_ms_bucket{cache="hit",endpoint="chat",model="gpt-4o",provider="openai",status="2xx",le="1"} 1`,
		`llm_edge_tokens_total{model="gpt-4o",provider="openai",type="input"} 10`,
		`llm_edge_cost_usd_total{model="gpt-4o",provider="openai"} 7.5e-05`,
		"go_goroutines ", "process_cpu_seconds_total",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestObserveRequestDoesNotAllocateOnceWarm(t *testing.T) {
	m := newTestMetrics(t)
	r := &Record{Provider: "openai", Model: "gpt-4o-2024-08-06", Cache: CacheMiss, Status: 200, Stream: true,
		TotalLatency: 30 * time.Millisecond, ProviderLatency: 29 * time.Millisecond, TTFT: 5 * time.Millisecond,
		PromptTokens: 10, CompletionTokens: 20, CostUSD: 0.001, CostKnown: true}
	m.ObserveRequest(r)
	if n := testing.AllocsPerRun(100, func() { m.ObserveRequest(r) }); n != 0 {
		t.Fatalf("ObserveRequest allocates %v times per call", n)
	}
}

func TestUpstreamAttemptsAreExportedFromTheStartAndBuildInfoSaysWhatRuns(t *testing.T) {
	m := NewMetrics(MetricsOptions{Providers: []string{"openai"}, AttemptOutcomes: []string{"2xx", "connection_error"},
		Version: "1.2.3", DisableRuntimeMetrics: true, L2Stats: func() (int64, int64) { return 7, -1 }})
	assertValue(t, m, "llm_edge_upstream_attempts_total", map[string]string{"provider": "openai", "outcome": "connection_error"}, 0)
	m.UpstreamAttempt("openai", "connection_error")
	m.UpstreamAttempt("openai", "connection_error")
	m.UpstreamAttempt("openai", "made-up")
	m.UpstreamAttempt("unknown-provider", "2xx")
	assertValue(t, m, "llm_edge_upstream_attempts_total", map[string]string{"provider": "openai", "outcome": "connection_error"}, 2)
	assertValue(t, m, "llm_edge_upstream_attempts_total", map[string]string{"provider": "openai", "outcome": "other"}, 1)
	assertValue(t, m, "llm_edge_upstream_attempts_total", map[string]string{"provider": "other", "outcome": "2xx"}, 1)
	assertValue(t, m, "llm_edge_build_info", map[string]string{"version": "1.2.3", "goversion": runtime.Version()}, 1)
	assertValue(t, m, "llm_edge_cache_entries", map[string]string{"tier": "l2"}, 7)
	if mf := family(t, m, "llm_edge_cache_bytes"); mf != nil {
		t.Errorf("an unknown L2 byte count was exported: %v", mf)
	}
	if n := testing.AllocsPerRun(100, func() { m.UpstreamAttempt("openai", "2xx") }); n != 0 {
		t.Errorf("UpstreamAttempt allocates %v times", n)
	}
}
