package cache

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// typicalRequest is a ~1 KB chat request with tools, the shape the gateway
// keys most often.
const typicalRequest = `{
  "model": "gpt-4o-mini",
  "messages": [
    {"role": "system", "content": "You are a helpful assistant that answers questions about the weather. Be concise and precise."},
    {"role": "user", "content": "What is the weather like in Paris today? I am planning a walk along the Seine in the afternoon and want to know whether to bring an umbrella."},
    {"role": "assistant", "content": null, "tool_calls": [{"id": "call_abc123", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"celsius\"}"}}]},
    {"role": "tool", "tool_call_id": "call_abc123", "content": "{\"temperature\": 18, \"conditions\": \"light rain\", \"precipitation_probability\": 0.7}"}
  ],
  "temperature": 0.2,
  "top_p": 1,
  "max_tokens": 256,
  "seed": 42,
  "stream": true,
  "stream_options": {"include_usage": true},
  "user": "user-1234",
  "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Get the current weather for a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}}],
  "tool_choice": "auto"
}`

func mustKey(t testing.TB, ns, provider, model, body string) Key {
	t.Helper()
	k, err := ComputeKey(ns, provider, model, []byte(body))
	if err != nil {
		t.Fatalf("ComputeKey(%s): %v", body, err)
	}
	return k
}

func TestComputeKeyIgnoresLayoutAndAnswerNeutralFields(t *testing.T) {
	base := `{"model":"m","messages":[{"role":"user","content":"Hi  there"}],"temperature":0.5,"tools":[{"type":"function","function":{"name":"f","parameters":{"a":1,"b":[1,2]}}}]}`
	same := map[string]string{
		"reordered keys":      `{"temperature":0.5,"tools":[{"function":{"parameters":{"b":[1,2],"a":1},"name":"f"},"type":"function"}],"messages":[{"content":"Hi  there","role":"user"}],"model":"m"}`,
		"whitespace":          "{ \"model\" : \"m\",\n\t\"messages\" : [ { \"role\" : \"user\" , \"content\" : \"Hi  there\" } ] ,\r\n \"temperature\" : 0.5 , \"tools\" : [ { \"type\" : \"function\" , \"function\" : { \"name\" : \"f\" , \"parameters\" : { \"a\" : 1 , \"b\" : [ 1 , 2 ] } } } ] }",
		"body model":          `{"model":"alias-for-m","messages":[{"role":"user","content":"Hi  there"}],"temperature":0.5,"tools":[{"type":"function","function":{"name":"f","parameters":{"a":1,"b":[1,2]}}}]}`,
		"stream":              `{"model":"m","stream":true,"messages":[{"role":"user","content":"Hi  there"}],"temperature":0.5,"tools":[{"type":"function","function":{"name":"f","parameters":{"a":1,"b":[1,2]}}}]}`,
		"stream_options":      `{"model":"m","stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Hi  there"}],"temperature":0.5,"tools":[{"type":"function","function":{"name":"f","parameters":{"a":1,"b":[1,2]}}}]}`,
		"user":                `{"model":"m","user":"alice","messages":[{"role":"user","content":"Hi  there"}],"temperature":0.5,"tools":[{"type":"function","function":{"name":"f","parameters":{"a":1,"b":[1,2]}}}]}`,
		"metadata":            `{"model":"m","metadata":{"trace":"x"},"messages":[{"role":"user","content":"Hi  there"}],"temperature":0.5,"tools":[{"type":"function","function":{"name":"f","parameters":{"a":1,"b":[1,2]}}}]}`,
		"store":               `{"model":"m","store":true,"messages":[{"role":"user","content":"Hi  there"}],"temperature":0.5,"tools":[{"type":"function","function":{"name":"f","parameters":{"a":1,"b":[1,2]}}}]}`,
		"escaped text":        `{"model":"m","messages":[{"role":"\u0075ser","content":"\u0048i  there"}],"temperature":0.5,"tools":[{"type":"function","function":{"name":"f","parameters":{"a":1,"b":[1,2]}}}]}`,
		"escaped key":         `{"model":"m","m\u0065ssages":[{"role":"user","content":"Hi  there"}],"temperature":0.5,"tools":[{"type":"function","function":{"name":"f","parameters":{"a":1,"b":[1,2]}}}]}`,
		"number 5e-1":         `{"model":"m","messages":[{"role":"user","content":"Hi  there"}],"temperature":5e-1,"tools":[{"type":"function","function":{"name":"f","parameters":{"a":1.0,"b":[1e0,20E-1]}}}]}`,
		"number 0.50":         `{"model":"m","messages":[{"role":"user","content":"Hi  there"}],"temperature":0.50,"tools":[{"type":"function","function":{"name":"f","parameters":{"a":0.1e1,"b":[1,2]}}}]}`,
		"escaped stream name": `{"model":"m","str\u0065am":true,"messages":[{"role":"user","content":"Hi  there"}],"temperature":0.5,"tools":[{"type":"function","function":{"name":"f","parameters":{"a":1,"b":[1,2]}}}]}`,
	}
	different := map[string]string{
		"temperature":        `{"model":"m","messages":[{"role":"user","content":"Hi  there"}],"temperature":0.6,"tools":[{"type":"function","function":{"name":"f","parameters":{"a":1,"b":[1,2]}}}]}`,
		"tools":              `{"model":"m","messages":[{"role":"user","content":"Hi  there"}],"temperature":0.5,"tools":[{"type":"function","function":{"name":"g","parameters":{"a":1,"b":[1,2]}}}]}`,
		"tool param order":   `{"model":"m","messages":[{"role":"user","content":"Hi  there"}],"temperature":0.5,"tools":[{"type":"function","function":{"name":"f","parameters":{"a":1,"b":[2,1]}}}]}`,
		"response_format":    `{"model":"m","response_format":{"type":"json_object"},"messages":[{"role":"user","content":"Hi  there"}],"temperature":0.5,"tools":[{"type":"function","function":{"name":"f","parameters":{"a":1,"b":[1,2]}}}]}`,
		"unknown field":      `{"model":"m","brand_new_param":1,"messages":[{"role":"user","content":"Hi  there"}],"temperature":0.5,"tools":[{"type":"function","function":{"name":"f","parameters":{"a":1,"b":[1,2]}}}]}`,
		"message whitespace": `{"model":"m","messages":[{"role":"user","content":"Hi there"}],"temperature":0.5,"tools":[{"type":"function","function":{"name":"f","parameters":{"a":1,"b":[1,2]}}}]}`,
		"string not number":  `{"model":"m","messages":[{"role":"user","content":"Hi  there"}],"temperature":"0.5","tools":[{"type":"function","function":{"name":"f","parameters":{"a":1,"b":[1,2]}}}]}`,
		"nested stream kept": `{"model":"m","messages":[{"role":"user","content":"Hi  there","stream":true}],"temperature":0.5,"tools":[{"type":"function","function":{"name":"f","parameters":{"a":1,"b":[1,2]}}}]}`,
		"extra message":      `{"model":"m","messages":[{"role":"user","content":"Hi  there"},{"role":"user","content":""}],"temperature":0.5,"tools":[{"type":"function","function":{"name":"f","parameters":{"a":1,"b":[1,2]}}}]}`,
	}
	want := mustKey(t, "ns", "openai", "m", base)
	for name, body := range same {
		t.Run("same/"+name, func(t *testing.T) {
			if got := mustKey(t, "ns", "openai", "m", body); got != want {
				t.Errorf("key %s, want %s", got, want)
			}
		})
	}
	for name, body := range different {
		t.Run("different/"+name, func(t *testing.T) {
			if got := mustKey(t, "ns", "openai", "m", body); got == want {
				t.Errorf("key equals the base key %s", got)
			}
		})
	}
	t.Run("different/model", func(t *testing.T) {
		if mustKey(t, "ns", "openai", "m2", base) == want {
			t.Error("upstream model does not change the key")
		}
	})
	t.Run("different/provider", func(t *testing.T) {
		if mustKey(t, "ns", "anthropic", "m", base) == want {
			t.Error("provider does not change the key")
		}
	})
	t.Run("different/namespace", func(t *testing.T) {
		if mustKey(t, "other", "openai", "m", base) == want {
			t.Error("namespace does not change the key")
		}
	})
}

func TestComputeKeyHasNoSeparatorCollisions(t *testing.T) {
	pairs := []struct {
		name string
		a, b [4]string // namespace, provider, model, body
	}{
		{"field boundary", [4]string{"ab", "c", "m", `{}`}, [4]string{"a", "bc", "m", `{}`}},
		{"string vs number", [4]string{"", "", "", `{"a":"1"}`}, [4]string{"", "", "", `{"a":1}`}},
		{"string vs literal", [4]string{"", "", "", `{"a":"true"}`}, [4]string{"", "", "", `{"a":true}`}},
		{"null vs empty string", [4]string{"", "", "", `{"a":null}`}, [4]string{"", "", "", `{"a":""}`}},
		{"array nesting", [4]string{"", "", "", `{"a":[[1],[2]]}`}, [4]string{"", "", "", `{"a":[[1,2]]}`}},
		{"key value split", [4]string{"", "", "", `{"ab":"c"}`}, [4]string{"", "", "", `{"a":"bc"}`}},
		{"object vs array of pairs", [4]string{"", "", "", `{"a":{"b":1}}`}, [4]string{"", "", "", `{"a":["b",1]}`}},
		{"long key vs end marker", [4]string{"", "", "", `{"a":{"` + strings.Repeat("x", 125) + `":1}}`}, [4]string{"", "", "", `{"a":{},"` + strings.Repeat("x", 125) + `":1}`}},
		{"duplicate keys kept", [4]string{"", "", "", `{"a":1,"a":2}`}, [4]string{"", "", "", `{"a":2}`}},
		{"duplicate order kept", [4]string{"", "", "", `{"a":1,"a":2}`}, [4]string{"", "", "", `{"a":2,"a":1}`}},
		{"lone surrogate vs replacement", [4]string{"", "", "", `{"a":"\ud800"}`}, [4]string{"", "", "", `{"a":"\ufffd"}`}},
		{"negative", [4]string{"", "", "", `{"a":-1}`}, [4]string{"", "", "", `{"a":1}`}},
		{"exponent", [4]string{"", "", "", `{"a":1e2}`}, [4]string{"", "", "", `{"a":1e3}`}},
		{"big integers stay exact", [4]string{"", "", "", `{"seed":12345678901234567890}`}, [4]string{"", "", "", `{"seed":12345678901234567891}`}},
	}
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			ka := mustKey(t, p.a[0], p.a[1], p.a[2], p.a[3])
			kb := mustKey(t, p.b[0], p.b[1], p.b[2], p.b[3])
			if ka == kb {
				t.Errorf("%q and %q share key %s", p.a, p.b, ka)
			}
		})
	}
}

func TestComputeKeyEqualValues(t *testing.T) {
	pairs := []struct{ name, a, b string }{
		{"zero signs", `{"a":0}`, `{"a":-0.0e5}`},
		{"integer forms", `{"a":100}`, `{"a":1e2}`},
		{"fraction forms", `{"a":0.001}`, `{"a":1E-3}`},
		{"surrogate pair vs raw", `{"a":"\ud83d\ude00"}`, `{"a":"😀"}`},
		{"short escapes", `{"a":"\"\\\/\b\f\n\r\t"}`, "{\"a\":\"\\\"\\\\/\\u0008\\u000c\\u000a\\u000d\\u0009\"}"},
	}
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			if ka, kb := mustKey(t, "", "", "", p.a), mustKey(t, "", "", "", p.b); ka != kb {
				t.Errorf("%s and %s have different keys", p.a, p.b)
			}
		})
	}
}

func TestComputeKeyIgnoringSkipsExtraTopLevelFields(t *testing.T) {
	a := `{"model":"m","messages":[],"fallbacks":["x"]}`
	b := `{"model":"m","messages":[],"fallbacks":["y"]}`
	ka, err := ComputeKeyIgnoring("", "p", "m", []byte(a), []string{"fallbacks"})
	if err != nil {
		t.Fatal(err)
	}
	kb, err := ComputeKeyIgnoring("", "p", "m", []byte(b), []string{"fallbacks"})
	if err != nil {
		t.Fatal(err)
	}
	if ka != kb {
		t.Error("ignored field changed the key")
	}
	if mustKey(t, "", "p", "m", a) == mustKey(t, "", "p", "m", b) {
		t.Error("without the ignore list the field must change the key")
	}
}

func TestComputeKeyRejectsInvalidBodies(t *testing.T) {
	for _, body := range []string{
		``, `[]`, `"x"`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":[1,]}`, `{"a":tru}`, `{"a":01}`,
		`{"a":1.}`, `{"a":1e}`, `{"a":-}`, `{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"abc}`, `{"a":1} x`, `{"a":1}{}`,
		`{"a":` + strings.Repeat("[", maxDepth+2) + strings.Repeat("]", maxDepth+2) + `}`,
	} {
		if _, err := ComputeKey("", "", "", []byte(body)); !errors.Is(err, ErrInvalidJSON) {
			t.Errorf("ComputeKey(%q) error = %v, want ErrInvalidJSON", body, err)
		}
	}
}

func TestKeyStringRoundTrips(t *testing.T) {
	k := mustKey(t, "ns", "p", "m", typicalRequest)
	s := k.String()
	if len(s) != 32 || strings.ToLower(s) != s {
		t.Fatalf("String() = %q, want 32 lowercase hex digits", s)
	}
	got, err := ParseKey(s)
	if err != nil || got != k {
		t.Fatalf("ParseKey(%q) = %v, %v; want %v", s, got, err, k)
	}
	for _, bad := range []string{"", "abc", strings.Repeat("g", 32), s + "0"} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) succeeded", bad)
		}
	}
}

// loneSurrogate matches escapes that encoding/json rewrites to U+FFFD, which
// the key deliberately does not.
var loneSurrogate = regexp.MustCompile(`(?i)\\u[d][89a-f]`)

// hasDuplicateKeys reports whether any object in the JSON repeats a key,
// which encoding/json collapses and the key deliberately does not.
func hasDuplicateKeys(data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	type frame struct {
		obj    bool
		keys   map[string]bool
		expect bool // next string token is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				if top != nil && top.obj {
					top.expect = true
				}
				stack = append(stack, &frame{obj: true, keys: map[string]bool{}, expect: true})
			case '[':
				if top != nil && top.obj {
					top.expect = true
				}
				stack = append(stack, &frame{})
			default:
				stack = stack[:len(stack)-1]
			}
		default:
			if top != nil && top.obj {
				if top.expect {
					s := v.(string)
					if top.keys[s] {
						return true
					}
					top.keys[s] = true
					top.expect = false
				} else {
					top.expect = true
				}
			}
		}
	}
}

// FuzzComputeKey checks that the key depends on the JSON value, not its
// layout: re-serialising a parsed body (sorted keys, no whitespace,
// re-escaped strings) keeps the key.
func FuzzComputeKey(f *testing.F) {
	f.Add([]byte(typicalRequest))
	f.Add([]byte(`{"a":[1,2.50,{"z":null,"y":"\u00e9\n"}],"b":-0,"c":1e-7}`))
	f.Add([]byte(`{"messages":[{"content":"<b>&</b> \u2028"}],"n":12345678901234567890123}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		k1, err := ComputeKey("ns", "p", "m", body)
		if !json.Valid(body) {
			return // invalid bodies only need to not panic
		}
		var v any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if dec.Decode(&v) != nil {
			return
		}
		if _, ok := v.(map[string]any); !ok {
			if err == nil {
				t.Fatalf("non-object body %q accepted", body)
			}
			return
		}
		if err != nil {
			t.Fatalf("valid body %q rejected: %v", body, err)
		}
		if !utf8.Valid(body) || loneSurrogate.Match(body) || hasDuplicateKeys(body) {
			return // encoding/json normalises these; the key keeps them distinct
		}
		again, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		k2, err := ComputeKey("ns", "p", "m", again)
		if err != nil {
			t.Fatalf("re-serialised body %q rejected: %v", again, err)
		}
		if k1 != k2 {
			t.Fatalf("key changed after re-serialisation:\n%s\n%s", body, again)
		}
	})
}

func BenchmarkComputeKey(b *testing.B) {
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(typicalRequest)); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		body []byte
	}{
		{"pretty", []byte(typicalRequest)}, // as a person writes it
		{"compact", compact.Bytes()},       // as SDKs send it
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ComputeKey("default", "openai", "gpt-4o-mini", bc.body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
