package app_test

import (
	"context"
	"fmt"
	"io"
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

func TestFlakyProviderStaysUnderOnePercentErrors(t *testing.T) {
	s := startSim(t, simulated.Options{ErrorRate500: 0.10, ErrorRate429: 0.05, RetryAfter: 5 * time.Millisecond})
	cfg := simConfig(s)
	cfg.Routing.RetryBaseBackoff = config.Duration(time.Millisecond)
	cfg.Routing.RetryMaxBackoff = config.Duration(10 * time.Millisecond)
	g := startGateway(t, cfg)
	var failed atomic.Int64
	var wg sync.WaitGroup
	const n, workers = 2000, 16
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				resp, _ := post(t, g.URL, chat("gpt-4o-mini", fmt.Sprintf("flaky %d", i)))
				if resp.StatusCode != 200 {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if rate := float64(failed.Load()) / n; rate >= 0.01 {
		t.Fatalf("client-visible error rate %.2f%% with 10%% 500s and 5%% 429s upstream", rate*100)
	}
}

func TestFallbackFromOpenAIToAnthropic(t *testing.T) {
	s := startSim(t, simulated.Options{})
	// A dead primary deployment falls back to Anthropic, in OpenAI format.
	dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(503)
		io.WriteString(w, `{"error":{"message":"down"}}`)
	}))
	defer dead.Close()
	cfg2 := simConfig(s)
	cfg2.Routing.MaxRetries = 0
	cfg2.Providers = append(cfg2.Providers, config.Provider{Name: "broken", Type: "openai", BaseURL: dead.URL + "/v1"})
	cfg2.Models = []config.Model{{Name: "gpt-4o", Fallbacks: []string{"claude-3-5-sonnet-20241022"},
		Deployments: []config.Deployment{{Name: "broken-gpt4o", Provider: "broken", Model: "gpt-4o"}}}}
	if err := cfg2.Validate(); err != nil {
		t.Fatal(err)
	}
	g2 := startGateway(t, cfg2)
	for _, stream := range []bool{false, true} {
		extra := []string{}
		if stream {
			extra = append(extra, `"stream":true`)
		}
		resp, out := post(t, g2.URL, chat("gpt-4o", fmt.Sprint("fallback answer ", stream), extra...))
		if resp.StatusCode != 200 || resp.Header.Get("X-Edge-Provider") != "anthropic" {
			t.Fatalf("stream=%v: %d provider %q %s", stream, resp.StatusCode, resp.Header.Get("X-Edge-Provider"), out)
		}
		if stream {
			if txt, fin, _ := streamText(t, sseEvents(t, out)); !strings.Contains(txt, "fallback answer") || fin != "stop" {
				t.Fatalf("stream %q %q", txt, fin)
			}
		} else if gjson.GetBytes(out, "object").Str != "chat.completion" || gjson.GetBytes(out, "metadata.provider").Str != "anthropic" {
			t.Fatalf("json %s", out)
		}
	}
	// A request names its own fallbacks, in the body or a header.
	for _, c := range []struct{ body, header string }{
		{chat("broken/gpt-4o", "own fallback body", `"fallbacks":["claude-3-5-haiku-20241022"]`), ""},
		{chat("broken/gpt-4o", "own fallback header"), "X-Fallback-Models: claude-3-5-haiku-20241022"},
	} {
		var h []string
		if c.header != "" {
			h = append(h, c.header)
		}
		resp, out := post(t, g2.URL, c.body, h...)
		if resp.StatusCode != 200 || resp.Header.Get("X-Edge-Provider") != "anthropic" {
			t.Fatalf("per-request fallback: %d %q %s", resp.StatusCode, resp.Header.Get("X-Edge-Provider"), out)
		}
	}
	if _, _, sent := s.LastRequest(); strings.Contains(string(sent), "fallbacks") {
		t.Fatalf("the fallbacks field was forwarded: %s", sent)
	}
}

func TestStalledStreamEndsWithAnErrorEvent(t *testing.T) {
	s := startSim(t, simulated.Options{})
	cfg := simConfig(s)
	cfg.Routing.StreamIdleTimeout = config.Duration(200 * time.Millisecond)
	g := startGateway(t, cfg)
	start := time.Now()
	resp, out := post(t, g.URL, chat("gpt-4o-mini", "SIM_STALL", `"stream":true`))
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("stalled stream took %v to end", d)
	}
	ev := sseEvents(t, out)
	if resp.StatusCode != 200 || len(ev) == 0 || gjson.Get(ev[len(ev)-1], "error.code").Str != "stream_idle_timeout" {
		t.Fatalf("events %q", ev)
	}
}

func TestNoGoroutineLeftAfterManyRequestsWithFailures(t *testing.T) {
	s := startSim(t, simulated.Options{ErrorRate500: 0.1})
	cfg := simConfig(s)
	cfg.Routing.RetryBaseBackoff = config.Duration(time.Millisecond)
	cfg.Routing.StreamIdleTimeout = config.Duration(100 * time.Millisecond)
	logger, _ := telemetry.NewLogger(io.Discard, "json", "info")
	before := goleak.IgnoreCurrent()
	a, err := app.New(context.Background(), cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 250 {
				body := chat("gpt-4o-mini", fmt.Sprintf("leak %d %d", w, i%50))
				switch i % 10 {
				case 0:
					body = chat("gpt-4o-mini", "SIM_CUT_STREAM", `"stream":true`)
				case 1:
					body = chat("claude-3-5-sonnet-20241022", fmt.Sprintf("stream %d", i), `"stream":true`)
				case 2:
					body = `{"model":`
				}
				post(t, srv.URL, body)
			}
		}()
	}
	wg.Wait()
	srv.Close()
	a.Close()
	http.DefaultClient.CloseIdleConnections()
	goleak.VerifyNone(t, before, goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"), goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}
