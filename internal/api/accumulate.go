package api

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/tidwall/gjson"
)

// Accumulator rebuilds a complete chat.completion from the chunks of a
// streamed answer, so a stream can be cached and priced like a JSON answer.
//
// With a limit set (SetLimit), it holds at most that many bytes of text
// (content, refusals, tool names and arguments): past it, it lets go of
// what it held and keeps only the usage and a count of the text, so the
// answer can still be priced but not rebuilt or cached.
type Accumulator struct {
	id, model, fingerprint string
	created                int64
	choices                []accChoice
	usage                  *Usage
	chunks                 int

	limit int  // bound on held text bytes; 0: none
	text  int  // text bytes seen, held or not
	over  bool // the text passed limit; choices were dropped
}

// SetLimit bounds the text the accumulator holds to n bytes (0: no bound).
func (a *Accumulator) SetLimit(n int) { a.limit = n }

// Overflowed reports that the answer passed the limit: it was not kept,
// and Complete is false.
func (a *Accumulator) Overflowed() bool { return a.over }

// TextBytes is the number of text bytes the stream carried, kept or not.
func (a *Accumulator) TextBytes() int { return a.text }

type accChoice struct {
	role      string
	content   strings.Builder
	refusal   strings.Builder
	hasText   bool
	hasRefuse bool
	tools     []accTool
	finish    string
}

type accTool struct {
	id, typ, name string
	args          strings.Builder
}

// Add folds one chunk payload into the answer.
func (a *Accumulator) Add(chunk []byte) error {
	if !gjson.ValidBytes(chunk) {
		return fmt.Errorf("stream chunk is not valid JSON")
	}
	a.chunks++
	root := gjson.ParseBytes(chunk)
	if a.id == "" {
		a.id = root.Get("id").String()
		a.model = root.Get("model").String()
		a.created = root.Get("created").Int()
	}
	if fp := root.Get("system_fingerprint"); fp.Type == gjson.String {
		a.fingerprint = fp.Str
	}
	if u := root.Get("usage"); u.IsObject() {
		a.usage = &Usage{
			PromptTokens:     int(u.Get("prompt_tokens").Int()),
			CompletionTokens: int(u.Get("completion_tokens").Int()),
			TotalTokens:      int(u.Get("total_tokens").Int()),
		}
		if c := u.Get("prompt_tokens_details.cached_tokens"); c.Exists() {
			a.usage.PromptTokensDetails = &PromptTokensDetails{CachedTokens: int(c.Int())}
		}
	}
	if a.over {
		a.text += textBytes(root)
		return nil
	}
	root.Get("choices").ForEach(func(_, ch gjson.Result) bool {
		idx := int(ch.Get("index").Int())
		if idx < 0 || idx > 127 {
			return true
		}
		for len(a.choices) <= idx {
			a.choices = append(a.choices, accChoice{})
		}
		c := &a.choices[idx]
		d := ch.Get("delta")
		if r := d.Get("role"); r.Type == gjson.String {
			c.role = r.Str
		}
		if t := d.Get("content"); t.Type == gjson.String {
			c.content.WriteString(t.Str)
			c.hasText = true
			a.text += len(t.Str)
		}
		if t := d.Get("refusal"); t.Type == gjson.String {
			c.refusal.WriteString(t.Str)
			c.hasRefuse = true
			a.text += len(t.Str)
		}
		d.Get("tool_calls").ForEach(func(_, tc gjson.Result) bool {
			ti := int(tc.Get("index").Int())
			if ti < 0 || ti > 127 {
				return true
			}
			for len(c.tools) <= ti {
				c.tools = append(c.tools, accTool{})
			}
			t := &c.tools[ti]
			if v := tc.Get("id"); v.Str != "" {
				t.id = v.Str
			}
			if v := tc.Get("type"); v.Str != "" {
				t.typ = v.Str
			}
			if v := tc.Get("function.name"); v.Str != "" {
				t.name += v.Str
				a.text += len(v.Str)
			}
			args := tc.Get("function.arguments").Str
			t.args.WriteString(args)
			a.text += len(args)
			return true
		})
		if f := ch.Get("finish_reason"); f.Type == gjson.String {
			c.finish = f.Str
		}
		return true
	})
	if a.limit > 0 && a.text > a.limit {
		a.over = true
		a.choices = nil // let the held text go
	}
	return nil
}

// textBytes counts the text in a chunk's deltas without keeping it.
func textBytes(root gjson.Result) int {
	n := 0
	root.Get("choices").ForEach(func(_, ch gjson.Result) bool {
		d := ch.Get("delta")
		n += len(d.Get("content").Str) + len(d.Get("refusal").Str)
		d.Get("tool_calls").ForEach(func(_, tc gjson.Result) bool {
			n += len(tc.Get("function.name").Str) + len(tc.Get("function.arguments").Str)
			return true
		})
		return true
	})
	return n
}

// Chunks is the number of chunks added.
func (a *Accumulator) Chunks() int { return a.chunks }

// Usage is the usage reported by the stream, nil when none was.
func (a *Accumulator) Usage() *Usage { return a.usage }

// FinishReasons lists each choice's finish_reason ("" for a choice that
// never finished, which marks an incomplete answer).
func (a *Accumulator) FinishReasons() []string {
	out := make([]string, len(a.choices))
	for i := range a.choices {
		out[i] = a.choices[i].finish
	}
	return out
}

// Complete reports whether every choice ended with a finish_reason.
func (a *Accumulator) Complete() bool {
	if len(a.choices) == 0 {
		return false
	}
	return !slices.Contains(a.FinishReasons(), "")
}

// Completion returns the accumulated answer.
func (a *Accumulator) Completion() *ChatCompletion {
	cc := &ChatCompletion{ID: a.id, Object: "chat.completion", Created: a.created, Model: a.model,
		SystemFingerprint: a.fingerprint, Usage: a.usage, Choices: make([]Choice, len(a.choices))}
	for i := range a.choices {
		c := &a.choices[i]
		role := c.role
		if role == "" {
			role = "assistant"
		}
		m := Message{Role: role, Annotations: json.RawMessage("[]")}
		if c.hasText || len(c.tools) == 0 {
			m.Content = Ptr(c.content.String())
		}
		if c.hasRefuse {
			m.Refusal = Ptr(c.refusal.String())
		}
		for _, t := range c.tools {
			typ := t.typ
			if typ == "" {
				typ = "function"
			}
			m.ToolCalls = append(m.ToolCalls, ToolCall{ID: t.id, Type: typ, Function: FunctionCall{Name: t.name, Arguments: t.args.String()}})
		}
		cc.Choices[i] = Choice{Index: i, Message: m, FinishReason: c.finish, Logprobs: json.RawMessage("null")}
	}
	return cc
}

// CompletionJSON returns the accumulated answer as chat.completion JSON.
func (a *Accumulator) CompletionJSON() ([]byte, error) {
	return json.Marshal(a.Completion())
}
