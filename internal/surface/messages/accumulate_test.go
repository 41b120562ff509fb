package messages

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
	"github.com/edge-agent/edge-agent/internal/sse"
	"github.com/edge-agent/edge-agent/internal/testutil/golden"
)

// accumulateSSE feeds every event of an SSE body to a new Accumulator.
func accumulateSSE(t *testing.T, body []byte) *Accumulator {
	t.Helper()
	var a Accumulator
	r := sse.NewReader(bytes.NewReader(body))
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			return &a
		}
		if err != nil {
			t.Fatalf("reading events: %v", err)
		}
		if typ := gjson.GetBytes(ev.Data, "type").Str; string(ev.Event) != typ {
			t.Fatalf("event %q carries data of type %q", ev.Event, typ)
		}
		if err := a.Add(ev.Data); err != nil {
			t.Fatalf("Add(%s): %v", ev.Data, err)
		}
	}
}

func answerOf(t *testing.T, a *Accumulator) []byte {
	t.Helper()
	if !a.Complete() {
		t.Fatal("the stream did not complete")
	}
	b, err := a.Answer()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// roundTrip checks that replaying answer and accumulating the replay gives
// answer back, byte for byte.
func roundTrip(t *testing.T, answer []byte) {
	t.Helper()
	replay, err := Replay(nil, answer)
	if err != nil {
		t.Fatal(err)
	}
	again := answerOf(t, accumulateSSE(t, replay))
	if !bytes.Equal(again, answer) {
		t.Fatalf("replay does not round-trip\nreplay:\n%s\nanswer: %s\nagain:  %s", replay, answer, again)
	}
}

func TestAccumulatorKeepsThinkingSignatureToolInputCitationsAndCacheUsage(t *testing.T) {
	in, err := os.ReadFile("testdata/events/thinking_tool_cache.sse")
	if err != nil {
		t.Fatal(err)
	}
	got := answerOf(t, accumulateSSE(t, in))
	golden.Compare(t, "testdata/events/thinking_tool_cache.messages.json", golden.Indent(t, got))
	roundTrip(t, got)

	u := Usage(got)
	if u.PromptTokens != 12 || u.CacheReadTokens != 20000 || u.CacheWrite5mTokens != 1000 ||
		u.CacheWrite1hTokens != 2000 || u.CompletionTokens != 89 {
		t.Fatalf("usage by kind: %+v", u)
	}
}

func postSimulated(t *testing.T, ts *httptest.Server, body string) []byte {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, ts.URL+"/v1/messages", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("anthropic-version", "2023-06-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("simulated provider: %d %v\n%s", resp.StatusCode, err, b)
	}
	return b
}

// TestAccumulatedSimulatedStreamEqualsItsJSONAnswer streams the simulated
// provider's Anthropic answers (text and tool use), accumulates them, and
// checks the result against the same request answered as JSON, then that
// the replay round-trips.
func TestAccumulatedSimulatedStreamEqualsItsJSONAnswer(t *testing.T) {
	ts := httptest.NewServer(simulated.New(simulated.Options{Words: 9}))
	t.Cleanup(ts.Close)
	tools := `,"tools":[{"name":"get_weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}],"tool_choice":{"type":"any"}`
	for name, extra := range map[string]string{"text": "", "tool_use": tools} {
		t.Run(name, func(t *testing.T) {
			req := `{"model":"claude-sonnet-4-5","max_tokens":256,"messages":[{"role":"user","content":"weather in Paris"}]` + extra
			whole := postSimulated(t, ts, req+`}`)
			got := answerOf(t, accumulateSSE(t, postSimulated(t, ts, req+`,"stream":true}`)))

			var w, g map[string]any
			if err := json.Unmarshal(whole, &w); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatal(err)
			}
			// Tool call ids are minted per request.
			for _, m := range []map[string]any{w, g} {
				for _, b := range m["content"].([]any) {
					delete(b.(map[string]any), "id")
				}
			}
			for _, k := range []string{"type", "role", "model", "content", "stop_reason", "stop_sequence"} {
				if !jsonEqual(w[k], g[k]) {
					t.Errorf("%s: streamed %v, JSON answer %v", k, g[k], w[k])
				}
			}
			if !jsonEqual(w["usage"].(map[string]any)["output_tokens"], g["usage"].(map[string]any)["output_tokens"]) {
				t.Errorf("usage: streamed %v, JSON answer %v", g["usage"], w["usage"])
			}
			roundTrip(t, got)
			// A JSON answer cached from the upstream replays to itself too.
			roundTrip(t, bytes.TrimSpace(whole))
		})
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// TestTranslatedStreamAccumulatesToTheTranslatedAnswer checks the two
// translations agree: chat chunks -> events -> accumulated answer equals
// chat chunks -> chat answer -> FromChat.
func TestTranslatedStreamAccumulatesToTheTranslatedAnswer(t *testing.T) {
	for _, name := range []string{"text", "tool_calls"} {
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile("testdata/stream/" + name + ".chunks.jsonl")
			if err != nil {
				t.Fatal(err)
			}
			events, err := translateChunks(in)
			if err != nil {
				t.Fatal(err)
			}
			viaEvents := answerOf(t, accumulateSSE(t, events))

			var chat api.Accumulator
			for line := range bytes.Lines(in) {
				if err := chat.Add(bytes.TrimSpace(line)); err != nil {
					t.Fatal(err)
				}
			}
			cc, err := chat.CompletionJSON()
			if err != nil {
				t.Fatal(err)
			}
			viaChat, err := FromChat(cc, "")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(viaEvents, viaChat) {
				t.Fatalf("translations disagree\nvia events: %s\nvia chat:   %s", viaEvents, viaChat)
			}
			roundTrip(t, viaEvents)
		})
	}
}

func TestAccumulatorRefusesErrorsAndIncompleteStreams(t *testing.T) {
	t.Run("error event", func(t *testing.T) {
		var a Accumulator
		_ = a.Add([]byte(`{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"usage":{"input_tokens":1}}}`))
		err := a.Add([]byte(`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`))
		var e *api.Error
		if !errors.As(err, &e) || e.Status != http.StatusServiceUnavailable || a.Complete() {
			t.Fatalf("error event: %v, complete %v", err, a.Complete())
		}
	})
	t.Run("no message_stop", func(t *testing.T) {
		var a Accumulator
		_ = a.Add([]byte(`{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"usage":{"input_tokens":1}}}`))
		_ = a.Add([]byte(`{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":1}}`))
		if a.Complete() {
			t.Fatal("complete without message_stop")
		}
	})
	t.Run("delta before start", func(t *testing.T) {
		var a Accumulator
		if err := a.Add([]byte(`{"type":"content_block_delta","index":3,"delta":{"type":"text_delta","text":"x"}}`)); err == nil {
			t.Fatal("a delta for a block never started was accepted")
		}
	})
	t.Run("huge index", func(t *testing.T) {
		var a Accumulator
		if err := a.Add([]byte(`{"type":"content_block_start","index":100000000,"content_block":{"type":"text","text":""}}`)); err == nil {
			t.Fatal("an unbounded block index was accepted")
		}
	})
	t.Run("broken tool input", func(t *testing.T) {
		var a Accumulator
		for _, ev := range []string{
			`{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"usage":{"input_tokens":1}}}`,
			`{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}`,
			`{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}`,
			`{"type":"message_stop"}`,
		} {
			if err := a.Add([]byte(ev)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := a.Answer(); err == nil {
			t.Fatal("an answer with a half tool input was built")
		}
	})
	t.Run("not JSON", func(t *testing.T) {
		var a Accumulator
		if err := a.Add([]byte(`{"type":`)); err == nil {
			t.Fatal("invalid JSON accepted")
		}
	})
}

func TestReplayRefusesWhatIsNotAMessagesAnswer(t *testing.T) {
	for _, in := range []string{`{`, `{"type":"error","error":{}}`, `{"id":"chatcmpl-1","choices":[]}`} {
		if out, err := Replay(nil, []byte(in)); err == nil || len(out) != 0 {
			t.Errorf("Replay(%s) = %q, %v; want an error and nothing written", in, out, err)
		}
	}
}

func TestAccumulatorTakesDeltasToAnEarlierBlockAfterALaterOneStarted(t *testing.T) {
	// Blocks live in a slice that grows as they start; a delta to block 0
	// after block 1 started once panicked (a copied strings.Builder).
	var a Accumulator
	for _, e := range []string{
		`{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}}`,
		`{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`,
		`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}}`,
		`{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}`,
		`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"b"}}`,
		`{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"c"}}`,
		`{"type":"content_block_stop","index":0}`,
		`{"type":"content_block_stop","index":1}`,
		`{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":3}}`,
		`{"type":"message_stop"}`,
	} {
		if err := a.Add([]byte(e)); err != nil {
			t.Fatal(err)
		}
	}
	b, err := a.Answer()
	if err != nil {
		t.Fatal(err)
	}
	if got := gjson.GetBytes(b, "content.#.text").Raw; got != `["ab","c"]` {
		t.Fatalf("texts %s in %s", got, b)
	}
}
