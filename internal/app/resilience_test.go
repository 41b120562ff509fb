package app_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/internal/app"
	"github.com/edge-agent/edge-agent/internal/config"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
	"github.com/edge-agent/edge-agent/internal/telemetry"
)

// fastRetries makes retries quick enough for tests; the attempts stay the
// default ones.
func fastRetries(cfg *config.Config) {
	cfg.Routing.RetryBaseBackoff = config.Duration(time.Millisecond)
	cfg.Routing.RetryMaxBackoff = config.Duration(20 * time.Millisecond)
}

// closedPort is an address where nothing listens: connections are refused.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// dataEvents returns the data payloads of an SSE body, in order.
func dataEvents(t *testing.T, body []byte) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}

func TestRetriesHideAFlakyUpstreamFromClients(t *testing.T) {
	s := startSim(t, simulated.Options{ErrorRate500: 0.10, ErrorRate429: 0.05, RetryAfter: 10 * time.Millisecond})
	cfg := simConfig(s)
	fastRetries(&cfg)
	g := startGateway(t, cfg)
	// The simulated 429s say "Retry-After: 1" (whole seconds), which the
	// router honours: many workers keep those waits from adding up.
	const n, workers = 2000, 64
	var failed atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				resp, out := post(t, g.URL, chat("gpt-4o-mini", fmt.Sprintf("flaky upstream %d", i)))
				if resp.StatusCode != 200 {
					failed.Add(1)
					continue
				}
				if resp.Header.Get("X-Cache-Status") != "MISS" || gjson.GetBytes(out, "choices.0.message.content").Str == "" {
					t.Errorf("answer %d: %s %s", i, resp.Header.Get("X-Cache-Status"), out)
				}
			}
		})
	}
	wg.Wait()
	if rate := float64(failed.Load()) / n; rate >= 0.01 {
		t.Fatalf("client-visible error rate %.2f%% (%d of %d) with 10%% 500s and 5%% 429s upstream", rate*100, failed.Load(), n)
	}
	// The faults were real: about 15 % of the calls failed and were retried.
	if calls := s.Calls(); calls < n*110/100 {
		t.Fatalf("%d upstream calls for %d requests: the faults did not happen", calls, n)
	}
	f := scrapeFamilies(t, g.URL)
	var retries float64
	for _, m := range f["llm_edge_retries_total"].GetMetric() {
		retries += m.GetCounter().GetValue()
	}
	if want := float64(s.Calls() - n); retries != want {
		t.Fatalf("llm_edge_retries_total = %v, want %v (calls beyond one per request)", retries, want)
	}
}

func TestWhatIsRetriedAndWhatIsNot(t *testing.T) {
	s := startSim(t, simulated.Options{RetryAfter: 10 * time.Millisecond})
	cfg := simConfig(s)
	fastRetries(&cfg)
	g := startGateway(t, cfg)
	for _, tt := range []struct {
		name, prompt string
		stream       bool
		status       int
		calls        int64
	}{
		{"a 400 is not retried", "SIM_ERROR_400", false, 400, 1},
		{"a 500 is retried twice", "SIM_ERROR_500", false, 502, 3},
		{"a 429 is retried twice, after its Retry-After", "SIM_ERROR_429", false, 429, 3},
		{"a stream that started is not retried", "SIM_STREAM_ERROR", true, 200, 1},
		{"a cut stream is not retried", "SIM_CUT_STREAM", true, 200, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s.ResetCalls()
			start := time.Now()
			var extra []string
			if tt.stream {
				extra = append(extra, `"stream":true`)
			}
			resp, out := post(t, g.URL, chat("gpt-4o-mini", tt.prompt, extra...))
			if resp.StatusCode != tt.status || s.Calls() != tt.calls {
				t.Fatalf("%d after %d calls, want %d after %d: %s", resp.StatusCode, s.Calls(), tt.status, tt.calls, out)
			}
			if tt.stream {
				ev := dataEvents(t, out)
				if len(ev) < 2 || !gjson.Get(ev[len(ev)-1], "error.message").Exists() {
					t.Fatalf("a broken stream must end with an error event: %q", ev)
				}
				return
			}
			envelope(t, resp.StatusCode, out)
			if tt.status == 429 {
				if resp.Header.Get("Retry-After") == "" {
					t.Fatalf("429 without Retry-After")
				}
				// The simulated 429 says "Retry-After: 1": two waits of a second.
				if d := time.Since(start); d < 2*time.Second {
					t.Fatalf("two retries after %v: Retry-After was not honoured", d)
				}
			}
		})
	}
}

// fallbackConfig serves gpt-4o from a deployment whose provider is down,
// falling back to an Anthropic deployment.
func fallbackConfig(t *testing.T, s *sim) config.Config {
	t.Helper()
	cfg := simConfig(s)
	fastRetries(&cfg)
	cfg.Providers = append(cfg.Providers, config.Provider{Name: "down", Type: "openai", BaseURL: closedPort(t) + "/v1", APIKey: "k",
		ConnectTimeout: config.Duration(time.Second)})
	cfg.Models = []config.Model{
		{Name: "gpt-4o", Fallbacks: []string{"sonnet"},
			Deployments: []config.Deployment{{Name: "gpt-4o-down", Provider: "down", Model: "gpt-4o"}}},
		{Name: "sonnet",
			Deployments: []config.Deployment{{Name: "sonnet-anthropic", Provider: "anthropic", Model: "claude-3-5-sonnet-20241022"}}},
		{Name: "lonely",
			Deployments: []config.Deployment{{Name: "lonely-down", Provider: "down", Model: "gpt-4o"}}},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// checkOpenAIAnswer checks a non-streamed chat.completion.
func checkOpenAIAnswer(t *testing.T, out []byte, prompt string) {
	t.Helper()
	if gjson.GetBytes(out, "object").Str != "chat.completion" || gjson.GetBytes(out, "choices.0.message.role").Str != "assistant" ||
		!strings.Contains(gjson.GetBytes(out, "choices.0.message.content").Str, prompt) ||
		gjson.GetBytes(out, "choices.0.finish_reason").Str != "stop" || gjson.GetBytes(out, "usage.total_tokens").Int() <= 0 {
		t.Fatalf("not a valid OpenAI answer to %q: %s", prompt, out)
	}
}

// checkOpenAIStream checks a streamed answer: chunks, the text, [DONE].
func checkOpenAIStream(t *testing.T, out []byte, prompt string) {
	t.Helper()
	ev := dataEvents(t, out)
	if len(ev) < 3 || ev[len(ev)-1] != "[DONE]" {
		t.Fatalf("stream does not end with [DONE]: %q", ev)
	}
	var text strings.Builder
	finish := ""
	for _, e := range ev[:len(ev)-1] {
		if gjson.Get(e, "object").Str != "chat.completion.chunk" {
			t.Fatalf("not an OpenAI chunk: %s", e)
		}
		text.WriteString(gjson.Get(e, "choices.0.delta.content").Str)
		if f := gjson.Get(e, "choices.0.finish_reason").Str; f != "" {
			finish = f
		}
	}
	if !strings.Contains(text.String(), prompt) || finish != "stop" {
		t.Fatalf("streamed text %q finish %q", text.String(), finish)
	}
}

func TestFallbackFromOpenAIDeploymentToAnthropicAnswersInOpenAIFormat(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, fallbackConfig(t, s))
	for _, tt := range []struct {
		name, model string
		extra       []string
		headers     []string
	}{
		{"configured fallback", "gpt-4o", nil, nil},
		{"configured fallback streamed", "gpt-4o", []string{`"stream":true`}, nil},
		{"fallbacks field", "lonely", []string{`"fallbacks":["sonnet"]`}, nil},
		{"fallbacks field streamed", "lonely", []string{`"fallbacks":["sonnet"]`, `"stream":true`}, nil},
		{"X-Fallback-Models header", "lonely", nil, []string{"X-Fallback-Models: sonnet"}},
		{"X-Fallback-Models header streamed", "lonely", []string{`"stream":true`}, []string{"X-Fallback-Models: sonnet"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			prompt := "fall back: " + tt.name
			resp, out := post(t, g.URL, chat(tt.model, prompt, tt.extra...), tt.headers...)
			if resp.StatusCode != 200 || resp.Header.Get("X-Edge-Provider") != "sonnet-anthropic" {
				t.Fatalf("%d from %q: %s", resp.StatusCode, resp.Header.Get("X-Edge-Provider"), out)
			}
			if len(tt.extra) > 0 && strings.Contains(tt.extra[len(tt.extra)-1], "stream") {
				checkOpenAIStream(t, out, prompt)
			} else {
				checkOpenAIAnswer(t, out, prompt)
			}
			path, _, sent := s.LastRequest()
			if path != "/v1/messages" || gjson.GetBytes(sent, "fallbacks").Exists() {
				t.Fatalf("the fallback call went to %s with %s", path, sent)
			}
		})
	}
	f := scrapeFamilies(t, g.URL)
	if got := f.value("llm_edge_fallbacks_total"); got != 6 {
		t.Errorf("llm_edge_fallbacks_total = %v, want 6", got)
	}
	// Without a fallback, the dead provider is a quick 502 or 503.
	start := time.Now()
	resp, out := post(t, g.URL, chat("lonely", "nobody home"))
	if resp.StatusCode != 502 && resp.StatusCode != 503 {
		t.Fatalf("dead provider: %d %s", resp.StatusCode, out)
	}
	envelope(t, resp.StatusCode, out)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("dead provider took %v to answer", d)
	}
}

func TestStalledUpstreamEndsWithinTheTimeouts(t *testing.T) {
	s := startSim(t, simulated.Options{})
	cfg := simConfig(s)
	const idle = 200 * time.Millisecond
	cfg.Routing.StreamIdleTimeout = config.Duration(idle)
	cfg.Routing.FirstByteTimeout = config.Duration(idle)
	g := startGateway(t, cfg)

	t.Run("stream", func(t *testing.T) {
		start := time.Now()
		resp, out := post(t, g.URL, chat("gpt-4o-mini", "SIM_STALL", `"stream":true`))
		d := time.Since(start)
		if d < idle || d > idle+time.Second {
			t.Fatalf("stalled stream ended after %v, want about %v", d, idle)
		}
		ev := dataEvents(t, out)
		if resp.StatusCode != 200 || len(ev) < 2 {
			t.Fatalf("%d events %q", resp.StatusCode, ev)
		}
		if gjson.Get(ev[0], "object").Str != "chat.completion.chunk" {
			t.Fatalf("the first chunk was not relayed: %q", ev)
		}
		last := ev[len(ev)-1]
		if !strings.HasPrefix(last, `{"error":`) || gjson.Get(last, "error.message").Str == "" {
			t.Fatalf("stream must end with data: {\"error\":...}, got %q", ev)
		}
	})
	t.Run("json", func(t *testing.T) {
		start := time.Now()
		resp, out := post(t, g.URL, chat("gpt-4o-mini", "SIM_STALL"))
		// Each of the three attempts waits for its first byte.
		if d := time.Since(start); d > 3*idle+time.Second {
			t.Fatalf("stalled answer took %v", d)
		}
		if resp.StatusCode != 504 {
			t.Fatalf("%d %s, want 504", resp.StatusCode, out)
		}
		envelope(t, resp.StatusCode, out)
	})
}

func TestNoGoroutineOutlivesTheGatewayAfterThousandsOfFailingRequests(t *testing.T) {
	// No random 429s here: their whole-second Retry-After only slows this down.
	s := startSim(t, simulated.Options{ErrorRate500: 0.15})
	before := goleak.IgnoreCurrent()
	cfg := simConfig(s)
	fastRetries(&cfg)
	cfg.Routing.StreamIdleTimeout = config.Duration(100 * time.Millisecond)
	cfg.Routing.FirstByteTimeout = config.Duration(100 * time.Millisecond)
	logger, err := telemetry.NewLogger(io.Discard, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	send := func(body string) {
		resp, err := client.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Error(err)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 400 {
				prompt := fmt.Sprintf("leak check %d %d", w, i%100)
				switch i % 20 {
				case 0:
					send(chat("gpt-4o-mini", "SIM_CUT_STREAM "+prompt, `"stream":true`))
				case 1:
					send(chat("gpt-4o-mini", "SIM_STALL "+prompt, `"stream":true`))
				case 2:
					send(chat("claude-3-5-haiku-20241022", "SIM_STREAM_ERROR "+prompt, `"stream":true`))
				case 3:
					send(`{"model":`)
				case 4, 5, 6:
					send(chat("claude-3-5-haiku-20241022", prompt, `"stream":true`))
				default:
					send(chat("gpt-4o-mini", prompt))
				}
			}
		})
	}
	wg.Wait()
	srv.Close()
	a.Close()
	client.CloseIdleConnections()
	goleak.VerifyNone(t, before)
}

// connRequests counts the requests of one upstream connection.
type connRequests struct{}

func TestUpstreamClosingIdleConnectionsLosesNoAnswer(t *testing.T) {
	// An upstream closes a keep-alive connection when its keep-alive
	// timeout fires (uvicorn's is 5 s); when that happens just as the
	// gateway reuses the connection, the request reaches a closing socket
	// and the gateway reads EOF or a reset where the answer should be. The
	// gateway must send the call again on another connection, with either
	// client. Timing made that race rare and the test flaky (net/http's
	// Transport did not resend a POST, and the router's retries could land
	// on more dead pooled connections); here the upstream closes every
	// connection the moment its second request arrives, unanswered, so
	// every reuse of a connection hits the race, and the router does not
	// retry, so only the clients' own resend can save the answer.
	for _, client := range upstreamClients {
		t.Run(client, func(t *testing.T) {
			s := simulated.New(simulated.Options{})
			var conns, dropped atomic.Int64
			up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Context().Value(connRequests{}).(*atomic.Int64).Add(1) == 2 {
					c, _, err := http.NewResponseController(w).Hijack()
					if err != nil {
						t.Error(err)
						return
					}
					dropped.Add(1)
					c.Close()
					return
				}
				s.ServeHTTP(w, r)
			}))
			up.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
				conns.Add(1)
				return context.WithValue(ctx, connRequests{}, new(atomic.Int64))
			}
			up.Start()
			t.Cleanup(up.Close)
			cfg := simConfig(&sim{Server: s, URL: up.URL})
			cfg.UpstreamHTTPClient = client
			cfg.Cache.Enabled = false
			cfg.Routing.MaxRetries = 0
			g := startGateway(t, cfg)
			const workers, each = 4, 30
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for i := range each {
						model := "gpt-4o-mini"
						if i%2 == 1 {
							model = "claude-3-5-haiku-20241022"
						}
						resp, out := post(t, g.URL, chat(model, fmt.Sprintf("idle close %s %d %d", client, w, i)))
						if resp.StatusCode != 200 || gjson.GetBytes(out, "choices.0.message.content").Str == "" {
							t.Errorf("request %d/%d (%s): %d %s", w, i, model, resp.StatusCode, out)
						}
					}
				})
			}
			wg.Wait()
			// Every connection answered one request; all but the few still
			// idle at the end were then reused and closed under the request.
			// Two providers (gpt-*, claude-*) keep a pool each, and each pool
			// can hold one idle connection per worker at the end.
			if total := int64(workers * each); dropped.Load() < total-2*workers || conns.Load() < total {
				t.Fatalf("%d connections, %d requests dropped by the upstream for %d answers; want every reuse to hit a closing connection",
					conns.Load(), dropped.Load(), total)
			}
		})
	}
}
