package messages

import (
	"testing"

	"github.com/edge-agent/edge-agent/internal/cost"
)

func TestUsageReadsTokensByKind(t *testing.T) {
	tests := []struct {
		name, answer string
		want         cost.Usage
	}{
		{"plain", `{"usage":{"input_tokens":10,"output_tokens":5}}`, cost.Usage{PromptTokens: 10, CompletionTokens: 5}},
		{"read and unsplit write count as 5m", `{"usage":{"input_tokens":10,"cache_creation_input_tokens":300,"cache_read_input_tokens":2000,"output_tokens":5}}`,
			cost.Usage{PromptTokens: 10, CompletionTokens: 5, CacheReadTokens: 2000, CacheWrite5mTokens: 300}},
		{"split by TTL", `{"usage":{"input_tokens":1,"cache_creation_input_tokens":300,"cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":200},"output_tokens":2}}`,
			cost.Usage{PromptTokens: 1, CompletionTokens: 2, CacheWrite5mTokens: 100, CacheWrite1hTokens: 200}},
		{"split short of the total", `{"usage":{"cache_creation_input_tokens":300,"cache_creation":{"ephemeral_1h_input_tokens":200}}}`,
			cost.Usage{CacheWrite5mTokens: 100, CacheWrite1hTokens: 200}},
		{"a usage object alone", `{"input_tokens":7,"output_tokens":3}`, cost.Usage{PromptTokens: 7, CompletionTokens: 3}},
		{"negative and junk", `{"usage":{"input_tokens":-4,"output_tokens":"9"}}`, cost.Usage{}},
		{"not JSON", `{"usage":`, cost.Usage{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Usage([]byte(tt.answer)); got != tt.want {
				t.Fatalf("Usage = %+v; want %+v", got, tt.want)
			}
		})
	}
}

// TestUsagePricesCacheTokensAtTheirOwnPrice is the example end to
// end: a Messages answer with cache reads and writes, priced.
func TestUsagePricesCacheTokensAtTheirOwnPrice(t *testing.T) {
	answer := []byte(`{"type":"message","usage":{"input_tokens":1000,"cache_creation_input_tokens":1000,"cache_read_input_tokens":2000,"output_tokens":500}}`)
	got, ok := cost.Default().Cost("claude-3-5-sonnet-20241022", Usage(answer))
	// 1000*3 + 1000*3.75 + 2000*0.30 + 500*15 per million
	if want := 0.01485; !ok || got < want-1e-12 || got > want+1e-12 {
		t.Fatalf("cost = %v, %v; want %v", got, ok, want)
	}
}
