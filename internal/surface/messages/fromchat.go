package messages

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
)

// FromChat translates a chat.completion into a Messages answer reporting
// model (the completion's own model when model is ""). Only the first
// choice is used: Messages has no n. A body that is not a usable
// chat.completion is an *api.Error 502, so it is never cached.
//
//   - id chatcmpl-XYZ becomes msg_XYZ;
//   - refusal and content become text blocks, tool_calls tool_use blocks
//     whose input is the parsed arguments. Arguments that are not a JSON
//     object are a malformed answer (502), except on a choice cut by
//     length, where the half-written call is dropped and stop_reason
//     max_tokens says why;
//   - finish_reason stop is end_turn, or stop_sequence when the upstream
//     names the matched sequence (vLLM's choices[].stop_reason); length is
//     max_tokens; tool_calls (or any answer with tool calls) is tool_use;
//     content_filter is refusal;
//   - usage: OpenAI's prompt_tokens include cached_tokens, Anthropic's
//     input_tokens exclude cache reads, so input_tokens is prompt_tokens
//     minus cached_tokens and cache_read_input_tokens is cached_tokens.
func FromChat(completion []byte, model string) ([]byte, error) {
	return AppendFromChat(make([]byte, 0, len(completion)+128), completion, model)
}

// AppendFromChat is FromChat appending to dst.
func AppendFromChat(dst, completion []byte, model string) ([]byte, error) {
	if !gjson.ValidBytes(completion) {
		return nil, badAnswer("not valid JSON")
	}
	root := gjson.Parse(api.View(completion))
	var id, gotModel, choices, usage gjson.Result
	root.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "id":
			id = v
		case "model":
			gotModel = v
		case "choices":
			choices = v
		case "usage":
			usage = v
		}
		return true
	})
	choice := choices.Get("0")
	msg := choice.Get("message")
	if !msg.IsObject() {
		return nil, badAnswer("no choices[0].message")
	}
	if model == "" {
		model = gotModel.Str
	}
	finish := choice.Get("finish_reason").Str

	dst = appendMessageID(append(dst, `{"id":`...), id.Str)
	dst = append(dst, `,"type":"message","role":"assistant","model":`...)
	dst = api.AppendString(dst, model)
	dst = append(dst, `,"content":[`...)
	n := 0
	sep := func() {
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
	}
	refusal := msg.Get("refusal")
	if refusal.Type == gjson.String && refusal.Str != "" {
		sep()
		dst = append(dst, `{"type":"text","text":`...)
		dst = append(dst, refusal.Raw...)
		dst = append(dst, '}')
	}
	if c := msg.Get("content"); c.Type == gjson.String && c.Str != "" {
		sep()
		dst = append(dst, `{"type":"text","text":`...)
		dst = append(dst, c.Raw...)
		dst = append(dst, '}')
	}
	tools := 0
	var err error
	msg.Get("tool_calls").ForEach(func(_, tc gjson.Result) bool {
		args := strings.TrimSpace(tc.Get("function.arguments").Str)
		if args == "" {
			args = "{}"
		}
		if !gjson.Valid(args) || !gjson.Parse(args).IsObject() {
			if finish == "length" {
				return true // cut mid-call: drop it, max_tokens tells why
			}
			err = badAnswer("tool call arguments are not a JSON object")
			return false
		}
		sep()
		tools++
		dst = append(dst, `{"type":"tool_use","id":`...)
		dst = api.AppendString(dst, tc.Get("id").Str)
		dst = append(dst, `,"name":`...)
		dst = api.AppendString(dst, tc.Get("function.name").Str)
		dst = append(dst, `,"input":`...)
		dst = appendCompact(dst, args)
		dst = append(dst, '}')
		return true
	})
	if err != nil {
		return nil, err
	}
	dst = append(dst, `],"stop_reason":`...)
	reason, seq := stopReason(finish, choice.Get("stop_reason"), tools > 0)
	dst = append(dst, '"')
	dst = append(dst, reason...)
	dst = append(dst, `","stop_sequence":`...)
	if seq.Type == gjson.String {
		dst = append(dst, seq.Raw...)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"usage":`...)
	dst = chatUsage(usage).appendJSON(dst)
	return append(dst, '}'), nil
}

// stopReason maps a chat finish_reason to Anthropic's stop_reason, and
// the matched stop sequence when the upstream reported it (vLLM sends the
// sequence as choices[].stop_reason; a number there is a stop token id).
func stopReason(finish string, matched gjson.Result, hasTools bool) (string, gjson.Result) {
	switch {
	case finish == "length":
		return "max_tokens", gjson.Result{}
	case hasTools || finish == "tool_calls" || finish == "function_call":
		return "tool_use", gjson.Result{}
	case finish == "content_filter":
		return "refusal", gjson.Result{}
	case matched.Type == gjson.String && matched.Str != "":
		return "stop_sequence", matched
	}
	return "end_turn", gjson.Result{}
}

// tokens is the Messages usage of a chat answer. Chat upstreams report no
// cache writes, so cache_creation_input_tokens is always 0.
type tokens struct {
	input, output, cacheRead int64
}

// chatUsage reads an OpenAI usage object as Anthropic counts.
func chatUsage(u gjson.Result) tokens {
	prompt := u.Get("prompt_tokens").Int()
	cached := min(max(u.Get("prompt_tokens_details.cached_tokens").Int(), 0), max(prompt, 0))
	return tokens{input: max(prompt-cached, 0), cacheRead: cached, output: max(u.Get("completion_tokens").Int(), 0)}
}

func (t tokens) appendJSON(dst []byte) []byte {
	dst = append(dst, `{"input_tokens":`...)
	dst = strconv.AppendInt(dst, t.input, 10)
	dst = append(dst, `,"cache_creation_input_tokens":0,"cache_read_input_tokens":`...)
	dst = strconv.AppendInt(dst, t.cacheRead, 10)
	dst = append(dst, `,"output_tokens":`...)
	dst = strconv.AppendInt(dst, t.output, 10)
	return append(dst, '}')
}

// appendMessageID writes the Messages id for a chat id as a JSON string:
// chatcmpl-XYZ becomes msg_XYZ, any other id gets the msg_ prefix.
func appendMessageID(dst []byte, id string) []byte {
	dst = append(dst, `"msg_`...)
	dst = api.AppendEscaped(dst, strings.TrimPrefix(id, "chatcmpl-"))
	return append(dst, '"')
}

func badAnswer(why string) *api.Error {
	return &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_invalid_response",
		Message: fmt.Sprintf("the provider returned an answer that cannot be translated to a Messages answer: %s", why)}
}
