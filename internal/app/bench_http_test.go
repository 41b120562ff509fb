package app_test

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/edge-agent/edge-agent/internal/provider/simulated"
)

// BenchmarkGatewayOverHTTP measures whole requests over loopback HTTP:
// client -> gateway -> simulated provider (0 ms), in parallel, for
// profiling the proxied path (-cpuprofile) and the L1-hit path; the
// simulated provider alone is the baseline, and miss-std is the proxied
// path over net/http's Transport instead of the direct client.
func BenchmarkGatewayOverHTTP(b *testing.B) {
	s := startSim(b, simulated.Options{})
	for _, c := range []struct {
		name   string
		sim    bool // the simulated provider alone
		cache  bool
		client string
	}{{"simulated", true, false, ""}, {"miss", false, false, "direct"}, {"miss-std", false, false, "std"}, {"l1-hit", false, true, "direct"}} {
		b.Run(c.name, func(b *testing.B) {
			url := s.URL
			if !c.sim {
				cfg := simConfig(s)
				cfg.Cache.Enabled = c.cache
				cfg.LogLevel = "warn"
				cfg.UpstreamHTTPClient = c.client
				url = startGateway(b, cfg).URL
			}
			body := []byte(chat("gpt-4o-mini", "over http"))
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := client.Post(url+"/v1/chat/completions", "application/json", bytes.NewReader(body))
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
		})
	}
}
