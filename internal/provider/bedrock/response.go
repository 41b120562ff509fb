package bedrock

import (
	"github.com/edge-agent/edge-agent/internal/provider/chatreq"

	"strconv"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/cost"
)

// TranslateResponse turns a Converse response into an OpenAI
// chat.completion for model, with id chatcmpl-{requestID} and the given
// created time (Unix seconds): Converse answers carry neither an id nor
// the model. Text blocks are joined into message.content, toolUse blocks
// become tool_calls, and other blocks (reasoning, citations) are left out.
// A body that is not a Converse response is an *api.Error 502.
func TranslateResponse(converseBody []byte, model, requestID string, created int64) ([]byte, error) {
	return appendResponse(make([]byte, 0, len(converseBody)+256), converseBody, "bedrock", model, requestID, created, nil)
}

func appendResponse(dst, body []byte, name, model, requestID string, created int64, ku *cost.Usage) ([]byte, error) {
	if !gjson.ValidBytes(body) {
		return nil, invalidResponse(name, "not valid JSON")
	}
	root := gjson.Parse(api.View(body))
	content := root.Get("output.message.content")
	if !content.IsArray() {
		return nil, invalidResponse(name, "no output.message.content array")
	}

	dst = append(dst, `{"id":`...)
	dst = appendID(dst, requestID)
	dst = append(dst, `,"object":"chat.completion","created":`...)
	dst = strconv.AppendInt(dst, created, 10)
	dst = append(dst, `,"model":`...)
	dst = api.AppendString(dst, model)
	dst = append(dst, `,"choices":[{"index":0,"message":{"role":"assistant","content":`...)

	// Join text blocks by concatenating their JSON string literals without
	// the quotes between them: escapes never span a literal, so the result
	// is the literal of the joined text and nothing is unescaped.
	texts, tools := 0, 0
	content.ForEach(func(_, b gjson.Result) bool {
		if t := b.Get("text"); t.Type == gjson.String {
			if texts == 0 {
				dst = append(dst, '"')
			}
			texts++
			dst = append(dst, t.Raw[1:len(t.Raw)-1]...)
		} else if b.Get("toolUse").IsObject() {
			tools++
		}
		return true
	})
	switch {
	case texts > 0:
		dst = append(dst, '"')
	case tools > 0:
		dst = append(dst, "null"...)
	default:
		dst = append(dst, `""`...)
	}

	if tools > 0 {
		dst = append(dst, `,"tool_calls":[`...)
		n := 0
		var scratch []byte
		content.ForEach(func(_, b gjson.Result) bool {
			tu := b.Get("toolUse")
			if !tu.IsObject() {
				return true
			}
			if n > 0 {
				dst = append(dst, ',')
			}
			n++
			dst, scratch = chatreq.AppendToolCall(dst, scratch, tu.Get("toolUseId").Str, tu.Get("name").Str, tu.Get("input"))
			return true
		})
		dst = append(dst, ']')
	}
	dst = append(dst, `,"refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"`...)
	dst = append(dst, finishReason(root.Get("stopReason").Str)...)
	dst = append(dst, `"}]`...)

	var u usage
	u.set(root.Get("usage"))
	if ku != nil {
		*ku = u.cost()
	}
	dst = u.appendJSON(append(dst, `,"usage":`...))
	return append(dst, '}'), nil
}

// finishReason maps a Converse stopReason to an OpenAI finish_reason.
func finishReason(stopReason string) string {
	switch stopReason {
	case "max_tokens", "model_context_window_exceeded":
		return "length"
	case "tool_use":
		return "tool_calls"
	case "guardrail_intervened", "content_filtered":
		return "content_filter"
	}
	// end_turn, stop_sequence, malformed_model_output, malformed_tool_use
	// and anything new: the model stopped.
	return "stop"
}

// usage holds Converse token counts. inputTokens excludes cache reads and
// writes (they are billed apart, as Anthropic bills them); OpenAI's
// prompt_tokens includes them.
type usage struct {
	input, output, cacheRead, cacheWrite int64
	seen                                 bool
}

// cost is u by token kind, for pricing. Bedrock's cache writes are
// 5-minute writes (its default and, for most models, only TTL).
func (u *usage) cost() cost.Usage {
	return cost.Usage{PromptTokens: int(u.input), CompletionTokens: int(u.output),
		CacheReadTokens: int(u.cacheRead), CacheWrite5mTokens: int(u.cacheWrite)}
}

func (u *usage) set(v gjson.Result) {
	if !v.IsObject() {
		return
	}
	u.seen = true
	v.ForEach(func(k, n gjson.Result) bool {
		if n.Type != gjson.Number {
			return true
		}
		switch k.Str {
		case "inputTokens":
			u.input = n.Int()
		case "outputTokens":
			u.output = n.Int()
		case "cacheReadInputTokens":
			u.cacheRead = n.Int()
		case "cacheWriteInputTokens":
			u.cacheWrite = n.Int()
		}
		return true
	})
}

func (u *usage) appendJSON(dst []byte) []byte {
	return api.AppendUsage(dst, u.input+u.cacheRead+u.cacheWrite, u.output, u.cacheRead, -1)
}

// appendID writes the OpenAI id for a Bedrock request id.
func appendID(dst []byte, requestID string) []byte {
	dst = append(dst, `"chatcmpl-`...)
	if requestID == "" {
		requestID = "bedrock"
	}
	dst = api.AppendEscaped(dst, requestID)
	return append(dst, '"')
}
