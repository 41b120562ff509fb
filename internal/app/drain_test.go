package app_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/app"
	"github.com/edge-agent/edge-agent/internal/config"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
	"github.com/edge-agent/edge-agent/internal/telemetry"
)

// TestShutdownDrainsReadinessFirstThenFinishesEveryStream is what a
// Kubernetes rollout needs: after SIGTERM, readiness answers 503 while the
// listener still accepts and serves (new requests included) for the drain
// delay; then the listener closes and every in-flight stream completes.
func TestShutdownDrainsReadinessFirstThenFinishesEveryStream(t *testing.T) {
	s := startSim(t, simulated.Options{ChunkDelay: 40 * time.Millisecond, Words: 30})
	cfg := simConfig(s)
	cfg.Cache.Enabled = false
	cfg.ShutdownDrainDelay = config.Duration(600 * time.Millisecond)
	cfg.ShutdownTimeout = config.Duration(20 * time.Second)
	logger, err := telemetry.NewLogger(io.Discard, "json", "error")
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ln, err := app.ListenLoopback()
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, ln) }()

	// A fresh connection per request: what a kubelet probe or a load
	// balancer opening a new connection sees.
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	get := func(path string) (int, error) {
		resp, err := fresh.Get(base + path)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	waitFor(t, "readiness 200", func() bool { code, _ := get("/health/ready"); return code == 200 })

	const streams = 4
	var wg sync.WaitGroup
	results := make([]string, streams)
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := fresh.Post(base+"/v1/chat/completions", "application/json",
				strings.NewReader(chat("gpt-4o-mini", "drain me", `"stream":true`)))
			if err != nil {
				results[i] = "error: " + err.Error()
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				results[i] = "read error: " + err.Error()
				return
			}
			results[i] = string(b)
		}()
	}
	waitFor(t, "every stream at the provider", func() bool { return s.Calls() >= streams })

	cancel() // SIGTERM
	drainStart := time.Now()
	waitFor(t, "readiness 503 during the drain", func() bool { code, _ := get("/health/ready"); return code == http.StatusServiceUnavailable })
	if code, err := get("/health/live"); code != 200 {
		t.Fatalf("liveness during the drain: %d %v; want 200 (a restart would cut the streams)", code, err)
	}
	resp, body := post(t, base, chat("gpt-4o-mini", "arrived during the drain"))
	if resp.StatusCode != 200 {
		t.Fatalf("a request during the drain: %d %s; want it served", resp.StatusCode, body)
	}
	if time.Since(drainStart) >= cfg.ShutdownDrainDelay.D() {
		t.Fatalf("the checks took %v, longer than the drain delay: the test proves nothing", time.Since(drainStart))
	}

	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not return")
	}
	if time.Since(drainStart) < cfg.ShutdownDrainDelay.D() {
		t.Fatalf("Serve returned %v after the signal, before the drain delay", time.Since(drainStart))
	}
	wg.Wait()
	for i, r := range results {
		if !strings.Contains(r, "data: [DONE]") {
			t.Errorf("stream %d did not complete: %.200q", i, r)
		}
	}
	if _, err := get("/health/live"); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("after shutdown a new connection got %v, want refused", err)
	}
}
