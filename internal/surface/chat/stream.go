package chat

import (
	"net/http"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/cost"
	"github.com/edge-agent/edge-agent/internal/surface"
)

var doneData = []byte("[DONE]")

func appendData(dst, payload []byte) []byte {
	dst = append(dst, "data: "...)
	dst = append(dst, payload...)
	return append(dst, '\n', '\n')
}

// NewStream copies chat.completion.chunk payloads to the client as they
// come, accumulating them into the answer.
func (r *Request) NewStream(_ bool, maxCapture int) surface.Stream {
	s := &stream{req: r, includeUsage: r.IncludeUsage}
	s.acc.SetLimit(maxCapture)
	return s
}

type stream struct {
	acc api.Accumulator
	// includeUsage is req's, read after the accumulator's fields a chunk
	// reads, and only for a chunk that is usage alone (the last): the
	// others do not fetch its line.
	includeUsage bool
	req          *Request
}

var errInvalidChunk = &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_invalid_chunk",
	Message: "provider sent a stream chunk that is not JSON"}

func (s *stream) Add(dst, chunk []byte) ([]byte, error) {
	if err := s.acc.Add(chunk); err != nil {
		return dst, errInvalidChunk
	}
	if s.acc.UsageOnly() && !s.includeUsage {
		return dst, nil // asked for to price the answer; the client did not
	}
	return appendData(dst, chunk), nil
}

func (s *stream) End(dst []byte, keep bool) ([]byte, *surface.Answer, error) {
	dst = appendData(dst, doneData)
	if s.acc.Overflowed() || !s.acc.Complete() {
		return dst, nil, nil
	}
	a := &surface.Answer{Finish: s.acc.FinishReasons()}
	a.Usage, a.Estimated = s.Partial()
	if !keep {
		return dst, a, nil
	}
	b, err := s.acc.CompletionJSON()
	if err != nil {
		return dst, nil, nil
	}
	a.Body = b
	if a.Estimated {
		a.Usage.CompletionTokens = cost.EstimateTokens(b)
	}
	return dst, a, nil
}

// AppendError is OpenAI's way to report a failure inside a stream (the
// SDKs raise it); no [DONE] follows: the answer is not complete.
func (s *stream) AppendError(dst []byte, e *api.Error) []byte {
	return appendData(dst, e.AppendEnvelope(nil))
}

func (s *stream) Partial() (cost.Usage, bool) {
	if au := s.acc.Usage(); au != nil {
		u := cost.Usage{PromptTokens: au.PromptTokens, CompletionTokens: au.CompletionTokens}
		if au.PromptTokensDetails != nil {
			u.CachedTokens = au.PromptTokensDetails.CachedTokens
		}
		return u, false
	}
	// The upstream reported no usage (yet): the prompt by its bytes, the
	// answer by the text delivered.
	return cost.Usage{PromptTokens: cost.EstimateTokens(s.req.Body), CompletionTokens: (s.acc.TextBytes() + 3) / 4}, true
}

func (s *stream) Overflowed() bool { return s.acc.Overflowed() }
