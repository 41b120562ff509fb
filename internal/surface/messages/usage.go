package messages

import (
	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/cost"
)

// Usage reads the token counts of a Messages answer (or of a usage object
// alone) by kind, for pricing and metrics. Anthropic's input_tokens exclude
// cache reads and writes, which is what cost.Usage expects of
// CacheReadTokens and CacheWrite*Tokens. cache_creation_input_tokens are
// split by TTL when the answer carries usage.cache_creation; tokens it does
// not attribute count as 5-minute writes, the API's default TTL. Thinking
// tokens are part of output_tokens and not reported apart.
func Usage(answer []byte) cost.Usage {
	v := gjson.Parse(api.View(answer))
	if u := v.Get("usage"); u.IsObject() {
		v = u
	}
	var u cost.Usage
	var write int
	var split gjson.Result
	v.ForEach(func(k, n gjson.Result) bool {
		switch k.Str {
		case "input_tokens":
			u.PromptTokens = nonNeg(n)
		case "output_tokens":
			u.CompletionTokens = nonNeg(n)
		case "cache_read_input_tokens":
			u.CacheReadTokens = nonNeg(n)
		case "cache_creation_input_tokens":
			write = nonNeg(n)
		case "cache_creation":
			split = n
		}
		return true
	})
	if split.IsObject() {
		u.CacheWrite5mTokens = nonNeg(split.Get("ephemeral_5m_input_tokens"))
		u.CacheWrite1hTokens = nonNeg(split.Get("ephemeral_1h_input_tokens"))
	}
	if rest := write - u.CacheWrite5mTokens - u.CacheWrite1hTokens; rest > 0 {
		u.CacheWrite5mTokens += rest
	}
	return u
}

func nonNeg(n gjson.Result) int {
	if n.Type != gjson.Number || n.Int() < 0 {
		return 0
	}
	return int(n.Int())
}
