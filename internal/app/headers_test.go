package app_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/config"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
)

// This file checks that the edge headers tell the same story as the log
// and the metrics.

// logRecord returns the JSON log record of request id.
func logRecord(t *testing.T, g *gw, id string) map[string]any {
	t.Helper()
	var rec map[string]any
	waitFor(t, "the log record of "+id, func() bool {
		for line := range strings.SplitSeq(g.Logs.String(), "\n") {
			if !strings.Contains(line, `"request_id":"`+id+`"`) {
				continue
			}
			if err := json.Unmarshal([]byte(line), &rec); err == nil && rec["total_latency_ms"] != nil {
				return true
			}
		}
		return false
	})
	return rec
}

// durationCount is the number of llm_edge_request_duration_ms observations
// labelled cache=value.
func durationCount(t *testing.T, url, value string) uint64 {
	t.Helper()
	var n uint64
	for _, m := range scrapeFamilies(t, url)["llm_edge_request_duration_ms"].GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == "cache" && lp.GetValue() == value {
				n += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}

func TestStreamedMissOverheadLeavesOutTheProvidersTimeToFirstByte(t *testing.T) {
	s := startSim(t, simulated.Options{TTFT: 300 * time.Millisecond})
	g := startGateway(t, simConfig(s))
	for _, p := range []struct{ provider, model string }{{"openai", "gpt-4o-mini"}, {"anthropic", "claude-3-5-sonnet-20241022"}} {
		t.Run(p.provider, func(t *testing.T) {
			id := "overhead-" + p.provider
			start := time.Now()
			resp, out := post(t, g.URL, chat(p.model, "overhead "+p.provider, `"stream":true`), "X-Request-Id: "+id)
			if resp.StatusCode != http.StatusOK || layer(resp) != "MISS/" || time.Since(start) < 300*time.Millisecond {
				t.Fatalf("%d %s after %v: %s", resp.StatusCode, layer(resp), time.Since(start), out)
			}
			over, err := strconv.ParseFloat(resp.Header.Get("X-Edge-Overhead-Ms"), 64)
			if err != nil || over >= 50 {
				t.Fatalf("X-Edge-Overhead-Ms %q on a stream whose provider took 300 ms to its first byte, want the gateway's own time (< 50 ms)",
					resp.Header.Get("X-Edge-Overhead-Ms"))
			}
			rec := logRecord(t, g, id)
			if us, _ := rec["overhead_us"].(float64); us <= 0 || us >= 50_000 {
				t.Fatalf("log overhead_us %v, want the gateway's time across the stream (> 0, < 50 ms): %v", rec["overhead_us"], rec)
			}
			if pl, _ := rec["provider_latency_ms"].(float64); pl < 300 {
				t.Fatalf("log provider_latency_ms %v, want at least the provider's 300 ms", rec["provider_latency_ms"])
			}
		})
	}
}

func TestRequestsRefusedBeforeTheCacheAreBypass(t *testing.T) {
	s := startSim(t, simulated.Options{})
	const key = "sk-team-a-0123456789"
	g := startGateway(t, accessConfig(s, config.APIKey{Name: "team-a", Key: key, RPM: 3, Burst: 3}))
	auth := "Authorization: Bearer " + key
	cases := []struct {
		name    string
		body    string
		headers []string
		status  int
	}{
		{"bad JSON", `{"model":`, []string{auth}, http.StatusBadRequest},
		{"unknown model", chat("no-such-model", "hi"), []string{auth}, http.StatusNotFound},
		{"no key", chat("gpt-4o-mini", "hi"), nil, http.StatusUnauthorized},
		{"bad cache header", chat("gpt-4o-mini", "hi"), []string{auth, "Cache-Control: max-age=banana"}, http.StatusBadRequest},
	}
	for _, c := range cases {
		resp, out := post(t, g.URL, c.body, c.headers...)
		want := "BYPASS"
		if c.status == http.StatusUnauthorized {
			// Refused by the server's authentication, before the chat
			// pipeline: no cache outcome at all, and no request record.
			want = ""
		}
		if resp.StatusCode != c.status || resp.Header.Get("X-Cache-Status") != want {
			t.Errorf("%s: %d X-Cache-Status %q, want %d %q: %s", c.name, resp.StatusCode, resp.Header.Get("X-Cache-Status"), c.status, want, out)
		}
	}
	// Past the rate limit (3 a minute, two spent above): refused before the cache.
	var limited *http.Response
	for i := range 4 {
		resp, out := post(t, g.URL, chat("gpt-4o-mini", "limit "+strconv.Itoa(i)), auth)
		if resp.StatusCode == http.StatusTooManyRequests {
			limited = resp
			break
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%d %s", resp.StatusCode, out)
		}
	}
	if limited == nil || limited.Header.Get("X-Cache-Status") != "BYPASS" {
		t.Fatalf("rate-limited answer: %v", limited)
	}

	admin := "Authorization: Bearer " + accessAdminKey
	fams := scrapeFamilies(t, g.URL, admin)
	var bypass, misses uint64
	for _, m := range fams["llm_edge_request_duration_ms"].GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == "cache" && lp.GetValue() == "bypass" {
				bypass += m.GetHistogram().GetSampleCount()
			}
		}
	}
	misses = uint64(fams.sum("llm_edge_cache_misses_total"))
	// Every refusal the gateway saw (all but the one without a key, and the
	// rate-limited one) is a bypass; only the admitted requests are misses.
	if want := uint64(len(cases) - 1 + 1); bypass != want || misses != 2 {
		t.Fatalf("metrics: %d bypass, %d misses; want %d and the 2 admitted requests", bypass, misses, want)
	}
}

func TestCoalescedWaitersAreTheirOwnOutcome(t *testing.T) {
	for _, stream := range []bool{false, true} {
		name, extra := "json", []string(nil)
		if stream {
			name, extra = "stream", []string{`"stream":true`}
		}
		t.Run(name, func(t *testing.T) {
			s := startSim(t, simulated.Options{TTFT: time.Second})
			g := startGateway(t, simConfig(s))
			const n = 6
			body := chat("gpt-4o-mini", "coalesced outcome "+name, extra...)
			layers := make([]string, n)
			tiers := make([]string, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					resp, out := post(t, g.URL, body)
					if resp.StatusCode != http.StatusOK {
						t.Errorf("%d %s", resp.StatusCode, out)
						return
					}
					layers[i] = layer(resp)
					if !stream {
						tiers[i] = gjson.GetBytes(out, "metadata.cache_tier").Str
					}
				})
			}
			wg.Wait()
			if s.Calls() != 1 {
				t.Fatalf("%d provider calls, want 1", s.Calls())
			}
			count := map[string]int{}
			for i, l := range layers {
				count[l]++
				if !stream && l == "HIT/COALESCED" && tiers[i] != "coalesced" {
					t.Errorf("coalesced answer's metadata.cache_tier %q", tiers[i])
				}
			}
			if count["MISS/"] != 1 || count["HIT/COALESCED"] != n-1 {
				t.Fatalf("answers %v, want one MISS and %d HIT/COALESCED", count, n-1)
			}

			fams := scrapeFamilies(t, g.URL)
			if v := fams.value("llm_edge_cache_coalesced_total"); v != n-1 {
				t.Errorf("llm_edge_cache_coalesced_total %v, want %d", v, n-1)
			}
			if v := fams.sum("llm_edge_cache_hits_total", "tier=l1"); v != 0 {
				t.Errorf("llm_edge_cache_hits_total{tier=l1} %v: coalesced waiters counted as hits", v)
			}
			if c := durationCount(t, g.URL, "coalesced"); c != n-1 {
				t.Errorf("request_duration_ms{cache=coalesced} has %d observations, want %d", c, n-1)
			}
			if c := durationCount(t, g.URL, "hit"); c != 0 {
				t.Errorf("request_duration_ms{cache=hit} has %d observations: coalesced waits would push hit latency to the provider's", c)
			}
		})
	}
}
