package api

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// ChatRequest is the gateway's view of a chat completion request: the
// client's bytes, untouched, and the few fields the gateway acts on.
// Everything else stays in Body and reaches the provider as sent.
type ChatRequest struct {
	Body         []byte
	Model        string
	Stream       bool
	IncludeUsage bool  // stream_options.include_usage
	MaxTokens    int64 // max_completion_tokens or max_tokens, 0 when absent
	N            int64 // 1 when absent
	HasFallbacks bool  // a top-level "fallbacks" key is present (the router reads it)
}

// Limits bound what a request may contain. Zero values mean "no limit".
type Limits struct {
	MaxMessages     int
	MaxMaxTokens    int64
	MaxN            int64
	MaxContentBytes int
}

// DefaultLimits are generous bounds that stop abuse but no real workload.
var DefaultLimits = Limits{MaxMessages: 2048, MaxMaxTokens: 1_000_000, MaxN: 16}

// knownRole reports whether role is one the gateway accepts.
func knownRole(role string) bool {
	switch role {
	case "system", "developer", "user", "assistant", "tool", "function":
		return true
	}
	return false
}

// ParseChatRequest validates body as an OpenAI chat completion request and
// returns its view. Every failure is an *Error naming the field at fault.
func ParseChatRequest(body []byte, lim Limits) (*ChatRequest, error) {
	if len(body) == 0 {
		return nil, InvalidRequest("", "request body is empty; expected a JSON object")
	}
	if !utf8.Valid(body) {
		return nil, InvalidRequest("", "request body is not valid UTF-8")
	}
	// One walk checks the syntax and that no object repeats a key: with a
	// repeated key the gateway (gjson reads the first) and the provider
	// (most decoders keep the last) would read different requests.
	if err := CheckDuplicateKeys(body); err != nil {
		return nil, err
	}
	// gjson.ParseBytes would copy the whole body into a string. Parse a
	// read-only view of it instead and copy only what outlives this call
	// (the model name): the caller may reuse body's buffer once it is done
	// with the request, so nothing returned, not even in an *Error, may
	// point into it.
	root := gjson.Parse(View(body))
	if !root.IsObject() {
		return nil, InvalidRequest("", "request body must be a JSON object")
	}
	req := &ChatRequest{Body: body, N: 1}
	var perr *Error
	var seenModel, seenMessages bool
	var model string
	root.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "model":
			seenModel = true
			if v.Type != gjson.String || v.Str == "" {
				perr = InvalidRequest("model", "model must be a non-empty string")
				return false
			}
			if perr = CheckModelName("model", v.Str); perr != nil {
				return false
			}
			model = v.Str
		case "messages":
			seenMessages = true
			perr = validateMessages(v, lim)
		case "stream":
			if v.Type == gjson.Null {
				break
			}
			if !v.IsBool() {
				perr = InvalidRequest("stream", "stream must be a boolean")
				return false
			}
			req.Stream = v.Bool()
		case "stream_options":
			if v.Type == gjson.Null {
				break
			}
			if !v.IsObject() {
				perr = InvalidRequest("stream_options", "stream_options must be an object")
				return false
			}
			req.IncludeUsage = v.Get("include_usage").Bool()
		case "temperature":
			perr = checkNumber(v, "temperature", 0, 2)
		case "top_p":
			perr = checkNumber(v, "top_p", 0, 1)
		case "presence_penalty":
			perr = checkNumber(v, "presence_penalty", -2, 2)
		case "frequency_penalty":
			perr = checkNumber(v, "frequency_penalty", -2, 2)
		case "max_tokens", "max_completion_tokens":
			if v.Type == gjson.Null {
				break
			}
			param := "max_tokens" // a constant: k.Str points into body
			if k.Str == "max_completion_tokens" {
				param = "max_completion_tokens"
			}
			if perr = checkInt(v, param, 1, lim.MaxMaxTokens); perr == nil {
				req.MaxTokens = v.Int()
			}
		case "fallbacks":
			req.HasFallbacks = true
		case "n":
			if v.Type == gjson.Null {
				break
			}
			if perr = checkInt(v, "n", 1, lim.MaxN); perr == nil {
				req.N = v.Int()
			}
		}
		return perr == nil
	})
	if perr != nil {
		return nil, perr
	}
	if !seenModel {
		return nil, InvalidRequest("model", "you must provide a model parameter")
	}
	if !seenMessages {
		return nil, InvalidRequest("messages", "you must provide a messages parameter")
	}
	req.Model = strings.Clone(model)
	return req, nil
}

// MaxModelNameBytes bounds a model name; real ones are well under 100.
const MaxModelNameBytes = 256

// CheckModelName rejects a model name the router should never see: longer
// than MaxModelNameBytes, with control, format or other non-printable
// characters ("gpt-4\u0000x" would route by its prefix), or with spaces
// at either end. param names the field in the 400 ("model",
// "fallbacks[1]"). The message does not repeat the name, which may be
// anything.
func CheckModelName(param, name string) *Error {
	if name == "" {
		return InvalidRequest(param, "%s must be a non-empty string", param)
	}
	if len(name) > MaxModelNameBytes {
		return InvalidRequest(param, "%s is longer than %d bytes", param, MaxModelNameBytes)
	}
	if name[0] == ' ' || name[len(name)-1] == ' ' {
		return InvalidRequest(param, "%s must not start or end with a space", param)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c == 0x7f {
			return InvalidRequest(param, "%s must not contain control characters", param)
		} else if c >= utf8.RuneSelf {
			return checkModelNameRunes(param, name[i:])
		}
	}
	return nil
}

func checkModelNameRunes(param, s string) *Error {
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return InvalidRequest(param, "%s must contain only printable characters", param)
		}
	}
	return nil
}

func checkNumber(v gjson.Result, param string, lo, hi float64) *Error {
	if v.Type == gjson.Null {
		return nil
	}
	if v.Type != gjson.Number {
		return InvalidRequest(param, "%s must be a number", param)
	}
	if f := v.Float(); f < lo || f > hi {
		return InvalidRequest(param, "%s must be between %g and %g, got %s", param, lo, hi, v.Raw)
	}
	return nil
}

func checkInt(v gjson.Result, param string, lo, hi int64) *Error {
	if v.Type != gjson.Number || v.Float() != float64(v.Int()) {
		return InvalidRequest(param, "%s must be an integer", param)
	}
	if n := v.Int(); n < lo || (hi > 0 && n > hi) {
		if hi > 0 {
			return InvalidRequest(param, "%s must be between %d and %d, got %d", param, lo, hi, n)
		}
		return InvalidRequest(param, "%s must be at least %d, got %d", param, lo, n)
	}
	return nil
}

func validateMessages(v gjson.Result, lim Limits) *Error {
	if !v.IsArray() {
		return InvalidRequest("messages", "messages must be an array of message objects")
	}
	var perr *Error
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
		return InvalidRequest("messages", "messages must contain at least one message")
	}
	if lim.MaxMessages > 0 && i > lim.MaxMessages {
		return InvalidRequest("messages", "too many messages: %d, the limit is %d", i, lim.MaxMessages)
	}
	return nil
}

// validateMessage checks messages[i]. It walks the object's keys once; like
// gjson.Get, it uses the first occurrence of a repeated key.
func validateMessage(m gjson.Result, i int) *Error {
	param := func(field string) string { return "messages[" + itoa(i) + "]" + field }
	if !m.IsObject() {
		return InvalidRequest(param(""), "%s must be an object", param(""))
	}
	var role, content gjson.Result
	var seenRole, seenContent bool
	m.ForEach(func(k, v gjson.Result) bool {
		switch {
		case k.Str == "role" && !seenRole:
			role, seenRole = v, true
		case k.Str == "content" && !seenContent:
			content, seenContent = v, true
		}
		return !seenRole || !seenContent
	})
	if role.Type != gjson.String {
		return InvalidRequest(param(".role"), "%s must be a string", param(".role"))
	}
	if !knownRole(role.Str) {
		return InvalidRequest(param(".role"), "%s: unknown role %q; expected system, developer, user, assistant or tool", param(".role"), role.Str)
	}
	switch {
	case content.Type == gjson.String, content.Type == gjson.Null:
	case content.IsArray():
		var perr *Error
		j := 0
		content.ForEach(func(_, part gjson.Result) bool {
			perr = validateContentPart(part, i, j)
			j++
			return perr == nil
		})
		if perr != nil {
			return perr
		}
	default:
		return InvalidRequest(param(".content"), "%s must be a string, an array of content parts or null", param(".content"))
	}
	if !content.Exists() && role.Str != "assistant" {
		return InvalidRequest(param(".content"), "%s is required for role %s", param(".content"), role.Str)
	}
	return nil
}

// validateContentPart checks messages[i].content[j], walking its keys once.
// The parameter name is only built when there is an error to report.
func validateContentPart(part gjson.Result, i, j int) *Error {
	if !part.IsObject() {
		p := contentPartParam(i, j)
		return InvalidRequest(p, "%s must be an object", p)
	}
	var typ, text gjson.Result
	var seenType, seenText bool
	part.ForEach(func(k, v gjson.Result) bool {
		switch {
		case k.Str == "type" && !seenType:
			typ, seenType = v, true
		case k.Str == "text" && !seenText:
			text, seenText = v, true
		}
		return !seenType || !seenText
	})
	if typ.Type != gjson.String || typ.Str == "" {
		p := contentPartParam(i, j)
		return InvalidRequest(p+".type", "%s.type must be a non-empty string", p)
	}
	if typ.Str == "text" && text.Type != gjson.String {
		p := contentPartParam(i, j)
		return InvalidRequest(p+".text", "%s.text must be a string", p)
	}
	return nil
}

func contentPartParam(i, j int) string {
	return "messages[" + itoa(i) + "].content[" + itoa(j) + "]"
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	var b [20]byte
	n := len(b)
	for i > 0 {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
	}
	return string(b[n:])
}
