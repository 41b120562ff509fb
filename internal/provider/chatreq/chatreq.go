// Package chatreq reads the parts of an OpenAI chat request that the
// translating adapters (anthropic, bedrock, gemini) map to their providers'
// formats, each in a single pass over gjson results that point into the
// request (nothing is copied), and writes the pieces of OpenAI's chat
// format they translate answers back to.
package chatreq

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
)

// Message holds the fields of one chat message.
type Message struct {
	Role, Content, ToolCalls, ToolCallID gjson.Result
}

// ParseMessage reads m's fields in one pass.
func ParseMessage(m gjson.Result) (f Message) {
	m.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "role":
			f.Role = v
		case "content":
			f.Content = v
		case "tool_calls":
			f.ToolCalls = v
		case "tool_call_id":
			f.ToolCallID = v
		}
		return true
	})
	return f
}

// Fields are the top-level fields of an OpenAI chat request that the
// translating adapters act on (each reads those it maps), read in one pass
// by Parse.
type Fields struct {
	Messages, Tools, ToolChoice, Parallel, Stop, Format gjson.Result
	MaxTokens, MaxCompletion, Temperature, TopP, TopK   gjson.Result
	Seed, Presence, Frequency, User, Stream, N          gjson.Result
	Logprobs, Effort                                    gjson.Result
}

// Parse reads a chat request body's fields into f; a body that is not a
// JSON object is a 400. body must stay unchanged while f is used: the
// results are views of it.
func (f *Fields) Parse(body []byte) error {
	if !gjson.ValidBytes(body) {
		return api.InvalidRequest("", "request body is not valid JSON")
	}
	root := gjson.Parse(api.View(body))
	if !root.IsObject() {
		return api.InvalidRequest("", "request body must be a JSON object")
	}
	root.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "messages":
			f.Messages = v
		case "tools":
			f.Tools = v
		case "tool_choice":
			f.ToolChoice = v
		case "parallel_tool_calls":
			f.Parallel = v
		case "stop":
			f.Stop = v
		case "response_format":
			f.Format = v
		case "max_tokens":
			f.MaxTokens = v
		case "max_completion_tokens":
			f.MaxCompletion = v
		case "temperature":
			f.Temperature = v
		case "top_p":
			f.TopP = v
		case "top_k":
			f.TopK = v
		case "seed":
			f.Seed = v
		case "presence_penalty":
			f.Presence = v
		case "frequency_penalty":
			f.Frequency = v
		case "user":
			f.User = v
		case "stream":
			f.Stream = v
		case "n":
			f.N = v
		case "logprobs":
			f.Logprobs = v
		case "reasoning_effort":
			f.Effort = v
		}
		return true
	})
	return nil
}

// Part holds the fields of one content part.
type Part struct {
	Type, Text, Refusal, ImageURL, InputAudio, CacheControl gjson.Result
}

// ParsePart reads p's fields in one pass.
func ParsePart(p gjson.Result) (f Part) {
	p.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "type":
			f.Type = v
		case "text":
			f.Text = v
		case "refusal":
			f.Refusal = v
		case "image_url":
			f.ImageURL = v
		case "input_audio":
			f.InputAudio = v
		case "cache_control":
			f.CacheControl = v
		}
		return true
	})
	return f
}

// MsgParam names message i, for an error's param.
func MsgParam(i int) string { return "messages[" + strconv.Itoa(i) + "]" }

// ContentParam names part j of message i.
func ContentParam(i, j int) string { return MsgParam(i) + ".content[" + strconv.Itoa(j) + "]" }

// AppendToolCall writes one tool call of a chat answer's message,
// {"id":…,"type":"function","function":{"name":…,"arguments":"…"}}: the
// arguments are input compacted into a JSON string, "{}" when input is not
// an object. scratch is a buffer for the arguments, returned for reuse.
func AppendToolCall(dst, scratch []byte, id, name string, input gjson.Result) ([]byte, []byte) {
	dst = append(dst, `{"id":`...)
	dst = api.AppendString(dst, id)
	dst = append(dst, `,"type":"function","function":{"name":`...)
	dst = api.AppendString(dst, name)
	dst = append(dst, `,"arguments":`...)
	if input.IsObject() {
		scratch = AppendCompact(scratch[:0], input.Raw)
	} else {
		scratch = append(scratch[:0], "{}"...)
	}
	dst = api.AppendString(dst, api.View(scratch))
	return append(dst, "}}"...), scratch
}

// AppendCompact appends valid JSON without insignificant whitespace.
func AppendCompact(dst []byte, raw string) []byte {
	buf := bytes.NewBuffer(dst)
	if err := json.Compact(buf, unsafe.Slice(unsafe.StringData(raw), len(raw))); err != nil {
		// Callers validate first; keep the bytes rather than lose them.
		return append(dst, raw...)
	}
	return buf.Bytes()
}

// ToolCall is one assistant tool call, checked by EachToolCall.
type ToolCall struct {
	ID, Name gjson.Result // non-empty strings (ID unchecked unless asked for)
	Input    string       // the arguments: a JSON object, "{}" when empty
}

// EachToolCall checks the tool_calls of message i and calls fn with each:
// a function call, with an id (when needID) and a name that are non-empty
// strings, and arguments that are a JSON object encoded as a string (empty
// or absent: {}). The first that is not is a 400 naming its field.
func EachToolCall(calls gjson.Result, i int, needID bool, fn func(ToolCall)) error {
	var err error
	j := -1
	calls.ForEach(func(_, tc gjson.Result) bool {
		j++
		p := MsgParam(i) + ".tool_calls[" + strconv.Itoa(j) + "]"
		if typ := tc.Get("type"); typ.Exists() && typ.Str != "function" {
			err = api.InvalidRequest(p+".type", "%s.type: only function tool calls are supported", p)
			return false
		}
		c := ToolCall{ID: tc.Get("id"), Name: tc.Get("function.name")}
		if needID && (c.ID.Type != gjson.String || c.ID.Str == "") {
			err = api.InvalidRequest(p+".id", "%s.id must be a non-empty string", p)
			return false
		}
		if c.Name.Type != gjson.String || c.Name.Str == "" {
			err = api.InvalidRequest(p+".function.name", "%s.function.name must be a non-empty string", p)
			return false
		}
		args := tc.Get("function.arguments")
		c.Input = strings.TrimSpace(args.Str)
		if c.Input == "" {
			c.Input = "{}"
		}
		if args.Exists() && args.Type != gjson.String && args.Type != gjson.Null ||
			!gjson.Valid(c.Input) || !gjson.Parse(c.Input).IsObject() {
			err = api.InvalidRequest(p+".function.arguments", "%s.function.arguments must be a JSON object encoded as a string", p)
			return false
		}
		fn(c)
		return true
	})
	return err
}

// IsSystemRole reports the roles that Anthropic and Bedrock take out of
// the turns into their own system field.
func IsSystemRole(role string) bool { return role == "system" || role == "developer" }

// EachSystemText calls fn with each non-empty text of the system and
// developer messages, in order: a string content, or each text part with
// its cache_control. A part of another type, or content that is neither a
// string nor an array, is a 400 naming it.
func EachSystemText(messages gjson.Result, fn func(text, cacheControl gjson.Result)) error {
	var err error
	i := -1
	messages.ForEach(func(_, m gjson.Result) bool {
		i++
		f := ParseMessage(m)
		if !IsSystemRole(f.Role.Str) {
			return true
		}
		c := f.Content
		switch {
		case c.Type == gjson.String:
			if c.Str != "" {
				fn(c, gjson.Result{})
			}
		case c.IsArray():
			j := -1
			c.ForEach(func(_, v gjson.Result) bool {
				j++
				p := ParsePart(v)
				if p.Type.Str != "text" {
					err = api.InvalidRequest(ContentParam(i, j)+".type",
						"%s.type: system messages may only contain text parts", ContentParam(i, j))
					return false
				}
				if p.Text.Str != "" {
					fn(p.Text, p.CacheControl)
				}
				return true
			})
		case c.Type == gjson.Null || !c.Exists():
		default:
			err = api.InvalidRequest(MsgParam(i)+".content", "%s.content must be a string or an array of content parts", MsgParam(i))
		}
		return err == nil
	})
	return err
}

// ToolModes are a provider's words for the modes of a tool_choice.
type ToolModes struct{ Auto, Required, None, Function string }

// ToolChoice reads a chat request's tool_choice c (absent or null: auto)
// and returns the provider's word for its mode (from m), and for a
// function choice the function's name as its JSON string literal.
func ToolChoice(c gjson.Result, m ToolModes) (mode, name string, err error) {
	switch {
	case c.Type == gjson.Null || !c.Exists():
		return m.Auto, "", nil
	case c.Type == gjson.String:
		switch c.Str {
		case "auto":
			return m.Auto, "", nil
		case "required":
			return m.Required, "", nil
		case "none":
			return m.None, "", nil
		}
		return "", "", api.InvalidRequest("tool_choice", "tool_choice %q is not one of none, auto, required", c.Str)
	case c.IsObject() && c.Get("type").Str == "function":
		nm := c.Get("function.name")
		if nm.Type != gjson.String || nm.Str == "" {
			return "", "", api.InvalidRequest("tool_choice.function.name", "tool_choice.function.name must be a non-empty string")
		}
		return m.Function, nm.Raw, nil
	}
	return "", "", api.InvalidRequest("tool_choice", "tool_choice must be none, auto, required or a function choice")
}

// AppendStop writes a request's stop (a string or an array of strings;
// empty ones are dropped) as the provider's member key, an array, after a
// comma when comma is set; nothing when it holds no sequence. Anything
// else is a 400.
func AppendStop(dst []byte, key string, comma bool, stop gjson.Result) ([]byte, error) {
	n := 0
	add := func(s gjson.Result) {
		if s.Str == "" {
			return
		}
		if n == 0 {
			if comma {
				dst = append(dst, ',')
			}
			dst = append(dst, '"')
			dst = append(dst, key...)
			dst = append(dst, `":[`...)
		} else {
			dst = append(dst, ',')
		}
		n++
		dst = append(dst, s.Raw...)
	}
	switch {
	case stop.Type == gjson.Null || !stop.Exists():
		return dst, nil
	case stop.Type == gjson.String:
		add(stop)
	case stop.IsArray():
		var err error
		stop.ForEach(func(_, s gjson.Result) bool {
			if s.Type != gjson.String {
				err = api.InvalidRequest("stop", "stop must be a string or an array of strings")
				return false
			}
			add(s)
			return true
		})
		if err != nil {
			return nil, err
		}
	default:
		return nil, api.InvalidRequest("stop", "stop must be a string or an array of strings")
	}
	if n > 0 {
		dst = append(dst, ']')
	}
	return dst, nil
}

// EachUserPart calls fn with each part of a user message's content c
// (message i) that carries something: a string content as one text part
// (j = -1), each part of an array otherwise; an empty text is skipped. fn
// returns false for a part type the provider does not take: a 400 saying
// that it is not supported by who ("Anthropic models"). A content that is
// neither a string, an array nor null is a 400.
func EachUserPart(c gjson.Result, i int, who string, fn func(p Part, j int) (bool, error)) error {
	switch {
	case c.Type == gjson.String:
		if c.Str == "" {
			return nil
		}
		_, err := fn(Part{Type: gjson.Result{Type: gjson.String, Str: "text"}, Text: c}, -1)
		return err
	case c.IsArray():
		var err error
		j := -1
		c.ForEach(func(_, v gjson.Result) bool {
			j++
			p := ParsePart(v)
			if p.Type.Str == "text" && p.Text.Str == "" {
				return true
			}
			var ok bool
			if ok, err = fn(p, j); !ok && err == nil {
				err = api.InvalidRequest(ContentParam(i, j)+".type",
					"%s.type: content part type %q is not supported by %s", ContentParam(i, j), p.Type.Str, who)
			}
			return err == nil
		})
		return err
	case c.Type == gjson.Null || !c.Exists():
		return nil
	}
	return api.InvalidRequest(MsgParam(i)+".content", "%s.content must be a string or an array of content parts", MsgParam(i))
}

// EachAssistantText calls fn with each non-empty text of an assistant
// message's content c (message i): the string, or each text and refusal
// part with its cache_control. A part of another type is a 400 saying that
// it is not supported by who ("Anthropic models").
func EachAssistantText(c gjson.Result, i int, who string, fn func(text, cacheControl gjson.Result)) error {
	switch {
	case c.Type == gjson.String:
		if c.Str != "" {
			fn(c, gjson.Result{})
		}
	case c.IsArray():
		var err error
		j := -1
		c.ForEach(func(_, v gjson.Result) bool {
			j++
			p := ParsePart(v)
			var t gjson.Result
			switch typ := p.Type.Str; typ {
			case "text":
				t = p.Text
			case "refusal":
				t = p.Refusal
			default:
				err = api.InvalidRequest(ContentParam(i, j)+".type",
					"%s.type: assistant content part type %q is not supported by %s", ContentParam(i, j), typ, who)
				return false
			}
			if t.Type == gjson.String && t.Str != "" {
				fn(t, p.CacheControl)
			}
			return true
		})
		return err
	}
	return nil
}

// Turns writes a provider's conversation turns, {"role":R,"<field>":[...]},
// merging consecutive items of one role into a single turn and never
// opening a turn without an item.
type Turns struct {
	Dst   []byte
	field string
	role  string // of the open turn, "" when none is open
	n     int    // turns opened
}

// NewTurns starts turns after dst, their items in field ("content" for
// Anthropic and Bedrock, "parts" for Gemini).
func NewTurns(dst []byte, field string) Turns { return Turns{Dst: dst, field: field} }

// Item prepares Dst for one more item in a turn of role.
func (t *Turns) Item(role string) {
	if t.role == role {
		t.Dst = append(t.Dst, ',')
		return
	}
	if t.role != "" {
		t.Dst = append(t.Dst, "]},"...)
	}
	t.Dst = append(t.Dst, `{"role":"`...)
	t.Dst = append(t.Dst, role...)
	t.Dst = append(t.Dst, `","`...)
	t.Dst = append(t.Dst, t.field...)
	t.Dst = append(t.Dst, `":[`...)
	t.role = role
	t.n++
}

// WriteMessages hands each message (message i) to what the adapter does
// with its role: user gets its content, assistant and tool the message;
// system and developer messages are the adapter's system field's, not
// turns. It ends the turns and the array around them. A role not in chat,
// or no turn at all, is a 400 (who: "Anthropic models"). Funcs, not an
// interface: an adapter's writer stays on its caller's stack.
func WriteMessages(t *Turns, messages gjson.Result, who string,
	user func(content gjson.Result, i int) error, assistant, tool func(m Message, i int) error) error {
	var err error
	i := -1
	messages.ForEach(func(_, m gjson.Result) bool {
		i++
		f := ParseMessage(m)
		switch role := f.Role.Str; role {
		case "system", "developer":
		case "user":
			err = user(f.Content, i)
		case "assistant":
			err = assistant(f, i)
		case "tool":
			err = tool(f, i)
		default:
			err = api.InvalidRequest(MsgParam(i)+".role", "%s.role: role %q is not supported by %s", MsgParam(i), role, who)
		}
		return err == nil
	})
	if err != nil {
		return err
	}
	if t.n == 0 {
		return api.InvalidRequest("messages", "messages must contain at least one user or assistant message with content")
	}
	t.Dst = append(t.Dst, "]}]"...)
	return nil
}
