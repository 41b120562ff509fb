package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/testutil/redistest"
)

// TestDemoServesTheGuidesFirstRequest runs the README's first command in
// process: `edge-agent --demo` must answer the guide's curl with no keys and
// no Redis, then serve the repeat from L1, then shut down cleanly.
func TestDemoServesTheGuidesFirstRequest(t *testing.T) {
	port := redistest.FreePort(t)
	t.Setenv("PORT", strconv.Itoa(port))
	t.Setenv("HOST", "127.0.0.1")
	mport := redistest.FreePort(t)
	for mport == port {
		mport = redistest.FreePort(t)
	}
	t.Setenv("METRICS_PORT", strconv.Itoa(mport))
	t.Setenv("OPENAI_API_KEY", "")
	t.Setenv("REDIS_URL", "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var stderr bytes.Buffer
	go func() { done <- run(ctx, []string{"--demo", "--demo-latency", "20ms"}, &bytes.Buffer{}, &stderr) }()

	base := "http://127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	body := `{"model": "gpt-4", "messages": [{"role": "user", "content": "What is 2+2?"}]}`
	for i, want := range []string{"MISS", "HIT"} {
		resp, err := http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("X-Cache-Status") != want {
			t.Fatalf("request %d: status %d cache %q, want 200 %s", i, resp.StatusCode, resp.Header.Get("X-Cache-Status"), want)
		}
	}
	// The metrics listener on its own port answers with the same security
	// headers as the main one.
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(mport) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mbody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(mbody), "llm_edge_requests_total") ||
		resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("metrics port: status %d, headers %v", resp.StatusCode, resp.Header)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("gateway did not shut down")
	}
}

func TestVersionCommand(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "edge-agent ") {
		t.Fatalf("got %q", out.String())
	}
}

func TestStatsCommandPrintsTheGatewaysStats(t *testing.T) {
	var gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		if r.URL.Path != "/admin/stats" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(`{"requests":3,"cache":{"hit_rate":0.5}}`))
	}))
	defer srv.Close()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"stats", "--url", srv.URL, "--admin-key", "ops"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"hit_rate":0.5`) || gotAuth != "Bearer ops" {
		t.Fatalf("printed %q, auth %q", out.String(), gotAuth)
	}
	if err := run(context.Background(), []string{"stats", "--url", srv.URL + "/nowhere"}, &out, &out); err == nil {
		t.Fatal("a failed stats call must be an error")
	}
}
