package responses

import (
	"net/http"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
)

// fromChat is a chat completion translated into a Response.
type fromChat struct {
	body     []byte
	model    string
	usage    usage
	hasUsage bool
	finish   string
}

// FromChat translates a chat.completion into a Response with the given id
// that repeats the request members of reqBody (instructions, tools, text,
// ...). Only the first choice is used: Responses has no n. A body that is
// not a usable chat.completion is an *api.Error 502, so it is never cached.
//
//   - content and refusal become one message item with an output_text and
//     a refusal part, tool_calls function_call items (call_id is the tool
//     call's id);
//   - finish_reason length makes the response incomplete with reason
//     max_output_tokens, content_filter incomplete with reason
//     content_filter; anything else is completed;
//   - usage: prompt_tokens are input_tokens (cached ones included, as in
//     chat), completion_tokens output_tokens (reasoning included).
func FromChat(completion, reqBody []byte, id string) ([]byte, error) {
	fc, err := translateChat(completion, readEcho(reqBody), id, 0)
	if err != nil {
		return nil, err
	}
	return fc.body, nil
}

func translateChat(completion []byte, e *echo, id string, created int64) (*fromChat, error) {
	if !gjson.ValidBytes(completion) {
		return nil, badAnswer("not valid JSON")
	}
	var model, choices, usageObj, createdV gjson.Result
	gjson.Parse(api.View(completion)).ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "model":
			model = v
		case "choices":
			choices = v
		case "usage":
			usageObj = v
		case "created":
			createdV = v
		}
		return true
	})
	choice := choices.Get("0")
	msg := choice.Get("message")
	if !msg.IsObject() {
		return nil, badAnswer("no choices[0].message")
	}
	fc := &fromChat{model: model.Str, finish: choice.Get("finish_reason").Str}
	if usageObj.IsObject() {
		fc.usage, fc.hasUsage = chatUsage(usageObj), true
	}
	if createdV.Type == gjson.Number {
		created = createdV.Int()
	}
	status, reason := statusOf(fc.finish)
	var items []*item
	if c, r := msg.Get("content"), msg.Get("refusal"); (c.Type == gjson.String && c.Str != "") || (r.Type == gjson.String && r.Str != "") {
		it := &item{id: itemID("msg_", id, 0)}
		if c.Str != "" {
			p := part{}
			p.text = append(p.text, c.Str...)
			it.parts = append(it.parts, p)
		}
		if r.Str != "" {
			p := part{refusal: true}
			p.text = append(p.text, r.Str...)
			it.parts = append(it.parts, p)
		}
		items = append(items, it)
	}
	var perr error
	msg.Get("tool_calls").ForEach(func(_, tc gjson.Result) bool {
		fn := tc.Get("function")
		name := fn.Get("name")
		if name.Type != gjson.String || name.Str == "" {
			perr = badAnswer("a tool call has no function name")
			return false
		}
		it := &item{id: itemID("fc_", id, len(items)), call: true, callID: tc.Get("id").Str, name: name.Str}
		if it.callID == "" {
			it.callID = "call_" + it.id[len("fc_"):]
		}
		it.args.WriteString(fn.Get("arguments").Str)
		items = append(items, it)
		return true
	})
	if perr != nil {
		return nil, perr
	}
	if fc.finish == "" && len(items) == 0 {
		return nil, badAnswer("choices[0] has neither an answer nor a finish_reason")
	}
	out := []byte{'['}
	for i, it := range items {
		if i > 0 {
			out = append(out, ',')
		}
		st := statusCompleted
		if status == statusIncomplete {
			st = statusIncomplete
		}
		out = it.appendJSON(out, st, false)
	}
	out = append(out, ']')
	var u *usage
	if fc.hasUsage {
		u = &fc.usage
	} else {
		u = &usage{}
	}
	fc.body = e.appendResponse(make([]byte, 0, len(out)+512), head{id: id, created: created, model: fc.model, status: status, reason: reason}, out, u)
	return fc, nil
}

// badAnswer is an upstream answer the gateway cannot read: a 502, never
// cached.
func badAnswer(why string) *api.Error {
	return &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "bad_upstream_response",
		Message: "the provider's answer could not be translated to the Responses API: " + why}
}
