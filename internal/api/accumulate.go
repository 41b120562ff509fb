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

	// the shape of the chunk added last (UsageOnly)
	lastChoices bool // it had a choice
	lastUsage   bool // it had a usage object

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
	role string
	// []byte, not strings.Builder: choices and tools live in slices that
	// grow as a stream names a new index, and a Builder must not be copied.
	content   []byte
	refusal   []byte
	hasText   bool
	hasRefuse bool
	tools     []accTool
	finish    string
}

type accTool struct {
	id, typ, name string
	args          []byte
}

// Add folds one chunk payload into the answer. The chunk is read in one
// pass over each level (gjson's ForEach over a view of its bytes, not a
// copy): a gateway calls this for every chunk of thousands of open streams,
// and a lookup per field re-scanned the chunk each time. The chunk may be
// reused once Add returns: every string the accumulator keeps is cloned.
func (a *Accumulator) Add(chunk []byte) error {
	if !gjson.ValidBytes(chunk) {
		return fmt.Errorf("stream chunk is not valid JSON")
	}
	a.chunks++
	a.lastChoices, a.lastUsage = false, false
	first := a.id == ""
	root := gjson.Result{Type: gjson.JSON, Raw: View(chunk)}
	var choices gjson.Result
	root.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "id":
			if first {
				a.id = strings.Clone(v.String())
			}
		case "model":
			if first {
				a.model = strings.Clone(v.String())
			}
		case "created":
			if first {
				a.created = v.Int()
			}
		case "system_fingerprint":
			if v.Type == gjson.String && v.Str != a.fingerprint {
				a.fingerprint = strings.Clone(v.Str)
			}
		case "usage":
			if v.IsObject() {
				a.lastUsage = true
				a.usage = chunkUsage(v)
			}
		case "choices":
			choices = v
		}
		return true
	})
	choices.ForEach(func(_, ch gjson.Result) bool {
		a.lastChoices = true
		idx, delta, finish := 0, gjson.Result{}, gjson.Result{}
		ch.ForEach(func(k, v gjson.Result) bool {
			switch k.Str {
			case "index":
				idx = int(v.Int())
			case "delta":
				delta = v
			case "finish_reason":
				finish = v
			}
			return true
		})
		if a.over {
			a.text += deltaText(delta, nil)
			return true
		}
		if idx < 0 || idx > 127 {
			return true
		}
		for len(a.choices) <= idx {
			a.choices = append(a.choices, accChoice{})
		}
		c := &a.choices[idx]
		a.text += deltaText(delta, c)
		if finish.Type == gjson.String {
			c.finish = strings.Clone(finish.Str)
		}
		return true
	})
	if a.limit > 0 && a.text > a.limit && !a.over {
		a.over = true
		a.choices = nil // let the held text go
	}
	return nil
}

// UsageOnly reports that the chunk added last was the extra usage chunk:
// no choices, a usage object.
func (a *Accumulator) UsageOnly() bool { return a.lastUsage && !a.lastChoices }

func chunkUsage(u gjson.Result) *Usage {
	out := &Usage{}
	u.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "prompt_tokens":
			out.PromptTokens = int(v.Int())
		case "completion_tokens":
			out.CompletionTokens = int(v.Int())
		case "total_tokens":
			out.TotalTokens = int(v.Int())
		case "prompt_tokens_details":
			if c := v.Get("cached_tokens"); c.Exists() {
				out.PromptTokensDetails = &PromptTokensDetails{CachedTokens: int(c.Int())}
			}
		}
		return true
	})
	return out
}

// deltaText folds a choice's delta into c and returns the text bytes it
// carried; with c nil it only counts them (the answer is over the limit).
func deltaText(d gjson.Result, c *accChoice) int {
	n := 0
	d.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "role":
			if c != nil && v.Type == gjson.String && v.Str != c.role {
				c.role = strings.Clone(v.Str)
			}
		case "content":
			if v.Type == gjson.String {
				n += len(v.Str)
				if c != nil {
					c.content = append(c.content, v.Str...)
					c.hasText = true
				}
			}
		case "refusal":
			if v.Type == gjson.String {
				n += len(v.Str)
				if c != nil {
					c.refusal = append(c.refusal, v.Str...)
					c.hasRefuse = true
				}
			}
		case "tool_calls":
			v.ForEach(func(_, tc gjson.Result) bool {
				n += toolDelta(tc, c)
				return true
			})
		}
		return true
	})
	return n
}

// toolDelta folds one tool_calls entry into c (nil: count only).
func toolDelta(tc gjson.Result, c *accChoice) int {
	ti, id, typ, fn := 0, "", "", gjson.Result{}
	tc.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "index":
			ti = int(v.Int())
		case "id":
			id = v.Str
		case "type":
			typ = v.Str
		case "function":
			fn = v
		}
		return true
	})
	name, args := "", ""
	fn.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "name":
			name = v.Str
		case "arguments":
			args = v.Str
		}
		return true
	})
	n := len(name) + len(args)
	if c == nil || ti < 0 || ti > 127 {
		return n
	}
	for len(c.tools) <= ti {
		c.tools = append(c.tools, accTool{})
	}
	t := &c.tools[ti]
	if id != "" {
		t.id = strings.Clone(id)
	}
	if typ != "" {
		t.typ = strings.Clone(typ)
	}
	if name != "" {
		t.name = strings.Clone(t.name + name) // "" + name is name itself: a view
	}
	t.args = append(t.args, args...)
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
			m.Content = Ptr(string(c.content))
		}
		if c.hasRefuse {
			m.Refusal = Ptr(string(c.refusal))
		}
		for _, t := range c.tools {
			typ := t.typ
			if typ == "" {
				typ = "function"
			}
			m.ToolCalls = append(m.ToolCalls, ToolCall{ID: t.id, Type: typ, Function: FunctionCall{Name: t.name, Arguments: string(t.args)}})
		}
		cc.Choices[i] = Choice{Index: i, Message: m, FinishReason: c.finish, Logprobs: json.RawMessage("null")}
	}
	return cc
}

// CompletionJSON returns the accumulated answer as chat.completion JSON.
func (a *Accumulator) CompletionJSON() ([]byte, error) {
	return json.Marshal(a.Completion())
}
