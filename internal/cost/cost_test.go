package cost

import (
	"math"
	"strings"
	"testing"
)

func TestLookupResolvesDatedIDsAliasesAndPrefixes(t *testing.T) {
	tab := Default()
	tests := []struct {
		model, want string
	}{
		{"gpt-4o", "gpt-4o"},
		{"gpt-4o-2024-08-06", "gpt-4o"},
		{"gpt-4o-2024-05-13", "gpt-4o-2024-05-13"}, // priced differently from its family
		{"gpt-4o-mini-2024-07-18", "gpt-4o-mini"},
		{"openai/gpt-4o", "gpt-4o"},
		{"GPT-4o", "gpt-4o"},
		{"gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"},
		{"gpt-4-0613", "gpt-4"},
		{"gpt-4-1106-preview", "gpt-4-turbo"},
		{"gpt-4-turbo-2024-04-09", "gpt-4-turbo"},
		{"gpt-3.5-turbo-0125", "gpt-3.5-turbo"},
		{"o3-mini-2025-01-31", "o3-mini"},
		{"o1-preview", "o1"},
		{"gpt-5-2025-08-07", "gpt-5"},
		{"claude-3-5-sonnet-20241022", "claude-3-5-sonnet"},
		{"claude-3-5-sonnet-latest", "claude-3-5-sonnet"},
		{"anthropic/claude-3-7-sonnet-20250219", "claude-3-7-sonnet"},
		{"claude-3-5-haiku-20241022", "claude-3-5-haiku"},
		{"claude-3-opus-20240229", "claude-3-opus"},
		{"claude-sonnet-4-20250514", "claude-sonnet-4"},
		{"claude-sonnet-4-0", "claude-sonnet-4"},
		{"claude-opus-4-1-20250805", "claude-opus-4-1"},
		{"claude-sonnet-4-5-20250929", "claude-sonnet-4-5"},
		{"claude-haiku-4-5-20251001", "claude-haiku-4-5"},
	}
	for _, tt := range tests {
		t.Run(tt.model, func(t *testing.T) {
			got, _, ok := tab.Lookup(tt.model)
			if !ok || got != tt.want {
				t.Fatalf("Lookup(%q) = %q, %v; want %q", tt.model, got, ok, tt.want)
			}
		})
	}
}

func TestLookupLeavesOtherProductsUnknown(t *testing.T) {
	tab := Default()
	for _, model := range []string{
		"", "llama-3-70b", "gpt-4-32k", "o1-pro", "gpt-5-pro", "gpt-4o-realtime-preview",
		"claude-opus-4-9", "claude-3-5-sonnet-v2", "gpt-4o-24", "gpt-4o-x-2024-08-06", "gpt-4o-2024-8-6", "gpt",
	} {
		t.Run(model, func(t *testing.T) {
			if c, _, ok := tab.Lookup(model); ok {
				t.Fatalf("Lookup(%q) resolved to %q; want unknown", model, c)
			}
			if usd, ok := tab.Cost(model, Usage{PromptTokens: 10, CompletionTokens: 10}); ok || usd != 0 {
				t.Fatalf("Cost(%q) = %v, %v; want 0, false", model, usd, ok)
			}
		})
	}
}

func TestCostIsExactForBothProviders(t *testing.T) {
	tab := Default()
	tests := []struct {
		model string
		u     Usage
		want  float64
	}{
		// 1000 * 2.50/1e6 + 500 * 10/1e6
		{"gpt-4o-2024-08-06", Usage{PromptTokens: 1000, CompletionTokens: 500}, 0.0075},
		// 1M prompt (250k cached) on gpt-4o-mini: 750k*0.15 + 250k*0.075 + 100k*0.60 per 1M
		{"gpt-4o-mini", Usage{PromptTokens: 1_000_000, CachedTokens: 250_000, CompletionTokens: 100_000}, 0.1125 + 0.01875 + 0.06},
		{"gpt-4.1", Usage{PromptTokens: 2_000_000, CompletionTokens: 1_000_000}, 12},
		// gpt-4 has no cached price: cached tokens cost the input price.
		{"gpt-4", Usage{PromptTokens: 1000, CachedTokens: 1000, CompletionTokens: 1000}, 0.09},
		{"claude-3-5-sonnet-20241022", Usage{PromptTokens: 10_000, CompletionTokens: 2_000}, 0.06},
		{"claude-3-5-haiku-latest", Usage{PromptTokens: 1_000_000, CachedTokens: 500_000, CompletionTokens: 1_000_000}, 0.40 + 0.04 + 4},
		{"claude-opus-4-20250514", Usage{PromptTokens: 1000, CompletionTokens: 1000}, 0.09},
		{"claude-opus-4-5", Usage{PromptTokens: 1000, CompletionTokens: 1000}, 0.03},
		// Cached beyond prompt is clamped; negatives count as zero.
		{"gpt-4o", Usage{PromptTokens: 100, CachedTokens: 500, CompletionTokens: -3}, 100 * 1.25 / 1e6},
	}
	for _, tt := range tests {
		t.Run(tt.model, func(t *testing.T) {
			got, ok := tab.Cost(tt.model, tt.u)
			if !ok {
				t.Fatalf("Cost(%q) unknown", tt.model)
			}
			if math.Abs(got-tt.want) > 1e-12 {
				t.Fatalf("Cost(%q, %+v) = %.12f; want %.12f", tt.model, tt.u, got, tt.want)
			}
			if math.Round(got*100) != math.Round(tt.want*100) {
				t.Fatalf("cents differ: %v vs %v", got, tt.want)
			}
		})
	}
}

func TestWithOverridesAndExtendsWithoutTouchingTheDefault(t *testing.T) {
	base := Default()
	tab := base.With(map[string]Price{
		"gpt-4o":                   {InputPerM: 1, OutputPerM: 2},
		"Local/Llama-3-70B":        {InputPerM: 0.5, OutputPerM: 0.5},
		"claude-3-5-sonnet-latest": {InputPerM: 9, OutputPerM: 9},
	})
	if got, _ := tab.Cost("gpt-4o-2024-08-06", Usage{PromptTokens: 1e6, CompletionTokens: 1e6}); got != 3 {
		t.Fatalf("overridden gpt-4o cost = %v; want 3", got)
	}
	if c, p, ok := tab.Lookup("llama-3-70b"); !ok || c != "llama-3-70b" || p.InputPerM != 0.5 {
		t.Fatalf("added model: %q %+v %v", c, p, ok)
	}
	if c, p, _ := tab.Lookup("claude-3-5-sonnet-latest"); c != "claude-3-5-sonnet-latest" || p.InputPerM != 9 {
		t.Fatalf("overridden alias: %q %+v", c, p)
	}
	if c, p, _ := tab.Lookup("claude-3-5-sonnet-20241022"); c != "claude-3-5-sonnet" || p.InputPerM != 3 {
		t.Fatalf("family of overridden alias changed: %q %+v", c, p)
	}
	if _, p, _ := base.Lookup("gpt-4o"); p.InputPerM != 2.5 {
		t.Fatalf("With modified the receiver: %+v", p)
	}
	if len(tab.Models()) != len(base.Models())+2 {
		t.Fatalf("Models: %d vs base %d", len(tab.Models()), len(base.Models()))
	}
}

func TestDefaultTableCoversBothProvidersAndIsSorted(t *testing.T) {
	models := Default().Models()
	for _, want := range []string{"gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-4", "gpt-4-turbo",
		"gpt-3.5-turbo", "o1", "o1-mini", "o3", "o3-mini", "o4-mini", "gpt-5", "claude-3-5-sonnet", "claude-3-5-haiku",
		"claude-3-7-sonnet", "claude-3-opus", "claude-3-haiku", "claude-sonnet-4", "claude-opus-4"} {
		if _, _, ok := Default().Lookup(want); !ok {
			t.Errorf("no price for %s", want)
		}
	}
	for i := 1; i < len(models); i++ {
		if strings.Compare(models[i-1], models[i]) >= 0 {
			t.Fatalf("Models not sorted at %d: %v", i, models)
		}
	}
}

func TestParseRejectsBadTables(t *testing.T) {
	for name, data := range map[string]string{
		"unknown field":   "models:\n  a: {input: 1, outptu: 2}\n",
		"negative":        "models:\n  a: {input: -1}\n",
		"upper case":      "models:\n  GPT: {input: 1}\n",
		"duplicate alias": "models:\n  a: {input: 1, aliases: [b]}\n  b: {input: 1}\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := parse([]byte(data)); err == nil {
				t.Fatal("parse accepted a bad table")
			}
		})
	}
}

func TestEstimateTokensRoundsUpAtFourBytesPerToken(t *testing.T) {
	for in, want := range map[string]int{"": 0, "a": 1, "abcd": 1, "abcde": 2, strings.Repeat("x", 400): 100} {
		if got := EstimateTokens([]byte(in)); got != want {
			t.Errorf("EstimateTokens(%d bytes) = %d; want %d", len(in), got, want)
		}
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	tab := Default()
	for _, m := range []string{"gpt-4o", "gpt-4o-2024-08-06", "openai/claude-3-5-sonnet-20241022", "unknown-model-2024-01-01"} {
		if n := testing.AllocsPerRun(100, func() { tab.Lookup(m) }); n != 0 {
			t.Errorf("Lookup(%q) allocates %v times", m, n)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	tab := Default()
	for _, m := range []string{"gpt-4o", "gpt-4o-2024-08-06", "claude-3-5-sonnet-20241022", "no-such-model"} {
		b.Run(m, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tab.Lookup(m)
			}
		})
	}
}

// TestCostPricesEachTokenKindAtItsOwnPrice is a hand-computed table: every
// figure is tokens x USD per million tokens from prices.yaml, summed.
func TestCostPricesEachTokenKindAtItsOwnPrice(t *testing.T) {
	tab := Default()
	tests := []struct {
		name  string
		model string
		u     Usage
		want  float64
	}{
		{
			// 1000*3 input + 500*15 output + 2000*0.30 read + 1000*3.75 (1.25x) 5m write
			name: "anthropic read and 5m write", model: "claude-3-5-sonnet-20241022",
			u:    Usage{PromptTokens: 1000, CompletionTokens: 500, CacheReadTokens: 2000, CacheWrite5mTokens: 1000},
			want: (1000*3 + 500*15 + 2000*0.30 + 1000*3.75) / 1e6, // 0.01485
		},
		{
			// 1h writes cost 2x input: 1000*6
			name: "anthropic 1h write", model: "claude-sonnet-4-5",
			u:    Usage{PromptTokens: 0, CacheWrite1hTokens: 1000},
			want: 0.006,
		},
		{
			// claude-3-haiku lists its own write prices (0.30 is 1.2x, not 1.25x).
			name: "explicit write prices win", model: "claude-3-haiku-20240307",
			u:    Usage{PromptTokens: 1000, CacheWrite5mTokens: 1000, CacheWrite1hTokens: 1000, CacheReadTokens: 1000},
			want: (1000*0.25 + 1000*0.30 + 1000*0.50 + 1000*0.03) / 1e6,
		},
		{
			// A long agent session: 1M read from cache, 10k new, 5k out on
			// opus-4-5. At the input price the reads alone would cost $5.
			name: "cache reads are not input", model: "claude-opus-4-5",
			u:    Usage{PromptTokens: 10_000, CompletionTokens: 5_000, CacheReadTokens: 1_000_000},
			want: 0.05 + 0.125 + 0.5,
		},
		{
			// OpenAI: 400 of the 1000 prompt tokens were cached (included);
			// 200 reasoning tokens are part of the 500 completion tokens.
			name: "openai cached input and reasoning", model: "gpt-4o",
			u:    Usage{PromptTokens: 1000, CachedTokens: 400, CompletionTokens: 500, ReasoningTokens: 200},
			want: (600*2.50 + 400*1.25 + 500*10) / 1e6, // 0.007
		},
		{
			// A model with no cached price bills cache reads at input, and
			// derives write prices from input.
			name: "no cached price", model: "gpt-4",
			u:    Usage{CacheReadTokens: 1000, CacheWrite5mTokens: 1000},
			want: (1000*30 + 1000*37.5) / 1e6,
		},
		{
			name: "negative counts are zero", model: "claude-3-5-sonnet",
			u:    Usage{PromptTokens: 1000, CacheReadTokens: -5, CacheWrite5mTokens: -5, CacheWrite1hTokens: -5},
			want: 0.003,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tab.Cost(tt.model, tt.u)
			if !ok {
				t.Fatalf("Cost(%q) unknown", tt.model)
			}
			if math.Abs(got-tt.want) > 1e-12 {
				t.Fatalf("Cost(%q, %+v) = %.12f; want %.12f", tt.model, tt.u, got, tt.want)
			}
		})
	}
}

func TestInputTokensCountsEveryPromptTokenOnce(t *testing.T) {
	u := Usage{PromptTokens: 100, CachedTokens: 40, CacheReadTokens: 1000, CacheWrite5mTokens: 10, CacheWrite1hTokens: 1}
	if got := u.InputTokens(); got != 1111 {
		t.Fatalf("InputTokens = %d; want 1111 (CachedTokens are inside PromptTokens)", got)
	}
}

func TestParseReadsCacheWritePrices(t *testing.T) {
	tab, err := parse([]byte("models:\n  m: {input: 1, cache_write_5m: 2, cache_write_1h: 3}\n  n: {input: 4}\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, p, _ := tab.Lookup("m")
	if p.CacheWrite5m() != 2 || p.CacheWrite1h() != 3 {
		t.Fatalf("explicit write prices: %+v", p)
	}
	_, p, _ = tab.Lookup("n")
	if p.CacheWrite5m() != 5 || p.CacheWrite1h() != 8 || p.CachedInput() != 4 {
		t.Fatalf("derived prices: 5m %v 1h %v read %v", p.CacheWrite5m(), p.CacheWrite1h(), p.CachedInput())
	}
	if _, err := parse([]byte("models:\n  m: {input: 1, cache_write_1h: -1}\n")); err == nil {
		t.Fatal("negative cache write price accepted")
	}
}

func TestEstimateTokensOfLenMatchesEstimateTokens(t *testing.T) {
	for _, n := range []int{0, 1, 4, 5, 400, 4001} {
		if got, want := EstimateTokensOfLen(n), EstimateTokens(make([]byte, n)); got != want {
			t.Errorf("EstimateTokensOfLen(%d) = %d; EstimateTokens says %d", n, got, want)
		}
	}
	if got := EstimateTokensOfLen(-8); got != 0 {
		t.Errorf("EstimateTokensOfLen(-8) = %d; want 0", got)
	}
}

// BenchmarkCost is the pricing the chat path does once per answer.
func BenchmarkCost(b *testing.B) {
	tab := Default()
	u := Usage{PromptTokens: 1200, CachedTokens: 1024, CompletionTokens: 300}
	b.ReportAllocs()
	for b.Loop() {
		tab.Cost("gpt-4o-2024-08-06", u)
	}
}

func TestBedrockModelIdsAndInferenceProfilesArePriced(t *testing.T) {
	tab := Default()
	for _, c := range []struct {
		model, canonical string
		usage            Usage
		want             float64
	}{
		// 1M input, 1M output at 3/15; cache reads at 0.30, 5-minute writes at 3.75.
		{"anthropic.claude-3-5-sonnet-20241022-v2:0", "anthropic.claude-3-5-sonnet-20241022-v2:0",
			Usage{PromptTokens: 1e6, CompletionTokens: 1e6, CacheReadTokens: 1e6, CacheWrite5mTokens: 1e6}, 3 + 15 + 0.30 + 3.75},
		{"us.anthropic.claude-3-5-sonnet-20241022-v2:0", "anthropic.claude-3-5-sonnet-20241022-v2:0", Usage{PromptTokens: 1e6}, 3},
		{"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-7-sonnet-20250219-v1:0",
			"anthropic.claude-3-7-sonnet-20250219-v1:0", Usage{CompletionTokens: 1e6}, 15},
		// Nova: cache reads at a quarter of input, writes at the input price.
		{"amazon.nova-pro-v1:0", "amazon.nova-pro-v1:0", Usage{PromptTokens: 1e6, CacheReadTokens: 1e6, CacheWrite5mTokens: 1e6}, 0.80 + 0.20 + 0.80},
		{"amazon.titan-embed-text-v2:0", "amazon.titan-embed-text-v2:0", Usage{PromptTokens: 1e6}, 0.02},
	} {
		canonical, p, ok := tab.Lookup(c.model)
		if !ok || canonical != c.canonical {
			t.Errorf("%s resolves to %q (%v), want %q", c.model, canonical, ok, c.canonical)
			continue
		}
		if got := p.Cost(c.usage); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s: cost %v, want %v", c.model, got, c.want)
		}
	}
	if _, _, ok := tab.Lookup("eu.anthropic.claude-sonnet-4-5-20250929-v1:0"); ok {
		t.Error("a geographic profile not in the table must stay unpriced, not take the model's price")
	}
}

func TestOutputLimitsComeWithThePriceTable(t *testing.T) {
	tab := Default()
	for _, tt := range []struct {
		model string
		want  int64
	}{
		{"gpt-4o", 16384},
		{"gpt-4o-2024-08-06", 16384}, // a dated snapshot takes its family's limit
		{"claude-3-5-haiku-20241022", 8192},
		{"claude-opus-4-7", 0}, // not listed: unknown, never guessed
	} {
		if _, p, ok := tab.Lookup(tt.model); !ok || p.MaxOutputTokens != tt.want {
			t.Errorf("%s: max output %d (found %v), want %d", tt.model, p.MaxOutputTokens, ok, tt.want)
		}
	}
	_, p, _ := tab.Lookup("gpt-4o")
	// 1000 prompt tokens at $2.50/M and the 1M-token answer at $10/M.
	if got := p.MaxCost(1000, 1_000_000); got < 10.0025-1e-9 || got > 10.0025+1e-9 {
		t.Fatalf("MaxCost = %v, want 10.0025", got)
	}
}
