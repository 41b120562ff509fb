package responses

import (
	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/cost"
)

// Accumulator rebuilds the Response of a native event stream: the terminal
// event (response.completed, .incomplete or .failed) carries it whole, so
// the accumulator keeps that and counts the text of the deltas before it,
// for the usage of a stream that ends early.
type Accumulator struct {
	final  []byte // the terminal event's response, copied
	failed bool   // the stream carried an error event
	text   int    // bytes of text and arguments in the deltas
	next   int64  // the sequence_number after the last event's
}

// Add folds one event payload in and returns its type, for the SSE event
// line. A payload that is not a JSON object with a type is an *api.Error
// 502.
func (a *Accumulator) Add(payload []byte) (typ string, err error) {
	if !gjson.ValidBytes(payload) {
		return "", badStream("an event is not valid JSON")
	}
	root := gjson.Parse(api.View(payload))
	t := root.Get("type")
	if t.Type != gjson.String || t.Str == "" {
		return "", badStream("an event has no type")
	}
	if n := root.Get("sequence_number"); n.Type == gjson.Number {
		a.next = n.Int() + 1
	}
	switch t.Str {
	case "response.output_text.delta", "response.refusal.delta", "response.function_call_arguments.delta":
		a.text += len(root.Get("delta").Str)
	case "response.completed", "response.incomplete", "response.failed":
		r := root.Get("response")
		if !r.IsObject() {
			return t.Str, badStream(t.Str + " has no response")
		}
		a.final = append(a.final[:0], r.Raw...)
	case "error":
		a.failed = true
	}
	return t.Str, nil
}

// Response is the stream's final Response, nil before its terminal event.
func (a *Accumulator) Response() []byte { return a.final }

// TextBytes is the text the deltas carried.
func (a *Accumulator) TextBytes() int { return a.text }

// Failed reports an error event in the stream.
func (a *Accumulator) Failed() bool { return a.failed }

// partialUsage is what the stream said of its usage so far, or an
// estimate from its text (estimated true).
func (a *Accumulator) partialUsage(promptEstimate int) (cost.Usage, bool) {
	if a.final != nil {
		if u := gjson.GetBytes(a.final, "usage"); u.IsObject() {
			return Usage(a.final), false
		}
	}
	return cost.Usage{PromptTokens: promptEstimate, CompletionTokens: cost.EstimateTokensOfLen(a.text)}, true
}

// appendEvent frames a native payload as the SSE event it came as.
func appendEvent(dst []byte, typ string, payload []byte) []byte {
	dst = append(dst, "event: "...)
	dst = append(dst, typ...)
	dst = append(dst, "\ndata: "...)
	dst = append(dst, payload...)
	return append(dst, "\n\n"...)
}
