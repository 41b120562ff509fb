package app_test

import (
	"net"
	"net/http"
	"runtime"
	"testing"

	"github.com/edge-agent/edge-agent/internal/app"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
	"github.com/edge-agent/edge-agent/internal/testutil/redistest"
)

// TestUnreachableProviderIsCountedOnEveryAttemptAndClient400sApart is the
// outage the provider-error alert must see: every refused connection is an
// attempt with outcome connection_error, while a client's own 400 passed
// through is a 4xx, never a provider failure.
func TestUnreachableProviderIsCountedOnEveryAttemptAndClient400sApart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	s := startSim(t, simulated.Options{})
	cfg := simConfig(s)
	cfg.Cache.Enabled = false
	cfg.Routing.RetryBaseBackoff, cfg.Routing.RetryMaxBackoff = 1e6, 2e6 // 1-2 ms
	for i := range cfg.Providers {
		if cfg.Providers[i].Name == "openai" {
			cfg.Providers[i].BaseURL = dead + "/v1"
		}
	}
	g := startGateway(t, cfg)
	if resp, body := post(t, g.URL, chat("gpt-4o-mini", "anyone there?")); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("dead provider: %d %s, want 502", resp.StatusCode, body)
	}
	// The simulated provider answers 400 when asked to; the gateway passes
	// it through.
	resp, body := post(t, g.URL, chat("sim-small", "SIM_ERROR_400"))
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("SIM_ERROR_400: %d %s, want the provider's 400", resp.StatusCode, body)
	}
	f := scrapeFamilies(t, g.URL)
	if got := f.value("llm_edge_upstream_attempts_total", "provider=openai", "outcome=connection_error"); got != 3 {
		t.Errorf("connection_error attempts on openai = %v, want 3 (the call and its 2 retries)", got)
	}
	if got := f.value("llm_edge_upstream_attempts_total", "provider=sim", "outcome=4xx"); got != 1 {
		t.Errorf("4xx attempts on sim = %v, want 1", got)
	}
	for _, o := range []string{"5xx", "timeout", "connection_error", "stream_error", "breaker_open"} {
		if got := f.value("llm_edge_upstream_attempts_total", "provider=sim", "outcome="+o); got != 0 {
			t.Errorf("a client 400 counted as provider failure %s: %v", o, got)
		}
	}
	info := f["llm_edge_build_info"].GetMetric()
	if len(info) != 1 || info[0].GetGauge().GetValue() != 1 {
		t.Fatalf("llm_edge_build_info: %v, want one series of value 1", info)
	}
	labels := map[string]string{}
	for _, lp := range info[0].GetLabel() {
		labels[lp.GetName()] = lp.GetValue()
	}
	if labels["version"] != app.Version || labels["goversion"] != runtime.Version() || labels["revision"] == "" {
		t.Errorf("llm_edge_build_info labels %v", labels)
	}
}

// TestL2EntryCountIsExported: llm_edge_cache_entries{tier="l2"} counts the
// entries in Redis.
func TestL2EntryCountIsExported(t *testing.T) {
	r := redistest.Start(t)
	s := startSim(t, simulated.Options{})
	g := startGateway(t, redisConfig(s, r))
	for _, q := range []string{"one", "two"} {
		resp, key := post(t, g.URL, chat("gpt-4o-mini", q))
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, key)
		}
		waitInL2(t, r, resp.Header.Get("X-Cache-Key"))
	}
	if got := scrapeFamilies(t, g.URL).value("llm_edge_cache_entries", "tier=l2"); got != 2 {
		t.Fatalf(`llm_edge_cache_entries{tier="l2"} = %v, want 2`, got)
	}
}
