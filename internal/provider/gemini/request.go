package gemini

import (
	"github.com/edge-agent/edge-agent/internal/provider/chatreq"

	"path"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
)

// TranslateRequest turns an OpenAI chat completion request into a Gemini
// generateContent request (the model and the stream flag travel in the
// URL, not the body). Input Gemini cannot express is an *api.Error 400
// naming the field at fault.
//
// Differences worth knowing:
//   - system and developer messages become systemInstruction wherever they
//     appear in the conversation;
//   - assistant turns are role "model"; consecutive messages of one role
//     are merged into one turn, so the answers to parallel tool calls
//     travel together as Gemini wants them;
//   - a tool message becomes a functionResponse named after the call its
//     tool_call_id answers (found in the conversation); a JSON object
//     content is the response itself, anything else is {"content": text};
//   - images are inlineData (base64 data URLs) or fileData (gs:// and
//     https URLs, with the MIME type their extension gives);
//   - JSON schemas (tool parameters, response_format) are rewritten to
//     Gemini's Schema subset: type arrays become type + nullable, const
//     becomes a one-value enum, keywords Gemini does not know
//     (additionalProperties, $schema, strict...) are dropped; $ref is
//     refused, since dropping it would change the schema's meaning;
//   - reasoning_effort becomes thinkingConfig.thinkingBudget (none and
//     minimal 0, low 1024, medium 8192, high 24576, as Google's
//     OpenAI-compatible endpoint does);
//   - n > 1 is candidateCount (each candidate a choice); on streams it is
//     refused, as are logprobs;
//   - parallel_tool_calls, user and logit_bias have no Gemini field and are
//     dropped.
func TranslateRequest(openAIBody []byte) ([]byte, error) {
	stream := gjson.GetBytes(openAIBody, "stream").Type == gjson.True
	return translateRequest(make([]byte, 0, len(openAIBody)+256), openAIBody, stream)
}

func translateRequest(dst, body []byte, stream bool) ([]byte, error) {
	var f chatreq.Fields
	err := f.Parse(body)
	if err != nil {
		return nil, err
	}
	if f.N.Type == gjson.Number && f.N.Int() > 1 && stream {
		return nil, api.InvalidRequest("n", "n > 1 is not supported on streams by the gateway's Gemini adapter")
	}
	if f.Logprobs.Type == gjson.True {
		return nil, api.InvalidRequest("logprobs", "logprobs are not supported by the gateway's Gemini adapter")
	}
	if !f.Messages.IsArray() {
		return nil, api.InvalidRequest("messages", "messages must be an array of message objects")
	}

	dst = append(dst, '{')
	if dst, err = appendContents(dst, f.Messages); err != nil {
		return nil, err
	}
	if dst, err = appendSystem(dst, f.Messages); err != nil {
		return nil, err
	}
	if dst, err = appendTools(dst, f.Tools, f.ToolChoice); err != nil {
		return nil, err
	}
	if dst, err = appendGenerationConfig(dst, &f); err != nil {
		return nil, err
	}
	return append(dst, '}'), nil
}

// turnWriter writes chat messages as Gemini contents (chatreq.WriteMessages).
type turnWriter struct {
	chatreq.Turns
	messages gjson.Result // all of them: a tool result names its call's function
}

func appendContents(dst []byte, messages gjson.Result) ([]byte, error) {
	w := turnWriter{Turns: chatreq.NewTurns(append(dst, `"contents":[`...), "parts"), messages: messages}
	if err := chatreq.WriteMessages(&w.Turns, messages, "Gemini models", w.user, w.assistant, w.tool); err != nil {
		return nil, err
	}
	return w.Dst, nil
}

func (w *turnWriter) user(c gjson.Result, i int) error {
	return chatreq.EachUserPart(c, i, "Gemini models", func(p chatreq.Part, j int) (ok bool, err error) {
		switch p.Type.Str {
		case "text":
			w.Item("user")
			w.Dst = appendText(w.Dst, p.Text.Raw)
		case "image_url":
			w.Item("user")
			w.Dst, err = appendImage(w.Dst, p.ImageURL, i, j)
		case "input_audio":
			w.Item("user")
			w.Dst, err = appendAudio(w.Dst, p.InputAudio, i, j)
		default:
			return false, nil
		}
		return true, err
	})
}

func (w *turnWriter) assistant(m chatreq.Message, i int) error {
	err := chatreq.EachAssistantText(m.Content, i, "Gemini models", func(text, _ gjson.Result) {
		w.Item("model")
		w.Dst = appendText(w.Dst, text.Raw)
	})
	if err != nil {
		return err
	}
	return chatreq.EachToolCall(m.ToolCalls, i, false, func(tc chatreq.ToolCall) {
		w.Item("model")
		w.Dst = append(w.Dst, `{"functionCall":{"name":`...)
		w.Dst = append(w.Dst, tc.Name.Raw...)
		w.Dst = append(w.Dst, `,"args":`...)
		w.Dst = chatreq.AppendCompact(w.Dst, tc.Input)
		w.Dst = append(w.Dst, "}}"...)
	})
}

// toolResult writes a functionResponse part. Gemini names the function a
// response answers, where OpenAI gives the call's id: the name is that of
// the assistant tool call with the id.
func (w *turnWriter) tool(m chatreq.Message, i int) error {
	messages := w.messages
	id := m.ToolCallID
	if id.Type != gjson.String || id.Str == "" {
		return api.InvalidRequest(chatreq.MsgParam(i)+".tool_call_id", "%s.tool_call_id must be a non-empty string", chatreq.MsgParam(i))
	}
	name := callName(messages, id.Str, i)
	if name.Type != gjson.String || name.Str == "" {
		return api.InvalidRequest(chatreq.MsgParam(i)+".tool_call_id",
			"%s.tool_call_id %q answers no earlier assistant tool call (Gemini needs the function's name)", chatreq.MsgParam(i), id.Str)
	}
	var text strings.Builder
	c := m.Content
	switch {
	case c.Type == gjson.String:
		text.WriteString(c.Str)
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
			text.WriteString(p.Text.Str)
			return true
		})
		if err != nil {
			return err
		}
	}
	w.Item("user")
	w.Dst = append(w.Dst, `{"functionResponse":{"name":`...)
	w.Dst = append(w.Dst, name.Raw...)
	w.Dst = append(w.Dst, `,"response":`...)
	if t := strings.TrimSpace(text.String()); gjson.Valid(t) && gjson.Parse(t).IsObject() {
		w.Dst = chatreq.AppendCompact(w.Dst, t)
	} else {
		w.Dst = append(w.Dst, `{"content":`...)
		w.Dst = api.AppendString(w.Dst, text.String())
		w.Dst = append(w.Dst, '}')
	}
	w.Dst = append(w.Dst, "}}"...)
	return nil
}

// callName finds the function name of tool call id among the assistant
// messages before message before.
func callName(messages gjson.Result, id string, before int) gjson.Result {
	var name gjson.Result
	i := -1
	messages.ForEach(func(_, m gjson.Result) bool {
		i++
		if i >= before {
			return false
		}
		if m.Get("role").Str != "assistant" {
			return true
		}
		m.Get("tool_calls").ForEach(func(_, tc gjson.Result) bool {
			if tc.Get("id").Str == id {
				name = tc.Get("function.name")
			}
			return true
		})
		return true
	})
	return name
}

// appendSystem writes the system and developer messages as
// systemInstruction, one text part each.
func appendSystem(dst []byte, messages gjson.Result) ([]byte, error) {
	mark := len(dst)
	dst = append(dst, `,"systemInstruction":{"parts":[`...)
	first := true
	var err error
	i := -1
	messages.ForEach(func(_, m gjson.Result) bool {
		i++
		f := chatreq.ParseMessage(m)
		if r := f.Role.Str; r != "system" && r != "developer" {
			return true
		}
		c := f.Content
		switch {
		case c.Type == gjson.String:
			if c.Str != "" {
				dst = appendTextPart(dst, &first, c.Raw)
			}
		case c.IsArray():
			j := -1
			c.ForEach(func(_, v gjson.Result) bool {
				j++
				p := chatreq.ParsePart(v)
				if p.Type.Str != "text" {
					err = api.InvalidRequest(chatreq.ContentParam(i, j)+".type",
						"%s.type: system messages may only contain text parts", chatreq.ContentParam(i, j))
					return false
				}
				if p.Text.Str != "" {
					dst = appendTextPart(dst, &first, p.Text.Raw)
				}
				return true
			})
		}
		return err == nil
	})
	if err != nil {
		return nil, err
	}
	if first { // no system text: send no systemInstruction at all
		return dst[:mark], nil
	}
	return append(dst, "]}"...), nil
}

// imageTypes are the MIME types of image URLs, by extension.
var imageTypes = map[string]string{
	".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp",
	".gif": "image/gif", ".heic": "image/heic", ".heif": "image/heif",
}

// appendImage writes an image_url part: data URLs as inlineData, gs:// and
// http(s) URLs as fileData.
func appendImage(dst []byte, imageURL gjson.Result, i, j int) ([]byte, error) {
	u := imageURL
	if u.IsObject() {
		u = u.Get("url")
	} // else some clients send the URL as a plain string
	p := chatreq.ContentParam(i, j) + ".image_url.url"
	if u.Type != gjson.String || u.Str == "" {
		return nil, api.InvalidRequest(p, "%s must be a non-empty string", p)
	}
	s := u.Str
	if strings.HasPrefix(s, "data:") {
		meta, data, ok := strings.Cut(s[len("data:"):], ",")
		mediaType, isBase64 := strings.CutSuffix(meta, ";base64")
		if !ok || !isBase64 || !strings.HasPrefix(mediaType, "image/") || data == "" {
			return nil, api.InvalidRequest(p, "%s: data URLs must look like data:image/<type>;base64,<data>", p)
		}
		return appendInline(dst, mediaType, data), nil
	}
	if strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "gs://") {
		clean := s
		if k := strings.IndexAny(clean, "?#"); k >= 0 {
			clean = clean[:k]
		}
		mime, ok := imageTypes[strings.ToLower(path.Ext(clean))]
		if !ok {
			return nil, api.InvalidRequest(p, "%s: the image type cannot be told from the URL (use .png, .jpg, .webp, .gif, .heic or a base64 data URL)", p)
		}
		dst = append(dst, `{"fileData":{"mimeType":"`...)
		dst = append(dst, mime...)
		dst = append(dst, `","fileUri":`...)
		dst = append(dst, u.Raw...)
		return append(dst, "}}"...), nil
	}
	return nil, api.InvalidRequest(p, "%s must be a gs:// or http(s) URL or a base64 data URL", p)
}

// appendAudio writes an input_audio part ({"data": base64, "format": wav|mp3}) as inlineData.
func appendAudio(dst []byte, audio gjson.Result, i, j int) ([]byte, error) {
	p := chatreq.ContentParam(i, j) + ".input_audio"
	data, format := audio.Get("data"), audio.Get("format").Str
	if data.Type != gjson.String || data.Str == "" {
		return nil, api.InvalidRequest(p+".data", "%s.data must be a non-empty base64 string", p)
	}
	switch format {
	case "wav", "mp3":
	default:
		return nil, api.InvalidRequest(p+".format", "%s.format must be wav or mp3", p)
	}
	return appendInline(dst, "audio/"+format, data.Str), nil
}

func appendInline(dst []byte, mime, data string) []byte {
	dst = append(dst, `{"inlineData":{"mimeType":`...)
	dst = api.AppendString(dst, mime)
	dst = append(dst, `,"data":`...)
	dst = api.AppendString(dst, data)
	return append(dst, "}}"...)
}

// appendTools writes tools as functionDeclarations and tool_choice as
// toolConfig.functionCallingConfig.
func appendTools(dst []byte, tools, choice gjson.Result) ([]byte, error) {
	if tools.Exists() && tools.Type != gjson.Null && !tools.IsArray() {
		return nil, api.InvalidRequest("tools", "tools must be an array")
	}
	n := 0
	var err error
	tools.ForEach(func(_, t gjson.Result) bool {
		p := "tools[" + strconv.Itoa(n) + "]"
		if typ := t.Get("type").Str; typ != "function" {
			err = api.InvalidRequest(p+".type", "%s.type: tool type %q is not supported by Gemini models", p, typ)
			return false
		}
		name := t.Get("function.name")
		if name.Type != gjson.String || name.Str == "" {
			err = api.InvalidRequest(p+".function.name", "%s.function.name must be a non-empty string", p)
			return false
		}
		if n == 0 {
			dst = append(dst, `,"tools":[{"functionDeclarations":[`...)
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
		if params := t.Get("function.parameters"); params.IsObject() && !emptyObjectSchema(params) {
			dst = append(dst, `,"parameters":`...)
			if dst, err = appendSchema(dst, params, p+".function.parameters"); err != nil {
				return false
			}
		}
		dst = append(dst, '}')
		return true
	})
	if err != nil {
		return nil, err
	}
	if n > 0 {
		dst = append(dst, "]}]"...)
	}

	mode, name, err := chatreq.ToolChoice(choice, chatreq.ToolModes{Auto: "AUTO", Required: "ANY", None: "NONE", Function: "ANY"})
	if err != nil {
		return nil, err
	}
	// AUTO is Gemini's default, and a toolConfig without tools says nothing.
	if n == 0 || mode == "AUTO" {
		return dst, nil
	}
	dst = append(dst, `,"toolConfig":{"functionCallingConfig":{"mode":"`...)
	dst = append(dst, mode...)
	dst = append(dst, '"')
	if name != "" {
		dst = append(dst, `,"allowedFunctionNames":[`...)
		dst = append(dst, name...)
		dst = append(dst, ']')
	}
	return append(dst, "}}"...), nil
}

// emptyObjectSchema reports {"type":"object"} or {"type":"object",
// "properties":{}}: a function without parameters, which Gemini wants
// declared without a parameters schema.
func emptyObjectSchema(s gjson.Result) bool {
	props := s.Get("properties")
	return s.Get("type").Str == "object" && (!props.Exists() || props.IsObject() && len(props.Map()) == 0) &&
		!s.Get("anyOf").Exists()
}

// appendGenerationConfig writes generationConfig from the sampling,
// length, stop and response_format fields, or nothing when none is set.
func appendGenerationConfig(dst []byte, f *chatreq.Fields) ([]byte, error) {
	mark := len(dst)
	dst = append(dst, `,"generationConfig":{`...)
	start := len(dst)
	num := func(key string, v gjson.Result, param string) error {
		switch v.Type {
		case gjson.Null:
			return nil
		case gjson.Number:
			if len(dst) > start {
				dst = append(dst, ',')
			}
			dst = append(dst, '"')
			dst = append(dst, key...)
			dst = append(dst, `":`...)
			dst = append(dst, v.Raw...)
			return nil
		}
		return api.InvalidRequest(param, "%s must be a number", param)
	}
	var candidates gjson.Result // n > 1 only: one candidate is Gemini's default
	if f.N.Type == gjson.Number && f.N.Int() > 1 {
		candidates = f.N
	} else if f.N.Exists() && f.N.Type != gjson.Null && f.N.Type != gjson.Number {
		return nil, api.InvalidRequest("n", "n must be a number")
	}
	maxTokens := f.MaxTokens
	if f.MaxCompletion.Exists() && f.MaxCompletion.Type != gjson.Null {
		maxTokens = f.MaxCompletion
	}
	for _, n := range [...]struct {
		key   string
		v     gjson.Result
		param string
	}{
		{"temperature", f.Temperature, "temperature"}, {"topP", f.TopP, "top_p"}, {"topK", f.TopK, "top_k"},
		{"maxOutputTokens", maxTokens, "max_tokens"}, {"seed", f.Seed, "seed"},
		{"presencePenalty", f.Presence, "presence_penalty"}, {"frequencyPenalty", f.Frequency, "frequency_penalty"},
		{"candidateCount", candidates, "n"},
	} {
		if err := num(n.key, n.v, n.param); err != nil {
			return nil, err
		}
	}
	dst, err := chatreq.AppendStop(dst, "stopSequences", len(dst) > start, f.Stop)
	if err != nil {
		return nil, err
	}
	if dst, err = appendResponseFormat(dst, start, f.Format); err != nil {
		return nil, err
	}
	if dst, err = appendThinking(dst, start, f.Effort); err != nil {
		return nil, err
	}
	if len(dst) == start {
		return dst[:mark], nil
	}
	return append(dst, '}'), nil
}

// appendResponseFormat writes responseMimeType (and responseSchema) for
// response_format json_object and json_schema.
func appendResponseFormat(dst []byte, start int, format gjson.Result) ([]byte, error) {
	if !format.Exists() || format.Type == gjson.Null {
		return dst, nil
	}
	switch typ := format.Get("type").Str; typ {
	case "text":
		return dst, nil
	case "json_object", "json_schema":
		if len(dst) > start {
			dst = append(dst, ',')
		}
		dst = append(dst, `"responseMimeType":"application/json"`...)
		if typ == "json_object" {
			return dst, nil
		}
		schema := format.Get("json_schema.schema")
		if !schema.IsObject() {
			return nil, api.InvalidRequest("response_format.json_schema.schema", "response_format.json_schema.schema must be a JSON Schema object")
		}
		dst = append(dst, `,"responseSchema":`...)
		return appendSchema(dst, schema, "response_format.json_schema.schema")
	default:
		return nil, api.InvalidRequest("response_format.type", "response_format.type %q is not one of text, json_object, json_schema", typ)
	}
}

// thinkingBudgets are the thinking budgets of OpenAI's reasoning_effort
// values, as Google's own OpenAI-compatible endpoint maps them.
var thinkingBudgets = map[string]string{"none": "0", "minimal": "0", "low": "1024", "medium": "8192", "high": "24576"}

// appendThinking writes reasoning_effort as thinkingConfig.thinkingBudget.
func appendThinking(dst []byte, start int, effort gjson.Result) ([]byte, error) {
	if !effort.Exists() || effort.Type == gjson.Null {
		return dst, nil
	}
	budget, ok := thinkingBudgets[effort.Str]
	if effort.Type != gjson.String || !ok {
		return nil, api.InvalidRequest("reasoning_effort", "reasoning_effort must be one of none, minimal, low, medium, high")
	}
	if len(dst) > start {
		dst = append(dst, ',')
	}
	dst = append(dst, `"thinkingConfig":{"thinkingBudget":`...)
	dst = append(dst, budget...)
	return append(dst, '}'), nil
}

// schemaKeys are the keywords of Gemini's Schema object kept as they are.
var schemaKeys = map[string]bool{
	"format": true, "title": true, "description": true, "nullable": true,
	"required": true, "minItems": true, "maxItems": true, "minimum": true, "maximum": true,
	"minLength": true, "maxLength": true, "pattern": true, "minProperties": true, "maxProperties": true,
	"propertyOrdering": true, "default": true, "example": true,
}

// appendSchema writes a JSON Schema as Gemini's Schema subset (see
// TranslateRequest).
func appendSchema(dst []byte, s gjson.Result, param string) ([]byte, error) {
	if !s.IsObject() {
		return nil, api.InvalidRequest(param, "%s must be a JSON Schema object", param)
	}
	dst = append(dst, '{')
	first := true
	key := func(k string) {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = api.AppendString(dst, k)
		dst = append(dst, ':')
	}
	var err error
	nullable, typed := false, s.Get("type").Exists()
	s.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "$ref":
			err = api.InvalidRequest(param, "%s: $ref is not supported by Gemini's response and parameter schemas; inline the definition", param)
		case "type":
			if v.IsArray() {
				var t gjson.Result
				v.ForEach(func(_, e gjson.Result) bool {
					if e.Str == "null" {
						nullable = true
					} else if !t.Exists() {
						t = e
					}
					return true
				})
				if t.Exists() {
					key("type")
					dst = append(dst, t.Raw...)
				}
			} else {
				key("type")
				dst = append(dst, v.Raw...)
			}
		case "const":
			// Gemini's enum is a list of strings of a string-typed schema.
			if !typed && v.Type == gjson.String {
				key("type")
				dst = append(dst, `"string"`...)
			}
			key("enum")
			dst = append(dst, '[')
			dst = chatreq.AppendCompact(dst, v.Raw)
			dst = append(dst, ']')
		case "enum":
			if !v.IsArray() {
				return true
			}
			// null in an enum is nullable to Gemini.
			key("enum")
			dst = append(dst, '[')
			n := 0
			v.ForEach(func(_, e gjson.Result) bool {
				if e.Type == gjson.Null {
					nullable = true
					return true
				}
				if n > 0 {
					dst = append(dst, ',')
				}
				n++
				dst = chatreq.AppendCompact(dst, e.Raw)
				return true
			})
			dst = append(dst, ']')
		case "properties":
			if !v.IsObject() {
				return true
			}
			key("properties")
			dst = append(dst, '{')
			n := 0
			v.ForEach(func(pk, pv gjson.Result) bool {
				if n > 0 {
					dst = append(dst, ',')
				}
				n++
				dst = append(dst, pk.Raw...)
				dst = append(dst, ':')
				dst, err = appendSchema(dst, pv, param+".properties."+pk.Str)
				return err == nil
			})
			dst = append(dst, '}')
		case "items":
			key("items")
			dst, err = appendSchema(dst, v, param+".items")
		case "anyOf":
			if !v.IsArray() {
				return true
			}
			key("anyOf")
			dst = append(dst, '[')
			n := 0
			v.ForEach(func(_, e gjson.Result) bool {
				if n > 0 {
					dst = append(dst, ',')
				}
				dst, err = appendSchema(dst, e, param+".anyOf["+strconv.Itoa(n)+"]")
				n++
				return err == nil
			})
			dst = append(dst, ']')
		default:
			if schemaKeys[k.Str] {
				if k.Str == "nullable" {
					nullable = nullable || v.Type == gjson.True
					return true
				}
				key(k.Str)
				dst = chatreq.AppendCompact(dst, v.Raw)
			}
		}
		return err == nil
	})
	if err != nil {
		return nil, err
	}
	if nullable {
		key("nullable")
		dst = append(dst, "true"...)
	}
	return append(dst, '}'), nil
}

// appendText writes a text part; raw is the JSON string literal as the
// client sent it, copied without unescaping.
func appendText(dst []byte, raw string) []byte {
	dst = append(dst, `{"text":`...)
	dst = append(dst, raw...)
	return append(dst, '}')
}

func appendTextPart(dst []byte, first *bool, raw string) []byte {
	if !*first {
		dst = append(dst, ',')
	}
	*first = false
	return appendText(dst, raw)
}
