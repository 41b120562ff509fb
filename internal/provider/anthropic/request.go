package anthropic

import (
	"github.com/edge-agent/edge-agent/internal/provider/chatreq"

	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
)

// DefaultMaxTokens is sent when the client gives no max_tokens, because
// Anthropic requires the field and OpenAI does not.
const DefaultMaxTokens = 4096

// streamMode says where the upstream "stream" flag comes from.
type streamMode int8

const (
	streamAsBody streamMode = iota // the client's "stream" field
	streamOn
	streamOff
)

// TranslateRequest turns an OpenAI chat completion request into an
// Anthropic Messages request for model. defaultMaxTokens (DefaultMaxTokens
// when <= 0) is used when the client sets neither max_tokens nor
// max_completion_tokens. Input Anthropic cannot express is an *api.Error
// 400 naming the field at fault.
//
// Differences worth knowing:
//   - system and developer messages are hoisted to the top-level system
//     field wherever they appear in the conversation;
//   - consecutive messages of one role are merged into one turn, since
//     Anthropic requires user and assistant turns to alternate (tool results
//     are user content and merge with the user turn around them);
//   - temperature is clamped to 1: OpenAI accepts 0-2, Anthropic rejects
//     anything above 1, and refusing a request the client considers valid
//     is worse than running it at the hottest temperature available;
//   - response_format, seed, penalties and logit_bias have no Anthropic
//     equivalent and are dropped; n > 1 and logprobs are refused, because
//     dropping them would return something other than what was asked for.
func TranslateRequest(openAIBody []byte, model string, defaultMaxTokens int) ([]byte, error) {
	return translateRequest(make([]byte, 0, len(openAIBody)+256), openAIBody, model, defaultMaxTokens, streamAsBody)
}

func translateRequest(dst, body []byte, model string, defaultMaxTokens int, sm streamMode) ([]byte, error) {
	var f chatreq.Fields
	err := f.Parse(body)
	if err != nil {
		return nil, err
	}
	if f.N.Type == gjson.Number && f.N.Int() > 1 {
		return nil, api.InvalidRequest("n", "n > 1 is not supported by Anthropic models")
	}
	if f.Logprobs.Type == gjson.True {
		return nil, api.InvalidRequest("logprobs", "logprobs are not supported by Anthropic models")
	}
	if !f.Messages.IsArray() {
		return nil, api.InvalidRequest("messages", "messages must be an array of message objects")
	}

	dst = append(dst, `{"model":`...)
	dst = api.AppendString(dst, model)

	dst = append(dst, `,"max_tokens":`...)
	maxTokens := int64(defaultMaxTokens)
	if maxTokens <= 0 {
		maxTokens = DefaultMaxTokens
	}
	switch {
	case f.MaxCompletion.Type == gjson.Number:
		maxTokens = f.MaxCompletion.Int()
	case f.MaxTokens.Type == gjson.Number:
		maxTokens = f.MaxTokens.Int()
	}
	dst = strconv.AppendInt(dst, maxTokens, 10)

	if dst, err = appendSystem(dst, f.Messages); err != nil {
		return nil, err
	}
	if dst, err = appendMessages(dst, f.Messages); err != nil {
		return nil, err
	}
	if dst, err = appendTools(dst, f.Tools, f.ToolChoice, f.Parallel); err != nil {
		return nil, err
	}
	if dst, err = chatreq.AppendStop(dst, "stop_sequences", true, f.Stop); err != nil {
		return nil, err
	}
	switch f.Temperature.Type {
	case gjson.Null:
	case gjson.Number:
		dst = append(dst, `,"temperature":`...)
		if f.Temperature.Num > 1 {
			dst = append(dst, '1')
		} else {
			dst = append(dst, f.Temperature.Raw...)
		}
	default:
		return nil, api.InvalidRequest("temperature", "temperature must be a number")
	}
	switch f.TopP.Type {
	case gjson.Null:
	case gjson.Number:
		dst = append(dst, `,"top_p":`...)
		dst = append(dst, f.TopP.Raw...)
	default:
		return nil, api.InvalidRequest("top_p", "top_p must be a number")
	}
	if f.User.Type == gjson.String && f.User.Str != "" {
		dst = append(dst, `,"metadata":{"user_id":`...)
		dst = append(dst, f.User.Raw...)
		dst = append(dst, '}')
	}
	if sm == streamOn || sm == streamAsBody && f.Stream.Type == gjson.True {
		dst = append(dst, `,"stream":true`...)
	}
	return append(dst, '}'), nil
}

// appendSystem writes the system and developer messages as the top-level
// system field: a string for the usual single plain message, text blocks
// otherwise (which keeps each message's cache_control).
func appendSystem(dst []byte, messages gjson.Result) ([]byte, error) {
	var count, parts int
	var only gjson.Result
	messages.ForEach(func(_, m gjson.Result) bool {
		if f := chatreq.ParseMessage(m); chatreq.IsSystemRole(f.Role.Str) {
			c := f.Content
			count++
			only = c
			if c.IsArray() {
				parts += 2 // never the single-string form
			}
		}
		return true
	})
	if count == 0 {
		return dst, nil
	}
	if count == 1 && parts == 0 && only.Type == gjson.String {
		if only.Str == "" {
			return dst, nil
		}
		dst = append(dst, `,"system":`...)
		return append(dst, only.Raw...), nil
	}
	mark := len(dst)
	dst = append(dst, `,"system":[`...)
	first := true
	err := chatreq.EachSystemText(messages, func(text, cacheControl gjson.Result) {
		dst = appendTextBlock(dst, &first, text.Raw, cacheControl)
	})
	if err != nil {
		return nil, err
	}
	if first { // only empty system messages: send no system at all
		return dst[:mark], nil
	}
	return append(dst, ']'), nil
}

// turnWriter writes chat messages as Anthropic turns (chatreq.WriteMessages).
type turnWriter struct{ chatreq.Turns }

func appendMessages(dst []byte, messages gjson.Result) ([]byte, error) {
	w := turnWriter{chatreq.NewTurns(append(dst, `,"messages":[`...), "content")}
	if err := chatreq.WriteMessages(&w.Turns, messages, "Anthropic models", w.user, w.assistant, w.tool); err != nil {
		return nil, err
	}
	return w.Dst, nil
}

func (w *turnWriter) user(c gjson.Result, i int) error {
	return chatreq.EachUserPart(c, i, "Anthropic models", func(p chatreq.Part, j int) (ok bool, err error) {
		switch p.Type.Str {
		case "text":
			w.Item("user")
			w.Dst = appendText(w.Dst, p.Text.Raw, p.CacheControl)
		case "image_url":
			w.Item("user")
			w.Dst, err = appendImage(w.Dst, p.ImageURL, i, j)
		default:
			return false, nil
		}
		return true, err
	})
}

func (w *turnWriter) assistant(m chatreq.Message, i int) error {
	err := chatreq.EachAssistantText(m.Content, i, "Anthropic models", func(text, cacheControl gjson.Result) {
		w.Item("assistant")
		w.Dst = appendText(w.Dst, text.Raw, cacheControl)
	})
	if err != nil {
		return err
	}
	return chatreq.EachToolCall(m.ToolCalls, i, true, func(tc chatreq.ToolCall) {
		w.Item("assistant")
		w.Dst = append(w.Dst, `{"type":"tool_use","id":`...)
		w.Dst = append(w.Dst, tc.ID.Raw...)
		w.Dst = append(w.Dst, `,"name":`...)
		w.Dst = append(w.Dst, tc.Name.Raw...)
		w.Dst = append(w.Dst, `,"input":`...)
		w.Dst = chatreq.AppendCompact(w.Dst, tc.Input)
		w.Dst = append(w.Dst, '}')
	})
}

func (w *turnWriter) tool(m chatreq.Message, i int) error {
	id := m.ToolCallID
	if id.Type != gjson.String || id.Str == "" {
		return api.InvalidRequest(chatreq.MsgParam(i)+".tool_call_id", "%s.tool_call_id must be a non-empty string", chatreq.MsgParam(i))
	}
	w.Item("user")
	w.Dst = append(w.Dst, `{"type":"tool_result","tool_use_id":`...)
	w.Dst = append(w.Dst, id.Raw...)
	c := m.Content
	switch {
	case c.Type == gjson.String:
		if c.Str != "" {
			w.Dst = append(w.Dst, `,"content":`...)
			w.Dst = append(w.Dst, c.Raw...)
		}
	case c.IsArray():
		var err error
		first := true
		j := -1
		c.ForEach(func(_, v gjson.Result) bool {
			j++
			p := chatreq.ParsePart(v)
			if p.Type.Str != "text" {
				err = api.InvalidRequest(chatreq.ContentParam(i, j)+".type", "%s.type: tool messages may only contain text parts", chatreq.ContentParam(i, j))
				return false
			}
			if p.Text.Str == "" {
				return true
			}
			if first {
				w.Dst = append(w.Dst, `,"content":[`...)
			}
			w.Dst = appendTextBlock(w.Dst, &first, p.Text.Raw, p.CacheControl)
			return true
		})
		if err != nil {
			return err
		}
		if !first {
			w.Dst = append(w.Dst, ']')
		}
	}
	w.Dst = append(w.Dst, '}')
	return nil
}

// appendImage writes an image_url part as an Anthropic image block: data
// URLs as base64 sources, http(s) URLs as url sources.
func appendImage(dst []byte, imageURL gjson.Result, i, j int) ([]byte, error) {
	u := imageURL
	if u.IsObject() {
		u = u.Get("url")
	} // else some clients send the URL as a plain string
	p := chatreq.ContentParam(i, j) + ".image_url.url"
	if u.Type != gjson.String || u.Str == "" {
		return nil, api.InvalidRequest(p, "%s must be a non-empty string", p)
	}
	url := u.Str
	switch {
	case strings.HasPrefix(url, "data:"):
		meta, data, ok := strings.Cut(url[len("data:"):], ",")
		mediaType, isBase64 := strings.CutSuffix(meta, ";base64")
		if !ok || !isBase64 || !strings.HasPrefix(mediaType, "image/") || data == "" {
			return nil, api.InvalidRequest(p, "%s: data URLs must look like data:image/<type>;base64,<data>", p)
		}
		dst = append(dst, `{"type":"image","source":{"type":"base64","media_type":`...)
		dst = api.AppendString(dst, mediaType)
		dst = append(dst, `,"data":`...)
		dst = api.AppendString(dst, data)
		return append(dst, "}}"...), nil
	case strings.HasPrefix(url, "https://"), strings.HasPrefix(url, "http://"):
		dst = append(dst, `{"type":"image","source":{"type":"url","url":`...)
		dst = append(dst, u.Raw...)
		return append(dst, "}}"...), nil
	}
	return nil, api.InvalidRequest(p, "%s must be an http(s) URL or a base64 data URL", p)
}

// appendTools writes tools and tool_choice. parallel_tool_calls=false
// becomes tool_choice.disable_parallel_tool_use, which is where Anthropic
// keeps that switch.
func appendTools(dst []byte, tools, choice, parallel gjson.Result) ([]byte, error) {
	n := 0
	var err error
	if tools.Exists() && tools.Type != gjson.Null && !tools.IsArray() {
		return nil, api.InvalidRequest("tools", "tools must be an array")
	}
	tools.ForEach(func(_, t gjson.Result) bool {
		p := "tools[" + strconv.Itoa(n) + "]"
		if typ := t.Get("type").Str; typ != "function" {
			err = api.InvalidRequest(p+".type", "%s.type: tool type %q is not supported by Anthropic models", p, typ)
			return false
		}
		name := t.Get("function.name")
		if name.Type != gjson.String || name.Str == "" {
			err = api.InvalidRequest(p+".function.name", "%s.function.name must be a non-empty string", p)
			return false
		}
		if n == 0 {
			dst = append(dst, `,"tools":[`...)
		} else {
			dst = append(dst, ',')
		}
		n++
		dst = append(dst, `{"name":`...)
		dst = append(dst, name.Raw...)
		if d := t.Get("function.description"); d.Type == gjson.String && d.Str != "" {
			dst = append(dst, `,"description":`...)
			dst = append(dst, d.Raw...)
		}
		dst = append(dst, `,"input_schema":`...)
		if params := t.Get("function.parameters"); params.IsObject() {
			dst = chatreq.AppendCompact(dst, params.Raw)
		} else {
			// Anthropic requires a schema; a function without parameters
			// takes an empty object.
			dst = append(dst, `{"type":"object","properties":{}}`...)
		}
		if cc := t.Get("cache_control"); cc.IsObject() {
			dst = append(dst, `,"cache_control":`...)
			dst = chatreq.AppendCompact(dst, cc.Raw)
		}
		dst = append(dst, '}')
		return true
	})
	if err != nil {
		return nil, err
	}
	if n > 0 {
		dst = append(dst, ']')
	}

	disableParallel := parallel.Type == gjson.False
	typ, name, err := chatreq.ToolChoice(choice, chatreq.ToolModes{Auto: "auto", Required: "any", None: "none", Function: "tool"})
	if err != nil {
		return nil, err
	}
	// Anthropic rejects tool_choice without tools, and "auto" is its default.
	if n == 0 || typ == "auto" && !disableParallel {
		return dst, nil
	}
	dst = append(dst, `,"tool_choice":{"type":"`...)
	dst = append(dst, typ...)
	dst = append(dst, '"')
	if name != "" {
		dst = append(dst, `,"name":`...)
		dst = append(dst, name...)
	}
	if disableParallel && typ != "none" {
		dst = append(dst, `,"disable_parallel_tool_use":true`...)
	}
	return append(dst, '}'), nil
}

// appendText writes a text block; raw is the JSON string literal as the
// client sent it, copied without unescaping.
func appendText(dst []byte, raw string, cacheControl gjson.Result) []byte {
	dst = append(dst, `{"type":"text","text":`...)
	dst = append(dst, raw...)
	if cacheControl.IsObject() {
		dst = append(dst, `,"cache_control":`...)
		dst = chatreq.AppendCompact(dst, cacheControl.Raw)
	}
	return append(dst, '}')
}

// appendTextBlock is appendText inside an array that may already hold blocks.
func appendTextBlock(dst []byte, first *bool, raw string, cacheControl gjson.Result) []byte {
	if !*first {
		dst = append(dst, ',')
	}
	*first = false
	return appendText(dst, raw, cacheControl)
}
