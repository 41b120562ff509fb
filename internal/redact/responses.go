package redact

import (
	"errors"
	"slices"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
)

// redactResponses redacts the text of an OpenAI Responses request (one
// with "input" and no "messages"): instructions, a string input, the
// string content and input_text/output_text parts of message items, the
// arguments of function_call items and the output of function_call_output
// items (a string, or its text parts). Every other byte stays.
func (r *Redactor) redactResponses(body []byte, js string) ([]byte, map[string]int, error) {
	root := gjson.Parse(js)
	input := root.Get("input")
	if !input.Exists() {
		return body, nil, nil
	}
	var (
		edits  []edit
		counts map[string]int
	)
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
	textParts := func(v gjson.Result) {
		if v.Type == gjson.String {
			redactAt(v, r.RedactString)
			return
		}
		v.ForEach(func(_, part gjson.Result) bool {
			switch part.Get("type").Str {
			case "input_text", "output_text", "text":
				redactAt(part.Get("text"), r.RedactString)
			}
			return true
		})
	}
	redactAt(root.Get("instructions"), r.RedactString)
	if input.Type == gjson.String {
		redactAt(input, r.RedactString)
	}
	if input.IsArray() {
		input.ForEach(func(_, it gjson.Result) bool {
			switch it.Get("type").Str {
			case "", "message":
				textParts(it.Get("content"))
			case "function_call":
				redactAt(it.Get("arguments"), r.redactArguments)
			case "function_call_output":
				textParts(it.Get("output"))
			}
			return true
		})
	}
	if len(edits) == 0 {
		return body, nil, nil
	}
	if !gjson.Valid(js) {
		return body, nil, errors.New("redact: request body is not valid JSON")
	}
	// instructions may come after input in the body.
	slices.SortFunc(edits, func(a, b edit) int { return a.start - b.start })
	return splice(body, edits), counts, nil
}
