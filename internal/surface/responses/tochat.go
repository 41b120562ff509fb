package responses

import (
	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
)

// ToChat translates a Responses request into a chat completion request for
// an upstream that does not speak the Responses API. previous_response_id
// must already be resolved into input (see Request.Prepare). Input chat
// cannot carry is an *api.Error 400 naming the field:
//
//   - instructions become a leading system message, a string input one
//     user message;
//   - message items keep their role; input_text and output_text parts
//     become text, input_image an image_url part (URLs and data URLs; a
//     file_id cannot be resolved here); an assistant's text parts are
//     joined into its content and refusal parts into its refusal;
//   - function_call items become the tool_calls of an assistant message
//     (joined to the assistant message just before them), and
//     function_call_output items tool messages;
//   - reasoning items are dropped: chat has no place for them;
//   - function tools become chat tools and tool_choice follows; built-in
//     tools (web_search, file_search, ...) and item references are refused;
//   - text.format json_object and json_schema become response_format,
//     text.verbosity verbosity, reasoning.effort reasoning_effort,
//     max_output_tokens max_completion_tokens; temperature, top_p,
//     parallel_tool_calls, user, prompt_cache_key and service_tier are
//     kept; a stream asks for the usage chunk.
func ToChat(body []byte) ([]byte, error) {
	return AppendToChat(make([]byte, 0, len(body)+128), body)
}

// AppendToChat is ToChat appending to dst.
func AppendToChat(dst, body []byte) ([]byte, error) {
	if !gjson.ValidBytes(body) {
		return nil, api.InvalidRequest("", "request body is not valid JSON")
	}
	root := gjson.Parse(api.View(body))
	var model, input, instructions, tools, toolChoice, text, reasoning, maxOut, stream gjson.Result
	var copied []gjson.Result // members chat takes as they are
	var copiedKeys []string
	var topLogprobs gjson.Result
	root.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "model":
			model = v
		case "input":
			input = v
		case "instructions":
			instructions = v
		case "tools":
			tools = v
		case "tool_choice":
			toolChoice = v
		case "text":
			text = v
		case "reasoning":
			reasoning = v
		case "max_output_tokens":
			maxOut = v
		case "stream":
			stream = v
		case "top_logprobs":
			topLogprobs = v
		case "temperature", "top_p", "parallel_tool_calls", "user", "prompt_cache_key", "service_tier", "safety_identifier":
			if v.Type != gjson.Null {
				copied = append(copied, v)
				copiedKeys = append(copiedKeys, k.Str)
			}
		}
		return true
	})
	dst = append(dst, `{"model":`...)
	dst = append(dst, model.Raw...)
	dst = append(dst, `,"messages":[`...)
	var err error
	if dst, err = appendChatMessages(dst, instructions, input); err != nil {
		return nil, err
	}
	dst = append(dst, ']')
	if tools.IsArray() && len(tools.Array()) > 0 {
		if dst, err = appendChatTools(dst, tools); err != nil {
			return nil, err
		}
	}
	if toolChoice.Exists() && toolChoice.Type != gjson.Null {
		dst = append(dst, `,"tool_choice":`...)
		if toolChoice.Type == gjson.String {
			dst = append(dst, toolChoice.Raw...)
		} else if toolChoice.Get("type").Str == "function" {
			dst = append(dst, `{"type":"function","function":{"name":`...)
			dst = api.AppendString(dst, toolChoice.Get("name").Str)
			dst = append(dst, "}}"...)
		} else {
			return nil, api.InvalidRequest("tool_choice", "tool_choice: %s cannot be sent to a provider that does not speak the Responses API", toolChoice.Get("type").Str)
		}
	}
	for i, v := range copied {
		dst = append(dst, ',')
		dst = api.AppendString(dst, copiedKeys[i])
		dst = append(dst, ':')
		dst = append(dst, v.Raw...)
	}
	if f := text.Get("format"); f.IsObject() {
		switch f.Get("type").Str {
		case "json_object":
			dst = append(dst, `,"response_format":{"type":"json_object"}`...)
		case "json_schema":
			dst = append(dst, `,"response_format":{"type":"json_schema","json_schema":{"name":`...)
			dst = append(dst, f.Get("name").Raw...)
			if d := f.Get("description"); d.Type == gjson.String {
				dst = append(dst, `,"description":`...)
				dst = append(dst, d.Raw...)
			}
			dst = append(dst, `,"schema":`...)
			dst = append(dst, f.Get("schema").Raw...)
			if s := f.Get("strict"); s.IsBool() {
				dst = append(dst, `,"strict":`...)
				dst = append(dst, s.Raw...)
			}
			dst = append(dst, "}}"...)
		}
	}
	if vb := text.Get("verbosity"); vb.Type == gjson.String {
		dst = append(dst, `,"verbosity":`...)
		dst = append(dst, vb.Raw...)
	}
	if e := reasoning.Get("effort"); e.Type == gjson.String {
		dst = append(dst, `,"reasoning_effort":`...)
		dst = append(dst, e.Raw...)
	}
	if maxOut.Type == gjson.Number {
		dst = append(dst, `,"max_completion_tokens":`...)
		dst = append(dst, maxOut.Raw...)
	}
	if topLogprobs.Type == gjson.Number {
		dst = append(dst, `,"logprobs":true,"top_logprobs":`...)
		dst = append(dst, topLogprobs.Raw...)
	}
	if stream.Type == gjson.True {
		dst = append(dst, `,"stream":true,"stream_options":{"include_usage":true}`...)
	}
	return append(dst, '}'), nil
}

// chatWriter writes chat messages, joining function calls to the assistant
// message before them.
type chatWriter struct {
	dst []byte
	n   int
	// assistant is open: its content is written and its tool_calls array
	// may still grow; calls counts them.
	assistant bool
	calls     int
}

func (w *chatWriter) begin() {
	w.closeAssistant()
	if w.n > 0 {
		w.dst = append(w.dst, ',')
	}
	w.n++
}

func (w *chatWriter) closeAssistant() {
	if !w.assistant {
		return
	}
	if w.calls > 0 {
		w.dst = append(w.dst, ']')
	}
	w.dst = append(w.dst, '}')
	w.assistant, w.calls = false, 0
}

func appendChatMessages(dst []byte, instructions, input gjson.Result) ([]byte, error) {
	w := &chatWriter{dst: dst}
	if instructions.Type == gjson.String {
		w.begin()
		w.dst = append(w.dst, `{"role":"system","content":`...)
		w.dst = append(w.dst, instructions.Raw...)
		w.dst = append(w.dst, '}')
	}
	if input.Type == gjson.String {
		w.begin()
		w.dst = append(w.dst, `{"role":"user","content":`...)
		w.dst = append(w.dst, input.Raw...)
		w.dst = append(w.dst, '}')
		return w.dst, nil
	}
	var err error
	i := 0
	input.ForEach(func(_, item gjson.Result) bool {
		err = w.item(item, "input["+itoa(i)+"]")
		i++
		return err == nil
	})
	w.closeAssistant()
	return w.dst, err
}

func (w *chatWriter) item(item gjson.Result, p string) error {
	switch typ := item.Get("type").Str; typ {
	case "", "message":
		return w.message(item, p)
	case "function_call":
		if !w.assistant {
			w.begin()
			w.dst = append(w.dst, `{"role":"assistant","content":null`...)
			w.assistant = true
		}
		if w.calls == 0 {
			w.dst = append(w.dst, `,"tool_calls":[`...)
		} else {
			w.dst = append(w.dst, ',')
		}
		w.calls++
		w.dst = append(w.dst, `{"id":`...)
		w.dst = append(w.dst, item.Get("call_id").Raw...)
		w.dst = append(w.dst, `,"type":"function","function":{"name":`...)
		w.dst = append(w.dst, item.Get("name").Raw...)
		w.dst = append(w.dst, `,"arguments":`...)
		w.dst = append(w.dst, item.Get("arguments").Raw...)
		w.dst = append(w.dst, "}}"...)
		return nil
	case "function_call_output":
		w.begin()
		w.dst = append(w.dst, `{"role":"tool","tool_call_id":`...)
		w.dst = append(w.dst, item.Get("call_id").Raw...)
		w.dst = append(w.dst, `,"content":`...)
		out := item.Get("output")
		if out.Type == gjson.String {
			w.dst = append(w.dst, out.Raw...)
		} else {
			text, err := joinText(out, p+".output")
			if err != nil {
				return err
			}
			w.dst = api.AppendString(w.dst, text)
		}
		w.dst = append(w.dst, '}')
		return nil
	case "reasoning":
		return nil
	default:
		return api.InvalidRequest(p+".type", "%s: items of type %s cannot be sent to a provider that does not speak the Responses API", p, typ)
	}
}

func (w *chatWriter) message(item gjson.Result, p string) error {
	role := item.Get("role").Str
	content := item.Get("content")
	if role == "assistant" {
		text, err := joinText(content, p+".content")
		if err != nil {
			return err
		}
		w.begin()
		w.dst = append(w.dst, `{"role":"assistant","content":`...)
		w.dst = api.AppendString(w.dst, text)
		if r := joinRefusal(content); r != "" {
			w.dst = append(w.dst, `,"refusal":`...)
			w.dst = api.AppendString(w.dst, r)
		}
		w.assistant = true
		return nil
	}
	w.begin()
	w.dst = append(w.dst, `{"role":`...)
	w.dst = api.AppendString(w.dst, role)
	w.dst = append(w.dst, `,"content":`...)
	if content.Type == gjson.String {
		w.dst = append(w.dst, content.Raw...)
		w.dst = append(w.dst, '}')
		return nil
	}
	if role != "user" {
		text, err := joinText(content, p+".content")
		if err != nil {
			return err
		}
		w.dst = api.AppendString(w.dst, text)
		w.dst = append(w.dst, '}')
		return nil
	}
	w.dst = append(w.dst, '[')
	var err error
	j := 0
	content.ForEach(func(_, part gjson.Result) bool {
		pp := p + ".content[" + itoa(j) + "]"
		if j > 0 {
			w.dst = append(w.dst, ',')
		}
		j++
		switch t := part.Get("type").Str; t {
		case "input_text", "output_text":
			w.dst = append(w.dst, `{"type":"text","text":`...)
			w.dst = api.AppendString(w.dst, part.Get("text").Str)
			w.dst = append(w.dst, '}')
		case "input_image":
			u := part.Get("image_url")
			if u.Type != gjson.String || u.Str == "" {
				err = api.InvalidRequest(pp+".image_url", "%s: an image given by file_id cannot be sent to a provider that does not speak the Responses API; send image_url", pp)
				return false
			}
			w.dst = append(w.dst, `{"type":"image_url","image_url":{"url":`...)
			w.dst = append(w.dst, u.Raw...)
			if d := part.Get("detail"); d.Type == gjson.String {
				w.dst = append(w.dst, `,"detail":`...)
				w.dst = append(w.dst, d.Raw...)
			}
			w.dst = append(w.dst, "}}"...)
		default:
			err = api.InvalidRequest(pp+".type", "%s: content of type %s cannot be sent to a provider that does not speak the Responses API", pp, t)
			return false
		}
		return true
	})
	w.dst = append(w.dst, "]}"...)
	return err
}

// joinText joins the text parts of content (a string or parts) and refuses
// any other part but refusals, which joinRefusal reads.
func joinText(content gjson.Result, p string) (string, error) {
	if content.Type == gjson.String {
		return content.Str, nil
	}
	var b []byte
	var err error
	j := 0
	content.ForEach(func(_, part gjson.Result) bool {
		switch t := part.Get("type").Str; t {
		case "input_text", "output_text", "text":
			b = append(b, part.Get("text").Str...)
		case "refusal":
		default:
			pp := p + "[" + itoa(j) + "]"
			err = api.InvalidRequest(pp+".type", "%s: content of type %s cannot be sent here to a provider that does not speak the Responses API", pp, t)
		}
		j++
		return err == nil
	})
	return string(b), err
}

func joinRefusal(content gjson.Result) string {
	var b []byte
	content.ForEach(func(_, part gjson.Result) bool {
		if part.Get("type").Str == "refusal" {
			b = append(b, part.Get("refusal").Str...)
		}
		return true
	})
	return string(b)
}

func appendChatTools(dst []byte, tools gjson.Result) ([]byte, error) {
	dst = append(dst, `,"tools":[`...)
	var err error
	i := 0
	tools.ForEach(func(_, t gjson.Result) bool {
		p := "tools[" + itoa(i) + "]"
		if typ := t.Get("type").Str; typ != "function" {
			err = api.InvalidRequest(p+".type", "%s: the built-in tool %s cannot be sent to a provider that does not speak the Responses API; only function tools can", p, typ)
			return false
		}
		if i > 0 {
			dst = append(dst, ',')
		}
		i++
		dst = append(dst, `{"type":"function","function":{"name":`...)
		dst = append(dst, t.Get("name").Raw...)
		if d := t.Get("description"); d.Type == gjson.String {
			dst = append(dst, `,"description":`...)
			dst = append(dst, d.Raw...)
		}
		if ps := t.Get("parameters"); ps.IsObject() {
			dst = append(dst, `,"parameters":`...)
			dst = append(dst, ps.Raw...)
		}
		if s := t.Get("strict"); s.IsBool() {
			dst = append(dst, `,"strict":`...)
			dst = append(dst, s.Raw...)
		}
		dst = append(dst, "}}"...)
		return true
	})
	return append(dst, ']'), err
}
