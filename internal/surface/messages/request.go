package messages

import (
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/cost"
)

// Request is the gateway's view of a Messages request: the client's bytes,
// untouched, and the few fields the pipeline acts on. Everything else stays
// in Body and reaches an Anthropic upstream as sent.
type Request struct {
	Body      []byte
	Model     string
	Stream    bool
	MaxTokens int64 // required by the API, so always >= 1
	// InputTokens estimates the prompt (system, messages and tools) at
	// about four bytes per token, for limits and budgets before the
	// provider reports the real count.
	InputTokens int
}

// Parse validates body as a Messages request and returns its view. Every
// failure is an *api.Error 400 whose Param names the field at fault; the
// surface's WriteError renders it the Anthropic way. Like gjson.Get, Parse
// reads the first occurrence of a repeated key.
func Parse(body []byte, lim api.Limits) (*Request, error) {
	return parse(body, lim, true)
}

// ParseCountTokens validates body as a POST /v1/messages/count_tokens
// request: a Messages request without max_tokens (accepted and checked
// when present). Request.InputTokens is the estimate AppendCountTokens
// reports for upstreams that cannot count.
func ParseCountTokens(body []byte, lim api.Limits) (*Request, error) {
	return parse(body, lim, false)
}

func parse(body []byte, lim api.Limits, needMaxTokens bool) (*Request, error) {
	if len(body) == 0 {
		return nil, api.InvalidRequest("", "request body is empty; expected a JSON object")
	}
	if !utf8.Valid(body) {
		return nil, api.InvalidRequest("", "request body is not valid UTF-8")
	}
	// One walk checks the syntax and refuses repeated keys: the gateway
	// and the provider must read the same request (see api.CheckDuplicateKeys).
	if err := api.CheckDuplicateKeys(body); err != nil {
		if err.Param == "" { // syntax
			return nil, err
		}
		// Anthropic's messages start with the field at fault.
		return nil, api.InvalidRequest(err.Param, "%s: repeated key; each key may appear only once in an object", err.Param)
	}
	// Parse a read-only view of body rather than a copy; only the model
	// name outlives the call, and it is cloned (see api.ParseChatRequest).
	root := gjson.Parse(api.View(body))
	if !root.IsObject() {
		return nil, api.InvalidRequest("", "request body must be a JSON object")
	}
	req := &Request{Body: body}
	var perr *api.Error
	var seenModel, seenMessages, seenMaxTokens bool
	var model string
	promptBytes := 0
	root.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "model":
			if seenModel {
				break
			}
			seenModel = true
			if v.Type != gjson.String || v.Str == "" {
				perr = api.InvalidRequest("model", "model: must be a non-empty string")
			} else {
				perr = api.CheckModelName("model", v.Str)
			}
			model = v.Str
		case "max_tokens":
			if seenMaxTokens {
				break
			}
			seenMaxTokens = true
			if perr = checkInt(v, "max_tokens", 1, lim.MaxMaxTokens); perr == nil {
				req.MaxTokens = v.Int()
			}
		case "messages":
			if seenMessages {
				break
			}
			seenMessages = true
			perr = validateMessages(v, lim)
			promptBytes += len(v.Raw)
		case "system":
			perr = validateSystem(v)
			promptBytes += len(v.Raw)
		case "tools":
			perr = validateTools(v)
			promptBytes += len(v.Raw)
		case "tool_choice":
			perr = validateToolChoice(v)
		case "stream":
			if v.Type != gjson.Null && !v.IsBool() {
				perr = api.InvalidRequest("stream", "stream: must be a boolean")
			}
			req.Stream = v.Type == gjson.True
		case "temperature":
			perr = checkNumber(v, "temperature", 0, 1)
		case "top_p":
			perr = checkNumber(v, "top_p", 0, 1)
		case "top_k":
			if v.Type != gjson.Null {
				perr = checkInt(v, "top_k", 0, 0)
			}
		case "stop_sequences":
			perr = validateStrings(v, "stop_sequences")
		case "metadata":
			if v.Type != gjson.Null && !v.IsObject() {
				perr = api.InvalidRequest("metadata", "metadata: must be an object")
			} else if u := v.Get("user_id"); u.Exists() && u.Type != gjson.String && u.Type != gjson.Null {
				perr = api.InvalidRequest("metadata.user_id", "metadata.user_id: must be a string")
			}
		}
		return perr == nil
	})
	if perr != nil {
		return nil, perr
	}
	if !seenModel {
		return nil, api.InvalidRequest("model", "model: field required")
	}
	if !seenMaxTokens && needMaxTokens {
		return nil, api.InvalidRequest("max_tokens", "max_tokens: field required")
	}
	if !seenMessages {
		return nil, api.InvalidRequest("messages", "messages: field required")
	}
	req.Model = strings.Clone(model)
	req.InputTokens = cost.EstimateTokensOfLen(promptBytes)
	return req, nil
}

func checkNumber(v gjson.Result, param string, lo, hi float64) *api.Error {
	if v.Type == gjson.Null {
		return nil
	}
	if v.Type != gjson.Number {
		return api.InvalidRequest(param, "%s: must be a number", param)
	}
	if f := v.Float(); f < lo || f > hi {
		return api.InvalidRequest(param, "%s: must be between %g and %g, got %s", param, lo, hi, v.Raw)
	}
	return nil
}

// checkInt wants an integer in [lo, hi]; hi <= 0 means no upper bound.
func checkInt(v gjson.Result, param string, lo, hi int64) *api.Error {
	if v.Type != gjson.Number || v.Float() != float64(v.Int()) {
		return api.InvalidRequest(param, "%s: must be an integer", param)
	}
	if n := v.Int(); n < lo || (hi > 0 && n > hi) {
		if hi > 0 {
			return api.InvalidRequest(param, "%s: must be between %d and %d, got %d", param, lo, hi, n)
		}
		return api.InvalidRequest(param, "%s: must be at least %d, got %d", param, lo, n)
	}
	return nil
}

func validateStrings(v gjson.Result, param string) *api.Error {
	if v.Type == gjson.Null {
		return nil
	}
	if !v.IsArray() {
		return api.InvalidRequest(param, "%s: must be an array of strings", param)
	}
	var perr *api.Error
	i := 0
	v.ForEach(func(_, s gjson.Result) bool {
		if s.Type != gjson.String {
			p := param + "[" + itoa(i) + "]"
			perr = api.InvalidRequest(p, "%s: must be a string", p)
		}
		i++
		return perr == nil
	})
	return perr
}

func validateSystem(v gjson.Result) *api.Error {
	switch {
	case v.Type == gjson.String, v.Type == gjson.Null:
		return nil
	case !v.IsArray():
		return api.InvalidRequest("system", "system: must be a string or an array of text blocks")
	}
	var perr *api.Error
	i := 0
	v.ForEach(func(_, b gjson.Result) bool {
		p := func() string { return "system[" + itoa(i) + "]" } // built only for an error
		f := readBlock(b)
		switch {
		case !b.IsObject():
			perr = api.InvalidRequest(p(), "%s: must be an object", p())
		case f.typ.Str != "text":
			perr = api.InvalidRequest(p()+".type", "%s.type: system blocks must be text blocks", p())
		case f.text.Type != gjson.String:
			perr = api.InvalidRequest(p()+".text", "%s.text: must be a string", p())
		}
		i++
		return perr == nil
	})
	return perr
}

func validateMessages(v gjson.Result, lim api.Limits) *api.Error {
	if !v.IsArray() {
		return api.InvalidRequest("messages", "messages: must be an array of message objects")
	}
	var perr *api.Error
	i := 0
	v.ForEach(func(_, m gjson.Result) bool {
		perr = validateMessage(m, i)
		i++
		return perr == nil
	})
	if perr != nil {
		return perr
	}
	if i == 0 {
		return api.InvalidRequest("messages", "messages: must contain at least one message")
	}
	if lim.MaxMessages > 0 && i > lim.MaxMessages {
		return api.InvalidRequest("messages", "messages: too many messages: %d, the limit is %d", i, lim.MaxMessages)
	}
	return nil
}

func validateMessage(m gjson.Result, i int) *api.Error {
	if !m.IsObject() {
		p := msgParam(i)
		return api.InvalidRequest(p, "%s: must be an object", p)
	}
	var role, content gjson.Result
	m.ForEach(func(k, v gjson.Result) bool {
		switch {
		case k.Str == "role" && !role.Exists():
			role = v
		case k.Str == "content" && !content.Exists():
			content = v
		}
		return !role.Exists() || !content.Exists()
	})
	if role.Type != gjson.String || role.Str != "user" && role.Str != "assistant" {
		p := msgParam(i) + ".role"
		return api.InvalidRequest(p, "%s: must be \"user\" or \"assistant\"", p)
	}
	switch {
	case content.Type == gjson.String:
		return nil
	case content.IsArray():
		var perr *api.Error
		j := 0
		content.ForEach(func(_, b gjson.Result) bool {
			perr = validateBlock(b, i, j, role.Str)
			j++
			return perr == nil
		})
		return perr
	}
	p := msgParam(i) + ".content"
	if !content.Exists() {
		return api.InvalidRequest(p, "%s: field required", p)
	}
	return api.InvalidRequest(p, "%s: must be a string or an array of content blocks", p)
}

// validateBlock checks the blocks whose shape the surface relies on. Other
// types (documents, server tool results, new kinds) are left to the
// upstream, which knows them; ToChat refuses what chat cannot carry.
func validateBlock(b gjson.Result, i, j int, role string) *api.Error {
	if !b.IsObject() {
		p := blockParam(i, j)
		return api.InvalidRequest(p, "%s: must be an object", p)
	}
	f := readBlock(b)
	bad := func(field, why string) *api.Error {
		p := blockParam(i, j) + field
		return api.InvalidRequest(p, "%s: %s", p, why)
	}
	if f.typ.Type != gjson.String || f.typ.Str == "" {
		return bad(".type", "must be a non-empty string")
	}
	switch f.typ.Str {
	case "text":
		if f.text.Type != gjson.String {
			return bad(".text", "must be a string")
		}
	case "image":
		if !f.source.IsObject() {
			return bad(".source", "must be an object")
		}
	case "tool_use":
		if role != "assistant" {
			return bad(".type", "tool_use blocks may only appear in assistant messages")
		}
		if f.id.Type != gjson.String || f.id.Str == "" {
			return bad(".id", "must be a non-empty string")
		}
		if f.name.Type != gjson.String || f.name.Str == "" {
			return bad(".name", "must be a non-empty string")
		}
		if !f.input.IsObject() {
			return bad(".input", "must be an object")
		}
	case "tool_result":
		if role != "user" {
			return bad(".type", "tool_result blocks may only appear in user messages")
		}
		if f.toolUseID.Type != gjson.String || f.toolUseID.Str == "" {
			return bad(".tool_use_id", "must be a non-empty string")
		}
		if c := f.content; c.Exists() && c.Type != gjson.String && c.Type != gjson.Null && !c.IsArray() {
			return bad(".content", "must be a string or an array of content blocks")
		}
	}
	return nil
}

func validateTools(v gjson.Result) *api.Error {
	if v.Type == gjson.Null {
		return nil
	}
	if !v.IsArray() {
		return api.InvalidRequest("tools", "tools: must be an array")
	}
	var perr *api.Error
	i := 0
	v.ForEach(func(_, t gjson.Result) bool {
		p := func() string { return "tools[" + itoa(i) + "]" } // built only for an error
		defer func() { i++ }()
		if !t.IsObject() {
			perr = api.InvalidRequest(p(), "%s: must be an object", p())
			return false
		}
		var typ, name, schema gjson.Result
		t.ForEach(func(k, v gjson.Result) bool {
			switch {
			case k.Str == "type" && !typ.Exists():
				typ = v
			case k.Str == "name" && !name.Exists():
				name = v
			case k.Str == "input_schema" && !schema.Exists():
				schema = v
			}
			return true
		})
		if name.Type != gjson.String || name.Str == "" {
			perr = api.InvalidRequest(p()+".name", "%s.name: must be a non-empty string", p())
			return false
		}
		// Custom tools carry a schema; server tools (typed, such as
		// web_search_20250305) do not.
		if (!typ.Exists() || typ.Str == "custom") && !schema.IsObject() {
			perr = api.InvalidRequest(p()+".input_schema", "%s.input_schema: must be an object", p())
		}
		return perr == nil
	})
	return perr
}

func validateToolChoice(v gjson.Result) *api.Error {
	if v.Type == gjson.Null {
		return nil
	}
	if !v.IsObject() {
		return api.InvalidRequest("tool_choice", "tool_choice: must be an object")
	}
	switch v.Get("type").Str {
	case "auto", "any", "none":
	case "tool":
		if n := v.Get("name"); n.Type != gjson.String || n.Str == "" {
			return api.InvalidRequest("tool_choice.name", "tool_choice.name: must be a non-empty string")
		}
	default:
		return api.InvalidRequest("tool_choice.type", "tool_choice.type: must be one of auto, any, tool, none")
	}
	if d := v.Get("disable_parallel_tool_use"); d.Exists() && !d.IsBool() {
		return api.InvalidRequest("tool_choice.disable_parallel_tool_use", "tool_choice.disable_parallel_tool_use: must be a boolean")
	}
	return nil
}

// block holds the fields of one content block, read in a single pass.
type block struct {
	typ, text, source, id, name, input, toolUseID, content, isError gjson.Result
}

func readBlock(b gjson.Result) (f block) {
	b.ForEach(func(k, v gjson.Result) bool {
		var dst *gjson.Result
		switch k.Str {
		case "type":
			dst = &f.typ
		case "text":
			dst = &f.text
		case "source":
			dst = &f.source
		case "id":
			dst = &f.id
		case "name":
			dst = &f.name
		case "input":
			dst = &f.input
		case "tool_use_id":
			dst = &f.toolUseID
		case "content":
			dst = &f.content
		case "is_error":
			dst = &f.isError
		default:
			return true
		}
		if !dst.Exists() { // the first occurrence wins, as with gjson.Get
			*dst = v
		}
		return true
	})
	return f
}

func msgParam(i int) string { return "messages[" + itoa(i) + "]" }

func blockParam(i, j int) string { return msgParam(i) + ".content[" + itoa(j) + "]" }

func itoa(i int) string {
	if i >= 0 && i < 10 {
		return string(rune('0' + i))
	}
	var b [20]byte
	n := len(b)
	neg := i < 0
	if neg {
		i = -i
	}
	for i > 0 {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
	}
	if neg {
		n--
		b[n] = '-'
	}
	return string(b[n:])
}
