package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/edge-agent/edge-agent/internal/app"
	"github.com/edge-agent/edge-agent/internal/cost"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
	"github.com/edge-agent/edge-agent/internal/telemetry"
)

// metricFamilies is one parsed scrape of /metrics.
type metricFamilies map[string]*dto.MetricFamily

// scrapeFamilies GETs /metrics and parses the exposition format.
func scrapeFamilies(t *testing.T, url string, headers ...string) metricFamilies {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// find returns the metric of family name whose labels are exactly labels
// ("k=v" pairs), or nil.
func (f metricFamilies) find(name string, labels ...string) *dto.Metric {
	fam := f[name]
	if fam == nil {
		return nil
	}
	want := map[string]string{}
	for _, l := range labels {
		k, v, _ := strings.Cut(l, "=")
		want[k] = v
	}
	for _, m := range fam.GetMetric() {
		if len(m.GetLabel()) != len(want) {
			continue
		}
		match := true
		for _, lp := range m.GetLabel() {
			if v, ok := want[lp.GetName()]; !ok || v != lp.GetValue() {
				match = false
				break
			}
		}
		if match {
			return m
		}
	}
	return nil
}

// sum adds the counters of every series of name whose labels include
// labels (what PromQL's sum() of a selector gives); 0 when none does.
func (f metricFamilies) sum(name string, labels ...string) float64 {
	total := 0.0
	for _, m := range f[name].GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		match := true
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			if have[k] != v {
				match = false
			}
		}
		if match {
			total += m.GetCounter().GetValue()
		}
	}
	return total
}

// value is the counter, gauge or untyped value of a series, NaN if absent.
func (f metricFamilies) value(name string, labels ...string) float64 {
	m := f.find(name, labels...)
	switch {
	case m == nil:
		return math.NaN()
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return math.NaN()
}

// labelValues is every value label takes across the series of families
// whose name starts with prefix.
func (f metricFamilies) labelValues(prefix, label string) []string {
	seen := map[string]bool{}
	for name, fam := range f {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		for _, m := range fam.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label {
					seen[lp.GetValue()] = true
				}
			}
		}
	}
	var out []string
	for v := range seen {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

// usageOf reads the usage and metadata of a non-streamed answer.
type answerUsage struct {
	Usage struct {
		Prompt     int `json:"prompt_tokens"`
		Completion int `json:"completion_tokens"`
	} `json:"usage"`
	Metadata struct {
		Cost     *float64 `json:"cost_usd,string"` // metadata values are strings
		Provider string   `json:"provider"`
	} `json:"metadata"`
}

func usageOf(t *testing.T, body []byte) answerUsage {
	t.Helper()
	var u answerUsage
	if err := json.Unmarshal(body, &u); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, body)
	}
	return u
}

// priced computes the cost of usage from the price table's per-million
// prices, independently of cost.Table.Cost.
func priced(t *testing.T, modelName string, prompt, completion int) (canonical string, usd float64) {
	t.Helper()
	c, p, ok := cost.Default().Lookup(modelName)
	if !ok {
		t.Fatalf("%s has no price", modelName)
	}
	if p.InputPerM <= 0 || p.OutputPerM <= 0 {
		t.Fatalf("%s: implausible price %+v", modelName, p)
	}
	return c, float64(prompt)*p.InputPerM/1e6 + float64(completion)*p.OutputPerM/1e6
}

func cents(usd float64) int64 { return int64(math.Round(usd * 100)) }

func TestMetricsAfterKnownTrafficHaveExactValues(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, simConfig(s))

	// Answers big enough that their cost is dollars and cents, not
	// fractions of a cent: about 10k prompt tokens and 4000 words each.
	long := strings.Repeat("lorem ipsum dolor sit amet ", 1500)
	type sent struct {
		model, provider, canonical string
		prompt, completion         int
		usd                        float64
	}
	var traffic []sent
	for i, m := range []struct{ model, provider string }{
		{"gpt-4o", "openai"},
		{"claude-3-5-sonnet-20241022", "anthropic"},
	} {
		body := chat(m.model, "SIM_WORDS_4000 "+long)
		r1, b1 := post(t, g.URL, body)
		if r1.StatusCode != 200 || r1.Header.Get("X-Cache-Status") != "MISS" {
			t.Fatalf("%s first: %d %s", m.model, r1.StatusCode, r1.Header.Get("X-Cache-Status"))
		}
		u := usageOf(t, b1)
		if u.Usage.Completion != 4000 || u.Usage.Prompt < 9000 {
			t.Fatalf("%s usage %+v, want 4000 completion tokens and ~10k prompt tokens", m.model, u.Usage)
		}
		canonical, usd := priced(t, m.model, u.Usage.Prompt, u.Usage.Completion)
		if u.Metadata.Cost == nil || math.Abs(*u.Metadata.Cost-usd) > 1e-9 {
			t.Fatalf("%s: metadata.cost_usd %v, want %v", m.model, u.Metadata.Cost, usd)
		}
		traffic = append(traffic, sent{m.model, m.provider, canonical, u.Usage.Prompt, u.Usage.Completion, usd})

		r2, _ := post(t, g.URL, body)
		if r2.Header.Get("X-Cache-Status") != "HIT" || r2.Header.Get("X-Cache-Layer") != "L1" {
			t.Fatalf("%s second: %s %s", m.model, r2.Header.Get("X-Cache-Status"), r2.Header.Get("X-Cache-Layer"))
		}

		// After each miss+hit pair, each is counted exactly once.
		f := scrapeFamilies(t, g.URL)
		n := float64(i + 1)
		for series, want := range map[string]float64{
			"l1 hits": f.sum("llm_edge_cache_hits_total", "tier=l1"),
			"l2 hits": f.sum("llm_edge_cache_hits_total", "tier=l2"),
			"misses":  f.sum("llm_edge_cache_misses_total"),
		} {
			exp := n
			if series == "l2 hits" {
				exp = 0
			}
			if want != exp {
				t.Errorf("after %d miss+hit pairs, %s = %v, want %v", i+1, series, want, exp)
			}
		}
	}
	// A rejected request is counted as a request, not as a cache outcome.
	if r, _ := post(t, g.URL, chat("gpt-4o", "x", `"temperature":5`)); r.StatusCode != 400 {
		t.Fatalf("temperature 5: %d", r.StatusCode)
	}

	f := scrapeFamilies(t, g.URL)
	var totalUSD float64
	var totalPrompt, totalCompletion int
	for _, s := range traffic {
		pl := []string{"provider=" + s.provider, "model=" + s.canonical}
		got := f.value("llm_edge_cost_usd_total", pl...)
		if cents(got) != cents(s.usd) || math.Abs(got-s.usd) > 1e-9 {
			t.Errorf("cost %s/%s = %v, want %v ($%.2f)", s.provider, s.canonical, got, s.usd, s.usd)
		}
		if got := f.value("llm_edge_cache_saved_cost_usd_total", pl...); math.Abs(got-s.usd) > 1e-9 {
			t.Errorf("saved cost %s = %v, want %v (one hit)", s.canonical, got, s.usd)
		}
		if got := f.value("llm_edge_tokens_total", append(pl, "type=input")...); got != float64(s.prompt) {
			t.Errorf("input tokens %s = %v, want %d (a hit adds none)", s.canonical, got, s.prompt)
		}
		if got := f.value("llm_edge_tokens_total", append(pl, "type=output")...); got != float64(s.completion) {
			t.Errorf("output tokens %s = %v, want %d", s.canonical, got, s.completion)
		}
		if got := f.value("llm_edge_requests_total", append(pl, "endpoint=chat", "status=2xx")...); got != 2 {
			t.Errorf("requests %s 2xx = %v, want 2", s.canonical, got)
		}
		for _, c := range []string{"hit", "miss"} {
			h := f.find("llm_edge_request_duration_ms", append(pl, "endpoint=chat", "cache="+c, "status=2xx")...)
			if h == nil || h.Histogram == nil || h.Histogram.GetSampleCount() != 1 {
				t.Errorf("duration histogram %s cache=%s: %v, want one sample", s.canonical, c, h)
				continue
			}
			// Bucket placement: the one sample lies in the buckets at and
			// above its value, and the buckets go from 0.05 ms to 60 s.
			bs := h.Histogram.GetBucket()
			if last := bs[len(bs)-1].GetUpperBound(); math.IsInf(last, 1) {
				bs = bs[:len(bs)-1] // the parser adds +Inf
			}
			if bs[0].GetUpperBound() != 0.05 || bs[len(bs)-1].GetUpperBound() != 60000 {
				t.Errorf("buckets span %v..%v ms, want 0.05..60000", bs[0].GetUpperBound(), bs[len(bs)-1].GetUpperBound())
			}
			sum := h.Histogram.GetSampleSum()
			for _, b := range bs {
				if want := uint64(0); sum <= b.GetUpperBound() {
					want = 1
					if b.GetCumulativeCount() != want {
						t.Errorf("bucket le=%v holds %d, want %d (sample %v ms)", b.GetUpperBound(), b.GetCumulativeCount(), want, sum)
					}
				} else if b.GetCumulativeCount() != want {
					t.Errorf("bucket le=%v holds %d, want %d (sample %v ms)", b.GetUpperBound(), b.GetCumulativeCount(), want, sum)
				}
			}
		}
		if h := f.find("llm_edge_provider_duration_ms", pl...); h == nil || h.Histogram.GetSampleCount() != 1 {
			t.Errorf("provider duration %s: want one sample (misses only), got %v", s.canonical, h)
		}
		totalUSD += s.usd
		totalPrompt += s.prompt
		totalCompletion += s.completion
	}
	// It never reached the cache: not a miss. Its model was never parsed.
	if got := f.sum("llm_edge_cache_misses_total"); got != 2 {
		t.Errorf("misses = %v after a rejected request, want 2", got)
	}
	if got := f.value("llm_edge_requests_total", "endpoint=chat", "provider=none", "model=none", "status=4xx"); got != 1 {
		t.Errorf("requests 4xx = %v, want 1", got)
	}
	if got := f.value("llm_edge_inflight_requests"); got != 0 {
		t.Errorf("inflight = %v after every answer", got)
	}
	if got := f.value("llm_edge_cache_entries", "tier=l1"); got != 2 {
		t.Errorf("L1 entries = %v, want 2", got)
	}
	// The routing families exist from the start, before any retry.
	if got := f.value("llm_edge_fallbacks_total"); got != 0 {
		t.Errorf("llm_edge_fallbacks_total = %v, want 0", got)
	}
	for _, name := range []string{"llm_edge_retries_total", "llm_edge_circuit_breaker_state"} {
		fam := f[name]
		if fam == nil || len(fam.GetMetric()) == 0 {
			t.Errorf("/metrics lacks %s", name)
			continue
		}
		for _, m := range fam.GetMetric() {
			if v := f.value(name, "deployment="+m.GetLabel()[0].GetValue()); v != 0 {
				t.Errorf("%s{%s} = %v, want 0 (closed, no retries)", name, m.GetLabel()[0].GetValue(), v)
			}
		}
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if f[name] == nil {
			t.Errorf("/metrics lacks %s", name)
		}
	}

	// /admin/stats agrees with the metrics.
	resp, err := http.Get(g.URL + "/admin/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st telemetry.StatsSnapshot
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.Requests != 5 || st.Cache.L1Hits != 2 || st.Cache.L2Hits != 0 || st.Cache.Misses != 2 || st.Cache.HitRate != 0.5 {
		t.Errorf("stats requests/cache: %d %+v, want 5 requests, 2 L1 hits, 2 misses, hit rate 0.5", st.Requests, st.Cache)
	}
	if st.Tokens.Prompt != uint64(totalPrompt) || st.Tokens.Completion != uint64(totalCompletion) {
		t.Errorf("stats tokens %+v, want %d/%d", st.Tokens, totalPrompt, totalCompletion)
	}
	if math.Abs(st.CostUSD-totalUSD) > 1e-9 || math.Abs(st.SavedCostUSD-totalUSD) > 1e-9 {
		t.Errorf("stats cost %v saved %v, want %v each", st.CostUSD, st.SavedCostUSD, totalUSD)
	}
	if st.Errors.Client != 1 || st.Errors.Server != 0 {
		t.Errorf("stats errors %+v, want one 4xx", st.Errors)
	}
	if st.LatencyMs.P50 <= 0 || st.UptimeSeconds <= 0 {
		t.Errorf("stats latency %+v uptime %v", st.LatencyMs, st.UptimeSeconds)
	}
}

func TestRandomModelNamesKeepMetricLabelsBounded(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, simConfig(s))
	known := scrapeFamilies(t, g.URL)
	const n, workers = 1000, 8
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 42))
			for i := w; i < n; i += workers {
				name := fmt.Sprintf("sim/rand-%x", r.Uint64())
				if resp, out := post(t, g.URL, chat(name, "cardinality")); resp.StatusCode != 200 {
					t.Errorf("%s: %d %s", name, resp.StatusCode, out)
					return
				}
			}
		})
	}
	wg.Wait()
	f := scrapeFamilies(t, g.URL)
	models := f.labelValues("llm_edge_", "model")
	for _, m := range models {
		if strings.HasPrefix(m, "rand-") || strings.Contains(m, "/") {
			t.Fatalf("client-chosen model name %q became a label value", m)
		}
	}
	if got := f.value("llm_edge_requests_total", "endpoint=chat", "provider=sim", "model=other", "status=2xx"); got != n {
		t.Errorf(`requests{provider="sim",model="other"} = %v, want %d`, got, n)
	}
	// Every family stays as small as before the traffic, plus the one
	// "other" series per label set.
	for name, fam := range f {
		if !strings.HasPrefix(name, "llm_edge_") {
			continue
		}
		before := 0
		if k := known[name]; k != nil {
			before = len(k.GetMetric())
		}
		if got := len(fam.GetMetric()); got > before+4 {
			t.Errorf("%s grew from %d to %d series", name, before, got)
		}
	}
}

// requestLine returns the last "Request completed" line of logs.
func requestLine(t *testing.T, logs string) string {
	t.Helper()
	var line string
	for l := range strings.SplitSeq(logs, "\n") {
		if strings.Contains(l, "Request completed") {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("no Request completed line in %q", logs)
	}
	return line
}

func TestRequestCompletedLineParsesInJSONAndText(t *testing.T) {
	s := startSim(t, simulated.Options{})
	guideRe := regexp.MustCompile(`total_latency_ms=(\d+)`)
	textField := regexp.MustCompile(`(?:^| )([a-z_]+)=("(?:[^"\\]|\\.)*"|\S*)`)
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			cfg := simConfig(s)
			cfg.LogFormat = format
			g := startGateway(t, cfg)
			body := chat("gpt-4o", "log line in "+format+" SIM_SLOW_20")
			for i, wantCache := range []string{"miss", "l1"} {
				resp, out := post(t, g.URL, body, "Authorization: Bearer sk-never-logged")
				if resp.StatusCode != 200 {
					t.Fatalf("%d %s", resp.StatusCode, out)
				}
				u := usageOf(t, out)
				line := requestLine(t, g.Logs.String())
				fields := map[string]string{}
				if format == "json" {
					var m map[string]any
					if err := json.Unmarshal([]byte(line), &m); err != nil {
						t.Fatalf("not JSON: %v: %s", err, line)
					}
					for k, v := range m {
						fields[k] = fmt.Sprint(v)
					}
					for _, k := range []string{"total_latency_ms", "provider_latency_ms", "overhead_ms", "prompt_tokens", "completion_tokens", "status"} {
						if _, ok := m[k].(float64); !ok {
							t.Errorf("%s is %T, want a JSON number", k, m[k])
						}
					}
				} else {
					for _, sm := range textField.FindAllStringSubmatch(line, -1) {
						fields[sm[1]] = strings.Trim(sm[2], `"`)
					}
					sm := guideRe.FindStringSubmatch(line)
					if sm == nil {
						t.Fatalf("the guide's regexp does not match: %s", line)
					}
					if sm[1] != fields["total_latency_ms"] {
						t.Fatalf("guide's regexp read %s, field is %s", sm[1], fields["total_latency_ms"])
					}
				}
				if strings.Contains(line, "sk-never-logged") {
					t.Fatalf("the client key was logged: %s", line)
				}
				want := map[string]string{
					"msg": "Request completed", "request_id": resp.Header.Get("X-Request-Id"), "model": "gpt-4o",
					"provider": "openai", "cache": wantCache, "status": "200",
					"prompt_tokens": strconv.Itoa(u.Usage.Prompt), "completion_tokens": strconv.Itoa(u.Usage.Completion),
				}
				if wantCache == "l1" {
					// A hit billed nothing.
					want["prompt_tokens"], want["completion_tokens"], want["provider_latency_ms"] = "0", "0", "0"
				}
				for k, v := range want {
					if fields[k] != v {
						t.Errorf("request %d: %s = %q, want %q in %s", i, k, fields[k], v, line)
					}
				}
				total, err1 := strconv.Atoi(fields["total_latency_ms"])
				overhead, err2 := strconv.Atoi(fields["overhead_ms"])
				if err1 != nil || err2 != nil || total < 0 || overhead < 0 || overhead > total {
					t.Errorf("latencies total=%q overhead=%q", fields["total_latency_ms"], fields["overhead_ms"])
				}
				if wantCache == "miss" && total < 20 {
					t.Errorf("total_latency_ms %d, the provider alone took 20 ms", total)
				}
				if c, err := strconv.ParseFloat(fields["cost_usd"], 64); wantCache == "miss" && (err != nil || c <= 0) {
					t.Errorf("cost_usd %q on a priced miss", fields["cost_usd"])
				}
			}
		})
	}
}

// tracedGateway serves an app that traces through an in-memory recorder.
func tracedGateway(t *testing.T, s *sim) (url string, rec *tracetest.SpanRecorder) {
	t.Helper()
	rec = tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	logger, err := telemetry.NewLogger(io.Discard, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), simConfig(s), logger, app.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(func() { srv.Close(); a.Close() })
	return srv.URL, rec
}

func TestTracesSpanRequestCacheAndProviderAndReachTheProvider(t *testing.T) {
	s := startSim(t, simulated.Options{})
	url, rec := tracedGateway(t, s)

	// The client's own trace is continued.
	clientTrace := "4bf92f3577b34da6a3ce929d0e0e4736"
	body := chat("gpt-4o-mini", "trace me")
	resp, out := post(t, url, body, "traceparent: 00-"+clientTrace+"-00f067aa0ba902b7-01")
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, out)
	}
	_, hdr, _ := s.LastRequest()
	upstream := propagation.TraceContext{}.Extract(context.Background(), propagation.HeaderCarrier(hdr))
	usc := trace.SpanContextFromContext(upstream)
	if !usc.IsValid() {
		t.Fatalf("no valid traceparent reached the provider: %q", hdr.Get("Traceparent"))
	}

	spans := rec.Ended()
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, sp := range spans {
		if sp.Name() != "chat gpt-4o-mini" {
			byName[sp.Name()] = sp
		}
		if got := sp.SpanContext().TraceID().String(); got != clientTrace {
			t.Errorf("span %q in trace %s, want the client's %s", sp.Name(), got, clientTrace)
		}
	}
	root, lookup := byName["POST /v1/chat/completions"], byName["cache.lookup"]
	l1 := byName["cache.l1"]
	// The gateway's GenAI span of the provider call, child of the request,
	// and the one upstream attempt under it.
	var call, attempt sdktrace.ReadOnlySpan
	for _, sp := range spans {
		if sp.Name() == "chat gpt-4o-mini" && root != nil && sp.Parent().SpanID() == root.SpanContext().SpanID() {
			call = sp
		}
	}
	for _, sp := range spans {
		if call != nil && sp.Name() == "chat gpt-4o-mini" && sp.Parent().SpanID() == call.SpanContext().SpanID() {
			attempt = sp
		}
	}
	if root == nil || lookup == nil || l1 == nil || call == nil || attempt == nil || len(spans) != 5 {
		t.Fatalf("spans %v, want the request, its cache lookup with the L1 tier's, its provider call and the attempt", slices.Collect(func(yield func(string) bool) {
			for _, sp := range spans {
				if !yield(sp.Name()) {
					return
				}
			}
		}))
	}
	if root.SpanKind() != trace.SpanKindServer || call.SpanKind() != trace.SpanKindClient {
		t.Errorf("kinds: request %v, provider call %v", root.SpanKind(), call.SpanKind())
	}
	if lookup.Parent().SpanID() != root.SpanContext().SpanID() || call.Parent().SpanID() != root.SpanContext().SpanID() {
		t.Errorf("cache lookup and provider call must be children of the request span")
	}
	if l1.Parent().SpanID() != lookup.SpanContext().SpanID() {
		t.Errorf("the L1 span must be a child of the cache lookup")
	}
	// The provider sees the attempt's span as its parent.
	if usc.TraceID().String() != clientTrace || usc.SpanID() != attempt.SpanContext().SpanID() {
		t.Errorf("upstream traceparent %s, want trace %s span %s", hdr.Get("Traceparent"), clientTrace, attempt.SpanContext().SpanID())
	}
	attrs := map[string]string{}
	for _, kv := range root.Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	if attrs["llm.cache"] != "miss" || attrs["http.response.status_code"] != "200" || attrs["llm.provider"] != "openai" {
		t.Errorf("request span attributes %v", attrs)
	}

	// A hit looks up the cache and calls no provider.
	rec.Reset()
	if resp, _ := post(t, url, body); resp.Header.Get("X-Cache-Status") != "HIT" {
		t.Fatalf("second request: %s", resp.Header.Get("X-Cache-Status"))
	}
	var names []string
	for _, sp := range rec.Ended() {
		names = append(names, sp.Name())
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"POST /v1/chat/completions", "cache.l1", "cache.lookup"}) {
		t.Errorf("spans of a hit: %v", names)
	}
}

func TestMetricsEndpointExportsRoutingFamiliesAfterRetries(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, simConfig(s))
	// SIM_ERROR_500 fails every attempt.
	if resp, out := post(t, g.URL, chat("gpt-4o-mini", "SIM_ERROR_500")); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("%d %s", resp.StatusCode, out)
	}
	f := scrapeFamilies(t, g.URL)
	var retries float64
	for _, m := range f["llm_edge_retries_total"].GetMetric() {
		retries += m.GetCounter().GetValue()
	}
	// SIM_ERROR_500 fails every attempt: the first try plus 2 retries.
	if retries != 2 {
		t.Errorf("llm_edge_retries_total sums to %v, want 2 (default max_retries)", retries)
	}
	// The request that failed is counted once, whatever its attempts.
	if got := f.value("llm_edge_upstream_errors_total", "provider=openai", "code=500"); got != 1 {
		t.Errorf(`llm_edge_upstream_errors_total{provider="openai",code="500"} = %v, want 1`, got)
	}
	if got := f.value("llm_edge_requests_total", "endpoint=chat", "provider=openai", "model=gpt-4o-mini", "status=5xx"); got != 1 {
		t.Errorf("requests 5xx = %v, want 1", got)
	}
}
