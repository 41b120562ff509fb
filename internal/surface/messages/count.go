package messages

import (
	"net/http"
	"strconv"
)

// EstimateHeader labels a count_tokens answer the gateway estimated
// itself (value "true") because the upstream cannot count Anthropic tokens.
const EstimateHeader = "X-Edge-Token-Estimate"

// AppendCountTokens appends the count_tokens answer {"input_tokens":N}.
func AppendCountTokens(dst []byte, inputTokens int) []byte {
	dst = append(dst, `{"input_tokens":`...)
	dst = strconv.AppendInt(dst, int64(max(inputTokens, 0)), 10)
	return append(dst, '}')
}

// WriteCountTokensEstimate answers count_tokens with req's estimate (about
// four bytes per token of system, messages and tools), labelled as an
// estimate in EstimateHeader, for upstreams other than Anthropic.
func WriteCountTokensEstimate(w http.ResponseWriter, req *Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set(EstimateHeader, "true")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(AppendCountTokens(make([]byte, 0, 32), req.InputTokens), '\n'))
}
