package responses

import (
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
)

// fields is what Parse reads of a request; the rest stays in the body.
type fields struct {
	model              string
	stream             bool
	maxOutputTokens    int64
	store              bool // store is true unless the client sent false
	previousResponseID string
	promptBytes        int // input, instructions and tools, for the estimate
}

// parseFields validates body as a Responses request. Every failure is an
// *api.Error 400 whose Param names the field at fault. Like gjson.Get it
// reads the first occurrence of a key, and refuses repeated keys so the
// gateway and the provider read the same request.
func parseFields(body []byte, lim api.Limits) (fields, error) {
	f := fields{store: true}
	if len(body) == 0 {
		return f, api.InvalidRequest("", "request body is empty; expected a JSON object")
	}
	if !utf8.Valid(body) {
		return f, api.InvalidRequest("", "request body is not valid UTF-8")
	}
	if err := api.CheckDuplicateKeys(body); err != nil {
		if err.Param == "" {
			return f, err
		}
		return f, api.InvalidRequest(err.Param, "%s: repeated key; each key may appear only once in an object", err.Param)
	}
	root := gjson.Parse(api.View(body))
	if !root.IsObject() {
		return f, api.InvalidRequest("", "request body must be a JSON object")
	}
	var perr *api.Error
	var seenModel, seenInput, seenPrompt bool
	var model, prev string
	root.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "model":
			seenModel = true
			if v.Type != gjson.String || v.Str == "" {
				perr = api.InvalidRequest("model", "model: must be a non-empty string")
			} else {
				perr = api.CheckModelName("model", v.Str)
			}
			model = v.Str
		case "input":
			seenInput = v.Type != gjson.Null
			perr = validateInput(v, lim)
			f.promptBytes += len(v.Raw)
		case "instructions":
			if v.Type != gjson.Null && v.Type != gjson.String {
				perr = api.InvalidRequest("instructions", "instructions: must be a string")
			}
			f.promptBytes += len(v.Raw)
		case "stream":
			perr = checkBool(v, "stream")
			f.stream = v.Type == gjson.True
		case "store":
			perr = checkBool(v, "store")
			f.store = v.Type != gjson.False
		case "background":
			perr = checkBool(v, "background")
			if perr == nil && v.Type == gjson.True {
				perr = api.InvalidRequest("background", "background: background mode is not supported by this gateway; send the request without it")
			}
		case "parallel_tool_calls":
			perr = checkBool(v, "parallel_tool_calls")
		case "max_output_tokens":
			if v.Type != gjson.Null {
				if perr = checkInt(v, "max_output_tokens", 1, lim.MaxMaxTokens); perr == nil {
					f.maxOutputTokens = v.Int()
				}
			}
		case "temperature":
			perr = checkNumber(v, "temperature", 0, 2)
		case "top_p":
			perr = checkNumber(v, "top_p", 0, 1)
		case "tools":
			perr = validateTools(v)
			f.promptBytes += len(v.Raw)
		case "tool_choice":
			perr = validateToolChoice(v)
		case "text":
			perr = validateText(v)
		case "reasoning":
			perr = validateReasoning(v)
		case "metadata":
			perr = validateMetadata(v)
		case "previous_response_id":
			if v.Type != gjson.Null {
				if v.Type != gjson.String || v.Str == "" {
					perr = api.InvalidRequest("previous_response_id", "previous_response_id: must be a non-empty string")
				} else if len(v.Str) > 256 {
					perr = api.InvalidRequest("previous_response_id", "previous_response_id: longer than 256 bytes")
				}
				prev = v.Str
			}
		case "conversation":
			if v.Type != gjson.Null {
				perr = api.InvalidRequest("conversation", "conversation: the Conversations API is not supported by this gateway; continue with previous_response_id")
			}
		case "prompt":
			seenPrompt = v.Type != gjson.Null
		case "user", "safety_identifier", "prompt_cache_key", "service_tier":
			if v.Type != gjson.Null && v.Type != gjson.String {
				perr = api.InvalidRequest(k.Str, "%s: must be a string", k.Str)
			}
		}
		return perr == nil
	})
	if perr != nil {
		return f, perr
	}
	if !seenModel {
		return f, api.InvalidRequest("model", "model: field required")
	}
	if !seenInput && prev == "" && !seenPrompt {
		return f, api.InvalidRequest("input", "input: field required")
	}
	f.previousResponseID = strings.Clone(prev)
	f.model = strings.Clone(model)
	return f, nil
}

func validateInput(v gjson.Result, lim api.Limits) *api.Error {
	switch {
	case v.Type == gjson.String, v.Type == gjson.Null:
		return nil
	case !v.IsArray():
		return api.InvalidRequest("input", "input: must be a string or an array of input items")
	}
	var perr *api.Error
	i := 0
	v.ForEach(func(_, item gjson.Result) bool {
		if lim.MaxMessages > 0 && i >= lim.MaxMessages {
			perr = api.InvalidRequest("input", "input: more than %d items", lim.MaxMessages)
			return false
		}
		perr = validateItem(item, "input["+itoa(i)+"]")
		i++
		return perr == nil
	})
	return perr
}

// validateItem checks the shape of the items the gateway reads; other item
// types (reasoning, built-in tool calls) are the upstream's to judge, and
// refused only when they have to be translated.
func validateItem(item gjson.Result, p string) *api.Error {
	if !item.IsObject() {
		return api.InvalidRequest(p, "%s: must be an object", p)
	}
	typ := item.Get("type")
	if typ.Exists() && typ.Type != gjson.String {
		return api.InvalidRequest(p+".type", "%s.type: must be a string", p)
	}
	switch typ.Str {
	case "", "message":
		role := item.Get("role")
		switch role.Str {
		case "user", "assistant", "system", "developer":
		default:
			if !role.Exists() {
				return api.InvalidRequest(p+".role", "%s.role: field required", p)
			}
			return api.InvalidRequest(p+".role", "%s.role: must be one of user, assistant, system, developer", p)
		}
		c := item.Get("content")
		switch {
		case c.Type == gjson.String:
		case c.IsArray():
			var perr *api.Error
			j := 0
			c.ForEach(func(_, part gjson.Result) bool {
				pp := p + ".content[" + itoa(j) + "]"
				j++
				if !part.IsObject() {
					perr = api.InvalidRequest(pp, "%s: must be an object", pp)
				} else if t := part.Get("type"); t.Type != gjson.String || t.Str == "" {
					perr = api.InvalidRequest(pp+".type", "%s.type: must be a non-empty string", pp)
				}
				return perr == nil
			})
			return perr
		case !c.Exists():
			return api.InvalidRequest(p+".content", "%s.content: field required", p)
		default:
			return api.InvalidRequest(p+".content", "%s.content: must be a string or an array of content parts", p)
		}
	case "function_call":
		for _, f := range [...]string{"call_id", "name", "arguments"} {
			if item.Get(f).Type != gjson.String {
				return api.InvalidRequest(p+"."+f, "%s.%s: must be a string", p, f)
			}
		}
	case "function_call_output":
		if item.Get("call_id").Type != gjson.String {
			return api.InvalidRequest(p+".call_id", "%s.call_id: must be a string", p)
		}
		if o := item.Get("output"); o.Type != gjson.String && !o.IsArray() {
			return api.InvalidRequest(p+".output", "%s.output: must be a string or an array of content parts", p)
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
		p := "tools[" + itoa(i) + "]"
		i++
		typ := t.Get("type")
		switch {
		case !t.IsObject():
			perr = api.InvalidRequest(p, "%s: must be an object", p)
		case typ.Type != gjson.String || typ.Str == "":
			perr = api.InvalidRequest(p+".type", "%s.type: must be a non-empty string", p)
		case typ.Str == "function":
			if n := t.Get("name"); n.Type != gjson.String || n.Str == "" {
				perr = api.InvalidRequest(p+".name", "%s.name: must be a non-empty string", p)
			} else if ps := t.Get("parameters"); ps.Exists() && ps.Type != gjson.Null && !ps.IsObject() {
				perr = api.InvalidRequest(p+".parameters", "%s.parameters: must be an object", p)
			}
		}
		return perr == nil
	})
	return perr
}

func validateToolChoice(v gjson.Result) *api.Error {
	switch {
	case v.Type == gjson.Null:
		return nil
	case v.Type == gjson.String:
		switch v.Str {
		case "none", "auto", "required":
			return nil
		}
		return api.InvalidRequest("tool_choice", "tool_choice: must be none, auto, required or an object")
	case !v.IsObject():
		return api.InvalidRequest("tool_choice", "tool_choice: must be none, auto, required or an object")
	}
	typ := v.Get("type")
	if typ.Type != gjson.String || typ.Str == "" {
		return api.InvalidRequest("tool_choice.type", "tool_choice.type: must be a non-empty string")
	}
	if typ.Str == "function" {
		if n := v.Get("name"); n.Type != gjson.String || n.Str == "" {
			return api.InvalidRequest("tool_choice.name", "tool_choice.name: must be a non-empty string")
		}
	}
	return nil
}

func validateText(v gjson.Result) *api.Error {
	if v.Type == gjson.Null {
		return nil
	}
	if !v.IsObject() {
		return api.InvalidRequest("text", "text: must be an object")
	}
	f := v.Get("format")
	if !f.Exists() || f.Type == gjson.Null {
		return nil
	}
	if !f.IsObject() {
		return api.InvalidRequest("text.format", "text.format: must be an object")
	}
	switch t := f.Get("type"); t.Str {
	case "text", "json_object":
		return nil
	case "json_schema":
		if n := f.Get("name"); n.Type != gjson.String || n.Str == "" {
			return api.InvalidRequest("text.format.name", "text.format.name: must be a non-empty string")
		}
		if s := f.Get("schema"); !s.IsObject() {
			return api.InvalidRequest("text.format.schema", "text.format.schema: must be an object")
		}
		return nil
	default:
		return api.InvalidRequest("text.format.type", "text.format.type: must be text, json_object or json_schema")
	}
}

func validateReasoning(v gjson.Result) *api.Error {
	if v.Type == gjson.Null {
		return nil
	}
	if !v.IsObject() {
		return api.InvalidRequest("reasoning", "reasoning: must be an object")
	}
	switch e := v.Get("effort"); {
	case !e.Exists(), e.Type == gjson.Null:
	case e.Type != gjson.String:
		return api.InvalidRequest("reasoning.effort", "reasoning.effort: must be a string")
	default:
		switch e.Str {
		case "none", "minimal", "low", "medium", "high", "xhigh":
		default:
			return api.InvalidRequest("reasoning.effort", "reasoning.effort: must be one of none, minimal, low, medium, high, xhigh")
		}
	}
	return nil
}

// validateMetadata applies the API's bounds: at most 16 pairs, keys up to
// 64 characters, string values up to 512.
func validateMetadata(v gjson.Result) *api.Error {
	if v.Type == gjson.Null {
		return nil
	}
	if !v.IsObject() {
		return api.InvalidRequest("metadata", "metadata: must be an object of strings")
	}
	var perr *api.Error
	n := 0
	v.ForEach(func(k, s gjson.Result) bool {
		n++
		switch {
		case n > 16:
			perr = api.InvalidRequest("metadata", "metadata: at most 16 pairs")
		case len(k.Str) > 64:
			perr = api.InvalidRequest("metadata", "metadata: keys are at most 64 characters")
		case s.Type != gjson.String:
			perr = api.InvalidRequest("metadata."+k.Str, "metadata.%s: must be a string", k.Str)
		case len(s.Str) > 512:
			perr = api.InvalidRequest("metadata."+k.Str, "metadata.%s: at most 512 characters", k.Str)
		}
		return perr == nil
	})
	return perr
}

func checkBool(v gjson.Result, param string) *api.Error {
	if v.Type != gjson.Null && !v.IsBool() {
		return api.InvalidRequest(param, "%s: must be a boolean", param)
	}
	return nil
}

func checkNumber(v gjson.Result, param string, lo, hi float64) *api.Error {
	if v.Type == gjson.Null {
		return nil
	}
	if v.Type != gjson.Number {
		return api.InvalidRequest(param, "%s: must be a number", param)
	}
	if x := v.Float(); x < lo || x > hi {
		return api.InvalidRequest(param, "%s: must be between %g and %g, got %s", param, lo, hi, v.Raw)
	}
	return nil
}

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

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	neg := i < 0
	if neg {
		i = -i
	}
	for {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			break
		}
	}
	if neg {
		n--
		b[n] = '-'
	}
	return string(b[n:])
}
