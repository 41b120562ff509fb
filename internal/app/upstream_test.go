package app_test

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/config"
)

// This file checks how the gateway treats what an upstream sends back when
// it is too large, an error in disguise, or an echo of the gateway's key.

// upstreamConfig is a gateway with one OpenAI-compatible provider "up" at
// url, with the given key, no retries and the cache on.
func upstreamConfig(t *testing.T, url, key string) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.MetricsPort = 0
	cfg.Routing.MaxRetries = 0
	cfg.Providers = []config.Provider{{Name: "up", Type: "openai", BaseURL: url + "/v1", APIKey: key}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// bigStreamUpstream streams an answer of n content bytes ("a" repeated) in
// 32 KiB chunks, then a usage chunk that reports completionTokens.
func bigStreamUpstream(t *testing.T, n, completionTokens int, calls *atomic.Int64) *httptest.Server {
	const piece = 32 << 10
	chunk := []byte(`data: {"id":"big","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"` +
		strings.Repeat("a", piece) + `"},"finish_reason":null}]}` + "\n\n")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		bw := bufio.NewWriterSize(w, 256<<10)
		for sent := 0; sent < n; sent += piece {
			if _, err := bw.Write(chunk); err != nil {
				return
			}
		}
		_, _ = io.WriteString(bw, `data: {"id":"big","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`+"\n\n")
		_, _ = io.WriteString(bw, `data: {"id":"big","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":`+
			strconv.Itoa(completionTokens)+`,"total_tokens":`+strconv.Itoa(completionTokens+9)+`}}`+"\n\ndata: [DONE]\n\n")
		_ = bw.Flush()
	}))
	t.Cleanup(srv.Close)
	return srv
}

// contentBytes sums the delta content of every chunk of an SSE answer.
func contentBytes(sse []byte) int {
	n := 0
	for line := range bytes.SplitSeq(sse, []byte("\n")) {
		if d, ok := bytes.CutPrefix(line, []byte("data: ")); ok {
			n += len(gjson.GetBytes(d, "choices.0.delta.content").Str)
		}
	}
	return n
}

func TestStreamOverTheCaptureBoundReachesTheClientWholeAndIsNeverAHit(t *testing.T) {
	const size = 20 << 20 // five times the default bound (the attack sent 100 MB)
	var calls atomic.Int64
	up := bigStreamUpstream(t, size, 5_242_880, &calls)
	cfg := upstreamConfig(t, up.URL, "")
	g := startGateway(t, cfg)
	body := chat("up/gpt-4o-mini", "a very long answer please", `"stream":true`)

	start := time.Now()
	for i := range 2 {
		resp, b := post(t, g.URL, body)
		if resp.StatusCode != 200 || resp.Header.Get("X-Cache-Status") != "MISS" {
			t.Fatalf("request %d: status %d, X-Cache-Status %q; want 200 MISS (the answer is too large to cache)",
				i+1, resp.StatusCode, resp.Header.Get("X-Cache-Status"))
		}
		want := (size + 32<<10 - 1) / (32 << 10) * (32 << 10)
		if got := contentBytes(b); got != want || !bytes.HasSuffix(bytes.TrimSpace(b), []byte("data: [DONE]")) {
			t.Fatalf("request %d: the client got %d content bytes of %d, ending %q", i+1, got, want, b[max(0, len(b)-80):])
		}
	}
	t.Logf("two %d MiB streams through the gateway in %v", size>>20, time.Since(start))
	if calls.Load() != 2 {
		t.Fatalf("the upstream was called %d times, want 2: the over-bound answer was served from cache", calls.Load())
	}
	waitFor(t, "the request lines", func() bool { return strings.Count(g.Logs.String(), "Request completed") >= 2 })
	logs := g.Logs.String()
	if strings.Count(logs, "stream answer not cached: larger than max_capture_bytes") != 2 {
		t.Fatalf("the over-bound streams were not reported as not cached: %s", logs)
	}
	// Capture stopped, counting did not: the usage chunk at the end prices it.
	if !strings.Contains(logs, `"completion_tokens":5242880`) || strings.Contains(logs, `"cost_estimated":true`) {
		t.Fatalf("the over-bound stream was not priced from its usage chunk: %s", logs)
	}
}

func TestStreamUnderTheCaptureBoundIsAHit(t *testing.T) {
	var calls atomic.Int64
	up := bigStreamUpstream(t, 64<<10, 100, &calls)
	cfg := upstreamConfig(t, up.URL, "")
	cfg.MaxCaptureBytes = 1 << 20
	g := startGateway(t, cfg)
	body := chat("up/gpt-4o-mini", "a short answer", `"stream":true`)
	post(t, g.URL, body)
	waitFor(t, "the answer to be cached", func() bool {
		resp, _ := post(t, g.URL, body)
		return resp.Header.Get("X-Cache-Status") == "HIT"
	})

	// The same answer over a bound smaller than it is never a hit.
	calls.Store(0)
	cfg.MaxCaptureBytes = 32 << 10
	g2 := startGateway(t, cfg)
	for range 3 {
		if resp, _ := post(t, g2.URL, body); resp.Header.Get("X-Cache-Status") != "MISS" {
			t.Fatalf("X-Cache-Status %q over a 32 KiB bound, want MISS", resp.Header.Get("X-Cache-Status"))
		}
	}
	if calls.Load() != 3 {
		t.Fatalf("%d upstream calls for 3 over-bound requests", calls.Load())
	}
}

// wholeResponse is the status line, headers and body, to search for leaks.
func wholeResponse(resp *http.Response, body []byte) string {
	var b strings.Builder
	b.WriteString(resp.Status + "\n")
	for k, v := range resp.Header {
		b.WriteString(k + ": " + strings.Join(v, ",") + "\n")
	}
	b.Write(body)
	return b.String()
}

func TestUpstreamErrorEchoingTheKeyInEveryFieldAndHeaderReachesTheClientScrubbed(t *testing.T) {
	const key = "sk-echo-every-field-0123456789abcdef"
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Echo-Key", got)
		w.Header().Set("Www-Authenticate", `Bearer realm="`+got+`"`)
		w.Header().Set("Content-Type", "application/json")
		envelope := `{"error":{"message":"Bad value for key ` + got + `","type":"invalid_` + got + `","param":"` + got + `","code":"` + got + `"}}`
		if gjson.GetBytes(b, "stream").Bool() {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, openAIChunk(`{"role":"assistant","content":"hi"}`, "")+"\n\n")
			_, _ = io.WriteString(w, "data: "+envelope+"\n\n")
			return
		}
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, envelope)
	}))
	t.Cleanup(up.Close)
	g := startGateway(t, upstreamConfig(t, up.URL, key))

	resp, b := post(t, g.URL, chat("up/gpt-4o-mini", "echo"))
	e := gjson.GetBytes(b, "error")
	if resp.StatusCode != 400 || !strings.Contains(e.Get("message").Str, "Bad value for key [redacted]") ||
		e.Get("param").Str != "[redacted]" || e.Get("code").Str != "[redacted]" {
		t.Fatalf("status %d %s: want the upstream's 400 with the key scrubbed from message, param and code", resp.StatusCode, b)
	}
	all := wholeResponse(resp, b)
	resp, b = post(t, g.URL, chat("up/gpt-4o-mini", "echo", `"stream":true`))
	if !strings.Contains(string(b), "upstream_stream_error") {
		t.Fatalf("the mid-stream error did not reach the client: %s", b)
	}
	all += wholeResponse(resp, b)
	if strings.Contains(all, key) || strings.Contains(all, key[3:]) {
		t.Fatalf("the provider key reached the client:\n%s", all)
	}
	waitFor(t, "the request lines", func() bool { return strings.Count(g.Logs.String(), "Request completed") >= 2 })
	if strings.Contains(g.Logs.String(), key) {
		t.Fatalf("the provider key reached the logs: %s", g.Logs.String())
	}
}

func TestUpstreamRefusingTheGatewaysKeyIsA502NamingTheProviderCredential(t *testing.T) {
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			var calls atomic.Int64
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(status)
				_, _ = io.WriteString(w, `{"error":{"message":"Incorrect API key provided: sk-wron************cdef","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`)
			}))
			t.Cleanup(up.Close)
			cfg := upstreamConfig(t, up.URL, "sk-wrong-gateway-key-abcdef")
			cfg.Routing.MaxRetries = 2
			g := startGateway(t, cfg)
			for _, stream := range []string{`"stream":false`, `"stream":true`} {
				calls.Store(0)
				resp, b := post(t, g.URL, chat("up/gpt-4o-mini", "hello", stream))
				e := gjson.GetBytes(b, "error")
				if resp.StatusCode != http.StatusBadGateway || e.Get("code").Str != "upstream_auth_failed" || e.Get("type").Str != "upstream_error" ||
					!strings.Contains(e.Get("message").Str, "credential for provider up was rejected ("+strconv.Itoa(status)+")") {
					t.Fatalf("%s: status %d %s; want 502 upstream_auth_failed naming provider up", stream, resp.StatusCode, b)
				}
				if calls.Load() != 1 {
					t.Fatalf("%s: the refused deployment was called %d times; asking again cannot help", stream, calls.Load())
				}
			}
		})
	}
}

func TestRefusedCredentialFallsBackToAnotherDeployment(t *testing.T) {
	var refused atomic.Int64
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		refused.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":{"message":"Incorrect API key provided"}}`)
	}))
	t.Cleanup(bad.Close)
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"c","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"from good"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`)
	}))
	t.Cleanup(good.Close)
	cfg := config.Default()
	cfg.MetricsPort = 0
	cfg.Providers = []config.Provider{
		{Name: "bad", Type: "openai", BaseURL: bad.URL + "/v1", APIKey: "k1"},
		{Name: "good", Type: "openai", BaseURL: good.URL + "/v1", APIKey: "k2"},
	}
	cfg.Models = []config.Model{{Name: "gpt-4o-mini", Strategy: "priority", Deployments: []config.Deployment{
		{Provider: "bad", Model: "gpt-4o-mini", Priority: 0},
		{Provider: "good", Model: "gpt-4o-mini", Priority: 1},
	}}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, cfg)
	resp, b := post(t, g.URL, chat("gpt-4o-mini", "hello"))
	if resp.StatusCode != 200 || gjson.GetBytes(b, "choices.0.message.content").Str != "from good" || refused.Load() != 1 {
		t.Fatalf("status %d %s after %d calls to the refusing deployment; want the other deployment's answer", resp.StatusCode, b, refused.Load())
	}
}

func TestUpstream200WithAnErrorBodyIsA502AndNotCached(t *testing.T) {
	var calls atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"error":{"message":"The engine is currently overloaded","type":"server_error"},"choices":[]}`)
	}))
	t.Cleanup(up.Close)
	g := startGateway(t, upstreamConfig(t, up.URL, ""))
	for i := range 2 {
		resp, b := post(t, g.URL, chat("up/gpt-4o-mini", "hello"))
		e := gjson.GetBytes(b, "error")
		if resp.StatusCode != http.StatusBadGateway || e.Get("code").Str != "upstream_error" ||
			!strings.Contains(e.Get("message").Str, "The engine is currently overloaded") {
			t.Fatalf("request %d: status %d %s; want 502 upstream_error with the upstream's message", i+1, resp.StatusCode, b)
		}
	}
	if calls.Load() != 2 {
		t.Fatalf("%d upstream calls for 2 requests: an error was cached", calls.Load())
	}
}
