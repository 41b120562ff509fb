package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// The gjson walk Add replaced (stop 24's), kept as the oracle its one-pass
// reading is checked against: on chunks whose keys do not repeat and whose
// choices are an array of objects, both must fold to the same answer.

func (a *Accumulator) addGJSON(chunk []byte) error {
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
			a.text += deltaTextGJSON(delta, nil)
			return true
		}
		if idx < 0 || idx > 127 {
			return true
		}
		for len(a.choices) <= idx {
			a.choices = append(a.choices, accChoice{})
		}
		c := &a.choices[idx]
		a.text += deltaTextGJSON(delta, c)
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

func deltaTextGJSON(d gjson.Result, c *accChoice) int {
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

// accState is what an accumulator shows of itself.
type accState struct {
	Completion      *ChatCompletion
	Chunks, Text    int
	UsageOnly, Over bool
	Complete        bool
}

func stateOf(a *Accumulator) accState {
	return accState{Completion: a.Completion(), Chunks: a.Chunks(), Text: a.TextBytes(), UsageOnly: a.UsageOnly(),
		Over: a.Overflowed(), Complete: a.Complete()}
}

// wellShaped reports whether a chunk is one the two readings must agree
// on: valid JSON without repeated keys, choices (if any) an array of
// objects.
func wellShaped(chunk []byte) bool {
	if !json.Valid(chunk) || CheckDuplicateKeys(chunk) != nil {
		return false
	}
	r := gjson.ParseBytes(chunk)
	if !r.IsObject() {
		return true
	}
	ch := r.Get("choices")
	if !ch.Exists() {
		return true
	}
	if !ch.IsArray() {
		return false
	}
	ok := true
	ch.ForEach(func(_, c gjson.Result) bool {
		ok = ok && c.IsObject()
		return ok
	})
	return ok
}

var accumulatorCorpus = []string{
	`{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","system_fingerprint":"fp","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}`,
	`{"id":"c1","choices":[{"index":0,"delta":{"content":"caf\u00e9 \"quoted\" \n\ud83d\ude00 tab\t"},"finish_reason":null}]}`,
	`{"id":"c1","choices":[{"index":0,"delta":{"content":"lone \ud83d surrogate"}}]}`,
	`{ "id" : "c1" , "choices" : [ { "index" : 1 , "delta" : { "content" : "spaced" } , "finish_reason" : "stop" } ] }`,
	`{"id":"c1","choices":[{"index":0,"delta":{"refusal":"no"},"finish_reason":"stop"},{"index":1,"delta":{"content":"yes"},"finish_reason":"length"}]}`,
	`{"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get","arguments":"{\"q\":"}}]}}]}`,
	`{"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]},"finish_reason":"tool_calls"}]}`,
	`{"id":"c1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":1}}}`,
	`{"i\u0064":"escaped-key","choices":[{"ind\u0065x":2,"delta":{"cont\u0065nt":"via escaped keys"},"finish_reason":"stop"}]}`,
	`{"id":12,"model":null,"created":"9","choices":[{"index":"1","delta":null,"finish_reason":5}]}`,
	`{"id":"c1","choices":[{"index":-1,"delta":{"content":"dropped"}},{"index":200,"delta":{"content":"dropped too"}}]}`,
	`{"id":"c1","choices":[{"index":1.5e0,"delta":{"content":"float index"}}]}`,
	`{"id":"c1","created":1.7e9,"choices":[{"index":0,"delta":{"content":"x","role":7,"refusal":null}}],"extra":{"deep":[[[{"a":[true,false,null,-0.5e-3]}]]]}}`,
	`[1,2,3]`,
	`"just a string"`,
	`{}`,
	`{"choices":[{}]}`,
}

func TestAccumulatorAgreesWithTheGJSONWalk(t *testing.T) {
	for _, limit := range []int{0, 8} {
		var got, want Accumulator
		got.SetLimit(limit)
		want.SetLimit(limit)
		for _, c := range accumulatorCorpus {
			if !wellShaped([]byte(c)) {
				t.Fatalf("corpus chunk is not well shaped: %s", c)
			}
			gerr, werr := got.Add([]byte(c)), want.addGJSON([]byte(c))
			if (gerr == nil) != (werr == nil) {
				t.Fatalf("limit %d, %s: error %v, the gjson walk's %v", limit, c, gerr, werr)
			}
			if g, w := stateOf(&got), stateOf(&want); !reflect.DeepEqual(g, w) {
				gj, _ := json.Marshal(g)
				wj, _ := json.Marshal(w)
				t.Fatalf("limit %d, after %s:\n got  %s\n want %s", limit, c, gj, wj)
			}
		}
	}
}

func TestAccumulatorRefusesWhatIsNotJSONAndChangesNothing(t *testing.T) {
	bad := []string{``, ` `, `{`, `{"id":"c1"`, `{"id":"c1",}`, `{"id" "c1"}`, `{"id":"c1"}x`, `{"id":"c1"} {}`,
		`{"choices":[{"index":0,"delta":{"content":"a"}}`, `{"choices":[{"index":0,"delta":{"content":"a"}},]}`,
		`{"choices":[{"index":0,"delta":{"content":"a\x"}}]}`, "{\"choices\":[{\"delta\":{\"content\":\"ctl\x01\"}}]}",
		`{"created":01}`, `{"created":1.}`, `{"created":-}`, `{"a":tru}`, `{"a":nul}`, `{"a":[1 2]}`, `{'a':1}`,
		`{"choices":[{"index":0,"delta":{"content":"a"}}]]`, `{"choices":{"index":0]}`}
	for _, c := range bad {
		var a Accumulator
		if err := a.Add([]byte(`{"id":"c1","choices":[{"index":0,"delta":{"content":"kept"}}]}`)); err != nil {
			t.Fatal(err)
		}
		before := stateOf(&a)
		if err := a.Add([]byte(c)); err == nil {
			t.Errorf("%q: accepted", c)
		}
		if !reflect.DeepEqual(stateOf(&a), before) {
			t.Errorf("%q: changed the answer", c)
		}
	}
}

// FuzzAccumulatorAgreesWithTheGJSONWalk: Add accepts exactly what encoding/json calls valid,
// never panics, and on well-shaped chunks folds what the gjson walk folds.
func FuzzAccumulatorAgreesWithTheGJSONWalk(f *testing.F) {
	for _, c := range accumulatorCorpus {
		f.Add(c, `{"id":"c1","choices":[{"index":0,"delta":{"content":"next"},"finish_reason":"stop"}]}`)
	}
	f.Fuzz(func(t *testing.T, c1, c2 string) {
		var got, want Accumulator
		// Each after one of its own shape and after the other: a chunk
		// read after one of its own shape is folded from the template
		// (see chunkParse.tmpl), one of another shape ends it.
		for _, c := range []string{c1, c2, c2, c1, c1, c2} {
			gerr := got.Add([]byte(c))
			if valid := json.Valid([]byte(c)); (gerr == nil) != valid {
				t.Fatalf("%q: Add error %v, json.Valid %v", c, gerr, valid)
			}
			if !wellShaped([]byte(c)) || strings.Contains(c, `\u0000`) {
				return
			}
			if werr := want.addGJSON([]byte(c)); werr != nil {
				t.Fatalf("%q: the gjson walk refused a valid chunk: %v", c, werr)
			}
			if g, w := stateOf(&got), stateOf(&want); !reflect.DeepEqual(g, w) {
				gj, _ := json.Marshal(g)
				wj, _ := json.Marshal(w)
				t.Fatalf("after %q:\n got  %s\n want %s", c, gj, wj)
			}
			checkCompletionJSON(t, &got, false)
		}
	})
}

// checkCompletionJSON: CompletionJSON is what encoding/json writes for
// Completion without HTML escaping, byte for byte when exact (encoding/json
// writes \b and \f where CompletionJSON writes \u0008 and \u000c), else as
// the same JSON value.
func checkCompletionJSON(t *testing.T, a *Accumulator, exact bool) {
	t.Helper()
	got, err := a.CompletionJSON()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(a.Completion()); err != nil {
		t.Fatal(err)
	}
	want := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if exact {
		if !bytes.Equal(got, want) {
			t.Fatalf("CompletionJSON:\n got  %s\n want %s", got, want)
		}
		return
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("CompletionJSON is not JSON: %v\n%s", err, got)
	}
	_ = json.Unmarshal(want, &w)
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("CompletionJSON:\n got  %s\n want %s", got, want)
	}
}

// TestCompletionJSONIsEncodingJSONsCompletion: the answer built from the
// corpus (text, escapes, refusals, tool calls, usage with its details,
// skipped choices), after each chunk.
func TestCompletionJSONIsEncodingJSONsCompletion(t *testing.T) {
	var a Accumulator
	checkCompletionJSON(t, &a, true)
	for _, c := range append(accumulatorCorpus,
		`{"id":"c1","choices":[{"index":3,"delta":{"role":"tool","content":"<b>&amp;</b> \u2028"}}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3,"completion_tokens_details":{"reasoning_tokens":2}}}`) {
		_ = a.Add([]byte(c))
		checkCompletionJSON(t, &a, true)
	}
}

// TestAccumulatorReadsChunksThatShareTheirOpening: chunks that start with
// the opening of the one before are read from their choices on (the
// remembered opening); what follows it is still read, and checked, whole.
func TestAccumulatorReadsChunksThatShareTheirOpening(t *testing.T) {
	open := `{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","system_fingerprint":"fp",`
	chunks := []string{
		open + `"choices":[{"index":0,"delta":{"role":"assistant","content":"a"}}]}`,
		open + `"choices":[{"index":0,"delta":{"content":"b"}}],"usage":null}`,
		open + `"choices":[{"index":0,"delta":{"content":"c"}}],"system_fingerprint":"fp2"}`,
		open + `"choices":[{"index":0,"delta":{"content":"d"},"finish_reason":"stop"}]}`,
		open + `"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":4,"total_tokens":5}}`,
	}
	var got, want Accumulator
	for _, c := range chunks {
		if err := got.Add([]byte(c)); err != nil {
			t.Fatal(err)
		}
		_ = want.addGJSON([]byte(c))
		if g, w := stateOf(&got), stateOf(&want); !reflect.DeepEqual(g, w) {
			t.Fatalf("after %s: got %+v, want %+v", c, g.Completion, w.Completion)
		}
	}
	if len(got.parse.open) != len(open) {
		t.Fatalf("remembered an opening of %d bytes, want %d", len(got.parse.open), len(open))
	}
	for _, bad := range []string{open + `"choices":[{"index":0,"delta":{"content":"e"}}]`, open + `"choices":[}`, open} {
		before := stateOf(&got)
		if err := got.Add([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
		if !reflect.DeepEqual(stateOf(&got), before) {
			t.Errorf("%s: changed the answer", bad)
		}
	}
}

// TestAccumulatorEndsTheTemplateAtAChunkOfAnotherShape: a chunk that is not
// a template (a refusal, tool calls, two choices, none) changes what the
// template's chunk had set, so the template's chunk that comes again after
// it is read whole and sets it back.
func TestAccumulatorEndsTheTemplateAtAChunkOfAnotherShape(t *testing.T) {
	tmpl := `{"id":"c1","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}],"system_fingerprint":"fp1","usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`
	for _, between := range []string{
		`{"id":"c1","choices":[{"index":0,"delta":{"refusal":"no"},"finish_reason":"stop"}],"system_fingerprint":"fp2"}`,
		`{"id":"c1","choices":[{"index":0,"delta":{"content":"b","tool_calls":[{"index":0,"id":"t","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}],"system_fingerprint":"fp2"}`,
		`{"id":"c1","choices":[{"index":0,"delta":{"content":"b"},"finish_reason":"stop"},{"index":1,"delta":{"content":"c"}}],"system_fingerprint":"fp2"}`,
		`{"id":"c1","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":9,"total_tokens":10}}`,
		`{"id":"c1","choices":[{"index":300,"delta":{"content":"dropped"},"finish_reason":"stop"}],"system_fingerprint":"fp2"}`,
	} {
		var got, want Accumulator
		for _, c := range []string{tmpl, tmpl, between, tmpl} {
			if err := got.Add([]byte(c)); err != nil {
				t.Fatalf("%s: %v", c, err)
			}
			_ = want.addGJSON([]byte(c))
			if g, w := stateOf(&got), stateOf(&want); !reflect.DeepEqual(g, w) {
				gj, _ := json.Marshal(g)
				wj, _ := json.Marshal(w)
				t.Fatalf("after %s, then %s:\n got  %s\n want %s", between, c, gj, wj)
			}
		}
		if got.parse.tmpl.hits != 1 {
			t.Errorf("after %s: %d chunks folded from the template, want 1", between, got.parse.tmpl.hits)
		}
	}
}

// TestAccumulatorReadsChunksThatDifferOnlyInTheirContent: a chunk that is
// the one before with another content string (most of a stream) is read
// from the remembered template; what lies after the content (a finish
// reason, a usage, a fingerprint) still reads where it moved to, and a
// literal that is not a valid string is refused with nothing changed.
func TestAccumulatorReadsChunksThatDifferOnlyInTheirContent(t *testing.T) {
	pre := `{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"content":`
	suf := `},"finish_reason":null}],"system_fingerprint":"fp","usage":{"prompt_tokens":2,"completion_tokens":1,"total_tokens":3}}`
	contents := []string{`"a"`, `"bb"`, `""`, `"caf\u00e9 \"q\" \n"`, `"a much longer piece of text than the one before it"`, `"z"`}
	var got, want Accumulator
	for _, c := range contents {
		chunk := pre + c + suf
		if err := got.Add([]byte(chunk)); err != nil {
			t.Fatalf("%s: %v", chunk, err)
		}
		if err := want.addGJSON([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
		if g, w := stateOf(&got), stateOf(&want); !reflect.DeepEqual(g, w) {
			gj, _ := json.Marshal(g)
			wj, _ := json.Marshal(w)
			t.Fatalf("after %s:\n got  %s\n want %s", chunk, gj, wj)
		}
	}
	if got.parse.tmpl.hits != len(contents)-1 {
		t.Fatalf("%d chunks read from the template, want %d", got.parse.tmpl.hits, len(contents)-1)
	}

	for _, bad := range []string{`"a\x"`, "\"ctl\x01\"", `"unterminated`, `"two" "strings"`, `"a"}`} {
		before, hits := stateOf(&got), got.parse.tmpl.hits
		if err := got.Add([]byte(pre + bad + suf)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
		if !reflect.DeepEqual(stateOf(&got), before) {
			t.Errorf("%s: changed the answer", bad)
		}
		if got.parse.tmpl.hits != hits {
			t.Errorf("%s: read from the template", bad)
		}
	}

	// Another shape is read whole (and becomes the template): a finish
	// reason after the content moves every span after it.
	other := pre + `"end"},"finish_reason":"stop"}],"system_fingerprint":"fp2"}`
	hits := got.parse.tmpl.hits
	for _, c := range []string{other, other} {
		if err := got.Add([]byte(c)); err != nil {
			t.Fatal(err)
		}
		_ = want.addGJSON([]byte(c))
		if g, w := stateOf(&got), stateOf(&want); !reflect.DeepEqual(g, w) {
			gj, _ := json.Marshal(g)
			wj, _ := json.Marshal(w)
			t.Fatalf("after %s:\n got  %s\n want %s", c, gj, wj)
		}
	}
	if got.parse.tmpl.hits != hits+1 {
		t.Fatalf("the second of two identical chunks was not read from the template (%d hits, want %d)", got.parse.tmpl.hits, hits+1)
	}
}

// The template is kept as hashes: a chunk of the template's lengths around
// its content but one byte different before or after it is read whole.
func TestAccumulatorTemplateRefusesOneByteChanged(t *testing.T) {
	pre := `{"id":"c1","model":"m","choices":[{"index":0,"delta":{"content":`
	suf := `},"finish_reason":null}],"system_fingerprint":"fp"}`
	for _, c := range []string{
		`{"id":"c1","model":"n","choices":[{"index":0,"delta":{"content":"b"},"finish_reason":null}],"system_fingerprint":"fp"}`,
		`{"id":"c1","model":"m","choices":[{"index":0,"delta":{"content":"b"},"finish_reason":null}],"system_fingerprint":"fq"}`,
	} {
		var got, want Accumulator
		for _, chunk := range []string{pre + `"a"` + suf, c} {
			if err := got.Add([]byte(chunk)); err != nil {
				t.Fatal(err)
			}
			_ = want.addGJSON([]byte(chunk))
		}
		if got.parse.tmpl.hits != 0 {
			t.Errorf("%s: read from the template", c)
		}
		if g, w := stateOf(&got), stateOf(&want); !reflect.DeepEqual(g, w) {
			t.Errorf("%s: got %+v, want %+v", c, g, w)
		}
	}
}
