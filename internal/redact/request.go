package redact

import (
	"errors"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
)

// edit replaces body[start:end] (a JSON string literal) with raw.
type edit struct {
	start, end int
	raw        []byte
}

// RedactRequest redacts the text of an OpenAI chat completion request: the
// string content of every message (system, user, assistant, tool and the
// legacy function role), the text of "text" content parts, and the
// arguments of the assistant's tool calls (tool_calls[].function.arguments
// and the legacy function_call.arguments), string by string when they are
// JSON. Every other byte stays as the client sent it. When nothing matched
// it returns body itself and nil counts.
//
// Every occurrence is redacted, a repeated key's too, though the gateway
// refuses bodies with repeated keys before this runs.
func (r *Redactor) RedactRequest(body []byte) ([]byte, map[string]int, error) {
	// gjson reads a string without copying; body is never written to and
	// no result outlives this call.
	js := api.View(body)
	msgs := gjson.Get(js, "messages")
	if !msgs.IsArray() {
		return r.redactResponses(body, js)
	}
	var (
		edits  []edit
		counts map[string]int
	)
	// redactAt redacts the JSON string literal v of js with f.
	redactAt := func(v gjson.Result, f func(string) (string, map[string]int)) {
		if v.Type != gjson.String || v.Index <= 0 || v.Index+len(v.Raw) > len(js) || js[v.Index:v.Index+len(v.Raw)] != v.Raw {
			return
		}
		out, c := f(v.Str)
		if c == nil {
			return
		}
		edits = append(edits, edit{start: v.Index, end: v.Index + len(v.Raw), raw: api.AppendString(nil, out)})
		counts = addCounts(counts, c)
	}
	arguments := func(fn gjson.Result) {
		fn.ForEach(func(k, v gjson.Result) bool {
			if k.Str == "arguments" {
				redactAt(v, r.redactArguments)
			}
			return true
		})
	}
	msgs.ForEach(func(_, m gjson.Result) bool {
		m.ForEach(func(k, v gjson.Result) bool {
			switch k.Str {
			case "content":
				switch {
				case v.Type == gjson.String:
					redactAt(v, r.RedactString)
				case v.IsArray():
					v.ForEach(func(_, part gjson.Result) bool {
						if part.Get("type").Str == "text" {
							redactAt(part.Get("text"), r.RedactString)
						}
						return true
					})
				}
			case "tool_calls":
				v.ForEach(func(_, call gjson.Result) bool {
					arguments(call.Get("function"))
					return true
				})
			case "function_call":
				arguments(v)
			}
			return true
		})
		return true
	})
	if len(edits) == 0 {
		return body, nil, nil
	}
	// Only now, with bytes to splice, is it worth making sure the offsets
	// came from well-formed JSON.
	if !gjson.Valid(js) {
		return body, nil, errors.New("redact: request body is not valid JSON")
	}
	return splice(body, edits), counts, nil
}

func addCounts(dst, c map[string]int) map[string]int {
	if dst == nil {
		return c
	}
	for k, n := range c {
		dst[k] += n
	}
	return dst
}

// redactArguments redacts a tool call's arguments. They are meant to be a
// JSON document; when they are, each string in it is redacted on its own,
// so the result is still the same JSON with placeholders in its strings
// (a match can never swallow a quote). Anything else is redacted as text.
func (r *Redactor) redactArguments(s string) (string, map[string]int) {
	if !gjson.Valid(s) {
		return r.RedactString(s)
	}
	root := gjson.Parse(s)
	if root.Type == gjson.String {
		out, c := r.RedactString(root.Str)
		if c == nil {
			return s, nil
		}
		return string(api.AppendString(nil, out)), c
	}
	var (
		edits  []edit
		counts map[string]int
	)
	var walk func(v gjson.Result)
	walk = func(v gjson.Result) {
		switch {
		case v.Type == gjson.String:
			if v.Index <= 0 || v.Index+len(v.Raw) > len(s) || s[v.Index:v.Index+len(v.Raw)] != v.Raw {
				return
			}
			out, c := r.RedactString(v.Str)
			if c == nil {
				return
			}
			edits = append(edits, edit{start: v.Index, end: v.Index + len(v.Raw), raw: api.AppendString(nil, out)})
			counts = addCounts(counts, c)
		case v.IsObject(), v.IsArray():
			v.ForEach(func(_, e gjson.Result) bool {
				walk(e)
				return true
			})
		}
	}
	walk(root)
	if len(edits) == 0 {
		return s, nil
	}
	return string(splice([]byte(s), edits)), counts
}

// splice applies edits, which are in order and do not overlap, to b.
func splice(b []byte, edits []edit) []byte {
	size := len(b)
	for _, e := range edits {
		size += len(e.raw) - (e.end - e.start)
	}
	out := make([]byte, 0, size)
	last := 0
	for _, e := range edits {
		out = append(out, b[last:e.start]...)
		out = append(out, e.raw...)
		last = e.end
	}
	return append(out, b[last:]...)
}
