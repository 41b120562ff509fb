package responses

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/surface"
)

var (
	alice = surface.Scope{Principal: "alice", Namespace: "alice"}
	bob   = surface.Scope{Principal: "bob", Namespace: "bob"}
)

func parse(t *testing.T, s *Surface, body string) *Request {
	t.Helper()
	req, err := s.Parse([]byte(body), api.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	return req.(*Request)
}

// answerTranslated runs a request through a chat upstream that answers
// completion, records the answer and returns it.
func answerTranslated(t *testing.T, s *Surface, sc surface.Scope, body, completion string) []byte {
	t.Helper()
	r := parse(t, s, body)
	if err := r.Prepare(context.Background(), sc, false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Upstream(false, nil); err != nil {
		t.Fatal(err)
	}
	a, err := r.Answer([]byte(completion), false)
	if err != nil {
		t.Fatal(err)
	}
	out := r.AppendJSON(nil, a.Body, surface.Meta{})
	if err := r.Record(context.Background(), sc, out, true); err != nil {
		t.Fatal(err)
	}
	return out
}

const toolCallCompletion = `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"claude","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}`

func TestPreviousResponseIDContinuesTheConversationThroughChat(t *testing.T) {
	s := &Surface{Store: NewMemoryStore(time.Hour, 1<<20, 0)}
	first := answerTranslated(t, s, alice, `{"model":"claude","instructions":"Be brief.","input":"Weather in Paris?","tools":[{"type":"function","name":"get_weather","parameters":{"type":"object"}}]}`, toolCallCompletion)
	id := gjson.GetBytes(first, "id").Str
	if !strings.HasPrefix(id, "resp_") {
		t.Fatalf("id = %q", id)
	}
	r := parse(t, s, `{"model":"claude","previous_response_id":"`+id+`","input":[{"type":"function_call_output","call_id":"call_1","output":"18C"}]}`)
	if err := r.Prepare(context.Background(), alice, false); err != nil {
		t.Fatal(err)
	}
	chat, _, err := r.Upstream(false, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Instructions are not carried over (as OpenAI does); the user's
	// question, the call and its output are.
	msgs := gjson.GetBytes(chat, "messages").Array()
	if len(msgs) != 3 {
		t.Fatalf("messages = %s", gjson.GetBytes(chat, "messages").Raw)
	}
	if msgs[0].Get("role").Str != "user" || msgs[0].Get("content.0.text").Str != "Weather in Paris?" {
		t.Errorf("first message %s", msgs[0].Raw)
	}
	if msgs[1].Get("tool_calls.0.id").Str != "call_1" || msgs[1].Get("tool_calls.0.function.arguments").Str != `{"city":"Paris"}` {
		t.Errorf("second message %s", msgs[1].Raw)
	}
	if msgs[2].Get("role").Str != "tool" || msgs[2].Get("tool_call_id").Str != "call_1" || msgs[2].Get("content").Str != "18C" {
		t.Errorf("third message %s", msgs[2].Raw)
	}
	a, err := r.Answer([]byte(`{"id":"c2","object":"chat.completion","created":2,"model":"claude","choices":[{"index":0,"message":{"role":"assistant","content":"18C and sunny."},"finish_reason":"stop"}],"usage":{"prompt_tokens":20,"completion_tokens":4,"total_tokens":24}}`), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := gjson.GetBytes(a.Body, "previous_response_id").Str; got != id {
		t.Errorf("previous_response_id = %q, want %q", got, id)
	}
	if err := r.Record(context.Background(), alice, a.Body, true); err != nil {
		t.Fatal(err)
	}
	// The second response's input items are the whole conversation.
	rec, ok, _ := s.Store.Get(context.Background(), "alice", gjson.GetBytes(a.Body, "id").Str)
	if !ok {
		t.Fatal("the second response was not stored")
	}
	_, items, _ := decodeRecord(rec)
	var types []string
	for _, it := range items.Array() {
		types = append(types, it.Get("type").Str)
		if it.Get("id").Str == "" {
			t.Errorf("input item without an id: %s", it.Raw)
		}
	}
	if got := strings.Join(types, ","); got != "message,function_call,function_call_output" {
		t.Errorf("input item types = %s", got)
	}
}

func TestPreviousResponseIDResolvesIntoTheBodyOfANativeUpstream(t *testing.T) {
	s := &Surface{Store: NewMemoryStore(time.Hour, 1<<20, 0)}
	first := answerTranslated(t, s, alice, `{"model":"gpt","input":"Weather?"}`, toolCallCompletion)
	id := gjson.GetBytes(first, "id").Str
	r := parse(t, s, `{"model":"gpt","previous_response_id":"`+id+`","input":"and tomorrow?","unknown_field":7}`)
	if err := r.Prepare(context.Background(), alice, true); err != nil {
		t.Fatal(err)
	}
	body, _, err := r.Upstream(true, nil)
	if err != nil {
		t.Fatal(err)
	}
	root := gjson.ParseBytes(body)
	if root.Get("previous_response_id").Exists() {
		t.Error("previous_response_id was sent to the upstream, which never saw it")
	}
	if root.Get("unknown_field").Int() != 7 {
		t.Error("an unknown field was lost")
	}
	in := root.Get("input").Array()
	if len(in) != 3 || in[1].Get("type").Str != "function_call" || in[1].Get("id").Exists() || in[2].Get("content.0.text").Str != "and tomorrow?" {
		t.Errorf("input = %s", root.Get("input").Raw)
	}
	key, ignore := r.KeyBody()
	if string(key) != string(body) || !strings.Contains(strings.Join(ignore, ","), "store") {
		t.Errorf("KeyBody = %s %v", key, ignore)
	}
}

func TestPreviousResponseIDOfAnotherKeyIsNotFound(t *testing.T) {
	s := &Surface{Store: NewMemoryStore(time.Hour, 1<<20, 0)}
	first := answerTranslated(t, s, alice, `{"model":"m","input":"hi"}`, toolCallCompletion)
	id := gjson.GetBytes(first, "id").Str
	for _, native := range []bool{false, true} {
		r := parse(t, s, `{"model":"m","previous_response_id":"`+id+`","input":"x"}`)
		e := api.FromError(r.Prepare(context.Background(), bob, native))
		if e.Status != 400 || e.Code != "previous_response_not_found" || e.Param != "previous_response_id" {
			t.Errorf("native %v: %d %s %s", native, e.Status, e.Code, e.Message)
		}
	}
}

func TestPreviousResponseIDWithTheStoreOff(t *testing.T) {
	s := &Surface{}
	r := parse(t, s, `{"model":"m","previous_response_id":"resp_x","input":"x"}`)
	e := api.FromError(r.Prepare(context.Background(), alice, false))
	if e.Status != 400 || e.Param != "previous_response_id" || !strings.Contains(e.Message, "store is off") {
		t.Errorf("translated route: %d %q", e.Status, e.Message)
	}
	r = parse(t, s, `{"model":"m","previous_response_id":"resp_x","input":"x"}`)
	if err := r.Prepare(context.Background(), alice, true); err != nil {
		t.Fatalf("native route: %v", err)
	}
	if body, _, _ := r.Upstream(true, nil); gjson.GetBytes(body, "previous_response_id").Str != "resp_x" {
		t.Errorf("a native upstream did not get the id to resolve: %s", body)
	}
}

func TestCachedAnswerGetsAFreshIDAndThisRequestsOwnMembers(t *testing.T) {
	s := &Surface{Store: NewMemoryStore(time.Hour, 1<<20, 0)}
	stored := answerTranslated(t, s, alice, `{"model":"m","input":"hi","metadata":{"who":"first"}}`, toolCallCompletion)
	r := parse(t, s, `{"model":"m","input":"hi","metadata":{"who":"second"},"store":false}`)
	hit := r.AppendJSON(nil, stored, surface.Meta{Tier: "L1"})
	if gjson.GetBytes(hit, "id").Str == gjson.GetBytes(stored, "id").Str {
		t.Error("a cached answer kept the id of the answer it was stored from")
	}
	if gjson.GetBytes(hit, "id").Str != r.ID() || gjson.GetBytes(hit, "metadata.who").Str != "second" || gjson.GetBytes(hit, "store").Bool() {
		t.Errorf("hit = %s", hit)
	}
	if gjson.GetBytes(hit, "output.0.call_id").Str != "call_1" {
		t.Errorf("the cached output changed: %s", hit)
	}
	sse, err := r.AppendReplay(nil, stored)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(sse), `"id":"`+r.ID()+`"`) {
		t.Error("the replay does not carry the request's own id")
	}
	// store: false: the hit is not kept.
	if err := r.Record(context.Background(), alice, hit, false); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Store.Get(context.Background(), "alice", r.ID()); ok {
		t.Error("a store: false answer was stored")
	}
	// store: true (the default): the hit is kept under its own id.
	r2 := parse(t, s, `{"model":"m","input":"hi"}`)
	hit2 := r2.AppendJSON(nil, stored, surface.Meta{Tier: "L2"})
	if err := r2.Record(context.Background(), alice, hit2, false); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Store.Get(context.Background(), "alice", r2.ID()); !ok {
		t.Error("a cached answer was not stored under its new id")
	}
}

func TestFreshAnswerIsSentAsProduced(t *testing.T) {
	r := parse(t, &Surface{}, `{"model":"m","input":"hi"}`)
	body := []byte(`{"id":"resp_up","object":"response"}`)
	if got := r.AppendJSON(nil, body, surface.Meta{}); string(got) != string(body) {
		t.Errorf("AppendJSON rewrote a fresh answer: %s", got)
	}
}

func TestNativeAnswerIsReadForUsageAndFinish(t *testing.T) {
	r := parse(t, &Surface{}, `{"model":"m","input":"hi"}`)
	body := []byte(`{"id":"resp_up","object":"response","status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"model":"gpt-4o-2024","output":[],"usage":{"input_tokens":9,"input_tokens_details":{"cached_tokens":4},"output_tokens":7,"output_tokens_details":{"reasoning_tokens":2},"total_tokens":16}}`)
	a, err := r.Answer(body, true)
	if err != nil {
		t.Fatal(err)
	}
	if a.Model != "gpt-4o-2024" || a.Estimated || len(a.Finish) != 1 || a.Finish[0] != "length" {
		t.Errorf("answer = %+v", a)
	}
	if u := a.Usage; u.PromptTokens != 9 || u.CachedTokens != 4 || u.CompletionTokens != 7 || u.ReasoningTokens != 2 {
		t.Errorf("usage = %+v", u)
	}
	if _, err := r.Answer([]byte(`{"object":"chat.completion"}`), true); api.FromError(err).Status != 502 {
		t.Errorf("a chat completion from a native upstream: %v", err)
	}
	if _, err := r.Answer([]byte(`{"object":"response","model":"m","output":[`), true); api.FromError(err).Status != 502 {
		t.Errorf("a cut answer from a native upstream: %v", err)
	}
}

func TestNativeStreamIsFramedAndRebuiltFromItsCompletedEvent(t *testing.T) {
	r := parse(t, &Surface{}, `{"model":"m","input":"hi","stream":true}`)
	st := r.NewStream(true, 1<<20)
	var out []byte
	var err error
	for _, p := range []string{
		`{"type":"response.created","sequence_number":0,"response":{"id":"resp_up","object":"response","status":"in_progress","output":[]}}`,
		`{"type":"response.output_text.delta","sequence_number":1,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hello"}`,
		`{"type":"response.completed","sequence_number":2,"response":{"id":"resp_up","object":"response","status":"completed","model":"gpt-4o","output":[{"id":"msg_1","type":"message","role":"assistant","status":"completed","content":[{"type":"output_text","text":"Hello","annotations":[]}]}],"usage":{"input_tokens":3,"output_tokens":1,"total_tokens":4}}}`,
	} {
		if out, err = st.Add(out, []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.HasPrefix(string(out), "event: response.created\ndata: {\"type\":\"response.created\"") || strings.Count(string(out), "\n\n") != 3 {
		t.Errorf("framing:\n%s", out)
	}
	out, a, err := st.End(out, true)
	if err != nil || a == nil {
		t.Fatalf("End: %v %v", a, err)
	}
	if gjson.GetBytes(a.Body, "output.0.content.0.text").Str != "Hello" || a.Usage.PromptTokens != 3 || a.Finish[0] != "stop" {
		t.Errorf("answer %+v %s", a, a.Body)
	}
	if strings.Contains(string(out), "[DONE]") {
		t.Error("a Responses stream has no [DONE]")
	}
}

func TestNativeStreamWithoutItsCompletedEventIsIncomplete(t *testing.T) {
	r := parse(t, &Surface{}, `{"model":"m","input":"hi","stream":true}`)
	st := r.NewStream(true, 0)
	out, _ := st.Add(nil, []byte(`{"type":"response.output_text.delta","delta":"Hello world"}`))
	if _, _, err := st.End(out, true); err == nil {
		t.Error("a stream cut before response.completed ended cleanly")
	}
	u, estimated := st.Partial()
	if !estimated || u.CompletionTokens == 0 {
		t.Errorf("partial = %+v %v", u, estimated)
	}
	if _, err := st.Add(nil, []byte(`not json`)); err == nil {
		t.Error("a payload that is not JSON was copied")
	}
	st = r.NewStream(true, 0)
	_, _ = st.Add(nil, []byte(`{"type":"response.created","sequence_number":0,"response":{"id":"resp_up","object":"response"}}`))
	_, _ = st.Add(nil, []byte(`{"type":"response.output_text.delta","sequence_number":1,"delta":"Hi"}`))
	ev := st.AppendError(nil, &api.Error{Status: 502, Type: api.TypeUpstream, Message: "cut"})
	if !strings.Contains(string(ev), `"type":"error","sequence_number":2,`) {
		t.Errorf("the error event does not continue the upstream's numbering: %s", ev)
	}
}

func TestTranslatedStreamPastItsCaptureIsSentButNotKept(t *testing.T) {
	r := parse(t, &Surface{}, `{"model":"m","input":"hi","stream":true}`)
	st := r.NewStream(false, 4)
	out, _ := st.Add(nil, []byte(`{"id":"c","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"more than four"},"finish_reason":"stop"}]}`))
	out, a, err := st.End(out, true)
	if err != nil || a != nil || !st.Overflowed() {
		t.Errorf("End = %v %v, overflowed %v", a, err, st.Overflowed())
	}
	if !strings.Contains(string(out), "response.completed") {
		t.Error("the stream was not sent whole")
	}
}

func TestRecordKeepsAStoredAnswerAsItWasSentWhateverThePipelineHandsIt(t *testing.T) {
	s := &Surface{Store: NewMemoryStore(time.Hour, 1<<20, 0)}
	stored := answerTranslated(t, s, alice, `{"model":"m","input":"hi"}`, toolCallCompletion)
	r := parse(t, s, `{"model":"m","input":"hi"}`)
	sent := r.AppendJSON(nil, stored, surface.Meta{Tier: "L1"})
	replay, err := r.AppendReplay(nil, stored)
	if err != nil {
		t.Fatal(err)
	}
	for name, handed := range map[string][]byte{"the stored answer": stored, "the rewritten answer": sent, "the replayed events": replay} {
		if _, err := s.Store.Delete(context.Background(), "alice", r.ID()); err != nil {
			t.Fatal(err)
		}
		if err := r.Record(context.Background(), alice, handed, false); err != nil {
			t.Fatal(err)
		}
		rec, ok, _ := s.Store.Get(context.Background(), "alice", r.ID())
		if !ok {
			t.Errorf("%s: not kept under the request's id", name)
			continue
		}
		if resp, _, _ := decodeRecord(rec); resp.Raw != string(sent) {
			t.Errorf("%s: kept\n%s\nwant what was sent\n%s", name, resp.Raw, sent)
		}
	}
}
