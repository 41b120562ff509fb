package anthropic

import (
	"github.com/edge-agent/edge-agent/internal/provider/chatreq"

	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/cost"
)

// TranslateResponse turns an Anthropic Messages response into an OpenAI
// chat.completion with the given created time (Unix seconds). Text blocks
// are joined into message.content, tool_use blocks become tool_calls, and
// other blocks (thinking, server tools) are left out. A body that is not a
// Messages response is an *api.Error 502.
func TranslateResponse(anthropicBody []byte, created int64) ([]byte, error) {
	return appendResponse(make([]byte, 0, len(anthropicBody)+256), anthropicBody, "anthropic", created, nil)
}

func appendResponse(dst, body []byte, name string, created int64, ku *cost.Usage) ([]byte, error) {
	if !gjson.ValidBytes(body) {
		return nil, invalidResponse(name, "not valid JSON")
	}
	root := gjson.Parse(api.View(body))
	if root.Get("type").Str == "error" {
		return nil, eventError(name, root)
	}
	content := root.Get("content")
	if !content.IsArray() {
		return nil, invalidResponse(name, "no content array")
	}

	dst = append(dst, `{"id":`...)
	dst = appendID(dst, root.Get("id").Str)
	dst = append(dst, `,"object":"chat.completion","created":`...)
	dst = strconv.AppendInt(dst, created, 10)
	dst = append(dst, `,"model":`...)
	dst = api.AppendString(dst, root.Get("model").Str)
	dst = append(dst, `,"choices":[{"index":0,"message":{"role":"assistant","content":`...)

	// Join text blocks by concatenating their JSON string literals without
	// the quotes between them: escapes never span a literal, so the result
	// is the literal of the joined text and nothing is unescaped.
	texts, tools := 0, 0
	content.ForEach(func(_, b gjson.Result) bool {
		switch b.Get("type").Str {
		case "text":
			t := b.Get("text")
			if t.Type != gjson.String {
				return true
			}
			if texts == 0 {
				dst = append(dst, '"')
			}
			texts++
			dst = append(dst, t.Raw[1:len(t.Raw)-1]...)
		case "tool_use":
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
			if b.Get("type").Str != "tool_use" {
				return true
			}
			if n > 0 {
				dst = append(dst, ',')
			}
			n++
			dst, scratch = chatreq.AppendToolCall(dst, scratch, b.Get("id").Str, b.Get("name").Str, b.Get("input"))
			return true
		})
		dst = append(dst, ']')
	}
	// refusal and annotations: what OpenAI's own answers carry (refusal is
	// required by its schema; Anthropic reports a refusal as a stop_reason).
	dst = append(dst, `,"refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"`...)
	dst = append(dst, finishReason(root.Get("stop_reason").Str)...)
	dst = append(dst, `"}]`...)

	var u usage
	u.set(root.Get("usage"))
	if ku != nil {
		*ku = u.cost()
	}
	dst = u.appendJSON(append(dst, `,"usage":`...))
	return append(dst, '}'), nil
}

// finishReason maps an Anthropic stop_reason to an OpenAI finish_reason.
func finishReason(stopReason string) string {
	switch stopReason {
	case "max_tokens", "model_context_window_exceeded":
		return "length"
	case "tool_use":
		return "tool_calls"
	case "refusal":
		return "content_filter"
	}
	return "stop" // end_turn, stop_sequence, pause_turn and anything new
}

// usage accumulates Anthropic token counts. Anthropic's input_tokens
// excludes cache reads and writes; OpenAI's prompt_tokens includes them.
type usage struct {
	input, cacheRead, cacheCreation, output int64
	// write5m and write1h split cacheCreation by TTL when the upstream
	// says (usage.cache_creation); otherwise all of it is a 5-minute write,
	// Anthropic's default TTL.
	write5m, write1h int64
	split, seen      bool
}

// cost is u by token kind, for pricing: cache reads and writes apart from
// input_tokens, as Anthropic bills them.
func (u *usage) cost() cost.Usage {
	c := cost.Usage{PromptTokens: int(u.input), CompletionTokens: int(u.output), CacheReadTokens: int(u.cacheRead)}
	if u.split && u.write5m+u.write1h > 0 {
		c.CacheWrite5mTokens, c.CacheWrite1hTokens = int(u.write5m), int(u.write1h)
	} else {
		c.CacheWrite5mTokens = int(u.cacheCreation)
	}
	return c
}

// set takes the counts present in u; absent ones keep their value, since
// message_delta repeats only some of them (all cumulative).
func (u *usage) set(v gjson.Result) {
	if !v.IsObject() {
		return
	}
	u.seen = true
	v.ForEach(func(k, n gjson.Result) bool {
		if k.Str == "cache_creation" && n.IsObject() {
			u.split = true
			u.write5m = n.Get("ephemeral_5m_input_tokens").Int()
			u.write1h = n.Get("ephemeral_1h_input_tokens").Int()
			return true
		}
		if n.Type != gjson.Number {
			return true
		}
		switch k.Str {
		case "input_tokens":
			u.input = n.Int()
		case "cache_read_input_tokens":
			u.cacheRead = n.Int()
		case "cache_creation_input_tokens":
			u.cacheCreation = n.Int()
		case "output_tokens":
			u.output = n.Int()
		}
		return true
	})
}

func (u *usage) appendJSON(dst []byte) []byte {
	return api.AppendUsage(dst, u.input+u.cacheRead+u.cacheCreation, u.output, u.cacheRead, -1)
}

// appendID writes the OpenAI id for an Anthropic message id:
// msg_01XYZ becomes chatcmpl-01XYZ.
func appendID(dst []byte, id string) []byte {
	dst = append(dst, `"chatcmpl-`...)
	mark := len(dst)
	dst = api.AppendString(dst, strings.TrimPrefix(id, "msg_"))
	copy(dst[mark:], dst[mark+1:]) // drop the literal's opening quote
	return dst[:len(dst)-1]
}

// eventError maps an Anthropic error object ({"type":"error","error":{...}})
// received with a 200 status or inside a stream. The upstream had already
// accepted the call, so it is a provider failure: 502, or 503 for
// overloaded_error because that one is worth retrying elsewhere.
func eventError(name string, v gjson.Result) *api.Error {
	typ := v.Get("error.type").Str
	msg := v.Get("error.message").Str
	if msg == "" {
		msg = "unknown error"
	}
	e := &api.Error{Status: http.StatusBadGateway, Type: typ, Code: "upstream_stream_error",
		Message: fmt.Sprintf("provider %s failed mid-answer: %s", name, msg)}
	switch typ {
	case "overloaded_error":
		e.Status = http.StatusServiceUnavailable
		e.Type = api.TypeOverloaded
	case "", "api_error":
		e.Type = api.TypeUpstream
	}
	return e
}

func invalidResponse(name, why string) *api.Error {
	return &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_invalid_response",
		Message: fmt.Sprintf("provider %s returned an invalid response: %s", name, why)}
}
