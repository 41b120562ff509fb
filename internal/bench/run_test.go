package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeGateway answers chat completions the way the gateway does: the
// first request for a prompt is a MISS, later ones are L1 HITs, and every
// answer carries X-Edge-Overhead-Ms.
type fakeGateway struct {
	mu      sync.Mutex
	prompts map[string]int
	total   atomic.Int64
	// before runs ahead of the answer, for stalls.
	before func(n int64)
	// ttft and tail delay the first content event and the end of a stream.
	ttft, tail time.Duration
	noDone     bool
	headers    http.Header
}

func newFakeGateway(t *testing.T, g *fakeGateway) *httptest.Server {
	t.Helper()
	g.prompts = map[string]int{}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return srv
}

func (g *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := g.total.Add(1)
	body, err := io.ReadAll(r.Body)
	if err != nil || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if g.before != nil {
		g.before(n)
	}
	prompt := gjson.GetBytes(body, "messages.0.content").String()
	g.mu.Lock()
	seen := g.prompts[prompt]
	g.prompts[prompt]++
	if n == 1 {
		g.headers = r.Header.Clone()
	}
	g.mu.Unlock()
	h := w.Header()
	if seen > 0 {
		h.Set("X-Cache-Status", "HIT")
		h.Set("X-Cache-Layer", "L1")
	} else {
		h.Set("X-Cache-Status", "MISS")
	}
	h.Set("X-Edge-Overhead-Ms", "0.250")
	if !gjson.GetBytes(body, "stream").Bool() {
		h.Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}`)
		return
	}
	h.Set("Content-Type", "text/event-stream")
	rc := http.NewResponseController(w)
	io.WriteString(w, `data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}`+"\n\n")
	rc.Flush()
	time.Sleep(g.ttft)
	io.WriteString(w, `data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}`+"\n\n")
	rc.Flush()
	time.Sleep(g.tail)
	if !g.noDone {
		io.WriteString(w, "data: [DONE]\n\n")
	}
}

func testConfig(url string) Config {
	cfg := DefaultConfig()
	cfg.URL = url
	cfg.Concurrency = 4
	cfg.Duration = 0
	cfg.Timeout = 5 * time.Second
	return cfg
}

func TestClosedLoopCountModeSendsExactlyN(t *testing.T) {
	for _, n := range []int64{1, 7, 500} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			g := &fakeGateway{}
			srv := newFakeGateway(t, g)
			cfg := testConfig(srv.URL)
			cfg.Requests = n
			res, err := Run(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if g.total.Load() != n || res.Requests != n || res.Status["200"] != n || res.Latency.Count != uint64(n) {
				t.Errorf("server saw %d, result %d requests, %d OK, %d latencies; want %d",
					g.total.Load(), res.Requests, res.Status["200"], res.Latency.Count, n)
			}
			if res.Errors != 0 || res.ErrorRate != 0 || res.Mode != "closed" {
				t.Errorf("errors %d, rate %g, mode %s", res.Errors, res.ErrorRate, res.Mode)
			}
			if res.ThroughputRPS <= 0 || res.Latency.P50 <= 0 || res.Latency.Max < res.Latency.P99 {
				t.Errorf("implausible throughput %g or latency %+v", res.ThroughputRPS, res.Latency)
			}
		})
	}
}

func TestClosedLoopDurationModeStopsOnTime(t *testing.T) {
	g := &fakeGateway{}
	srv := newFakeGateway(t, g)
	cfg := testConfig(srv.URL)
	cfg.Duration = 300 * time.Millisecond
	cfg.Interval = 100 * time.Millisecond
	start := time.Now()
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 300*time.Millisecond || el > 2*time.Second {
		t.Errorf("run took %s, want about 300ms", el)
	}
	if res.Requests == 0 || res.Requests != g.total.Load() {
		t.Errorf("result %d requests, server saw %d", res.Requests, g.total.Load())
	}
	// One point per 100ms of the run; stragglers finishing within 10ms of
	// the end fold into the third point, later ones (a loaded machine) add
	// a point per interval they take.
	if maxPoints := int(math.Ceil(res.DurationS/0.1)) + 1; len(res.Series) < 3 || len(res.Series) > maxPoints {
		t.Fatalf("series has %d points over %gs, want 3 to %d (one per 100ms)", len(res.Series), res.DurationS, maxPoints)
	}
	if last := res.Series[len(res.Series)-1]; last.TS != res.DurationS {
		t.Errorf("last point ends at %gs, want the end of the run (%gs)", last.TS, res.DurationS)
	}
	var sum int64
	for _, p := range res.Series {
		sum += p.Requests
	}
	if sum != res.Requests {
		t.Errorf("series adds up to %d requests, want %d", sum, res.Requests)
	}
}

func TestOpenLoopLatencyIncludesTimeQueuedBehindAStall(t *testing.T) {
	// The server freezes for 200ms once, 300ms into the run. Requests due
	// during the freeze wait for it even though only a few were in flight:
	// measured from when they were due, about a fifth of them are slow.
	// (100 requests a second: a rate a loaded machine under -race keeps.)
	var pauseUntil atomic.Int64
	g := &fakeGateway{before: func(n int64) {
		if n == 30 {
			pauseUntil.Store(time.Now().Add(200 * time.Millisecond).UnixNano())
		}
		if d := time.Until(time.Unix(0, pauseUntil.Load())); d > 0 {
			time.Sleep(d)
		}
	}}
	srv := newFakeGateway(t, g)
	cfg := testConfig(srv.URL)
	cfg.Rate = 100
	cfg.Duration = time.Second
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Mode != "open" || res.Requests < 95 || res.Requests > 100 {
		t.Errorf("mode %s, %d requests; want open loop with 100 (rate × duration)", res.Mode, res.Requests)
	}
	if res.Latency.P99 < 150_000 || res.Latency.Max < 190_000 {
		t.Errorf("p99 %.0fµs, max %.0fµs: the 200ms stall is missing (coordinated omission)", res.Latency.P99, res.Latency.Max)
	}
	if res.Latency.P50 > 50_000 {
		t.Errorf("p50 %.0fµs, want a fast median: only the stall is slow", res.Latency.P50)
	}
	if res.Dropped != 0 || res.Errors != 0 {
		t.Errorf("dropped %d, errors %d", res.Dropped, res.Errors)
	}
}

func TestOpenLoopDropsRequestsOverdueByMoreThanTheTimeout(t *testing.T) {
	g := &fakeGateway{before: func(int64) { time.Sleep(100 * time.Millisecond) }}
	srv := newFakeGateway(t, g)
	cfg := testConfig(srv.URL)
	cfg.Concurrency = 1
	cfg.Rate = 100
	cfg.Duration = 500 * time.Millisecond
	cfg.Timeout = 150 * time.Millisecond
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Dropped == 0 || res.Requests+res.Dropped != 50 {
		t.Errorf("%d sent, %d dropped; want 50 due with most dropped", res.Requests, res.Dropped)
	}
	if res.ErrorRate <= 0.5 {
		t.Errorf("error rate %g, want drops counted as failures", res.ErrorRate)
	}
}

func TestHitRateCountsTiersFromHeaders(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func() func(http.ResponseWriter, *http.Request) {
		var n atomic.Int64
		return func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			h := w.Header()
			switch i := (n.Add(1) - 1) % 10; {
			case i < 5:
				h.Set("X-Cache-Status", "HIT")
				h.Set("X-Cache-Layer", "L1")
			case i < 7:
				h.Set("X-Cache-Status", "HIT")
				h.Set("X-Cache-Layer", "L2")
			case i == 7:
				h.Set("X-Cache-Status", "MISS")
			case i == 8:
				h.Set("X-Cache-Status", "BYPASS")
			default:
				h.Set("X-Cache-Status", "MISS")
				h.Set("X-Edge-Overhead-Ms", "1.500")
				w.WriteHeader(http.StatusTooManyRequests)
			}
			h.Set("X-Edge-Overhead-Ms", "1.500")
			io.WriteString(w, "{}")
		}
	}()))
	t.Cleanup(srv.Close)
	cfg := testConfig(srv.URL)
	cfg.Requests = 1000
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := Tiers{L1: 500, L2: 200, Miss: 200, Bypass: 100}
	if res.Hits != want {
		t.Errorf("hits %+v, want %+v", res.Hits, want)
	}
	if res.HitRate != 0.7 || res.HitRates.L1 != 0.5 || res.HitRates.L2 != 0.2 || res.HitRates.Bypass != 0.1 {
		t.Errorf("hit rate %g, by tier %+v", res.HitRate, res.HitRates)
	}
	if res.Errors != 100 || res.ErrorRate != 0.1 || res.Status["429"] != 100 || res.Status["200"] != 900 {
		t.Errorf("errors %d (%g), status %v", res.Errors, res.ErrorRate, res.Status)
	}
	if res.OverheadMsMean < 1.49 || res.OverheadMsMean > 1.51 || res.Overhead == nil || res.Overhead.Count != 1000 {
		t.Errorf("overhead mean %g ms over %+v", res.OverheadMsMean, res.Overhead)
	}
}

func TestSameMixHitsAfterTheFirstRequest(t *testing.T) {
	g := &fakeGateway{}
	srv := newFakeGateway(t, g)
	cfg := testConfig(srv.URL)
	cfg.Concurrency = 1
	cfg.Requests = 50
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Hits.Miss != 1 || res.Hits.L1 != 49 || len(g.prompts) != 1 {
		t.Errorf("hits %+v over %d prompts, want 1 miss then 49 L1 hits", res.Hits, len(g.prompts))
	}
}

func TestUniqueMixSendsADifferentPromptEveryTime(t *testing.T) {
	g := &fakeGateway{}
	srv := newFakeGateway(t, g)
	cfg := testConfig(srv.URL)
	cfg.Mix = MixUnique
	cfg.Requests = 300
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.prompts) != 300 || res.Hits.Miss != 300 || res.HitRate != 0 {
		t.Errorf("%d distinct prompts, hits %+v", len(g.prompts), res.Hits)
	}
}

func TestStreamingMeasuresTimeToFirstToken(t *testing.T) {
	tests := []struct {
		name       string
		noDone     bool
		wantBroken int64
	}{
		{"complete streams", false, 0},
		{"streams without DONE are errors", true, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &fakeGateway{ttft: 30 * time.Millisecond, tail: 30 * time.Millisecond, noDone: tt.noDone}
			srv := newFakeGateway(t, g)
			cfg := testConfig(srv.URL)
			cfg.StreamShare = 1
			cfg.Requests = 10
			res, err := Run(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if res.Streams != 10 || res.TTFT == nil || res.TTFT.Count != 10 {
				t.Fatalf("streams %d, ttft %+v; want 10 of each", res.Streams, res.TTFT)
			}
			if res.TTFT.P50 < 30_000 || res.TTFT.P50 > res.Latency.P50-20_000 {
				t.Errorf("ttft p50 %.0fµs, latency p50 %.0fµs: want ttft ≥ 30ms and 30ms before the end", res.TTFT.P50, res.Latency.P50)
			}
			if res.Latency.P50 < 60_000 {
				t.Errorf("latency p50 %.0fµs, want the whole stream (≥ 60ms)", res.Latency.P50)
			}
			if res.StreamErrors != tt.wantBroken || res.Errors != tt.wantBroken {
				t.Errorf("stream errors %d, errors %d; want %d", res.StreamErrors, res.Errors, tt.wantBroken)
			}
		})
	}
}

func TestStreamShareSplitsRequests(t *testing.T) {
	g := &fakeGateway{}
	srv := newFakeGateway(t, g)
	cfg := testConfig(srv.URL)
	cfg.StreamShare = 0.25
	cfg.Requests = 2000
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if share := float64(res.Streams) / float64(res.Requests); share < 0.2 || share > 0.3 {
		t.Errorf("%d of %d requests streamed, want about 25%%", res.Streams, res.Requests)
	}
}

func TestWarmupIsNotMeasured(t *testing.T) {
	g := &fakeGateway{}
	srv := newFakeGateway(t, g)
	cfg := testConfig(srv.URL)
	cfg.Warmup = 100 * time.Millisecond
	cfg.Requests = 40
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 40 || g.total.Load() <= 40 {
		t.Errorf("measured %d, server saw %d; want 40 measured after a warmup", res.Requests, g.total.Load())
	}
	if res.Hits.Miss != 0 {
		t.Errorf("the warmup should have filled the cache, got %d misses", res.Hits.Miss)
	}
}

func TestTransportErrorsAreCounted(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic(http.ErrAbortHandler) // drops the connection without an answer
	}))
	t.Cleanup(srv.Close)
	srv.Config.ErrorLog = nil
	cfg := testConfig(srv.URL)
	cfg.Requests = 20
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.TransportErrors != 20 || res.Errors != 20 || res.ErrorRate != 1 || res.Status["transport"] != 20 || res.Hits.None != 20 {
		t.Errorf("transport %d, errors %d, rate %g, status %v", res.TransportErrors, res.Errors, res.ErrorRate, res.Status)
	}
}

func TestCancelReturnsPartialResult(t *testing.T) {
	g := &fakeGateway{before: func(int64) { time.Sleep(10 * time.Millisecond) }}
	srv := newFakeGateway(t, g)
	cfg := testConfig(srv.URL)
	cfg.Duration = time.Minute
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Interrupted || res.Requests == 0 || res.Errors != 0 {
		t.Errorf("interrupted %v, %d requests, %d errors; want a clean partial result", res.Interrupted, res.Requests, res.Errors)
	}
}

func TestMainJSONOutputShape(t *testing.T) {
	g := &fakeGateway{}
	srv := newFakeGateway(t, g)
	var stdout, stderr bytes.Buffer
	args := []string{"--url", srv.URL, "-n", "200", "-c", "2", "--json", "--label", "gateway-l1-hit",
		"--mix", "zipf", "--prompts", "20", "--stream-share", "0.5", "--interval", "50ms",
		"--header", "Authorization: Bearer sk-test", "-H", "X-Tenant: a", "--quiet"}
	if err := Main(t.Context(), args, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if stderr.Len() != 0 {
		t.Errorf("--quiet wrote to stderr: %q", stderr.String())
	}
	if got := g.headers.Get("Authorization"); got != "Bearer sk-test" || g.headers.Get("X-Tenant") != "a" {
		t.Errorf("server saw Authorization %q, X-Tenant %q", got, g.headers.Get("X-Tenant"))
	}
	var out map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout.String())
	}
	js := stdout.String()
	for _, path := range []string{
		"label", "concurrency", "mode", "mix", "requests", "duration_s", "throughput_rps",
		"latency_us.min", "latency_us.p50", "latency_us.p90", "latency_us.p95", "latency_us.p99", "latency_us.p99_9", "latency_us.max",
		"errors", "error_rate", "status.200", "dropped",
		"hits.l1", "hits.l2", "hits.miss", "hits.bypass", "hit_rate", "hit_rates.l1",
		"overhead_ms_mean", "ttft_us.p50", "ttft_us.p95", "ttft_us.p99",
		"series.0.t_s", "series.0.rps", "series.0.hit_rate",
	} {
		if !gjson.Get(js, path).Exists() {
			t.Errorf("JSON lacks %s", path)
		}
	}
	if gjson.Get(js, "requests").Int() != 200 || gjson.Get(js, "label").String() != "gateway-l1-hit" || gjson.Get(js, "concurrency").Int() != 2 {
		t.Errorf("unexpected values in %s", js)
	}
	if strings.Contains(js, "sk-test") {
		t.Error("the API key leaked into the result")
	}
}

func TestMainTextReportAndProgress(t *testing.T) {
	g := &fakeGateway{}
	srv := newFakeGateway(t, g)
	var stdout, stderr bytes.Buffer
	args := []string{"--url", srv.URL, "-d", "1200ms", "-c", "2", "--stream-share", "0.5"}
	if err := Main(t.Context(), args, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	for _, want := range []string{"throughput", "req/s", "p99.9", "latency", "ttft", "overhead", "L1", "MISS", "BYPASS", "status"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, stdout.String())
		}
	}
	if !strings.Contains(stderr.String(), "req/s") || strings.Contains(stderr.String(), "\r") {
		t.Errorf("want a plain progress line on a non-terminal, got %q", stderr.String())
	}
}

func TestMainRejectsBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--mix", "random"}, "--mix"},
		{[]string{"-c", "0"}, "--concurrency"},
		{[]string{"--stream-share", "2"}, "--stream-share"},
		{[]string{"--url", "ftp://x"}, "--url"},
		{[]string{"--mix", "zipf", "--zipf-s", "0"}, "--zipf-s"},
		{[]string{"--header", "Bearer sk-secret-value"}, "Key: value"},
		{[]string{"extra"}, "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := Main(t.Context(), tt.args, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one mentioning %q", err, tt.want)
			}
			if strings.Contains(fmt.Sprint(err)+stderr.String(), "secret-value") {
				t.Error("a header value leaked into the error")
			}
		})
	}
}

// BenchmarkClosedLoop measures the generator itself against the cheapest
// server: one op is 5000 requests.
func BenchmarkClosedLoop(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header()["X-Cache-Status"] = []string{"HIT"}
		w.Header()["X-Cache-Layer"] = []string{"L1"}
		io.WriteString(w, `{"choices":[]}`)
	}))
	defer srv.Close()
	cfg := testConfig(srv.URL)
	cfg.Concurrency = 32
	cfg.Requests = 5000
	var rps float64
	for b.Loop() {
		res, err := Run(b.Context(), cfg)
		if err != nil || res.Errors != 0 {
			b.Fatal(err, res.Errors)
		}
		rps = res.ThroughputRPS
	}
	b.ReportMetric(rps, "req/s")
}

func TestUniqueMixReplaysTheSamePromptsForTheSameRunIDAtAnyConcurrency(t *testing.T) {
	g := &fakeGateway{}
	srv := newFakeGateway(t, g)
	cfg := testConfig(srv.URL)
	cfg.Mix, cfg.RunID, cfg.Requests = MixUnique, "replay", 100
	cfg.Concurrency = 16
	if _, err := Run(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Concurrency = 1
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.prompts) != 100 || res.Hits.L1 != 100 {
		t.Fatalf("%d distinct prompts over both runs, replay hits %+v; want the same 100 prompts twice", len(g.prompts), res.Hits)
	}
}

func TestSeriesFoldsAStragglerSliverIntoTheLastInterval(t *testing.T) {
	g := &fakeGateway{}
	srv := newFakeGateway(t, g)
	cfg := testConfig(srv.URL)
	cfg.Duration = 200 * time.Millisecond
	cfg.Interval = 100 * time.Millisecond
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := len(res.Series)
	if n == 0 {
		t.Fatal("no series")
	}
	// The last point must span at least a tenth of an interval: a shorter
	// tail holds only stragglers and belongs to the interval before it.
	if n >= 2 {
		if tail := res.Series[n-1].TS - res.Series[n-2].TS; tail < 0.01 {
			t.Errorf("last point spans %gs, want >= 0.01s (a sliver was not folded): %+v", tail, res.Series)
		}
	}
	var sum int64
	for _, p := range res.Series {
		sum += p.Requests
	}
	if sum != res.Requests {
		t.Errorf("series adds up to %d requests, want %d", sum, res.Requests)
	}
}

func TestThroughputCountsOnlySuccessfulAnswers(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 0 {
			http.Error(w, `{"error":{"message":"no"}}`, http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}`)
	}))
	t.Cleanup(srv.Close)
	cfg := testConfig(srv.URL)
	cfg.Requests = 40
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := float64(res.Succeeded()) / res.DurationS
	if res.Errors != 20 || res.Succeeded() != 20 || res.ThroughputRPS < want*0.999 || res.ThroughputRPS > want*1.001 {
		t.Fatalf("errors %d, succeeded %d, throughput %g req/s, want %g (successes only)", res.Errors, res.Succeeded(), res.ThroughputRPS, want)
	}
}

func TestMainFailsWhenEveryRequestFailed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":{"message":"unknown model"}}`, http.StatusNotFound)
	}))
	t.Cleanup(srv.Close)
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := []string{"--url", srv.URL, "-n", "10", "-c", "2", "--quiet"}
			if format == "json" {
				args = append(args, "--json")
			}
			err := Main(t.Context(), args, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), "no request succeeded") {
				t.Fatalf("Main returned %v, want an error", err)
			}
			if format == "json" {
				if rps := gjson.Get(stdout.String(), "throughput_rps"); !rps.Exists() || rps.Float() != 0 {
					t.Fatalf("throughput_rps %s, want 0:\n%s", rps.Raw, stdout.String())
				}
				return
			}
			if !strings.Contains(stdout.String(), "no request succeeded") || strings.Contains(stdout.String(), "req/s (") {
				t.Fatalf("report shows a throughput for failures:\n%s", stdout.String())
			}
		})
	}
}
