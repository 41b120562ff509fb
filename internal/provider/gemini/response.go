package gemini

import (
	"github.com/edge-agent/edge-agent/internal/provider/chatreq"

	"fmt"
	"net/http"
	"strconv"

	"github.com/tidwall/gjson"
	"github.com/zeebo/xxh3"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/cost"
)

// TranslateResponse turns a Gemini GenerateContentResponse into an OpenAI
// chat.completion with the given created time (Unix seconds); model names
// the answer when the upstream gives no modelVersion. Text parts are
// joined into message.content (thought parts are left out), functionCall
// parts become tool_calls. A prompt blocked by promptFeedback is an empty
// answer with finish_reason content_filter. A body that is not a
// GenerateContentResponse is an *api.Error 502.
func TranslateResponse(geminiBody []byte, created int64, model string) ([]byte, error) {
	return appendResponse(make([]byte, 0, len(geminiBody)+256), geminiBody, "gemini", created, model, nil)
}

func appendResponse(dst, body []byte, name string, created int64, model string, ku *cost.Usage) ([]byte, error) {
	if !gjson.ValidBytes(body) {
		return nil, invalidResponse(name, "not valid JSON")
	}
	root := gjson.Parse(api.View(body))
	if e := root.Get("error"); e.IsObject() {
		return nil, streamError(name, e)
	}
	cands := root.Get("candidates")
	feedback := root.Get("promptFeedback.blockReason")
	if !cands.IsArray() && feedback.Type != gjson.String && !root.Get("usageMetadata").Exists() {
		return nil, invalidResponse(name, "no candidates")
	}
	idSeed := root.Get("responseId").Str
	if idSeed == "" {
		idSeed = strconv.FormatUint(xxh3.Hash(body), 16)
	}

	dst = append(dst, `{"id":`...)
	dst = appendID(dst, idSeed)
	dst = append(dst, `,"object":"chat.completion","created":`...)
	dst = strconv.AppendInt(dst, created, 10)
	dst = append(dst, `,"model":`...)
	dst = appendModel(dst, root.Get("modelVersion"), model)
	dst = append(dst, `,"choices":[`...)
	n := 0
	cands.ForEach(func(_, cand gjson.Result) bool {
		if n > 0 {
			dst = append(dst, ',')
		}
		idx := n
		if i := cand.Get("index"); i.Type == gjson.Number {
			idx = int(i.Int())
		}
		dst = appendChoice(dst, cand, idx, idSeed)
		n++
		return true
	})
	if n == 0 {
		// No candidate: the prompt was blocked (promptFeedback), or
		// nothing came back.
		finish := "stop"
		if feedback.Type == gjson.String {
			finish = "content_filter"
		}
		dst = append(dst, `{"index":0,"message":{"role":"assistant","content":"","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"`...)
		dst = append(dst, finish...)
		dst = append(dst, `"}`...)
	}
	dst = append(dst, ']')

	var u usage
	u.set(root.Get("usageMetadata"))
	if ku != nil {
		*ku = u.cost()
	}
	dst = u.appendJSON(append(dst, `,"usage":`...))
	return append(dst, '}'), nil
}

// appendChoice writes one candidate as an OpenAI choice. Tool call ids
// are derived from seed and, past the first choice, the choice's index.
func appendChoice(dst []byte, cand gjson.Result, index int, seed string) []byte {
	callSeed := seed
	if index > 0 {
		callSeed = seed + "/" + strconv.Itoa(index)
	}
	dst = append(dst, `{"index":`...)
	dst = strconv.AppendInt(dst, int64(index), 10)
	dst = append(dst, `,"message":{"role":"assistant","content":`...)

	// Join text parts by concatenating their JSON string literals without
	// the quotes between them: escapes never span a literal, so the result
	// is the literal of the joined text and nothing is unescaped.
	parts := cand.Get("content.parts")
	texts, calls := 0, 0
	parts.ForEach(func(_, p gjson.Result) bool {
		if fc := p.Get("functionCall"); fc.IsObject() {
			calls++
			return true
		}
		t := p.Get("text")
		if t.Type != gjson.String || p.Get("thought").Type == gjson.True {
			return true
		}
		if texts == 0 {
			dst = append(dst, '"')
		}
		texts++
		dst = append(dst, t.Raw[1:len(t.Raw)-1]...)
		return true
	})
	switch {
	case texts > 0:
		dst = append(dst, '"')
	case calls > 0:
		dst = append(dst, "null"...)
	default:
		dst = append(dst, `""`...)
	}
	if calls > 0 {
		dst = append(dst, `,"tool_calls":[`...)
		n := 0
		var scratch []byte
		parts.ForEach(func(_, p gjson.Result) bool {
			fc := p.Get("functionCall")
			if !fc.IsObject() {
				return true
			}
			if n > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"id":`...)
			dst = appendCallID(dst, fc.Get("id").Str, callSeed, n)
			dst = append(dst, `,"type":"function","function":{"name":`...)
			dst = api.AppendString(dst, fc.Get("name").Str)
			dst = append(dst, `,"arguments":`...)
			scratch = appendArgs(scratch[:0], fc.Get("args"))
			dst = api.AppendString(dst, api.View(scratch))
			dst = append(dst, "}}"...)
			n++
			return true
		})
		dst = append(dst, ']')
	}
	dst = append(dst, `,"refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"`...)
	finish := FinishReason(cand.Get("finishReason").Str, calls > 0)
	dst = append(dst, finish...)
	return append(dst, `"}`...)

}

// FinishReason maps a Gemini finishReason to an OpenAI finish_reason;
// calls says the answer holds function calls, which Gemini ends with STOP.
//
//	STOP                                       stop (tool_calls with function calls)
//	MAX_TOKENS                                 length
//	SAFETY, RECITATION, LANGUAGE, BLOCKLIST,
//	PROHIBITED_CONTENT, SPII, IMAGE_SAFETY,
//	IMAGE_PROHIBITED_CONTENT, IMAGE_RECITATION content_filter
//	MALFORMED_FUNCTION_CALL, UNEXPECTED_TOOL_CALL,
//	TOO_MANY_TOOL_CALLS, MISSING_THOUGHT_SIGNATURE,
//	OTHER, IMAGE_OTHER, NO_IMAGE,
//	FINISH_REASON_UNSPECIFIED and anything new stop (or tool_calls)
func FinishReason(reason string, calls bool) string {
	switch reason {
	case "MAX_TOKENS":
		return "length"
	case "SAFETY", "RECITATION", "LANGUAGE", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII",
		"IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION":
		return "content_filter"
	}
	if calls {
		return "tool_calls"
	}
	return "stop"
}

// usage accumulates Gemini's usageMetadata. promptTokenCount includes
// cachedContentTokenCount, as OpenAI's prompt_tokens includes
// cached_tokens; thoughtsTokenCount is billed as output but is not in
// candidatesTokenCount, so completion_tokens adds it (and reports it as
// reasoning_tokens); toolUsePromptTokenCount is input the model read.
type usage struct {
	prompt, cached, candidates, thoughts, toolPrompt int64
	seen                                             bool
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
		case "promptTokenCount":
			u.prompt = n.Int()
		case "cachedContentTokenCount":
			u.cached = n.Int()
		case "candidatesTokenCount":
			u.candidates = n.Int()
		case "thoughtsTokenCount":
			u.thoughts = n.Int()
		case "toolUsePromptTokenCount":
			u.toolPrompt = n.Int()
		}
		return true
	})
}

func (u *usage) promptTokens() int64     { return u.prompt + u.toolPrompt }
func (u *usage) completionTokens() int64 { return u.candidates + u.thoughts }

// cost is u by token kind, for pricing.
func (u *usage) cost() cost.Usage {
	return cost.Usage{PromptTokens: int(u.promptTokens()), CompletionTokens: int(u.completionTokens()),
		CachedTokens: int(u.cached), ReasoningTokens: int(u.thoughts)}
}

func (u *usage) appendJSON(dst []byte) []byte {
	return api.AppendUsage(dst, u.promptTokens(), u.completionTokens(), u.cached, u.thoughts)
}

// appendID writes the OpenAI id for a Gemini responseId.
func appendID(dst []byte, id string) []byte {
	dst = append(dst, `"chatcmpl-`...)
	mark := len(dst)
	dst = api.AppendString(dst, id)
	copy(dst[mark:], dst[mark+1:]) // drop the literal's opening quote
	return dst[:len(dst)-1]
}

// appendCallID writes a tool call's id: Gemini's own when it gives one,
// else one derived from the answer's id and the call's position, unique
// within the conversation as OpenAI clients expect.
func appendCallID(dst []byte, id, seed string, n int) []byte {
	if id != "" {
		return api.AppendString(dst, id)
	}
	dst = append(dst, `"call_`...)
	dst = strconv.AppendUint(dst, xxh3.HashString(seed)&0xffffffffffff, 36)
	dst = append(dst, '_')
	dst = strconv.AppendInt(dst, int64(n), 10)
	return append(dst, '"')
}

// appendArgs writes a functionCall's args as compact JSON ({} when absent).
func appendArgs(dst []byte, args gjson.Result) []byte {
	if args.IsObject() {
		return chatreq.AppendCompact(dst, args.Raw)
	}
	return append(dst, "{}"...)
}

func appendModel(dst []byte, version gjson.Result, model string) []byte {
	if version.Type == gjson.String && version.Str != "" {
		return append(dst, version.Raw...)
	}
	return api.AppendString(dst, model)
}

func invalidResponse(name, why string) *api.Error {
	return &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_invalid_response",
		Message: fmt.Sprintf("provider %s returned an invalid response: %s", name, why)}
}
