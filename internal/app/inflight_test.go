package app_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/app"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
	"github.com/edge-agent/edge-agent/internal/route"
)

func TestRequestPastMaxInflightIs503WithRetryAfterAndCounted(t *testing.T) {
	s := startSim(t, simulated.Options{TTFT: 2 * time.Second})
	cfg := simConfig(s)
	cfg.Cache.Enabled = false
	cfg.Routing.MaxInflight = 1
	cfg.Routing.QueueWait = 0
	g := startGateway(t, cfg)

	first := make(chan int, 1)
	go func() {
		resp, err := http.Post(g.URL+"/v1/chat/completions", "application/json", strings.NewReader(chat("gpt-4o-mini", "slow")))
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	deadline := time.Now().Add(10 * time.Second)
	for s.Calls() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the first request never reached the router")
		}
		time.Sleep(5 * time.Millisecond)
	}
	resp, body := post(t, g.URL, chat("gpt-4o-mini", "one too many"))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		gjson.GetBytes(body, "error.code").Str != "server_overloaded" ||
		!strings.Contains(gjson.GetBytes(body, "error.message").Str, "MAX_INFLIGHT") {
		t.Fatalf("past the cap: %d Retry-After %q %s; want 503 server_overloaded with Retry-After naming MAX_INFLIGHT",
			resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	f := scrapeFamilies(t, g.URL)
	if v := f.value("llm_edge_rejected_total", "reason=max_inflight"); v != 1 {
		t.Errorf(`llm_edge_rejected_total{reason="max_inflight"} = %v, want 1`, v)
	}
	if v := f.value("llm_edge_rejected_total", "reason=deployment_max_inflight"); v != 0 {
		t.Errorf(`llm_edge_rejected_total{reason="deployment_max_inflight"} = %v, want 0`, v)
	}
	if code := <-first; code != http.StatusOK {
		t.Fatalf("the request within the cap: %d", code)
	}
}

func TestUnsetCapsAreDerivedFromTheFileLimit(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, simConfig(s))
	want := route.InflightForFiles(app.FileLimit())
	if got := scrapeFamilies(t, g.URL).value("llm_edge_max_inflight"); got != float64(want) || want < 20000 {
		t.Fatalf("llm_edge_max_inflight = %v, want %d from RLIMIT_NOFILE %d (and at least 20000)", got, want, app.FileLimit())
	}
}
