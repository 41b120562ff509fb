package completions

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/cost"
)

func mustParse(t *testing.T, body string) *Request {
	t.Helper()
	r, err := Parse([]byte(body), api.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestParseReadsWhatThePipelineActsOn(t *testing.T) {
	r := mustParse(t, `{"model":"gpt-3.5-turbo-instruct","prompt":["a","b"],"stream":true,"max_tokens":20,"n":2,"stream_options":{"include_usage":true}}`)
	if i := r.Info(); i.Model != "gpt-3.5-turbo-instruct" || !i.Stream || i.MaxTokens != 2*2*20 {
		t.Errorf("info %+v", i)
	}
	if !r.includeUsage || r.prompts != 2 {
		t.Errorf("include_usage %v prompts %d", r.includeUsage, r.prompts)
	}
	if got := r.PromptTokens(); got != cost.EstimateTokensOfLen(6) {
		t.Errorf("prompt estimate %d", got)
	}
	r = mustParse(t, `{"model":"m","prompt":[1,2,3]}`)
	if got := r.PromptTokens(); got != cost.EstimateTokensOfLen(7) {
		t.Errorf("token prompt: estimate %d", got)
	}
	if got := r.Info().MaxTokens; got != DefaultMaxTokens {
		t.Errorf("without max_tokens: budget %d, want the default %d", got, DefaultMaxTokens)
	}
}

func TestParseRejectsBadInputNamingTheField(t *testing.T) {
	tests := []struct{ name, body, param string }{
		{"empty", ``, ""},
		{"not an object", `"x"`, ""},
		{"no model", `{"prompt":"x"}`, "model"},
		{"no prompt", `{"model":"m"}`, "prompt"},
		{"prompt object", `{"model":"m","prompt":{"a":1}}`, "prompt"},
		{"empty prompt array", `{"model":"m","prompt":[]}`, "prompt"},
		{"mixed prompts", `{"model":"m","prompt":["a",[1]]}`, "prompt[1]"},
		{"bad token", `{"model":"m","prompt":[1,"a"]}`, "prompt"},
		{"negative max_tokens", `{"model":"m","prompt":"x","max_tokens":-1}`, "max_tokens"},
		{"n zero", `{"model":"m","prompt":"x","n":0}`, "n"},
		{"logprobs 6", `{"model":"m","prompt":"x","logprobs":6}`, "logprobs"},
		{"temperature", `{"model":"m","prompt":"x","temperature":3}`, "temperature"},
		{"stream not bool", `{"model":"m","prompt":"x","stream":"yes"}`, "stream"},
		{"suffix", `{"model":"m","prompt":"x","suffix":1}`, "suffix"},
		{"duplicate", `{"model":"m","prompt":"x","prompt":"y"}`, "prompt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Surface{}.Parse([]byte(tt.body), api.DefaultLimits)
			var e *api.Error
			if !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Param != tt.param {
				t.Errorf("err %v (param %q), want a 400 naming %q", err, paramOf(e), tt.param)
			}
		})
	}
}

func paramOf(e *api.Error) string {
	if e == nil {
		return "<nil>"
	}
	return e.Param
}

func TestUpstreamRefusesProvidersWithoutTheAPI(t *testing.T) {
	r := mustParse(t, `{"model":"claude-sonnet-4-5","prompt":"x"}`)
	_, _, err := r.Upstream(false, nil)
	var e *api.Error
	if !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Code != "model_not_supported" || !strings.Contains(e.Message, "claude-sonnet-4-5") {
		t.Errorf("err %v, want a 400 model_not_supported naming the model", err)
	}
}

func TestUpstreamIsTheClientsBytesButAsksAStreamForUsage(t *testing.T) {
	body := `{"model":"m","prompt":"x","unknown_field":[1]}`
	if b, h, err := mustParse(t, body).Upstream(true, nil); err != nil || string(b) != body || h != nil {
		t.Errorf("got %s %v %v, want the client's bytes", b, h, err)
	}
	stream := `{"model":"m","prompt":"x","stream":true}`
	b, _, err := mustParse(t, stream).Upstream(true, nil)
	if err != nil || !gjson.GetBytes(b, "stream_options.include_usage").Bool() || gjson.GetBytes(b, "unknown_field").Exists() {
		t.Errorf("got %s %v", b, err)
	}
}

func TestAnswerReadsUsageAndFinishReasons(t *testing.T) {
	r := mustParse(t, `{"model":"m","prompt":"x"}`)
	body := []byte(`{"id":"c","object":"text_completion","model":"gpt-3.5-turbo-instruct","choices":[{"text":"a","index":0,"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":16,"total_tokens":19}}`)
	a, err := r.Answer(body, true)
	if err != nil {
		t.Fatal(err)
	}
	if string(a.Body) != string(body) || a.Model != "gpt-3.5-turbo-instruct" || a.Usage.PromptTokens != 3 || a.Usage.CompletionTokens != 16 ||
		a.Estimated || len(a.Finish) != 1 || a.Finish[0] != "length" {
		t.Errorf("answer %+v", a)
	}
	a, err = r.Answer([]byte(`{"choices":[{"text":"abcdefgh","index":0,"finish_reason":"stop"}]}`), true)
	if err != nil || !a.Estimated || a.Usage.CompletionTokens != 2 {
		t.Errorf("no usage: %+v %v, want an estimate", a, err)
	}
	if _, err := r.Answer([]byte(`{"object":"text_completion"}`), true); err == nil {
		t.Error("an answer without choices was accepted")
	}
}

func addAll(t *testing.T, s interface {
	Add(dst, payload []byte) ([]byte, error)
}, payloads ...string) string {
	t.Helper()
	var out []byte
	for _, p := range payloads {
		var err error
		if out, err = s.Add(out, []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	return string(out)
}

func TestStreamKeepsBackTheUsageChunkTheClientDidNotAskFor(t *testing.T) {
	chunk := `{"id":"c","object":"text_completion","created":1,"model":"m","choices":[{"text":"hi","index":0,"logprobs":null,"finish_reason":"stop"}]}`
	usage := `{"id":"c","object":"text_completion","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`
	for _, asked := range []bool{false, true} {
		body := `{"model":"m","prompt":"x","stream":true}`
		if asked {
			body = `{"model":"m","prompt":"x","stream":true,"stream_options":{"include_usage":true}}`
		}
		s := mustParse(t, body).NewStream(true, 0)
		got := addAll(t, s, chunk, usage)
		want := "data: " + chunk + "\n\n"
		if asked {
			want += "data: " + usage + "\n\n"
		}
		if got != want {
			t.Errorf("include_usage %v: sent %q, want %q", asked, got, want)
		}
		end, a, err := s.End(nil, true)
		if err != nil || a == nil || a.Usage.CompletionTokens != 1 || a.Estimated || string(end) != "data: [DONE]\n\n" {
			t.Errorf("include_usage %v: end %q answer %+v err %v", asked, end, a, err)
		}
	}
}

func TestStreamThatDoesNotFinishIsNotAnAnswer(t *testing.T) {
	s := mustParse(t, `{"model":"m","prompt":"x","stream":true}`).NewStream(true, 0)
	addAll(t, s, `{"id":"c","choices":[{"text":"hal","index":0,"finish_reason":null}]}`)
	if _, a, err := s.End(nil, true); err == nil || a != nil {
		t.Errorf("answer %+v err %v, want an error", a, err)
	}
	if u, est := s.Partial(); !est || u.CompletionTokens != 1 {
		t.Errorf("partial %+v estimated %v", u, est)
	}
}

func TestStreamErrorEventIsABadGatewayWithoutTheProvidersText(t *testing.T) {
	s := mustParse(t, `{"model":"m","prompt":"x","stream":true}`).NewStream(true, 0)
	_, err := s.Add(nil, []byte(`{"error":{"message":"bad key sk-secret","type":"server_error"}}`))
	var e *api.Error
	if !errors.As(err, &e) || e.Status != http.StatusBadGateway || strings.Contains(e.Message, "sk-secret") {
		t.Errorf("err %v", err)
	}
	if got := string(s.AppendError(nil, e)); !strings.HasPrefix(got, `data: {"error":{"message":`) || !strings.HasSuffix(got, "\n\n") {
		t.Errorf("error event %q", got)
	}
}

func TestStreamTooLargeOrWithLogprobsIsSentButNotStored(t *testing.T) {
	s := mustParse(t, `{"model":"m","prompt":"x","stream":true}`).NewStream(true, 4)
	addAll(t, s, `{"id":"c","choices":[{"text":"longer than four","index":0,"finish_reason":"stop"}]}`)
	if _, a, err := s.End(nil, true); err != nil || a != nil || !s.Overflowed() {
		t.Errorf("overflow: answer %+v err %v overflowed %v", a, err, s.Overflowed())
	}
	s = mustParse(t, `{"model":"m","prompt":"x","stream":true,"logprobs":1}`).NewStream(true, 0)
	addAll(t, s, `{"id":"c","choices":[{"text":"a","index":0,"logprobs":{"tokens":["a"]},"finish_reason":"stop"}]}`)
	if end, a, err := s.End(nil, true); err != nil || a != nil || string(end) != "data: [DONE]\n\n" {
		t.Errorf("logprobs: answer %+v err %v", a, err)
	}
}

func TestReplayLeavesOutUsageTheClientDidNotAskFor(t *testing.T) {
	r := mustParse(t, `{"model":"m","prompt":"x","stream":true}`)
	out, err := r.AppendReplay(nil, []byte(`{"id":"c","created":5,"model":"m","choices":[{"text":"hi","index":0,"finish_reason":"stop"}],"usage":{"prompt_tokens":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := `data: {"id":"c","object":"text_completion","created":5,"model":"m","choices":[{"text":"hi","index":0,"logprobs":null,"finish_reason":"stop"}]}` + "\n\ndata: [DONE]\n\n"
	if string(out) != want {
		t.Errorf("got  %q\nwant %q", out, want)
	}
}

func TestStreamNotKeptStillReportsUsageAndFinishWithoutTheBody(t *testing.T) {
	s := mustParse(t, `{"model":"m","prompt":"x","stream":true}`).NewStream(true, 0)
	addAll(t, s, `{"id":"c","object":"text_completion","created":1,"model":"m","choices":[{"text":"hi","index":0,"logprobs":null,"finish_reason":"length"}]}`,
		`{"id":"c","object":"text_completion","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}`)
	end, a, err := s.End(nil, false)
	if err != nil || a == nil || string(end) != "data: [DONE]\n\n" {
		t.Fatalf("end %q answer %+v err %v", end, a, err)
	}
	if a.Body != nil || a.Usage.PromptTokens != 3 || a.Usage.CompletionTokens != 5 || a.Estimated ||
		len(a.Finish) != 1 || a.Finish[0] != "length" {
		t.Fatalf("answer %+v, want usage 3/5, finish [length], no body", a)
	}
}
