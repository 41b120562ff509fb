package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// issueBody is the redaction bypass: the gateway read (and redacted) the
// first content, the provider read the last.
const issueBody = `{"model":"gpt-4o","messages":[{"role":"user","content":"harmless","content":"alice@example.com 123-45-6789"}]}`

func TestCheckDuplicateKeysNamesThePathOfTheFirstRepeat(t *testing.T) {
	for _, tc := range []struct{ name, body, path string }{
		{"issue body", issueBody, "messages[0].content"},
		{"top level", `{"model":"a","stream":false,"model":"b"}`, "model"},
		{"escaped spelling of the same key", `{"model":"a","messages":[],"\u006dodel":"b"}`, "model"},
		{"escaped both times", `{"a\"b":1,"a\u0022b":2}`, `["a\"b"]`},
		{"surrogate pair", `{"\ud83d\ude00":1,"😀":2}`, `["😀"]`},
		{"nested in arrays", `{"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"x":{},"x":{}}}}}]}`, "tools[0].function.parameters.properties.x"},
		{"second array element", `{"messages":[{"role":"user"},{"role":"user","role":"system"}]}`, "messages[1].role"},
		{"array of arrays", `[[1,2],[{"a":1,"b":2,"a":3}]]`, "[1][0].a"},
		{"key that is not an identifier", `{"x":{"a.b":1,"a.b":2}}`, `x["a.b"]`},
		{"many keys", manyKeys(100, 57), "k57"},
		{"many keys, repeat of an early one", manyKeys(30, 0), "k0"},
		{"inside tool call arguments object", `{"messages":[{"role":"assistant","tool_calls":[{"id":"1","function":{"name":"f","name":"g"}}]}]}`, "messages[0].tool_calls[0].function.name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckDuplicateKeys([]byte(tc.body))
			if err == nil {
				t.Fatalf("duplicate key not reported in %s", tc.body)
			}
			if err.Status != 400 || err.Type != TypeInvalidRequest || err.Param != tc.path {
				t.Fatalf("got status %d type %q param %q, want 400 invalid_request_error %q", err.Status, err.Type, err.Param, tc.path)
			}
			if !strings.Contains(err.Message, tc.path) {
				t.Fatalf("message %q does not name %q", err.Message, tc.path)
			}
		})
	}
}

func TestCheckDuplicateKeysAcceptsDistinctKeys(t *testing.T) {
	for _, body := range []string{
		`{"model":"gpt-4","messages":[{"role":"user","content":"hi"},{"role":"user","content":"again"}]}`,
		`{"a":{"x":1},"b":{"x":1},"c":[{"x":1},{"x":2}]}`, // the same key in sibling objects
		`{"a":1,"A":2,"a ":3}`, // keys differ by case and space
		`{"a\\":1,"a":2}`,      // an escaped backslash is not an escape of the quote
		`{"\ud800":1,"x":2}`,   // a lone surrogate
		`{"content":"a \"quoted\" \\\" value","role":"x"}`,
		manyKeys(200, -1),
		`[]`, `{}`, `"s"`, `1`, `null`, ` { "a" : [ 1 , { } , [ ] ] } `,
		`[0,-0,1.5,-2e10,3E+2,4e-1,true,false,null,"\b\f\n\r\t\/\\\"\u00e9"]`,
	} {
		if err := CheckDuplicateKeys([]byte(body)); err != nil {
			t.Errorf("%s: unexpected %v", body, err)
		}
	}
}

func TestCheckDuplicateKeysRejectsBrokenStructure(t *testing.T) {
	for _, body := range []string{``, `{`, `{"a":1`, `{"a" 1}`, `{"a":1,}`, `[1,2`, `{"a":"x}`, `{} {}`, `{"a":1]`, `[1}`,
		`[1,]`, `[01]`, `[1.]`, `[.5]`, `[1e]`, `[-]`, `[+1]`, `[tru]`, `[truex]`, `[nul]`, `{"a":falsey}`, `{"a":NaN}`,
		"[\"tab\there\"]", `["\x"]`, `["\u12"]`, `["\u12G4"]`, `{a:1}`, `{"a":1 "b":2}`, `[1 2]`, `'x'`} {
		err := CheckDuplicateKeys([]byte(body))
		if err == nil || err.Status != 400 {
			t.Errorf("%q: got %v, want a 400", body, err)
		}
	}
}

func TestParseChatRequestRejectsDuplicateKeys(t *testing.T) {
	_, err := ParseChatRequest([]byte(issueBody), DefaultLimits)
	var e *Error
	if !errors.As(err, &e) || e.Status != 400 || e.Param != "messages[0].content" {
		t.Fatalf("got %v, want a 400 naming messages[0].content", err)
	}
}

func TestCheckDuplicateKeysAllocatesNothingForTypicalBodies(t *testing.T) {
	for _, body := range benchBodies() {
		b := []byte(body)
		if n := testing.AllocsPerRun(50, func() { _ = CheckDuplicateKeys(b) }); n != 0 {
			t.Errorf("%d allocations for %.60s...", int(n), body)
		}
	}
}

// manyKeys is an object with n keys k0..k(n-1), then a repeat of k(dup)
// when dup >= 0.
func manyKeys(n, dup int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		b.WriteString(`"k` + strconv.Itoa(i) + `":` + strconv.Itoa(i) + `,`)
	}
	if dup >= 0 {
		b.WriteString(`"k` + strconv.Itoa(dup) + `":0,`)
	}
	b.WriteString(`"end":true}`)
	return b.String()
}

// FuzzCheckDuplicateKeys checks the scanner against encoding/json's own
// decoding of the keys: the same first duplicate, at the same path.
func FuzzCheckDuplicateKeys(f *testing.F) {
	for _, s := range []string{
		issueBody,
		`{"model":"a","\u006dodel":"b"}`,
		`{"a\\":1,"a":2}`, `{"\ud83d\ude00":1,"😀":2}`, `{"\ud800\u0041":1,"�A":2}`,
		`[[1,2],[{"a":1,"b":2,"a":3}]]`, `{"x":{"a.b":1,"a.b":2}}`,
		manyKeys(40, 33), manyKeys(5, -1), `{"a":"\"}","a":1}`, `[]`, `{}`, `"x"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !utf8.Valid(body) {
			_ = CheckDuplicateKeys(body) // must not panic
			return
		}
		if !json.Valid(body) {
			if err := CheckDuplicateKeys(body); err == nil || err.Status != 400 {
				t.Fatalf("invalid JSON %q: got %v, want a 400", body, err)
			}
			return
		}
		want, ok := firstDuplicate(body)
		if !ok {
			return // nested deeper than encoding/json goes
		}
		got := ""
		if err := CheckDuplicateKeys(body); err != nil {
			got = err.Param
			if got == "" {
				t.Fatalf("valid JSON %q rejected: %v", body, err)
			}
		}
		if got != want {
			t.Fatalf("%q: got duplicate at %q, encoding/json finds %q", body, got, want)
		}
	})
}

// firstDuplicate is the reference: encoding/json's tokens, a map per
// object, and the same path rendering. It returns false when the decoder
// gives up (nesting).
func firstDuplicate(body []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	type level struct {
		obj   bool
		index int
		key   string
		seen  map[string]bool
		inKey bool // objects: the next string token is a key
	}
	var stack []*level
	path := func() string {
		var p []byte
		for _, l := range stack {
			if !l.obj {
				p = append(p, '[')
				p = strconv.AppendInt(p, int64(l.index), 10)
				p = append(p, ']')
				continue
			}
			name := []byte(l.key)
			if len(name) > maxPathKey {
				n := maxPathKey
				for n > 0 && !utf8.RuneStart(name[n]) {
					n--
				}
				name = append(name[:n:n], "..."...)
			}
			if identifier(name) {
				if len(p) > 0 {
					p = append(p, '.')
				}
				p = append(p, name...)
				continue
			}
			p = append(p, '[')
			p = AppendString(p, string(name))
			p = append(p, ']')
		}
		return string(p)
	}
	// afterValue moves the enclosing container on to its next item.
	afterValue := func() {
		if len(stack) == 0 {
			return
		}
		if l := stack[len(stack)-1]; l.obj {
			l.inKey = true
		} else {
			l.index++
		}
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return "", true
		}
		if err != nil {
			return "", false
		}
		var top *level
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.obj && top.inKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				afterValue()
				continue
			}
			k := tok.(string)
			top.key, top.inKey = k, false
			if top.seen[k] {
				return path(), true
			}
			top.seen[k] = true
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &level{obj: true, seen: map[string]bool{}, inKey: true})
		case json.Delim('['):
			stack = append(stack, &level{})
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
			afterValue()
		default:
			afterValue()
		}
	}
}

func benchBodies() map[string]string {
	var long strings.Builder
	long.WriteString(`{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"system","content":"You are a helpful assistant."}`)
	for range 20 {
		long.WriteString(`,{"role":"user","content":"` + strings.Repeat("Tell me more about that. ", 40) + `"}`)
		long.WriteString(`,{"role":"assistant","content":"` + strings.Repeat("Here is some more detail. ", 60) + `"}`)
	}
	long.WriteString(`]}`)
	return map[string]string{
		"one-turn":      `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello, how are you?"}]}`,
		"tools":         `{"model":"gpt-4o","tools":[{"type":"function","function":{"name":"get_weather","description":"Get the weather for a city","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}],"tool_choice":"auto","messages":[{"role":"user","content":"Weather in Paris?"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},{"role":"tool","tool_call_id":"call_1","content":"18C, cloudy"}]}`,
		"content-parts": `{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"What is in this image?"},{"type":"image_url","image_url":{"url":"https://example.com/cat.png","detail":"low"}}]}]}`,
		"escaped-keys":  `{"\u006dodel":"gpt-4o","messages":[{"r\u006fle":"user","content":"x"}]}`,
		"long-history":  long.String(),
	}
}

func BenchmarkCheckDuplicateKeys(b *testing.B) {
	for name, body := range benchBodies() {
		body := []byte(body)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if err := CheckDuplicateKeys(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSyntaxWalk compares the one walk ParseChatRequest now makes with
// the gjson.ValidBytes walk it replaced, on the same bodies.
func BenchmarkSyntaxWalk(b *testing.B) {
	for name, body := range benchBodies() {
		body := []byte(body)
		b.Run(name+"/gjson.ValidBytes", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if !gjson.ValidBytes(body) {
					b.Fatal("invalid")
				}
			}
		})
		b.Run(name+"/CheckDuplicateKeys", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if err := CheckDuplicateKeys(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
