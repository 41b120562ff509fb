package app_test

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/provider/simulated"
)

// TestStreamsTheClientLeavesAreChargedForWhatWasDelivered reads half of a
// long stream, hangs up, and checks that the gateway charged the tokens the
// provider produced up to then (the simulated provider sends its usage only
// at the end, so they are counted from the text delivered), on chat and on
// the Messages passthrough, within 10 % of what the client received, and
// marked as a priced request.
func TestStreamsTheClientLeavesAreChargedForWhatWasDelivered(t *testing.T) {
	s := startSim(t, simulated.Options{Words: 400, ChunkDelay: 3 * time.Millisecond})
	g := startGateway(t, simConfig(s))
	for _, tt := range []struct {
		name, path, model, body, provider string
		text                              func(data []byte) string
	}{
		{"chat", "/v1/chat/completions", "gpt-4o",
			`{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"tell me a long story"}]}`, "openai",
			func(d []byte) string { return gjson.GetBytes(d, "choices.0.delta.content").Str }},
		{"messages", "/v1/messages", "claude-sonnet-4-5",
			`{"model":"claude-sonnet-4-5","max_tokens":4096,"stream":true,"messages":[{"role":"user","content":"tell me a long story"}]}`, "anthropic",
			func(d []byte) string { return gjson.GetBytes(d, "delta.text").Str }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.URL+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Anthropic-Version", "2023-06-01")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			// Read until about half the answer (400 words) has arrived, then
			// leave.
			var got strings.Builder
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() && strings.Count(got.String(), " ") < 200 {
				if d, ok := bytes.CutPrefix(sc.Bytes(), []byte("data: ")); ok {
					got.WriteString(tt.text(d))
				}
			}
			cancel()
			resp.Body.Close()
			delivered := (got.Len() + 3) / 4

			labels := []string{"provider=" + tt.provider, "model=" + tt.model}
			var output float64
			deadline := time.Now().Add(10 * time.Second)
			for {
				f := scrapeFamilies(t, g.URL)
				output = f.value("llm_edge_tokens_total", append(labels, "type=output")...)
				cost := f.value("llm_edge_cost_usd_total", labels...)
				if output > 0 && cost > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after the client left: output tokens %v, cost %v; want both charged", output, cost)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if lo, hi := 0.9*float64(delivered), 1.1*float64(delivered)+2; output < lo || output > hi {
				t.Fatalf("charged %v output tokens; the client received about %d (want within 10%%)", output, delivered)
			}
		})
	}
}

// TestAnswerWithoutUsageIsEstimatedNeverFree: an upstream that reports no
// usage gets its answer priced from an estimate of the prompt and the
// answer, marked estimated, instead of a known $0.
func TestAnswerWithoutUsageIsEstimatedNeverFree(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"c1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"` +
			strings.Repeat("word ", 200) + `"},"finish_reason":"stop"}]}`))
	}))
	t.Cleanup(up.Close)
	g := startGateway(t, upstreamConfig(t, up.URL, "k"))
	resp, body := post(t, g.URL, chat("up/gpt-4o-mini", "how much is this?"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	md := gjson.GetBytes(body, "metadata")
	if md.Get("cost_estimated").Str != "true" {
		t.Fatalf("metadata %s: want cost_estimated", md.Raw)
	}
	if c := md.Get("cost_usd").Float(); c <= 0 {
		t.Fatalf("cost_usd %v: an answer without usage must not be free", c)
	}
	f := scrapeFamilies(t, g.URL)
	if out := f.value("llm_edge_tokens_total", "provider=up", "model=gpt-4o-mini", "type=output"); out < 200 {
		t.Fatalf("output tokens %v, want the answer's estimate (>= 200)", out)
	}
}

// TestRequestsAreCountedByEndpoint: llm_edge_requests_total carries the API
// surface a request came through.
func TestRequestsAreCountedByEndpoint(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, simConfig(s))
	if r, b := post(t, g.URL, chat("gpt-4o", "by endpoint")); r.StatusCode != 200 {
		t.Fatalf("chat: %d %s", r.StatusCode, b)
	}
	req, _ := http.NewRequest(http.MethodPost, g.URL+"/v1/messages",
		strings.NewReader(`{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"by endpoint"}]}`))
	req.Header.Set("Anthropic-Version", "2023-06-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("messages: %v %v", resp, err)
	}
	resp.Body.Close()
	f := scrapeFamilies(t, g.URL)
	if v := f.value("llm_edge_requests_total", "endpoint=chat", "provider=openai", "model=gpt-4o", "status=2xx"); v != 1 {
		t.Errorf("chat requests = %v, want 1", v)
	}
	if v := f.value("llm_edge_requests_total", "endpoint=messages", "provider=anthropic", "model=claude-sonnet-4-5", "status=2xx"); v != 1 {
		t.Errorf("messages requests = %v, want 1", v)
	}
}

// TestTraceContextAndRequestIDReachTheProviderWithTracingOff: a trace
// passing through a gateway that does not trace still joins up upstream.
func TestTraceContextAndRequestIDReachTheProviderWithTracingOff(t *testing.T) {
	seen := make(chan http.Header, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"c1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`))
	}))
	t.Cleanup(up.Close)
	g := startGateway(t, upstreamConfig(t, up.URL, "k"))
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	resp, body := post(t, g.URL, chat("up/gpt-4o-mini", "trace me"), "Traceparent: "+tp, "Baggage: tenant=a", "X-Request-Id: req-trace-1")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	h := <-seen
	if h.Get("Traceparent") != tp || h.Get("Baggage") != "tenant=a" || h.Get("X-Request-Id") != "req-trace-1" {
		t.Fatalf("upstream saw traceparent %q, baggage %q, X-Request-Id %q", h.Get("Traceparent"), h.Get("Baggage"), h.Get("X-Request-Id"))
	}
}
