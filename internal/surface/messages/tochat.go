package messages

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
)

// ToChat translates a Messages request into an OpenAI chat completion
// request, for upstreams that speak only chat. The model is copied as sent
// (the pipeline rewrites it for the deployment). Content chat cannot carry
// is an *api.Error 400 naming the field; Parse should have validated body
// first, but ToChat never trusts that.
//
// What changes on the way, and why:
//   - system (a string, or text blocks joined by a blank line) becomes the
//     first message, role system;
//   - assistant text blocks are joined into content; tool_use blocks become
//     tool_calls whose arguments are the JSON of input;
//   - a user turn's tool_result blocks become role "tool" messages placed
//     before the rest of the turn, since chat wants them right after the
//     assistant's tool_calls; is_error results are prefixed "Error: ";
//   - image blocks become image_url parts (base64 sources as data: URLs);
//   - thinking and redacted_thinking blocks in the history are dropped: a
//     chat upstream cannot verify Anthropic's signatures or use them;
//   - cache_control markers are dropped: chat has no prompt-cache markers
//     (OpenAI caches prefixes by itself);
//   - top_k and thinking have no chat equivalent and are dropped;
//   - max_tokens is sent as max_completion_tokens (the name OpenAI's
//     reasoning models require and vLLM accepts), metadata.user_id as user,
//     stop_sequences as stop, tool_choice any as "required" and
//     disable_parallel_tool_use as parallel_tool_calls:false;
//   - a streamed request asks for the usage chunk, which the stream
//     translator needs for message_delta.
//
// Documents, server tools and their blocks have no chat form: refused.
func ToChat(body []byte) ([]byte, error) {
	return AppendChat(make([]byte, 0, len(body)+128), body)
}

// AppendChat is ToChat appending to dst.
func AppendChat(dst, body []byte) ([]byte, error) {
	if !gjson.ValidBytes(body) {
		return nil, api.InvalidRequest("", "request body is not valid JSON")
	}
	root := gjson.Parse(api.View(body))
	if !root.IsObject() {
		return nil, api.InvalidRequest("", "request body must be a JSON object")
	}
	var model, maxTokens, system, messages, tools, toolChoice, stop, temperature, topP, metadata, stream gjson.Result
	root.ForEach(func(k, v gjson.Result) bool {
		var p *gjson.Result
		switch k.Str {
		case "model":
			p = &model
		case "max_tokens":
			p = &maxTokens
		case "system":
			p = &system
		case "messages":
			p = &messages
		case "tools":
			p = &tools
		case "tool_choice":
			p = &toolChoice
		case "stop_sequences":
			p = &stop
		case "temperature":
			p = &temperature
		case "top_p":
			p = &topP
		case "metadata":
			p = &metadata
		case "stream":
			p = &stream
		default:
			// top_k, thinking, service_tier, container, mcp_servers and
			// unknown fields have no chat equivalent.
			return true
		}
		if !p.Exists() {
			*p = v
		}
		return true
	})
	if model.Type != gjson.String {
		return nil, api.InvalidRequest("model", "model: must be a non-empty string")
	}
	if !messages.IsArray() {
		return nil, api.InvalidRequest("messages", "messages: must be an array of message objects")
	}

	dst = append(dst, `{"model":`...)
	dst = append(dst, model.Raw...)
	dst = append(dst, `,"messages":[`...)
	w := chatWriter{dst: dst, first: true}
	if err := w.system(system); err != nil {
		return nil, err
	}
	var err error
	i := -1
	messages.ForEach(func(_, m gjson.Result) bool {
		i++
		err = w.message(m, i)
		return err == nil
	})
	if err != nil {
		return nil, err
	}
	dst = append(w.dst, ']')

	if maxTokens.Type == gjson.Number {
		dst = append(dst, `,"max_completion_tokens":`...)
		dst = append(dst, maxTokens.Raw...)
	}
	if dst, err = appendChatTools(dst, tools, toolChoice); err != nil {
		return nil, err
	}
	if stop.IsArray() && len(stop.Array()) > 0 {
		dst = append(dst, `,"stop":`...)
		dst = appendCompact(dst, stop.Raw)
	}
	if temperature.Type == gjson.Number {
		dst = append(dst, `,"temperature":`...)
		dst = append(dst, temperature.Raw...)
	}
	if topP.Type == gjson.Number {
		dst = append(dst, `,"top_p":`...)
		dst = append(dst, topP.Raw...)
	}
	if u := metadata.Get("user_id"); u.Type == gjson.String && u.Str != "" {
		dst = append(dst, `,"user":`...)
		dst = append(dst, u.Raw...)
	}
	if stream.Type == gjson.True {
		dst = append(dst, `,"stream":true,"stream_options":{"include_usage":true}`...)
	}
	return append(dst, '}'), nil
}

// chatWriter appends chat messages to dst.
type chatWriter struct {
	dst   []byte
	first bool
}

func (w *chatWriter) open(role string) {
	if !w.first {
		w.dst = append(w.dst, ',')
	}
	w.first = false
	w.dst = append(w.dst, `{"role":"`...)
	w.dst = append(w.dst, role...)
	w.dst = append(w.dst, `","content":`...)
}

func (w *chatWriter) system(s gjson.Result) error {
	switch {
	case s.Type == gjson.String:
		if s.Str != "" {
			w.open("system")
			w.dst = append(w.dst, s.Raw...)
			w.dst = append(w.dst, '}')
		}
		return nil
	case s.IsArray():
		var texts []gjson.Result
		var err error
		i := -1
		s.ForEach(func(_, b gjson.Result) bool {
			i++
			f := readBlock(b)
			if f.typ.Str != "text" || f.text.Type != gjson.String {
				p := "system[" + itoa(i) + "]"
				err = api.InvalidRequest(p, "%s: system blocks must be text blocks", p)
				return false
			}
			if f.text.Str != "" {
				texts = append(texts, f.text)
			}
			return true
		})
		if err != nil || len(texts) == 0 {
			return err
		}
		w.open("system")
		w.dst = appendJoined(w.dst, texts, `\n\n`)
		w.dst = append(w.dst, '}')
		return nil
	case s.Exists() && s.Type != gjson.Null:
		return api.InvalidRequest("system", "system: must be a string or an array of text blocks")
	}
	return nil
}

func (w *chatWriter) message(m gjson.Result, i int) error {
	var role, content gjson.Result
	m.ForEach(func(k, v gjson.Result) bool {
		switch {
		case k.Str == "role" && !role.Exists():
			role = v
		case k.Str == "content" && !content.Exists():
			content = v
		}
		return true
	})
	if role.Str != "user" && role.Str != "assistant" {
		p := msgParam(i) + ".role"
		return api.InvalidRequest(p, "%s: must be \"user\" or \"assistant\"", p)
	}
	switch {
	case content.Type == gjson.String:
		w.open(role.Str)
		w.dst = append(w.dst, content.Raw...)
		w.dst = append(w.dst, '}')
		return nil
	case !content.IsArray():
		p := msgParam(i) + ".content"
		return api.InvalidRequest(p, "%s: must be a string or an array of content blocks", p)
	case role.Str == "assistant":
		return w.assistant(content, i)
	}
	return w.user(content, i)
}

func (w *chatWriter) assistant(content gjson.Result, i int) error {
	var texts []gjson.Result
	var calls []block
	var err error
	j := -1
	content.ForEach(func(_, b gjson.Result) bool {
		j++
		f := readBlock(b)
		switch f.typ.Str {
		case "text":
			if f.text.Type == gjson.String && f.text.Str != "" {
				texts = append(texts, f.text)
			}
		case "tool_use":
			if f.id.Type != gjson.String || f.name.Type != gjson.String || !f.input.IsObject() {
				p := blockParam(i, j)
				err = api.InvalidRequest(p, "%s: tool_use needs a string id and name and an object input", p)
				return false
			}
			calls = append(calls, f)
		case "thinking", "redacted_thinking":
			// Dropped: a chat upstream can neither check the signature nor
			// continue Anthropic's reasoning.
		default:
			err = unsupportedBlock(i, j, f.typ.Str)
			return false
		}
		return true
	})
	if err != nil {
		return err
	}
	if len(texts) == 0 && len(calls) == 0 {
		return nil // only thinking: nothing chat can use
	}
	w.open("assistant")
	if len(texts) > 0 {
		w.dst = appendJoined(w.dst, texts, "")
	} else {
		w.dst = append(w.dst, "null"...)
	}
	if len(calls) > 0 {
		w.dst = append(w.dst, `,"tool_calls":[`...)
		var scratch []byte
		for k, c := range calls {
			if k > 0 {
				w.dst = append(w.dst, ',')
			}
			w.dst = append(w.dst, `{"id":`...)
			w.dst = append(w.dst, c.id.Raw...)
			w.dst = append(w.dst, `,"type":"function","function":{"name":`...)
			w.dst = append(w.dst, c.name.Raw...)
			w.dst = append(w.dst, `,"arguments":`...)
			scratch = appendCompact(scratch[:0], c.input.Raw)
			w.dst = api.AppendString(w.dst, api.View(scratch))
			w.dst = append(w.dst, "}}"...)
		}
		w.dst = append(w.dst, ']')
	}
	w.dst = append(w.dst, '}')
	return nil
}

func (w *chatWriter) user(content gjson.Result, i int) error {
	// Tool results first: chat wants them right after the tool calls.
	var err error
	parts := 0
	j := -1
	content.ForEach(func(_, b gjson.Result) bool {
		j++
		f := readBlock(b)
		switch f.typ.Str {
		case "tool_result":
			err = w.toolResult(f, i, j)
		case "text", "image":
			parts++
		default:
			err = unsupportedBlock(i, j, f.typ.Str)
		}
		return err == nil
	})
	if err != nil || parts == 0 {
		return err
	}
	w.open("user")
	w.dst = append(w.dst, '[')
	n := 0
	j = -1
	content.ForEach(func(_, b gjson.Result) bool {
		j++
		f := readBlock(b)
		switch f.typ.Str {
		case "text":
			if n > 0 {
				w.dst = append(w.dst, ',')
			}
			n++
			w.dst = append(w.dst, `{"type":"text","text":`...)
			w.dst = append(w.dst, f.text.Raw...)
			w.dst = append(w.dst, '}')
		case "image":
			if n > 0 {
				w.dst = append(w.dst, ',')
			}
			n++
			w.dst, err = appendImagePart(w.dst, f.source, blockParam(i, j))
		}
		return err == nil
	})
	if err != nil {
		return err
	}
	w.dst = append(w.dst, "]}"...)
	return nil
}

// toolResult writes a tool_result block as a role "tool" message whose
// content is the result's text (text blocks joined by newlines).
func (w *chatWriter) toolResult(f block, i, j int) error {
	p := blockParam(i, j)
	if f.toolUseID.Type != gjson.String || f.toolUseID.Str == "" {
		return api.InvalidRequest(p+".tool_use_id", "%s.tool_use_id: must be a non-empty string", p)
	}
	var texts []gjson.Result
	switch c := f.content; {
	case c.Type == gjson.String:
		texts = append(texts, c)
	case c.IsArray():
		var err error
		k := -1
		c.ForEach(func(_, b gjson.Result) bool {
			k++
			bf := readBlock(b)
			if bf.typ.Str != "text" || bf.text.Type != gjson.String {
				q := p + ".content[" + itoa(k) + "]"
				err = api.InvalidRequest(q+".type", "%s.type: %q blocks in tool results cannot be sent to a chat completions model; only text", q, bf.typ.Str)
				return false
			}
			texts = append(texts, bf.text)
			return true
		})
		if err != nil {
			return err
		}
	case c.Exists() && c.Type != gjson.Null:
		return api.InvalidRequest(p+".content", "%s.content: must be a string or an array of content blocks", p)
	}
	w.open("tool")
	if f.isError.Type == gjson.True {
		// Chat has no error flag on tool messages; say it in the content,
		// where the model reads it.
		w.dst = append(w.dst, `"Error: `...)
		w.dst = appendJoinedInner(w.dst, texts, `\n`)
		w.dst = append(w.dst, '"')
	} else {
		w.dst = appendJoined(w.dst, texts, `\n`)
	}
	w.dst = append(w.dst, `,"tool_call_id":`...)
	w.dst = append(w.dst, f.toolUseID.Raw...)
	w.dst = append(w.dst, '}')
	return nil
}

func appendImagePart(dst []byte, src gjson.Result, p string) ([]byte, error) {
	switch src.Get("type").Str {
	case "base64":
		mt, data := src.Get("media_type"), src.Get("data")
		if mt.Type != gjson.String || !strings.HasPrefix(mt.Str, "image/") || data.Type != gjson.String || data.Str == "" {
			return nil, api.InvalidRequest(p+".source", "%s.source: a base64 image needs an image/* media_type and data", p)
		}
		dst = append(dst, `{"type":"image_url","image_url":{"url":"data:`...)
		dst = api.AppendEscaped(dst, mt.Str)
		dst = append(dst, ";base64,"...)
		dst = api.AppendEscaped(dst, data.Str)
		return append(dst, `"}}`...), nil
	case "url":
		u := src.Get("url")
		if u.Type != gjson.String || u.Str == "" {
			return nil, api.InvalidRequest(p+".source.url", "%s.source.url: must be a non-empty string", p)
		}
		dst = append(dst, `{"type":"image_url","image_url":{"url":`...)
		dst = append(dst, u.Raw...)
		return append(dst, "}}"...), nil
	}
	return nil, api.InvalidRequest(p+".source.type", "%s.source.type: must be base64 or url for a chat completions model", p)
}

func appendChatTools(dst []byte, tools, choice gjson.Result) ([]byte, error) {
	n := 0
	var err error
	tools.ForEach(func(_, t gjson.Result) bool {
		p := "tools[" + itoa(n) + "]"
		if typ := t.Get("type"); typ.Exists() && typ.Str != "custom" {
			err = api.InvalidRequest(p+".type", "%s.type: server tool %q is not available on a chat completions model", p, typ.Str)
			return false
		}
		name := t.Get("name")
		if name.Type != gjson.String || name.Str == "" {
			err = api.InvalidRequest(p+".name", "%s.name: must be a non-empty string", p)
			return false
		}
		if n == 0 {
			dst = append(dst, `,"tools":[`...)
		} else {
			dst = append(dst, ',')
		}
		n++
		dst = append(dst, `{"type":"function","function":{"name":`...)
		dst = append(dst, name.Raw...)
		if d := t.Get("description"); d.Type == gjson.String && d.Str != "" {
			dst = append(dst, `,"description":`...)
			dst = append(dst, d.Raw...)
		}
		if s := t.Get("input_schema"); s.IsObject() {
			dst = append(dst, `,"parameters":`...)
			dst = appendCompact(dst, s.Raw)
		}
		dst = append(dst, "}}"...)
		return true
	})
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return dst, nil // chat rejects tool_choice without tools
	}
	dst = append(dst, ']')
	if !choice.IsObject() {
		return dst, nil
	}
	switch choice.Get("type").Str {
	case "any":
		dst = append(dst, `,"tool_choice":"required"`...)
	case "none":
		dst = append(dst, `,"tool_choice":"none"`...)
	case "tool":
		dst = append(dst, `,"tool_choice":{"type":"function","function":{"name":`...)
		dst = api.AppendString(dst, choice.Get("name").Str)
		dst = append(dst, "}}"...)
	}
	if choice.Get("disable_parallel_tool_use").Type == gjson.True {
		dst = append(dst, `,"parallel_tool_calls":false`...)
	}
	return dst, nil
}

func unsupportedBlock(i, j int, typ string) error {
	p := blockParam(i, j) + ".type"
	return api.InvalidRequest(p, "%s: %q blocks cannot be sent to a chat completions model", p, typ)
}

// appendJoined writes the JSON string literal of the texts joined by sep
// (the inside of a literal, already escaped). It concatenates the
// literals' insides: an escape never spans a literal, so nothing is
// unescaped and re-escaped.
func appendJoined(dst []byte, texts []gjson.Result, sep string) []byte {
	dst = append(dst, '"')
	dst = appendJoinedInner(dst, texts, sep)
	return append(dst, '"')
}

func appendJoinedInner(dst []byte, texts []gjson.Result, sep string) []byte {
	for k, t := range texts {
		if k > 0 {
			dst = append(dst, sep...)
		}
		dst = append(dst, t.Raw[1:len(t.Raw)-1]...)
	}
	return dst
}

// appendCompact appends valid JSON without insignificant whitespace.
func appendCompact(dst []byte, raw string) []byte {
	buf := bytes.NewBuffer(dst)
	if err := json.Compact(buf, []byte(raw)); err != nil {
		return append(dst, raw...) // callers pass gjson-validated JSON
	}
	return buf.Bytes()
}
