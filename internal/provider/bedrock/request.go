package bedrock

import (
	"github.com/edge-agent/edge-agent/internal/provider/chatreq"

	"encoding/base64"
	"io"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
)

// TranslateRequest turns an OpenAI chat completion request into the body
// of a Bedrock Converse (or ConverseStream: the body is the same, the path
// differs) call. The model id travels in the URL, not the body. Input
// Converse cannot express is an *api.Error 400 naming the field at fault.
//
// Differences worth knowing:
//   - system and developer messages become the top-level system blocks
//     wherever they appear in the conversation;
//   - consecutive messages of one role are merged into one turn, since
//     Converse wants user and assistant turns to alternate (tool results
//     are user content and merge with the user turn around them);
//   - a part's cache_control (the Anthropic extension some clients send)
//     becomes a cachePoint block after it, in system, messages and tools;
//   - images must be base64 data URLs: Converse takes image bytes, not
//     URLs, and the gateway does not fetch them;
//   - temperature is clamped to 1, the top of Converse's range;
//   - tool_choice "none" drops the tools, unless the conversation already
//     holds tool calls (Converse then requires toolConfig) and they are
//     sent with the model's default choice;
//   - an empty tool result is sent as "(empty)": Converse rejects blank text;
//   - response_format, seed, penalties, logit_bias, user and
//     parallel_tool_calls have no Converse equivalent and are dropped; n > 1
//     and logprobs are refused, because dropping them would return
//     something other than what was asked for.
func TranslateRequest(openAIBody []byte) ([]byte, error) {
	return translateRequest(make([]byte, 0, len(openAIBody)+256), openAIBody)
}

func translateRequest(dst, body []byte) ([]byte, error) {
	var f chatreq.Fields
	err := f.Parse(body)
	if err != nil {
		return nil, err
	}
	if f.N.Type == gjson.Number && f.N.Int() > 1 {
		return nil, api.InvalidRequest("n", "n > 1 is not supported by Bedrock models")
	}
	if f.Logprobs.Type == gjson.True {
		return nil, api.InvalidRequest("logprobs", "logprobs are not supported by Bedrock models")
	}
	if !f.Messages.IsArray() {
		return nil, api.InvalidRequest("messages", "messages must be an array of message objects")
	}

	dst = append(dst, '{')
	var hasToolBlocks bool
	if dst, hasToolBlocks, err = appendMessages(dst, f.Messages); err != nil {
		return nil, err
	}
	if dst, err = appendSystem(dst, f.Messages); err != nil {
		return nil, err
	}
	if dst, err = appendInference(dst, &f); err != nil {
		return nil, err
	}
	if dst, err = appendTools(dst, f.Tools, f.ToolChoice, hasToolBlocks); err != nil {
		return nil, err
	}
	return append(dst, '}'), nil
}

// appendInference writes inferenceConfig: maxTokens, temperature, topP,
// stopSequences; nothing when the client set none of them.
func appendInference(dst []byte, f *chatreq.Fields) ([]byte, error) {
	mark := len(dst)
	dst = append(dst, `,"inferenceConfig":{`...)
	start := len(dst)
	sep := func() {
		if len(dst) > start {
			dst = append(dst, ',')
		}
	}
	mt := f.MaxTokens
	if f.MaxCompletion.Type == gjson.Number {
		mt = f.MaxCompletion
	}
	switch mt.Type {
	case gjson.Null:
	case gjson.Number:
		if mt.Int() < 1 {
			return nil, api.InvalidRequest("max_tokens", "max_tokens must be at least 1")
		}
		sep()
		dst = append(dst, `"maxTokens":`...)
		dst = strconv.AppendInt(dst, mt.Int(), 10)
	default:
		return nil, api.InvalidRequest("max_tokens", "max_tokens must be an integer")
	}
	switch f.Temperature.Type {
	case gjson.Null:
	case gjson.Number:
		sep()
		dst = append(dst, `"temperature":`...)
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
		sep()
		dst = append(dst, `"topP":`...)
		dst = append(dst, f.TopP.Raw...)
	default:
		return nil, api.InvalidRequest("top_p", "top_p must be a number")
	}
	dst, err := chatreq.AppendStop(dst, "stopSequences", len(dst) > start, f.Stop)
	if err != nil {
		return nil, err
	}
	if len(dst) == start {
		return dst[:mark], nil
	}
	return append(dst, '}'), nil
}

// appendSystem writes the system and developer messages as system blocks.
func appendSystem(dst []byte, messages gjson.Result) ([]byte, error) {
	mark := len(dst)
	dst = append(dst, `,"system":[`...)
	first := true
	err := chatreq.EachSystemText(messages, func(text, cacheControl gjson.Result) {
		dst = appendTextBlock(dst, &first, text.Raw, cacheControl)
	})
	if err != nil {
		return nil, err
	}
	if first { // no system text at all
		return dst[:mark], nil
	}
	return append(dst, ']'), nil
}

// turnWriter writes chat messages as Converse turns (chatreq.WriteMessages).
type turnWriter struct {
	chatreq.Turns
	tools bool // a toolUse or toolResult block was written
}

// text writes a text block and, for a part marked with cache_control, the
// cache point after it.
func (w *turnWriter) text(role, raw string, cacheControl gjson.Result) {
	w.Item(role)
	w.Dst = appendText(w.Dst, raw)
	if cacheControl.IsObject() {
		w.Item(role)
		w.Dst = append(w.Dst, cachePoint...)
	}
}

const cachePoint = `{"cachePoint":{"type":"default"}}`

func appendMessages(dst []byte, messages gjson.Result) ([]byte, bool, error) {
	w := turnWriter{Turns: chatreq.NewTurns(append(dst, `"messages":[`...), "content")}
	if err := chatreq.WriteMessages(&w.Turns, messages, "Bedrock models", w.user, w.assistant, w.tool); err != nil {
		return nil, false, err
	}
	return w.Dst, w.tools, nil
}

func (w *turnWriter) user(c gjson.Result, i int) error {
	return chatreq.EachUserPart(c, i, "Bedrock models", func(p chatreq.Part, j int) (ok bool, err error) {
		switch p.Type.Str {
		case "text":
			w.text("user", p.Text.Raw, p.CacheControl)
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
	err := chatreq.EachAssistantText(m.Content, i, "Bedrock models", func(text, cacheControl gjson.Result) {
		w.text("assistant", text.Raw, cacheControl)
	})
	if err != nil {
		return err
	}
	return chatreq.EachToolCall(m.ToolCalls, i, true, func(tc chatreq.ToolCall) {
		w.Item("assistant")
		w.tools = true
		w.Dst = append(w.Dst, `{"toolUse":{"toolUseId":`...)
		w.Dst = append(w.Dst, tc.ID.Raw...)
		w.Dst = append(w.Dst, `,"name":`...)
		w.Dst = append(w.Dst, tc.Name.Raw...)
		w.Dst = append(w.Dst, `,"input":`...)
		w.Dst = chatreq.AppendCompact(w.Dst, tc.Input)
		w.Dst = append(w.Dst, "}}"...)
	})
}

func (w *turnWriter) tool(m chatreq.Message, i int) error {
	id := m.ToolCallID
	if id.Type != gjson.String || id.Str == "" {
		return api.InvalidRequest(chatreq.MsgParam(i)+".tool_call_id", "%s.tool_call_id must be a non-empty string", chatreq.MsgParam(i))
	}
	w.Item("user")
	w.tools = true
	w.Dst = append(w.Dst, `{"toolResult":{"toolUseId":`...)
	w.Dst = append(w.Dst, id.Raw...)
	w.Dst = append(w.Dst, `,"content":[`...)
	first := true
	c := m.Content
	switch {
	case c.Type == gjson.String:
		if c.Str != "" {
			w.Dst = appendTextBlock(w.Dst, &first, c.Raw, gjson.Result{})
		}
	case c.IsArray():
		var err error
		j := -1
		c.ForEach(func(_, v gjson.Result) bool {
			j++
			p := chatreq.ParsePart(v)
			if p.Type.Str != "text" {
				err = api.InvalidRequest(chatreq.ContentParam(i, j)+".type", "%s.type: tool messages may only contain text parts", chatreq.ContentParam(i, j))
				return false
			}
			if p.Text.Str != "" {
				w.Dst = appendTextBlock(w.Dst, &first, p.Text.Raw, gjson.Result{})
			}
			return true
		})
		if err != nil {
			return err
		}
	}
	if first {
		w.Dst = append(w.Dst, `{"text":"(empty)"}`...)
	}
	w.Dst = append(w.Dst, "]}}"...)
	return nil
}

// imageFormat is Converse's image format for a media type, "" for one it
// does not take.
func imageFormat(mediaType string) string {
	switch mediaType {
	case "image/png":
		return "png"
	case "image/jpeg", "image/jpg":
		return "jpeg"
	case "image/gif":
		return "gif"
	case "image/webp":
		return "webp"
	}
	return ""
}

// appendImage writes an image_url part, a base64 data URL, as a Converse
// image block. The JSON protocol carries blobs as base64, so the data is
// copied as it came once it is known to decode.
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
	if !strings.HasPrefix(url, "data:") {
		return nil, api.InvalidRequest(p, "%s: Bedrock models take images as base64 data URLs (data:image/png;base64,...), not links", p)
	}
	meta, data, ok := strings.Cut(url[len("data:"):], ",")
	mediaType, isBase64 := strings.CutSuffix(meta, ";base64")
	if !ok || !isBase64 || data == "" {
		return nil, api.InvalidRequest(p, "%s: data URLs must look like data:image/<type>;base64,<data>", p)
	}
	format := imageFormat(mediaType)
	if format == "" {
		return nil, api.InvalidRequest(p, "%s: image type %q is not one of png, jpeg, gif, webp", p, mediaType)
	}
	// Checked as a stream, so a large image is not decoded into memory.
	if _, err := io.Copy(io.Discard, base64.NewDecoder(base64.StdEncoding, strings.NewReader(data))); err != nil {
		return nil, api.InvalidRequest(p, "%s: the data URL's data is not valid base64", p)
	}
	dst = append(dst, `{"image":{"format":"`...)
	dst = append(dst, format...)
	dst = append(dst, `","source":{"bytes":`...)
	dst = api.AppendString(dst, data)
	return append(dst, "}}}"...), nil
}

// appendTools writes toolConfig: the tools as toolSpecs and tool_choice.
func appendTools(dst []byte, tools, choice gjson.Result, history bool) ([]byte, error) {
	if tools.Exists() && tools.Type != gjson.Null && !tools.IsArray() {
		return nil, api.InvalidRequest("tools", "tools must be an array")
	}
	typ, name, err := chatreq.ToolChoice(choice, chatreq.ToolModes{Auto: "auto", Required: "any", None: "none", Function: "tool"})
	if err != nil {
		return nil, err
	}

	mark := len(dst)
	dst = append(dst, `,"toolConfig":{"tools":[`...)
	n := 0
	tools.ForEach(func(_, t gjson.Result) bool {
		p := "tools[" + strconv.Itoa(n) + "]"
		if typ := t.Get("type").Str; typ != "function" {
			err = api.InvalidRequest(p+".type", "%s.type: tool type %q is not supported by Bedrock models", p, typ)
			return false
		}
		name := t.Get("function.name")
		if name.Type != gjson.String || name.Str == "" {
			err = api.InvalidRequest(p+".function.name", "%s.function.name must be a non-empty string", p)
			return false
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		dst = append(dst, `{"toolSpec":{"name":`...)
		dst = append(dst, name.Raw...)
		if d := t.Get("function.description"); d.Type == gjson.String && d.Str != "" {
			dst = append(dst, `,"description":`...)
			dst = append(dst, d.Raw...)
		}
		dst = append(dst, `,"inputSchema":{"json":`...)
		if params := t.Get("function.parameters"); params.IsObject() {
			dst = chatreq.AppendCompact(dst, params.Raw)
		} else {
			// Converse requires a schema; a function without parameters
			// takes an empty object.
			dst = append(dst, `{"type":"object","properties":{}}`...)
		}
		dst = append(dst, "}}}"...)
		if t.Get("cache_control").IsObject() {
			dst = append(dst, ',')
			dst = append(dst, cachePoint...)
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if n == 0 || typ == "none" && !history {
		return dst[:mark], nil
	}
	dst = append(dst, ']')
	switch typ {
	case "any":
		dst = append(dst, `,"toolChoice":{"any":{}}`...)
	case "tool":
		dst = append(dst, `,"toolChoice":{"tool":{"name":`...)
		dst = append(dst, name...)
		dst = append(dst, "}}"...)
	} // auto is Converse's default, and "none" with a tool history sends none
	return append(dst, '}'), nil
}

// appendText writes a text block; raw is the JSON string literal as the
// client sent it, copied without unescaping.
func appendText(dst []byte, raw string) []byte {
	dst = append(dst, `{"text":`...)
	dst = append(dst, raw...)
	return append(dst, '}')
}

// appendTextBlock is appendText inside an array that may already hold
// blocks, followed by a cache point when the part asks for one.
func appendTextBlock(dst []byte, first *bool, raw string, cacheControl gjson.Result) []byte {
	if !*first {
		dst = append(dst, ',')
	}
	*first = false
	dst = appendText(dst, raw)
	if cacheControl.IsObject() {
		dst = append(dst, ',')
		dst = append(dst, cachePoint...)
	}
	return dst
}
