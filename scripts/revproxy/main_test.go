package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/provider/simulated"
)

// TestProxyForwardsStreamsChunkByChunk: the bare proxy sends each event of
// the simulated provider's stream on as it arrives, not at the end.
func TestProxyForwardsStreamsChunkByChunk(t *testing.T) {
	sim := httptest.NewServer(simulated.New(simulated.Options{ChunkDelay: 100 * time.Millisecond, Words: 30}))
	defer sim.Close()
	p, err := newProxy(sim.URL)
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(p)
	defer front.Close()
	resp, err := http.Post(front.URL+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	start := time.Now()
	buf := make([]byte, 4096)
	n, err := resp.Body.Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "data: ") || strings.Contains(string(buf[:n]), "[DONE]") {
		t.Fatalf("first read: %q %v, want the first events only", buf[:n], err)
	}
	if d := time.Since(start); d > 150*time.Millisecond {
		t.Errorf("the first event took %s after the headers: the proxy buffered the stream", d)
	}
	rest, err := io.ReadAll(resp.Body)
	if err != nil || !strings.Contains(string(rest), "data: [DONE]") {
		t.Fatalf("rest of the stream: %v, [DONE] missing in %q", err, rest)
	}
}

func TestProxyRejectsABadUpstream(t *testing.T) {
	if _, err := newProxy("not a url"); err == nil {
		t.Fatal("want an error for an upstream that is not a URL")
	}
}
