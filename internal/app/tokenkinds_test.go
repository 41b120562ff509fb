package app_test

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/internal/provider/simulated"
)

// TestPromptCacheTokensArePricedByKindEndToEnd sends answers whose usage
// carries prompt-cache reads and writes (the simulated provider's
// SIM_CACHE_READ_/SIM_CACHE_WRITE_ words) through the gateway, and checks
// metadata.cost_usd and llm_edge_tokens_total{type} against prices written
// out by hand from the published table (USD per million tokens).
func TestPromptCacheTokensArePricedByKindEndToEnd(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, simConfig(s))
	long := strings.Repeat("lorem ipsum ", 200) // ~600 prompt tokens

	type perM struct{ input, cacheRead, cacheWrite, output float64 }
	tests := []struct {
		name, model, provider, canonical string
		read, write                      int
		price                            perM
		stream                           bool
	}{
		// claude-3-5-sonnet: input 3.00, cache read 0.30 (0.1x), 5-minute
		// cache write 3.75 (1.25x), output 15.00.
		{"anthropic json", "claude-3-5-sonnet-20241022", "anthropic", "claude-3-5-sonnet", 300_000, 100_000, perM{3, 0.30, 3.75, 15}, false},
		{"anthropic stream", "claude-3-5-sonnet-20241022", "anthropic", "claude-3-5-sonnet", 200_000, 40_000, perM{3, 0.30, 3.75, 15}, true},
		// gpt-4o: input 2.50, cached input 1.25, output 10.00; cached
		// tokens are inside prompt_tokens.
		{"openai json", "gpt-4o", "openai", "gpt-4o", 500, 0, perM{2.5, 1.25, 0, 10}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := scrapeFamilies(t, g.URL)
			content := "SIM_WORDS_1000 SIM_CACHE_READ_" + itoa(int64(tt.read)) + " " + long
			if tt.write > 0 {
				content = "SIM_CACHE_WRITE_" + itoa(int64(tt.write)) + " " + content
			}
			extra := []string{}
			if tt.stream {
				extra = append(extra, `"stream":true`, `"stream_options":{"include_usage":true}`)
			}
			r, b := post(t, g.URL, chat(tt.model, content, extra...))
			if r.StatusCode != 200 {
				t.Fatalf("status %d: %s", r.StatusCode, b)
			}
			var u struct {
				Usage struct {
					Prompt     int `json:"prompt_tokens"`
					Completion int `json:"completion_tokens"`
					Details    struct {
						Cached int `json:"cached_tokens"`
					} `json:"prompt_tokens_details"`
				} `json:"usage"`
				Metadata struct {
					Cost *float64 `json:"cost_usd,string"`
				} `json:"metadata"`
			}
			if tt.stream {
				// The usage chunk is the last data event before [DONE].
				events := strings.Split(strings.TrimSpace(string(b)), "\n\n")
				last := strings.TrimPrefix(events[len(events)-2], "data: ")
				if err := json.Unmarshal([]byte(last), &u); err != nil {
					t.Fatalf("usage chunk %q: %v", last, err)
				}
			} else if err := json.Unmarshal(b, &u); err != nil {
				t.Fatalf("answer: %v: %s", err, b)
			}
			if u.Usage.Details.Cached != tt.read {
				t.Fatalf("prompt_tokens_details.cached_tokens = %d, want the %d cache-read tokens", u.Usage.Details.Cached, tt.read)
			}
			input := u.Usage.Prompt - tt.read - tt.write // prompt_tokens holds every prompt token
			if input <= 0 || u.Usage.Completion != 1000 {
				t.Fatalf("usage %+v: want ~600 uncached prompt tokens and 1000 completion tokens", u.Usage)
			}
			want := (float64(input)*tt.price.input + float64(tt.read)*tt.price.cacheRead +
				float64(tt.write)*tt.price.cacheWrite + float64(u.Usage.Completion)*tt.price.output) / 1e6
			if !tt.stream && (u.Metadata.Cost == nil || math.Abs(*u.Metadata.Cost-want) > 1e-9) {
				t.Fatalf("metadata.cost_usd = %v, want %v", u.Metadata.Cost, want)
			}
			after := scrapeFamilies(t, g.URL)
			pl := []string{"provider=" + tt.provider, "model=" + tt.canonical}
			delta := func(name string, labels ...string) float64 {
				a, b := after.value(name, append(pl, labels...)...), before.value(name, append(pl, labels...)...)
				if math.IsNaN(b) {
					b = 0 // the series did not exist yet
				}
				if math.IsNaN(a) {
					a = 0
				}
				return a - b
			}
			if got := delta("llm_edge_cost_usd_total"); math.Abs(got-want) > 1e-9 {
				t.Errorf("llm_edge_cost_usd_total grew by %v, want %v", got, want)
			}
			for typ, n := range map[string]int{"input": input, "cache_read": tt.read, "cache_write": tt.write, "output": 1000} {
				if got := delta("llm_edge_tokens_total", "type="+typ); got != float64(n) {
					t.Errorf("llm_edge_tokens_total{type=%q} grew by %v, want %d", typ, got, n)
				}
			}
		})
	}
}

// TestCacheHitSavesWhatTheMissCostByKind: a hit on an answer whose usage
// had prompt-cache reads and writes saves what the miss was charged, priced
// by kind, not the same tokens priced as ordinary input.
func TestCacheHitSavesWhatTheMissCostByKind(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, simConfig(s))
	body := chat("claude-3-5-sonnet-20241022", "SIM_WORDS_100 SIM_CACHE_READ_100000 SIM_CACHE_WRITE_100000 hello")
	r1, b1 := post(t, g.URL, body)
	if r1.StatusCode != 200 || r1.Header.Get("X-Cache-Status") != "MISS" {
		t.Fatalf("first: %d %s", r1.StatusCode, r1.Header.Get("X-Cache-Status"))
	}
	miss := usageOf(t, b1)
	if miss.Metadata.Cost == nil {
		t.Fatal("miss has no cost_usd")
	}
	input := miss.Usage.Prompt - 200_000
	// claude-3-5-sonnet: input 3.00, cache read 0.30, 5-minute write 3.75, output 15.00 per 1M.
	want := (float64(input)*3 + 100_000*0.30 + 100_000*3.75 + float64(miss.Usage.Completion)*15) / 1e6
	if math.Abs(*miss.Metadata.Cost-want) > 1e-9 {
		t.Fatalf("miss cost_usd %v, want %v", *miss.Metadata.Cost, want)
	}
	if r2, _ := post(t, g.URL, body); r2.Header.Get("X-Cache-Status") != "HIT" {
		t.Fatalf("second: %s", r2.Header.Get("X-Cache-Status"))
	}
	f := scrapeFamilies(t, g.URL)
	if got := f.value("llm_edge_cache_saved_cost_usd_total", "provider=anthropic", "model=claude-3-5-sonnet"); math.Abs(got-want) > 1e-9 {
		t.Fatalf("saved %v, want %v (what the miss cost)", got, want)
	}
}
