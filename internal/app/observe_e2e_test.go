package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/edge-agent/edge-agent/internal/app"
	"github.com/edge-agent/edge-agent/internal/cost"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
	"github.com/edge-agent/edge-agent/internal/telemetry"
)

// scrape returns the value of the series named exactly as given (name plus
// labels in the exposition format), or NaN when absent.
func scrape(t *testing.T, url string) func(series string) float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	text := string(b)
	return func(series string) float64 {
		for _, line := range strings.Split(text, "\n") {
			if v, ok := strings.CutPrefix(line, series+" "); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatalf("%s: %v", line, err)
				}
				return f
			}
		}
		return math.NaN()
	}
}

func TestMetricsCountEachRequestOnceWithExactValues(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, simConfig(s))
	prices := cost.Default()
	var wantCost = map[string]float64{}
	for _, m := range []string{"gpt-4o", "claude-3-5-sonnet-20241022"} {
		body := chat(m, "metrics for "+m)
		_, out := post(t, g.URL, body)
		var u struct {
			Usage struct {
				P int `json:"prompt_tokens"`
				C int `json:"completion_tokens"`
			} `json:"usage"`
			Metadata struct {
				Cost float64 `json:"cost_usd"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(out, &u); err != nil {
			t.Fatal(err)
		}
		c, ok := prices.Cost(m, cost.Usage{PromptTokens: u.Usage.P, CompletionTokens: u.Usage.C})
		if !ok || math.Abs(c-u.Metadata.Cost) > 1e-9 {
			t.Fatalf("%s: metadata cost %v, price table says %v", m, u.Metadata.Cost, c)
		}
		canonical, _, _ := prices.Lookup(m)
		wantCost[canonical] = c
		post(t, g.URL, body) // a hit
	}
	v := scrape(t, g.URL)
	checks := map[string]float64{
		`llm_edge_cache_hits_total{tier="l1"}`:                                    2,
		`llm_edge_cache_hits_total{tier="l2"}`:                                    0,
		`llm_edge_cache_misses_total`:                                             2,
		`llm_edge_cost_usd_total{model="gpt-4o",provider="openai"}`:               wantCost["gpt-4o"],
		`llm_edge_cost_usd_total{model="claude-3-5-sonnet",provider="anthropic"}`: wantCost["claude-3-5-sonnet"],
		`llm_edge_requests_total{model="gpt-4o",provider="openai",status="2xx"}`:  2,
		`llm_edge_inflight_requests`:                                              0,
		`llm_edge_cache_entries{tier="l1"}`:                                       2,
	}
	for series, want := range checks {
		if got := v(series); math.IsNaN(got) || math.Abs(got-want) > 1e-12 {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	for _, name := range []string{"llm_edge_request_duration_ms_bucket", "llm_edge_tokens_total", "llm_edge_retries_total",
		"llm_edge_circuit_breaker_state", "llm_edge_fallbacks_total", "go_goroutines", "process_resident_memory_bytes"} {
		resp, _ := http.Get(g.URL + "/metrics")
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	resp, err := http.Get(g.URL + "/admin/stats")
	if err != nil {
		t.Fatal(err)
	}
	var st telemetry.StatsSnapshot
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if st.Requests != 4 || st.Cache.L1Hits != 2 || st.Cache.HitRate != 0.5 {
		t.Fatalf("stats %+v", st)
	}
}

func TestModelLabelsStayBounded(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, simConfig(s))
	for i := range 300 {
		post(t, g.URL, chat(fmt.Sprintf("sim/random-model-%d", i), "x"), "Cache-Control: no-store")
	}
	resp, _ := http.Get(g.URL + "/metrics")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(b), "random-model") {
		t.Fatal("client-chosen model names leaked into metric labels")
	}
	if !strings.Contains(string(b), `model="other"`) {
		t.Fatal(`unknown models must be labelled "other"`)
	}
}

func TestRequestLogLineParsesInBothFormats(t *testing.T) {
	s := startSim(t, simulated.Options{})
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			cfg := simConfig(s)
			cfg.LogFormat = format
			g := startGateway(t, cfg)
			post(t, g.URL, chat("gpt-4o-mini", "log line "+format))
			var line string
			for _, l := range strings.Split(g.Logs.String(), "\n") {
				if strings.Contains(l, "Request completed") {
					line = l
				}
			}
			if line == "" {
				t.Fatalf("no request line in %q", g.Logs.String())
			}
			if format == "json" {
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatalf("not JSON: %v: %s", err, line)
				}
				for _, k := range []string{"request_id", "model", "provider", "cache", "status", "total_latency_ms", "provider_latency_ms", "overhead_ms", "prompt_tokens", "completion_tokens", "cost_usd"} {
					if _, ok := m[k]; !ok {
						t.Fatalf("field %s missing: %s", k, line)
					}
				}
				return
			}
			// The guide: grep "Request completed" logs.txt | grep -oP 'total_latency_ms=\K\d+'
			if !regexp.MustCompile(`total_latency_ms=\d+( |$)`).MatchString(line) || !strings.Contains(line, "cache=miss") {
				t.Fatalf("text line does not match the guide's grep: %s", line)
			}
		})
	}
}

func TestTracesCoverRequestCacheAndProviderAndReachTheProvider(t *testing.T) {
	s := startSim(t, simulated.Options{})
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	logger, _ := telemetry.NewLogger(io.Discard, "json", "info")
	a, err := app.New(context.Background(), simConfig(s), logger, app.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	srv := newServer(t, a.Handler())
	post(t, srv, chat("gpt-4o-mini", "trace me"))
	_, hdr, _ := s.LastRequest()
	tpHeader := hdr.Get("Traceparent")
	if !regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$`).MatchString(tpHeader) {
		t.Fatalf("traceparent did not reach the provider: %q", tpHeader)
	}
	spans := rec.Ended()
	names := map[string]bool{}
	traceID := ""
	for _, sp := range spans {
		names[sp.Name()] = true
		if traceID == "" {
			traceID = sp.SpanContext().TraceID().String()
		} else if sp.SpanContext().TraceID().String() != traceID {
			t.Fatal("spans of one request belong to different traces")
		}
	}
	if len(spans) < 3 || !names["cache.lookup"] || !strings.Contains(tpHeader, traceID) {
		t.Fatalf("spans %v (trace %s, traceparent %s)", names, traceID, tpHeader)
	}
}

func newServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
