package cost

import (
	"math"
	"testing"
)

// Gemini counts cached tokens inside the prompt and thinking tokens as
// output, which the gemini adapter reports as CachedTokens and
// ReasoningTokens (inside CompletionTokens).
func TestGeminiModelsArePricedWithCachedInputAndThinkingAsOutput(t *testing.T) {
	tab := Default()
	for _, tc := range []struct {
		model string
		u     Usage
		want  float64
	}{
		// 1M prompt (400k cached) + 100k output (60k thinking) on gemini-2.5-flash.
		{"gemini-2.5-flash", Usage{PromptTokens: 1_000_000, CachedTokens: 400_000, CompletionTokens: 100_000, ReasoningTokens: 60_000},
			600_000*0.30/1e6 + 400_000*0.03/1e6 + 100_000*2.50/1e6},
		{"vertex/gemini-2.5-pro", Usage{PromptTokens: 1000, CompletionTokens: 1000}, 1000*1.25/1e6 + 1000*10.0/1e6},
		{"gemini-2.0-flash-001", Usage{PromptTokens: 1_000_000}, 0.10},
		{"gemini-embedding-001", Usage{PromptTokens: 1_000_000}, 0.15},
	} {
		got, ok := tab.Cost(tc.model, tc.u)
		if !ok || math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("Cost(%s, %+v) = %v, %v; want %v", tc.model, tc.u, got, ok, tc.want)
		}
	}
}
