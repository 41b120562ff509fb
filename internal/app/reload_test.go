package app_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/internal/app"
	"github.com/edge-agent/edge-agent/internal/config"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
	"github.com/edge-agent/edge-agent/internal/telemetry"
	"github.com/tidwall/gjson"
)

// reloadConfig is the sim configuration with a model table and keys.
func reloadConfig(s *sim, models []string, keys ...string) config.Config {
	cfg := simConfig(s)
	cfg.Models = nil
	for _, m := range models {
		cfg.Models = append(cfg.Models, config.Model{Name: m, Deployments: []config.Deployment{{Name: m + "-sim", Provider: "sim", Model: "sim-small"}}})
	}
	for _, k := range keys {
		cfg.Auth.Keys = append(cfg.Auth.Keys, config.APIKey{Name: k, Key: "sk-" + k})
	}
	cfg.Auth.AdminKey = "sk-admin"
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	return cfg
}

// TestReloadUnderLoadDropsNoRequest reloads the model table and the keys
// a dozen times while clients keep sending requests and streams: none fails,
// streams that began before a reload finish on the configuration they
// began with, the new model and key work after it, an invalid file keeps
// the running configuration, and the reload metric counts both. It runs
// with the handler behind httptest, and behind Serve, where streams are
// detached from their connections' goroutines and hold their generation
// until they end.
func TestReloadUnderLoadDropsNoRequest(t *testing.T) {
	t.Run("handler", func(t *testing.T) { testReloadUnderLoad(t, false) })
	t.Run("serve-detached", func(t *testing.T) { testReloadUnderLoad(t, true) })
}

func testReloadUnderLoad(t *testing.T, serve bool) {
	s := startSim(t, simulated.Options{ChunkDelay: 5 * time.Millisecond, Words: 20})
	before := goleak.IgnoreCurrent() // the simulated provider's server stops at cleanup
	logs := &syncBuffer{}
	logger, err := telemetry.NewLogger(logs, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), reloadConfig(s, []string{"chat-a"}, "k1"), logger)
	if err != nil {
		t.Fatal(err)
	}
	var url string
	var stopServing func()
	if serve {
		url, stopServing = serveApp(t, a)
	} else {
		srv := httptest.NewServer(a.Handler())
		url = srv.URL
		stopServing = srv.Close
	}
	var maxDetached atomic.Int64
	send := func(model, key string, stream bool) (int, string) {
		body := chat(model, fmt.Sprintf("hello %d", time.Now().UnixNano()))
		if stream {
			body = chat(model, fmt.Sprintf("hello %d", time.Now().UnixNano()), `"stream":true`)
		}
		req, _ := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer sk-"+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		if n := int64(a.DetachedStreams()); n > maxDetached.Load() {
			maxDetached.Store(n)
		}
		b, _ := io.ReadAll(resp.Body)
		if stream && !strings.Contains(string(b), "[DONE]") {
			return -1, string(b)
		}
		return resp.StatusCode, string(b)
	}

	var sent, failed atomic.Int64
	var firstFailure atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				code, body := send("chat-a", "k1", (w+i)%2 == 0)
				sent.Add(1)
				if code != 200 {
					failed.Add(1)
					firstFailure.CompareAndSwap(nil, fmt.Sprintf("%d %.200s", code, body))
				}
			}
		}()
	}
	waitFor(t, "traffic", func() bool { return sent.Load() > 20 })
	ctx := context.Background()
	const reloads = 12
	for i := range reloads {
		cfg := reloadConfig(s, []string{"chat-a", "chat-b"}, "k1", "k2")
		if i%3 == 1 {
			cfg.Cache.Enabled = false // a cache change builds new tiers too
		}
		if err := a.Reload(ctx, cfg); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		n := sent.Load()
		waitFor(t, "traffic after the reload", func() bool { return sent.Load() > n+8 })
	}
	bad := errors.New(`config x.yaml: unknown key "modles"`)
	if err := a.ReloadFile(ctx, func() (config.Config, error) { return config.Config{}, bad }); !errors.Is(err, bad) {
		t.Fatalf("invalid file: %v", err)
	}
	close(stop)
	wg.Wait()
	if f := failed.Load(); f != 0 {
		t.Fatalf("%d of %d requests failed across the reloads; first: %v", f, sent.Load(), firstFailure.Load())
	}
	// The running configuration is the last good one.
	if code, body := send("chat-b", "k2", false); code != 200 {
		t.Fatalf("new model with the new key after the reloads: %d %s", code, body)
	}
	if !strings.Contains(logs.String(), "configuration not reloaded; the running one stays") || !strings.Contains(logs.String(), "modles") {
		t.Errorf("the refused reload was not logged with its reason:\n%s", logs.String())
	}
	f := scrapeFamilies(t, url, "Authorization: Bearer sk-admin")
	if got := f.value("llm_edge_config_reloads_total", "result=success"); got != reloads {
		t.Errorf("reloads success = %v, want %d", got, reloads)
	}
	if got := f.value("llm_edge_config_reloads_total", "result=failure"); got != 1 {
		t.Errorf("reloads failure = %v, want 1", got)
	}
	if serve && maxDetached.Load() == 0 {
		t.Error("no stream was detached from its connection's goroutine behind Serve")
	}
	if !serve && maxDetached.Load() != 0 {
		t.Errorf("%d streams detached behind httptest, which has no Detacher", maxDetached.Load())
	}
	stopServing()
	a.Close() // waits for the retired generations and closes them
	http.DefaultClient.CloseIdleConnections()
	goleak.VerifyNone(t, before)
}

// TestReloadChangesTheModelTable: a model unknown before the reload is
// served after it.
func TestReloadChangesTheModelTable(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, reloadConfig(s, []string{"chat-a"}))
	if resp, _ := post(t, g.URL, chat("chat-b", "hi")); resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("chat-b before the reload: %d, want it unknown", resp.StatusCode)
	}
	if err := g.App.Reload(context.Background(), reloadConfig(s, []string{"chat-b"})); err != nil {
		t.Fatal(err)
	}
	if resp, body := post(t, g.URL, chat("chat-b", "hi")); resp.StatusCode != 200 {
		t.Fatalf("chat-b after the reload: %d %s", resp.StatusCode, body)
	}
}

// TestStoredResponsesSurviveAReload: with the Responses store in memory, a
// reload that keeps the store's settings keeps its responses, so
// previous_response_id and GET go on working.
func TestStoredResponsesSurviveAReload(t *testing.T) {
	s := startSim(t, simulated.Options{})
	cfg := reloadConfig(s, []string{"chat-a"}, "alice")
	g := startGateway(t, cfg)
	resp, b := callResponses(t, http.MethodPost, g.URL+"/v1/responses", `{"model":"gpt-4o","input":"remember me"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	id := gjson.GetBytes(b, "id").Str
	if err := g.App.Reload(context.Background(), reloadConfig(s, []string{"chat-b"}, "alice")); err != nil {
		t.Fatal(err)
	}
	if resp, b := callResponses(t, http.MethodGet, g.URL+"/v1/responses/"+id, ""); resp.StatusCode != 200 {
		t.Fatalf("GET %s after the reload: %d %s", id, resp.StatusCode, b)
	}
}
