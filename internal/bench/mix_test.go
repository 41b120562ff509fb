package bench

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

func harmonic(n int, s float64) float64 {
	var h float64
	for k := 1; k <= n; k++ {
		h += math.Pow(float64(k), -s)
	}
	return h
}

func TestZipfMixTopPromptFrequencyIsOneOverHarmonic(t *testing.T) {
	tests := []struct {
		n int
		s float64
	}{{100, 1.0}, {1000, 1.0}, {50, 1.5}, {10, 0.7}}
	for _, tt := range tests {
		t.Run("", func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Mix, cfg.Prompts, cfg.ZipfS, cfg.RunID = MixZipf, tt.n, tt.s, "t"
			b, err := newBodies(&cfg)
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(7, 7))
			const samples = 200_000
			counts := map[string]int{}
			for range samples {
				counts[string(b.pick(r, false, 0, 0))]++
			}
			top := float64(counts[string(b.plain[0])]) / samples
			second := float64(counts[string(b.plain[1])]) / samples
			want := 1 / harmonic(tt.n, tt.s)
			if math.Abs(top-want) > 0.01 {
				t.Errorf("n=%d s=%g: top prompt frequency %.4f, want %.4f", tt.n, tt.s, top, want)
			}
			if wantRatio := math.Pow(2, tt.s); math.Abs(top/second-wantRatio) > 0.1*wantRatio {
				t.Errorf("n=%d s=%g: rank1/rank2 = %.3f, want %.3f", tt.n, tt.s, top/second, wantRatio)
			}
			if len(counts) > tt.n {
				t.Errorf("saw %d distinct prompts, want at most %d", len(counts), tt.n)
			}
		})
	}
}

func TestBodiesAreValidChatRequests(t *testing.T) {
	for _, mix := range []Mix{MixSame, MixUnique, MixZipf} {
		t.Run(string(mix), func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Mix, cfg.Model, cfg.RunID, cfg.MaxTokens = mix, `odd"model`, `run"1`, 16
			b, err := newBodies(&cfg)
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(1, 1))
			for _, stream := range []bool{false, true} {
				var req struct {
					Model    string `json:"model"`
					Stream   bool   `json:"stream"`
					Max      int    `json:"max_tokens"`
					Messages []struct {
						Role    string `json:"role"`
						Content string `json:"content"`
					} `json:"messages"`
				}
				body := b.pick(r, stream, 3, 9)
				if err := json.Unmarshal(body, &req); err != nil {
					t.Fatalf("body %s: %v", body, err)
				}
				if req.Model != cfg.Model || req.Stream != stream || req.Max != 16 || len(req.Messages) != 1 || req.Messages[0].Role != "user" {
					t.Errorf("body %s decoded to %+v", body, req)
				}
			}
		})
	}
}

func TestUniqueMixNeverRepeatsAPrompt(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Mix, cfg.RunID = MixUnique, "u"
	b, err := newBodies(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for w := range 3 {
		for seq := range uint64(1000) {
			body := string(b.pick(nil, false, w, seq))
			if seen[body] {
				t.Fatalf("worker %d seq %d repeated %s", w, seq, body)
			}
			seen[body] = true
		}
	}
}
