package redact

import (
	"errors"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
)

// edit replaces body[start:end] (a JSON string literal) with raw.
type edit struct {
	start, end int
	raw        []byte
}

// RedactRequest redacts the text of an OpenAI chat completion request: the
// string content of every message (system, user, assistant, tool) and the
// text of "text" content parts. Every other byte stays as the client sent
// it. When nothing matched it returns body itself and nil counts.
func (r *Redactor) RedactRequest(body []byte) ([]byte, map[string]int, error) {
	// gjson reads a string without copying; body is never written to and
	// no result outlives this call.
	js := unsafe.String(unsafe.SliceData(body), len(body))
	msgs := gjson.Get(js, "messages")
	if !msgs.IsArray() {
		return body, nil, nil
	}
	var (
		edits  []edit
		counts map[string]int
	)
	text := func(v gjson.Result) {
		if v.Type != gjson.String || v.Index <= 0 || v.Index+len(v.Raw) > len(js) || js[v.Index:v.Index+len(v.Raw)] != v.Raw {
			return
		}
		out, c := r.RedactString(v.Str)
		if c == nil {
			return
		}
		edits = append(edits, edit{start: v.Index, end: v.Index + len(v.Raw), raw: api.AppendString(nil, out)})
		if counts == nil {
			counts = c
			return
		}
		for k, n := range c {
			counts[k] += n
		}
	}
	msgs.ForEach(func(_, m gjson.Result) bool {
		content := m.Get("content")
		switch {
		case content.Type == gjson.String:
			text(content)
		case content.IsArray():
			content.ForEach(func(_, part gjson.Result) bool {
				if part.Get("type").Str == "text" {
					text(part.Get("text"))
				}
				return true
			})
		}
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
	size := len(body)
	for _, e := range edits {
		size += len(e.raw) - (e.end - e.start)
	}
	out := make([]byte, 0, size)
	last := 0
	for _, e := range edits {
		out = append(out, body[last:e.start]...)
		out = append(out, e.raw...)
		last = e.end
	}
	return append(out, body[last:]...), counts, nil
}
