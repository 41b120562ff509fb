package messages

import (
	"bytes"
	"os"
	"testing"

	"github.com/edge-agent/edge-agent/internal/api"
)

// benchRequest is a Claude Code-like turn: a system prompt in blocks with
// cache_control, tools, a tool round trip.
var benchRequest = []byte(`{"model":"claude-sonnet-4-5","max_tokens":4096,"stream":true,` +
	`"system":[{"type":"text","text":"You are a coding agent. Follow the rules.","cache_control":{"type":"ephemeral"}}],` +
	`"tools":[{"name":"read_file","description":"Read a file","input_schema":{"type":"object","properties":{"path":{"type":"string"}},"required":["path"]}},` +
	`{"name":"run","description":"Run a command","input_schema":{"type":"object","properties":{"cmd":{"type":"string"}}}}],` +
	`"messages":[{"role":"user","content":"Fix the failing test in internal/cache."},` +
	`{"role":"assistant","content":[{"type":"text","text":"Let me look."},{"type":"tool_use","id":"toolu_01","name":"read_file","input":{"path":"internal/cache/key.go"}}]},` +
	`{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_01","content":"package cache\n\nfunc Key() {}\n"},{"type":"text","text":"go on"}]}],` +
	`"temperature":0.2}`)

// BenchmarkParseShort is the request of api's BenchmarkParseChatRequest in
// Messages form, for comparing the two surfaces' parse cost.
func BenchmarkParseShort(b *testing.B) {
	body := []byte(`{"model":"claude-haiku-4-5","temperature":0.2,"max_tokens":256,"system":"You are a helpful assistant.","messages":[{"role":"user","content":"What is the capital of France? Answer in one word."}]}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(body, api.DefaultLimits); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchRequest)))
	for b.Loop() {
		if _, err := Parse(benchRequest, api.DefaultLimits); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkToChat(b *testing.B) {
	b.ReportAllocs()
	dst := make([]byte, 0, 4096)
	for b.Loop() {
		var err error
		if dst, err = AppendChat(dst[:0], benchRequest); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStreamTranslator translates a whole chat stream (text then two
// tool calls) into Messages events, per stream.
func BenchmarkStreamTranslator(b *testing.B) {
	in, err := os.ReadFile("testdata/stream/tool_calls.chunks.jsonl")
	if err != nil {
		b.Fatal(err)
	}
	var chunks [][]byte
	for line := range bytes.Lines(in) {
		chunks = append(chunks, bytes.TrimSpace(line))
	}
	b.ReportAllocs()
	dst := make([]byte, 0, 4096)
	for b.Loop() {
		tr := NewStreamTranslator("gpt-4o")
		dst = dst[:0]
		for _, c := range chunks {
			if dst, err = tr.Add(dst, c); err != nil {
				b.Fatal(err)
			}
		}
		if dst, err = tr.Finish(dst); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAccumulateAndReplay(b *testing.B) {
	in, err := os.ReadFile("testdata/events/thinking_tool_cache.sse")
	if err != nil {
		b.Fatal(err)
	}
	var events [][]byte
	for line := range bytes.Lines(in) {
		if d, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte("data: ")); ok {
			events = append(events, d)
		}
	}
	b.ReportAllocs()
	var dst []byte
	for b.Loop() {
		var a Accumulator
		for _, ev := range events {
			if err := a.Add(ev); err != nil {
				b.Fatal(err)
			}
		}
		ans, err := a.Answer()
		if err != nil {
			b.Fatal(err)
		}
		if dst, err = Replay(dst[:0], ans); err != nil {
			b.Fatal(err)
		}
	}
}
