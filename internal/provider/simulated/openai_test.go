package simulated

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
)

func TestOpenAIJSONAnswerIsACompleteChatCompletion(t *testing.T) {
	_, ts := start(t, Options{})
	root := mustJSON(t, post(t, ts, "/v1/chat/completions", openAIReq("hello world, how are you?", "")), 200)

	var cc api.ChatCompletion
	if err := json.Unmarshal([]byte(root.Raw), &cc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(cc.ID, "chatcmpl-sim-") || cc.Object != "chat.completion" || cc.Model != "gpt-4o-mini" || cc.Created == 0 {
		t.Errorf("header fields: %+v", cc)
	}
	if cc.SystemFingerprint == "" {
		t.Error("no system_fingerprint")
	}
	if len(cc.Choices) != 1 {
		t.Fatalf("%d choices", len(cc.Choices))
	}
	ch := cc.Choices[0]
	if ch.Index != 0 || ch.Message.Role != "assistant" || ch.FinishReason != "stop" || ch.Message.Content == nil {
		t.Fatalf("choice: %+v", ch)
	}
	if string(ch.Logprobs) != "null" {
		t.Errorf("logprobs = %s, want null", ch.Logprobs)
	}
	content := *ch.Message.Content
	if !strings.HasPrefix(content, "Simulated answer to: hello world, how are you?") {
		t.Errorf("content %q", content)
	}
	if words(content) != DefaultWords {
		t.Errorf("%d words, want %d", words(content), DefaultWords)
	}
	u := cc.Usage
	if u == nil || u.CompletionTokens != DefaultWords || u.PromptTokens < 1 || u.TotalTokens != u.PromptTokens+u.CompletionTokens {
		t.Errorf("usage %+v", u)
	}
}

func TestOpenAIStreamFollowsTheChunkFormat(t *testing.T) {
	for _, includeUsage := range []bool{false, true} {
		name := "without usage"
		extra := `,"stream":true`
		if includeUsage {
			name = "with usage"
			extra += `,"stream_options":{"include_usage":true}`
		}
		t.Run(name, func(t *testing.T) {
			_, ts := start(t, Options{})
			prompt := "stream me a story"
			whole := mustJSON(t, post(t, ts, "/v1/chat/completions", openAIReq(prompt, "")), 200)
			evs := mustEvents(t, post(t, ts, "/v1/chat/completions", openAIReq(prompt, extra)))

			if last := evs[len(evs)-1]; last.data != "[DONE]" || last.name != "" {
				t.Fatalf("last event %+v, want data: [DONE]", last)
			}
			chunks := evs[:len(evs)-1]
			var usage gjson.Result
			if includeUsage {
				usage = gjson.Get(chunks[len(chunks)-1].data, "usage")
				if n := len(gjson.Get(chunks[len(chunks)-1].data, "choices").Array()); n != 0 || !usage.IsObject() {
					t.Fatalf("usage chunk: %s", chunks[len(chunks)-1].data)
				}
				chunks = chunks[:len(chunks)-1]
			}
			var content strings.Builder
			for i, ev := range chunks {
				c := gjson.Parse(ev.data)
				if c.Get("object").Str != "chat.completion.chunk" || c.Get("model").Str != "gpt-4o-mini" ||
					!strings.HasPrefix(c.Get("id").Str, "chatcmpl-sim-") {
					t.Fatalf("chunk %d header: %s", i, ev.data)
				}
				if u := c.Get("usage"); includeUsage != u.Exists() || (u.Exists() && u.Type != gjson.Null) {
					t.Fatalf("chunk %d usage field with include_usage=%v: %s", i, includeUsage, ev.data)
				}
				choice := c.Get("choices.0")
				finish := choice.Get("finish_reason")
				switch i {
				case 0:
					if choice.Get("delta.role").Str != "assistant" || choice.Get("delta.content").Raw != `""` || finish.Type != gjson.Null {
						t.Fatalf("first chunk: %s", ev.data)
					}
				case len(chunks) - 1:
					if finish.Str != "stop" || choice.Get("delta").Raw != "{}" {
						t.Fatalf("final chunk: %s", ev.data)
					}
				default:
					if finish.Type != gjson.Null || choice.Get("delta.role").Exists() {
						t.Fatalf("content chunk: %s", ev.data)
					}
					content.WriteString(choice.Get("delta.content").Str)
				}
			}
			if len(chunks) < 4 {
				t.Errorf("only %d chunks", len(chunks))
			}
			if want := whole.Get("choices.0.message.content").Str; content.String() != want {
				t.Errorf("streamed %q\nwant     %q", content.String(), want)
			}
			if includeUsage && usage.Get("completion_tokens").Int() != DefaultWords {
				t.Errorf("usage %s", usage.Raw)
			}
		})
	}
}

func TestSameRequestGetsTheSameAnswerAndDifferentPromptsDiffer(t *testing.T) {
	for _, tc := range []struct {
		name, path string
		req        func(prompt, extra string) string
		content    string
	}{
		{"openai", "/v1/chat/completions", openAIReq, "choices.0.message.content"},
		{"anthropic", "/v1/messages", anthropicReq, "content.0.text"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ts := start(t, Options{})
			get := func(prompt string) gjson.Result {
				return mustJSON(t, post(t, ts, tc.path, tc.req(prompt, "")), 200)
			}
			a, b, c := get("what is an edge gateway?"), get("what is an edge gateway?"), get("what is a cache?")
			if a.Get(tc.content).Str != b.Get(tc.content).Str || a.Get("id").Str != b.Get("id").Str {
				t.Errorf("same request, different answers:\n%s\n%s", a.Get(tc.content).Str, b.Get(tc.content).Str)
			}
			if a.Get(tc.content).Str == c.Get(tc.content).Str {
				t.Errorf("different prompts, same answer %q", a.Get(tc.content).Str)
			}
			// Filler words differ too, not only the echoed prompt.
			tail := func(r gjson.Result) string {
				f := strings.Fields(r.Get(tc.content).Str)
				return strings.Join(f[len(f)-8:], " ")
			}
			if tail(a) == tail(c) {
				t.Errorf("filler identical for different prompts: %q", tail(a))
			}
		})
	}
}

func TestMaxTokensTruncatesTheAnswerWithFinishReasonLength(t *testing.T) {
	for _, field := range []string{"max_tokens", "max_completion_tokens"} {
		t.Run(field, func(t *testing.T) {
			_, ts := start(t, Options{})
			extra := `,"` + field + `":5`
			root := mustJSON(t, post(t, ts, "/v1/chat/completions", openAIReq("tell me everything", extra)), 200)
			if got := root.Get("choices.0.finish_reason").Str; got != "length" {
				t.Errorf("finish_reason %q", got)
			}
			if n := words(root.Get("choices.0.message.content").Str); n != 5 {
				t.Errorf("%d words", n)
			}
			if n := root.Get("usage.completion_tokens").Int(); n != 5 {
				t.Errorf("completion_tokens %d", n)
			}

			evs := mustEvents(t, post(t, ts, "/v1/chat/completions", openAIReq("tell me everything", extra+`,"stream":true`)))
			final := gjson.Get(evs[len(evs)-2].data, "choices.0.finish_reason").Str
			if final != "length" {
				t.Errorf("streamed finish_reason %q", final)
			}
		})
	}
	t.Run("larger than the answer", func(t *testing.T) {
		_, ts := start(t, Options{})
		root := mustJSON(t, post(t, ts, "/v1/chat/completions", openAIReq("hi", `,"max_tokens":500`)), 200)
		if got := root.Get("choices.0.finish_reason").Str; got != "stop" {
			t.Errorf("finish_reason %q", got)
		}
	})
}

func TestNAsksForThatManyDifferentChoices(t *testing.T) {
	_, ts := start(t, Options{Words: 10})
	root := mustJSON(t, post(t, ts, "/v1/chat/completions", openAIReq("pick a color", `,"n":3`)), 200)
	choices := root.Get("choices").Array()
	if len(choices) != 3 {
		t.Fatalf("%d choices", len(choices))
	}
	seen := map[string]bool{}
	for i, c := range choices {
		if c.Get("index").Int() != int64(i) {
			t.Errorf("choice %d has index %d", i, c.Get("index").Int())
		}
		seen[c.Get("message.content").Str] = true
	}
	if len(seen) != 3 {
		t.Errorf("choices not distinct: %v", seen)
	}
	if n := root.Get("usage.completion_tokens").Int(); n != 30 {
		t.Errorf("completion_tokens %d, want 30", n)
	}

	evs := mustEvents(t, post(t, ts, "/v1/chat/completions", openAIReq("pick a color", `,"n":3,"stream":true`)))
	got := map[int64]*strings.Builder{}
	for _, ev := range evs[:len(evs)-1] {
		c := gjson.Get(ev.data, "choices.0")
		i := c.Get("index").Int()
		if got[i] == nil {
			got[i] = &strings.Builder{}
		}
		got[i].WriteString(c.Get("delta.content").Str)
	}
	for i, c := range choices {
		if got[int64(i)] == nil || got[int64(i)].String() != c.Get("message.content").Str {
			t.Errorf("streamed choice %d differs from JSON", i)
		}
	}
}

func TestOpenAIToolCalls(t *testing.T) {
	const tools = `,"tools":[{"type":"function","function":{"name":"search","parameters":{"type":"object"}}},` +
		`{"type":"function","function":{"name":"lookup","parameters":{"type":"object"}}}]`
	cases := []struct {
		name, req, tool string
	}{
		{"magic word", openAIReq("find SIM_TOOL_CALL docs", tools), "search"},
		{"required", openAIReq("find docs", tools+`,"tool_choice":"required"`), "search"},
		{"named function", openAIReq("find docs", tools+`,"tool_choice":{"type":"function","function":{"name":"lookup"}}`), "lookup"},
		{"none wins over the magic word", openAIReq("find SIM_TOOL_CALL docs", tools+`,"tool_choice":"none"`), ""},
		{"no tools offered", openAIReq("find SIM_TOOL_CALL docs", ""), ""},
		{"tool result answered with text", `{"model":"m","messages":[{"role":"user","content":"SIM_TOOL_CALL"},` +
			`{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"search","arguments":"{}"}}]},` +
			`{"role":"tool","tool_call_id":"c1","content":"42"}]` + tools + `}`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, ts := start(t, Options{})
			root := mustJSON(t, post(t, ts, "/v1/chat/completions", tc.req), 200)
			ch := root.Get("choices.0")
			if tc.tool == "" {
				if ch.Get("finish_reason").Str != "stop" || ch.Get("message.tool_calls").Exists() {
					t.Fatalf("want a text answer: %s", ch.Raw)
				}
				return
			}
			call := ch.Get("message.tool_calls.0")
			if ch.Get("finish_reason").Str != "tool_calls" || ch.Get("message.content").Type != gjson.Null ||
				call.Get("type").Str != "function" || call.Get("function.name").Str != tc.tool || !strings.HasPrefix(call.Get("id").Str, "call_") {
				t.Fatalf("tool call: %s", ch.Raw)
			}
			args := call.Get("function.arguments").Str
			if !gjson.Valid(args) || !gjson.Get(args, "query").Exists() {
				t.Fatalf("arguments %q", args)
			}

			// The stream carries the same call in pieces.
			streamReq := strings.TrimSuffix(tc.req, "}") + `,"stream":true}`
			evs := mustEvents(t, post(t, ts, "/v1/chat/completions", streamReq))
			first := gjson.Get(evs[0].data, "choices.0.delta.tool_calls.0")
			if first.Get("index").Int() != 0 || !strings.HasPrefix(first.Get("id").Str, "call_") || first.Get("type").Str != "function" ||
				first.Get("function.name").Str != tc.tool {
				t.Fatalf("first tool chunk: %s", evs[0].data)
			}
			var streamed strings.Builder
			pieces := 0
			for _, ev := range evs[1 : len(evs)-2] {
				d := gjson.Get(ev.data, "choices.0.delta.tool_calls.0")
				if d.Get("index").Int() != 0 || d.Get("id").Exists() {
					t.Fatalf("argument chunk: %s", ev.data)
				}
				streamed.WriteString(d.Get("function.arguments").Str)
				pieces++
			}
			if pieces < 2 || streamed.String() != args {
				t.Errorf("%d pieces giving %q, want %q", pieces, streamed.String(), args)
			}
			if f := gjson.Get(evs[len(evs)-2].data, "choices.0.finish_reason").Str; f != "tool_calls" {
				t.Errorf("final finish_reason %q", f)
			}
		})
	}
}
