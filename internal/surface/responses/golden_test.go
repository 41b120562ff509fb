package responses

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/tidwall/gjson"
	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/testutil/golden"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var goldenOutputs = []string{".error.json", ".chat.json", ".response.json", ".sse"}

// testID is the response id of every golden translation.
const testID = "resp_0123456789abcdef"

// streamRequest is the request every golden stream answers.
var streamRequest = []byte(`{"model":"gpt-4o","input":"hi","tools":[{"type":"function","name":"get_weather","parameters":{"type":"object"}}]}`)

// TestToChatMatchesGoldens translates each testdata/tochat/NAME.responses.json
// into NAME.chat.json, or NAME.error.json when chat cannot carry it.
func TestToChatMatchesGoldens(t *testing.T) {
	golden.Run(t, "testdata/tochat/*.responses.json", goldenOutputs, func(t *testing.T, in []byte) (string, []byte) {
		if _, err := parseFields(in, api.DefaultLimits); err != nil {
			t.Fatalf("the input is not a valid Responses request: %v", err)
		}
		out, err := ToChat(in)
		if err != nil {
			return ".error.json", errorGolden(t, err)
		}
		if _, err := api.ParseChatRequest(out, api.DefaultLimits); err != nil {
			t.Errorf("the translation is not a valid chat request: %v", err)
		}
		return ".chat.json", golden.Indent(t, out)
	})
}

// TestFromChatMatchesGoldens translates the chat completion of each
// testdata/fromchat/NAME.pair.json, answering its request, into
// NAME.response.json (or NAME.error.json), and checks the Response against
// OpenAI's schema.
func TestFromChatMatchesGoldens(t *testing.T) {
	schemas := responseSchemas(t)
	golden.Run(t, "testdata/fromchat/*.pair.json", goldenOutputs, func(t *testing.T, in []byte) (string, []byte) {
		pair := gjson.ParseBytes(in)
		out, err := FromChat([]byte(pair.Get("chat").Raw), []byte(pair.Get("request").Raw), testID)
		if err != nil {
			return ".error.json", errorGolden(t, err)
		}
		conform(t, schemas, "Response", "the response", out)
		return ".response.json", golden.Indent(t, out)
	})
}

// TestStreamTranslationMatchesGoldens feeds each testdata/stream/NAME.chunks.jsonl
// to a StreamTranslator and compares the events, and how the stream ended,
// with NAME.sse. Every event must be valid against OpenAI's schema, with
// sequence numbers from 0 in order, and the events must add up, for a
// client that accumulates them, to the response the last one carries.
func TestStreamTranslationMatchesGoldens(t *testing.T) {
	schemas := responseSchemas(t)
	golden.Run(t, "testdata/stream/*.chunks.jsonl", goldenOutputs, func(t *testing.T, in []byte) (string, []byte) {
		out, resp, err := translateChunks(in)
		checkEvents(t, schemas, out)
		if err != nil {
			out = append(out, "# ended with "...)
			out = append(out, strings.TrimSpace(string(errorGolden(t, err)))...)
			return ".sse", append(out, '\n')
		}
		if got := accumulate(t, out); !bytes.Equal(got, resp) {
			t.Errorf("the events accumulate to\n%s\nbut the stream's response is\n%s", got, resp)
		}
		return ".sse", out
	})
}

// TestReplayMatchesGoldens replays each stored testdata/replay/NAME.response.json
// as events (NAME.sse), valid against the schema and accumulating to the
// stored response byte for byte.
func TestReplayMatchesGoldens(t *testing.T) {
	schemas := responseSchemas(t)
	golden.Run(t, "testdata/replay/*.stored.json", goldenOutputs, func(t *testing.T, in []byte) (string, []byte) {
		var compact bytes.Buffer
		if err := json.Compact(&compact, in); err != nil {
			t.Fatal(err)
		}
		out, err := AppendReplay(nil, compact.Bytes())
		if err != nil {
			return ".error.json", errorGolden(t, err)
		}
		checkEvents(t, schemas, out)
		if got := accumulate(t, out); !bytes.Equal(got, compact.Bytes()) {
			t.Errorf("the replay accumulates to\n%s\nwant the stored\n%s", got, compact.Bytes())
		}
		return ".sse", out
	})
}

func translateChunks(jsonl []byte) (out, resp []byte, err error) {
	tr := NewStreamTranslator(streamRequest, testID)
	for line := range bytes.Lines(jsonl) {
		if line = bytes.TrimSpace(line); len(line) == 0 {
			continue
		}
		if out, err = tr.Add(out, line); err != nil {
			return tr.AppendError(out, api.FromError(err)), nil, err
		}
	}
	out, resp, err = tr.Finish(out)
	if err != nil {
		out = tr.AppendError(out, api.FromError(err))
	}
	return out, resp, err
}

// sseEvents splits an event stream into (event name, data) pairs.
func sseEvents(t *testing.T, stream []byte) (names []string, data [][]byte) {
	t.Helper()
	for block := range strings.SplitSeq(strings.TrimSpace(string(stream)), "\n\n") {
		if strings.HasPrefix(block, "#") {
			continue
		}
		name, rest, ok := strings.Cut(block, "\n")
		if !ok || !strings.HasPrefix(name, "event: ") || !strings.HasPrefix(rest, "data: ") {
			t.Fatalf("not an event: %q", block)
		}
		names = append(names, strings.TrimPrefix(name, "event: "))
		data = append(data, []byte(strings.TrimPrefix(rest, "data: ")))
	}
	return names, data
}

func checkEvents(t *testing.T, schemas map[string]*jsonschema.Schema, stream []byte) {
	t.Helper()
	names, data := sseEvents(t, stream)
	for i, d := range data {
		conform(t, schemas, "ResponseStreamEvent", names[i], d)
		if typ := gjson.GetBytes(d, "type").Str; typ != names[i] {
			t.Errorf("event %d is named %s but its type is %s", i, names[i], typ)
		}
		if seq := gjson.GetBytes(d, "sequence_number").Int(); seq != int64(i) {
			t.Errorf("event %d (%s) has sequence_number %d", i, names[i], seq)
		}
	}
}

// accumulate is what a client makes of the events: it builds the output
// from the added/delta/done events alone and takes the rest of the
// response from the terminal event, then checks the two agree.
func accumulate(t *testing.T, stream []byte) []byte {
	t.Helper()
	_, data := sseEvents(t, stream)
	var items []map[string]any
	texts := map[[2]int64]string{}
	var final []byte
	var acc Accumulator
	for _, d := range data {
		if _, err := acc.Add(d); err != nil {
			t.Fatal(err)
		}
		ev := gjson.ParseBytes(d)
		oi := ev.Get("output_index").Int()
		switch ev.Get("type").Str {
		case "response.output_item.added":
			var it map[string]any
			_ = json.Unmarshal([]byte(ev.Get("item").Raw), &it)
			items = append(items, it)
		case "response.output_text.delta", "response.refusal.delta":
			k := [2]int64{oi, ev.Get("content_index").Int()}
			texts[k] += ev.Get("delta").Str
		case "response.output_text.done":
			if k := [2]int64{oi, ev.Get("content_index").Int()}; texts[k] != ev.Get("text").Str {
				t.Errorf("output_text.done says %q, the deltas %q", ev.Get("text").Str, texts[k])
			}
		case "response.function_call_arguments.delta":
			items[oi]["arguments"] = items[oi]["arguments"].(string) + ev.Get("delta").Str
		case "response.output_item.done":
			var it map[string]any
			_ = json.Unmarshal([]byte(ev.Get("item").Raw), &it)
			if it["type"] == "function_call" && it["arguments"] != items[oi]["arguments"] {
				t.Errorf("item %d: done with arguments %v, the deltas made %v", oi, it["arguments"], items[oi]["arguments"])
			}
			items[oi] = it
		case "response.completed", "response.incomplete", "response.failed":
			final = []byte(ev.Get("response").Raw)
		}
	}
	if final == nil {
		t.Fatal("no terminal event")
	}
	if !bytes.Equal(acc.Response(), final) {
		t.Errorf("Accumulator kept %s, want %s", acc.Response(), final)
	}
	got, _ := json.Marshal(items)
	want := gjson.GetBytes(final, "output").Raw
	if !jsonEqual(t, got, []byte(want)) {
		t.Errorf("the item events make %s, the response's output is %s", got, want)
	}
	return final
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

func errorGolden(t *testing.T, err error) []byte {
	t.Helper()
	var e *api.Error
	if !errors.As(err, &e) {
		t.Fatalf("error is %T, want *api.Error: %v", err, err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(map[string]any{"status": e.Status, "param": e.Param, "code": e.Code, "message": e.Message}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

const schemaURL = "https://edge-agent.invalid/responses.json"

func responseSchemas(t *testing.T) map[string]*jsonschema.Schema {
	t.Helper()
	f, err := os.Open("testdata/openai-schema/responses.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(schemaURL, doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]*jsonschema.Schema{}
	for _, name := range []string{"Response", "ResponseStreamEvent", "ErrorResponse", "ResponseItemList", "DeleteResponseResponse"} {
		s, err := c.Compile(schemaURL + "#/$defs/" + name)
		if err != nil {
			t.Fatalf("compile %s: %v", name, err)
		}
		out[name] = s
	}
	return out
}

func conform(t *testing.T, schemas map[string]*jsonschema.Schema, name, what string, body []byte) {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s is not JSON: %v: %s", what, err, body)
	}
	if err := schemas[name].Validate(inst); err != nil {
		t.Errorf("%s is not a valid %s: %v\n%s", what, name, err, body)
	}
}

func TestReplayOfAPrettyPrintedAnswerKeepsEachEventOnOneDataLine(t *testing.T) {
	pretty, err := os.ReadFile("testdata/replay/native_reasoning_tool.stored.json")
	if err != nil {
		t.Fatal(err)
	}
	indented := golden.Indent(t, pretty)
	out, err := AppendReplay(nil, indented)
	if err != nil {
		t.Fatal(err)
	}
	checkEvents(t, responseSchemas(t), out)
}
