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
// profiling the proxied path (-cpuprofile) and the L1-hit path.
func BenchmarkGatewayOverHTTP(b *testing.B) {
	s := startSim(b, simulated.Options{})
	for _, c := range []struct {
		name  string
		cache bool
	}{{"miss", false}, {"l1-hit", true}} {
		b.Run(c.name, func(b *testing.B) {
			cfg := simConfig(s)
			cfg.Cache.Enabled = c.cache
			cfg.LogLevel = "warn"
			g := startGateway(b, cfg)
			body := []byte(chat("gpt-4o-mini", "over http"))
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := client.Post(g.URL+"/v1/chat/completions", "application/json", bytes.NewReader(body))
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
