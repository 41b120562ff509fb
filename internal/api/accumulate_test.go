package api

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

func TestAccumulatorRebuildsTextToolCallsAndUsage(t *testing.T) {
	chunks := []string{
		`{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`,
		`{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}`,
		`{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}]}`,
		`{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get","arguments":""}}]},"finish_reason":null}]}`,
		`{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"q\":"}}]},"finish_reason":null}]}`,
		`{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]},"finish_reason":null}]}`,
		`{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}`,
		`{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}`,
	}
	var a Accumulator
	buf := make([]byte, 0, 512)
	for i, c := range chunks {
		if a.Complete() && i <= 6 { // chunk 6 carries finish_reason
			t.Fatalf("complete before the finish chunk, at chunk %d", i)
		}
		// One buffer for every chunk, overwritten after each Add, as an
		// SSE reader's is: what the accumulator keeps must be its own.
		buf = append(buf[:0], c...)
		if err := a.Add(buf); err != nil {
			t.Fatal(err)
		}
		if got, want := a.UsageOnly(), i == len(chunks)-1; got != want {
			t.Fatalf("chunk %d: UsageOnly %v, want %v", i, got, want)
		}
		for j := range buf {
			buf[j] = 'x'
		}
	}
	if !a.Complete() {
		t.Fatal("stream with finish_reason must be complete")
	}
	cc := a.Completion()
	want := &ChatCompletion{ID: "c1", Object: "chat.completion", Created: 7, Model: "m",
		Usage: &Usage{PromptTokens: 3, CompletionTokens: 4, TotalTokens: 7},
		Choices: []Choice{{Index: 0, FinishReason: "tool_calls", Logprobs: json.RawMessage("null"), Message: Message{
			Role: "assistant", Content: Ptr("Hello"), Annotations: json.RawMessage("[]"),
			ToolCalls: []ToolCall{{ID: "call_1", Type: "function", Function: FunctionCall{Name: "get", Arguments: `{"q":1}`}}},
		}}}}
	if !reflect.DeepEqual(cc, want) {
		g, _ := json.Marshal(cc)
		w, _ := json.Marshal(want)
		t.Fatalf("got  %s\nwant %s", g, w)
	}
}

func TestAccumulatorWithoutFinishIsIncomplete(t *testing.T) {
	var a Accumulator
	_ = a.Add([]byte(`{"id":"x","choices":[{"index":0,"delta":{"content":"partial"}}]}`))
	if a.Complete() {
		t.Fatal("a stream cut before finish_reason must not be complete")
	}
	if err := a.Add([]byte(`not json`)); err == nil {
		t.Fatal("invalid chunk must be an error")
	}
}

func TestStreamChunksReplayAccumulatesToTheSameAnswer(t *testing.T) {
	completions := []string{
		`{"id":"a","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hi there"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`,
		`{"id":"b","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"t1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}},{"id":"t2","type":"function","function":{"name":"g","arguments":"{}"}}]},"logprobs":null,"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":5,"completion_tokens":6,"total_tokens":11}}`,
		`{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"one"},"logprobs":null,"finish_reason":"stop"},{"index":1,"message":{"role":"assistant","content":"two"},"logprobs":null,"finish_reason":"length"}]}`,
	}
	for _, c := range completions {
		for _, incl := range []bool{false, true} {
			chunks, err := StreamChunks([]byte(c), incl)
			if err != nil {
				t.Fatal(err)
			}
			var a Accumulator
			for _, ch := range chunks {
				if err := a.Add(ch); err != nil {
					t.Fatal(err)
				}
			}
			var orig ChatCompletion
			_ = json.Unmarshal([]byte(c), &orig)
			got := a.Completion()
			if !incl {
				orig.Usage = nil
			}
			og, _ := json.Marshal(normalize(&orig))
			gg, _ := json.Marshal(normalize(got))
			if string(og) != string(gg) {
				t.Fatalf("replay of %s (usage=%v)\n got %s\nwant %s", c, incl, gg, og)
			}
		}
	}
}

// normalize drops the differences replay is allowed to make: a null
// content next to tool calls, and annotations: an accumulated answer always
// carries annotations:[], as OpenAI's answers do.
func normalize(c *ChatCompletion) *ChatCompletion {
	for i := range c.Choices {
		m := &c.Choices[i].Message
		if m.Content != nil && *m.Content == "" && len(m.ToolCalls) > 0 {
			m.Content = nil
		}
		if m.Annotations == nil {
			m.Annotations = json.RawMessage("[]")
		}
		c.Choices[i].Logprobs = json.RawMessage("null")
	}
	return c
}

func BenchmarkAccumulatorAdd(b *testing.B) {
	chunk := []byte(`{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"content":"Hello world "},"finish_reason":null}]}`)
	b.ReportAllocs()
	for b.Loop() {
		var a Accumulator
		for range 100 {
			_ = a.Add(chunk)
		}
	}
}

// BenchmarkCompletionJSON is the answer of a 52-chunk stream as its cache
// entry is written, once a stream.
func BenchmarkCompletionJSON(b *testing.B) {
	var a Accumulator
	head := `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":7,"model":"gpt-4o-mini","system_fingerprint":"fp",`
	_ = a.Add([]byte(head + `"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`))
	for range 50 {
		_ = a.Add([]byte(head + `"choices":[{"index":0,"delta":{"content":"a few \"words\" "},"finish_reason":null}]}`))
	}
	_ = a.Add([]byte(head + `"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":50,"total_tokens":59}}`))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.CompletionJSON(); err != nil {
			b.Fatal(err)
		}
	}
}

func TestAccumulatorPastItsLimitLetsTheTextGoButKeepsUsageAndCount(t *testing.T) {
	chunk := func(content string) []byte {
		return []byte(`{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"content":"` + content + `"},"finish_reason":null}]}`)
	}
	var a Accumulator
	a.SetLimit(10)
	for _, c := range []string{"12345", "67890"} { // 10 bytes: at the limit, still held
		if err := a.Add(chunk(c)); err != nil {
			t.Fatal(err)
		}
	}
	if a.Overflowed() || *a.Completion().Choices[0].Message.Content != "1234567890" {
		t.Fatalf("overflowed %v at the limit, content %q", a.Overflowed(), *a.Completion().Choices[0].Message.Content)
	}
	for _, c := range [][]byte{chunk("x"), chunk("yz"),
		[]byte(`{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":"{}"}}]},"finish_reason":"stop"}]}`),
		[]byte(`{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":40,"total_tokens":43}}`),
	} {
		if err := a.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	if !a.Overflowed() || a.Complete() || len(a.FinishReasons()) != 0 || len(a.choices) != 0 {
		t.Fatalf("past the limit: overflowed %v complete %v finish %v, %d choices held", a.Overflowed(), a.Complete(), a.FinishReasons(), len(a.choices))
	}
	if a.TextBytes() != 16 || a.Usage() == nil || a.Usage().CompletionTokens != 40 {
		t.Fatalf("text %d bytes (want 16), usage %+v: counting must go on past the limit", a.TextBytes(), a.Usage())
	}
	if err := a.Add([]byte(`{"choices":[`)); err == nil {
		t.Fatal("a chunk that is not JSON is still an error past the limit")
	}
}

func TestAccumulatorReadsEveryFieldOfAChunkShapedLikeOpenAIs(t *testing.T) {
	// Fields in an unusual order, escapes, the fingerprint, cached tokens,
	// "usage":null on every chunk and a second choice: the one-pass reading
	// takes each where it is.
	chunks := []string{
		`{"choices":[{"finish_reason":null,"delta":{"content":"","role":"assistant","refusal":null},"index":0},{"index":1,"delta":{"role":"assistant","content":"B"}}],"model":"m2","id":"c2","created":9,"system_fingerprint":"fp_1","usage":null}`,
		`{"id":"c2","model":"m2","created":9,"system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":"say \"hi\"\n"},"logprobs":null,"finish_reason":null}],"usage":null}`,
		`{"id":"c2","choices":[{"index":1,"delta":{},"finish_reason":"stop"},{"index":0,"delta":{"refusal":"no"},"finish_reason":"stop"}],"usage":null}`,
		`{"id":"c2","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":6,"total_tokens":11,"prompt_tokens_details":{"cached_tokens":2}}}`,
	}
	var a Accumulator
	for _, c := range chunks {
		if err := a.Add([]byte(c)); err != nil {
			t.Fatal(err)
		}
	}
	if !a.Complete() || a.TextBytes() != len(`say "hi"`)+1+len("B")+len("no") {
		t.Fatalf("complete %v, text bytes %d", a.Complete(), a.TextBytes())
	}
	cc := a.Completion()
	if cc.ID != "c2" || cc.Model != "m2" || cc.Created != 9 || cc.SystemFingerprint != "fp_1" {
		t.Fatalf("header fields: %+v", cc)
	}
	if u := cc.Usage; u == nil || u.PromptTokens != 5 || u.CompletionTokens != 6 || u.TotalTokens != 11 ||
		u.PromptTokensDetails == nil || u.PromptTokensDetails.CachedTokens != 2 {
		t.Fatalf("usage %+v", cc.Usage)
	}
	if len(cc.Choices) != 2 || *cc.Choices[0].Message.Content != "say \"hi\"\n" || *cc.Choices[0].Message.Refusal != "no" ||
		*cc.Choices[1].Message.Content != "B" || cc.Choices[0].FinishReason != "stop" || cc.Choices[1].FinishReason != "stop" {
		b, _ := json.Marshal(cc)
		t.Fatalf("choices %s", b)
	}
	if err := a.Add([]byte(`{"choices":[`)); err == nil {
		t.Fatal("an invalid chunk was accepted")
	}
}

// FuzzAccumulatorAdd: no chunk makes Add panic, and what the accumulator
// keeps is its own: scribbling over the chunk afterwards (an SSE reader
// reuses its buffer) changes nothing in the answer.
func FuzzAccumulatorAdd(f *testing.F) {
	f.Add([]byte(`{"id":"c","model":"m","system_fingerprint":"fp","choices":[{"index":0,"delta":{"role":"assistant","content":"hi","tool_calls":[{"index":0,"id":"t","type":"function","function":{"name":"n","arguments":"{}"}}]},"finish_reason":"stop"}],"usage":{"prompt_tokens":1}}`))
	f.Add([]byte(`{"choices":[{"index":1,"delta":{"content":"\u00e9"}},{"index":0,"delta":{"refusal":"r"}}]}`))
	f.Add([]byte(`{"choices":[{"index":200}],"usage":null}`))
	f.Add([]byte(`[1,2]`))
	f.Fuzz(func(t *testing.T, chunk []byte) {
		var a, b Accumulator
		scribbled := bytes.Clone(chunk)
		errA := a.Add(scribbled)
		for i := range scribbled {
			scribbled[i] = '"'
		}
		errB := b.Add(bytes.Clone(chunk))
		if (errA == nil) != (errB == nil) {
			t.Fatalf("errors %v and %v", errA, errB)
		}
		ja, _ := json.Marshal(a.Completion())
		jb, _ := json.Marshal(b.Completion())
		if !bytes.Equal(ja, jb) {
			t.Fatalf("the answer changed with the chunk's bytes:\n%s\n%s", ja, jb)
		}
	})
}
