package app_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/app"
	"github.com/edge-agent/edge-agent/internal/config"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
	"github.com/edge-agent/edge-agent/internal/telemetry"
)

// This file is the shared harness of the gateway's end-to-end tests: a real
// simulated provider over HTTP, a real gateway over HTTP, real clients.

// sim is a simulated provider served over real HTTP.
type sim struct {
	*simulated.Server
	URL string
}

func startSim(t testing.TB, o simulated.Options) *sim {
	t.Helper()
	s := simulated.New(o)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &sim{Server: s, URL: srv.URL}
}

// simConfig is the default configuration with the openai, anthropic and
// sim providers pointed at s, quiet logs and no metrics listener.
func simConfig(s *sim) config.Config {
	cfg := config.Default()
	cfg.MetricsPort = 0
	config.UseDemoProvider(&cfg, s.URL)
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	return cfg
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// gw is a gateway served over real HTTP.
type gw struct {
	App  *app.App
	URL  string
	Logs *syncBuffer
	stop func() // ends Serve and waits for it; nil once stopped
}

// startGateway builds the gateway from cfg and serves it; everything stops
// when the test ends.
func startGateway(t testing.TB, cfg config.Config) *gw {
	t.Helper()
	logs := &syncBuffer{}
	if cfg.LogFormat == "" {
		cfg.LogFormat = "json"
	}
	logger, err := telemetry.NewLogger(logs, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, logger)
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	// Served as the gateway serves (App.Serve, not httptest around its
	// handler): streams are detached from their connections' goroutines.
	url, stop := serveApp(t, a)
	g := &gw{App: a, URL: url, Logs: logs, stop: stop}
	t.Cleanup(g.Stop)
	return g
}

// serveApp runs a.Serve on a loopback port; stop ends it and waits.
func serveApp(t testing.TB, a *app.App) (url string, stop func()) {
	t.Helper()
	ln, err := app.ListenLoopback()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, ln) }()
	return "http://" + ln.Addr().String(), func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	}
}

// Stop closes the gateway (idempotent).
func (g *gw) Stop() {
	if g.stop != nil {
		g.stop()
		g.App.Close()
		g.stop = nil
	}
}

// post sends a chat completion request; headers are "Name: value" strings.
func post(t testing.TB, url, body string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return resp, b
}

// chat builds a request body for one user message.
func chat(model, content string, extra ...string) string {
	var b strings.Builder
	b.WriteString(`{"model":"` + model + `","messages":[{"role":"user","content":` + quote(content) + `}]`)
	for _, e := range extra {
		b.WriteString("," + e)
	}
	b.WriteString("}")
	return b.String()
}

func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
