package anthropic

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/provider"
)

const testKey = "sk-ant-test-key-0123456789"

// fakeAnthropic starts an upstream whose handler is h and a Provider
// pointing at it with a fixed clock.
func fakeAnthropic(t *testing.T, h http.HandlerFunc) *Provider {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	p := New(Config{Name: "claude", BaseURL: srv.URL + "/", APIKey: testKey, Client: srv.Client()})
	p.now = func() time.Time { return time.Unix(goldenCreated, 0) }
	return p
}

const chatBody = `{"model":"claude-sonnet-4-5","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]}`

func TestChatCompletionSendsKeyVersionAndTranslatedBody(t *testing.T) {
	var got *http.Request
	var gotBody []byte
	p := fakeAnthropic(t, func(w http.ResponseWriter, r *http.Request) {
		got = r.Clone(context.Background())
		gotBody, _ = io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"msg_abc","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",
			"content":[{"type":"text","text":"Hello!"}],"stop_reason":"end_turn","usage":{"input_tokens":9,"output_tokens":2}}`)
	})
	hdr := http.Header{}
	hdr.Set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	hdr.Set("Authorization", "Bearer client-gateway-key")
	hdr.Set("X-Api-Key", "client-supplied")

	resp, err := p.ChatCompletion(context.Background(), &provider.Request{
		Body: []byte(chatBody), Model: "claude-sonnet-4-5-20250929", Header: hdr})
	if err != nil {
		t.Fatalf("ChatCompletion: %v", err)
	}
	if got.Method != http.MethodPost || got.URL.Path != "/v1/messages" {
		t.Errorf("request %s %s, want POST /v1/messages", got.Method, got.URL.Path)
	}
	for k, want := range map[string]string{
		"X-Api-Key": testKey, "Anthropic-Version": DefaultVersion, "Content-Type": "application/json",
		"Traceparent": hdr.Get("Traceparent"), "Authorization": "",
	} {
		if v := got.Header.Get(k); v != want {
			t.Errorf("header %s = %q, want %q", k, v, want)
		}
	}
	if m := gjson.GetBytes(gotBody, "model").Str; m != "claude-sonnet-4-5-20250929" {
		t.Errorf("upstream model = %q, want the request's Model", m)
	}
	if s := gjson.GetBytes(gotBody, "system").Str; s != "Be brief." {
		t.Errorf("upstream system = %q", s)
	}
	if n := gjson.GetBytes(gotBody, "max_tokens").Int(); n != DefaultMaxTokens {
		t.Errorf("upstream max_tokens = %d, want the default %d", n, DefaultMaxTokens)
	}
	if gjson.GetBytes(gotBody, "stream").Exists() {
		t.Errorf("non-streaming call sent stream: %s", gotBody)
	}
	var cc api.ChatCompletion
	if err := json.Unmarshal(resp.Body, &cc); err != nil {
		t.Fatalf("answer is not a chat.completion: %v\n%s", err, resp.Body)
	}
	if cc.ID != "chatcmpl-abc" || cc.Created != goldenCreated || *cc.Choices[0].Message.Content != "Hello!" ||
		cc.Choices[0].FinishReason != "stop" || cc.Usage.TotalTokens != 11 {
		t.Errorf("unexpected answer: %s", resp.Body)
	}
}

func TestChatCompletionStreamsTranslatedChunks(t *testing.T) {
	p := fakeAnthropic(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !gjson.GetBytes(body, "stream").Bool() {
			t.Errorf("streaming call did not send stream:true: %s", body)
		}
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, sseEvents("msg_s", "Hel", "lo"))
	})
	resp, err := p.ChatCompletion(context.Background(), &provider.Request{Body: []byte(chatBody), Model: "claude", Stream: true})
	if err != nil {
		t.Fatalf("ChatCompletion: %v", err)
	}
	chunks, err := drain(resp.Stream.(*Stream))
	if err != io.EOF {
		t.Fatalf("stream ended with %v, want io.EOF", err)
	}
	var text strings.Builder
	for _, c := range chunks {
		text.WriteString(gjson.GetBytes(c, "choices.0.delta.content").Str)
	}
	if text.String() != "Hello" {
		t.Errorf("streamed text = %q, want Hello", text.String())
	}
	last := chunks[len(chunks)-1]
	if gjson.GetBytes(last, "usage.total_tokens").Int() != 12 || len(gjson.GetBytes(last, "choices").Array()) != 0 {
		t.Errorf("last chunk is not the usage chunk: %s", last)
	}
}

func TestUpstreamErrorsMapToOpenAIStatuses(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		header     map[string]string
		body       string
		wantStatus int
		wantType   string
		wantInMsg  string
		wantRetry  time.Duration
	}{
		{name: "invalid request passes through with its message", status: 400,
			body:       `{"type":"error","error":{"type":"invalid_request_error","message":"messages: roles must alternate"}}`,
			wantStatus: 400, wantType: "invalid_request_error", wantInMsg: "messages: roles must alternate"},
		{name: "overloaded becomes bad gateway", status: 529,
			body:       `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`,
			wantStatus: 502, wantType: "overloaded_error", wantInMsg: "Overloaded"},
		{name: "rate limit keeps status and retry-after", status: 429, header: map[string]string{"Retry-After": "7"},
			body:       `{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}`,
			wantStatus: 429, wantType: "rate_limit_error", wantInMsg: "slow down", wantRetry: 7 * time.Second},
		{name: "a refused key is the gateway's fault, not the client's", status: 401,
			body:       `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`,
			wantStatus: 502, wantType: "upstream_error", wantInMsg: "credential for provider claude was rejected (401): invalid x-api-key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := fakeAnthropic(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			})
			for _, stream := range []bool{false, true} {
				_, err := p.ChatCompletion(context.Background(), &provider.Request{Body: []byte(chatBody), Model: "claude", Stream: stream})
				var e *api.Error
				if !errors.As(err, &e) {
					t.Fatalf("stream=%v: error %T %v, want *api.Error", stream, err, err)
				}
				if e.Status != tt.wantStatus || e.Type != tt.wantType || !strings.Contains(e.Message, tt.wantInMsg) ||
					e.UpstreamStatus != tt.status || e.RetryAfter != tt.wantRetry {
					t.Errorf("stream=%v: got status %d type %q msg %q upstream %d retry %v", stream,
						e.Status, e.Type, e.Message, e.UpstreamStatus, e.RetryAfter)
				}
				if strings.Contains(e.Error(), testKey) {
					t.Errorf("error text leaks the API key: %v", e)
				}
			}
		})
	}
}

func TestInvalidRequestIsRejectedWithoutCallingUpstream(t *testing.T) {
	var calls atomic.Int32
	p := fakeAnthropic(t, func(w http.ResponseWriter, r *http.Request) { calls.Add(1) })
	body := `{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"t1","type":"function","function":{"name":"f","arguments":"not json"}}]}]}`
	_, err := p.ChatCompletion(context.Background(), &provider.Request{Body: []byte(body), Model: "claude"})
	var e *api.Error
	if !errors.As(err, &e) || e.Status != 400 || e.Param != "messages[0].tool_calls[0].function.arguments" {
		t.Fatalf("got %v, want a 400 naming the arguments", err)
	}
	if calls.Load() != 0 {
		t.Errorf("upstream called %d times for an untranslatable request", calls.Load())
	}
}

func TestUnreachableUpstreamIsBadGateway(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	p := New(Config{BaseURL: url, APIKey: testKey, Client: &http.Client{}})
	_, err := p.ChatCompletion(context.Background(), &provider.Request{Body: []byte(chatBody), Model: "claude"})
	var e *api.Error
	if !errors.As(err, &e) || e.Status != http.StatusBadGateway {
		t.Fatalf("got %v, want a 502", err)
	}
	if strings.Contains(e.Error(), testKey) {
		t.Errorf("error text leaks the API key: %v", e)
	}
}

func TestCancelledContextEndsStreamAndClosesUpstream(t *testing.T) {
	upstreamGone := make(chan struct{})
	p := fakeAnthropic(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_x\",\"model\":\"m\",\"usage\":{\"input_tokens\":1}}}\n\n")
		http.NewResponseController(w).Flush()
		<-r.Context().Done() // the answer never completes; only the client can end it
		close(upstreamGone)
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, err := p.ChatCompletion(ctx, &provider.Request{Body: []byte(chatBody), Model: "claude", Stream: true})
	if err != nil {
		t.Fatalf("ChatCompletion: %v", err)
	}
	defer resp.Stream.Close()
	if _, err := resp.Stream.Next(); err != nil {
		t.Fatalf("first chunk: %v", err)
	}
	next := make(chan error, 1)
	go func() {
		_, err := resp.Stream.Next()
		next <- err
	}()
	cancel()
	select {
	case err := <-next:
		if err == nil || err == io.EOF {
			t.Fatalf("Next after cancel returned %v, want an error", err)
		}
		if e := api.FromError(err); e.Code != "client_closed_request" {
			t.Errorf("Next after cancel: %v, want client_closed_request", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next did not return after the context was cancelled")
	}
	select {
	case <-upstreamGone:
	case <-time.After(5 * time.Second):
		t.Fatal("upstream request was not cancelled")
	}
	if err := resp.Stream.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// sseEvents is a complete Anthropic text stream with one delta per part.
func sseEvents(id string, parts ...string) string {
	var b strings.Builder
	b.WriteString(`event: message_start
data: {"type":"message_start","message":{"id":"` + id + `","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

`)
	for _, p := range parts {
		q, _ := json.Marshal(p)
		b.WriteString("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":")
		b.Write(q)
		b.WriteString("}}\n\n")
	}
	b.WriteString(`event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":2}}

event: message_stop
data: {"type":"message_stop"}

`)
	return b.String()
}

func TestAnswerOverTheSizeCapIsA502ThatSaysSo(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"type":"message","content":[{"type":"text","text":"`+strings.Repeat("x", 4096)+`"}]}`)
	}))
	defer srv.Close()
	p := New(Config{Name: "claude", BaseURL: srv.URL, APIKey: testKey, MaxResponseBytes: 1024})
	_, err := p.ChatCompletion(context.Background(), &provider.Request{Body: []byte(chatBody), Model: "claude"})
	var e *api.Error
	if !errors.As(err, &e) || e.Status != http.StatusBadGateway || e.Code != "upstream_response_too_large" ||
		!strings.Contains(e.Message, "limit of 1024 bytes") {
		t.Fatalf("got %v, want a 502 upstream_response_too_large naming the limit", err)
	}
}

func TestKeyEchoedInAnyErrorFieldIsScrubbed(t *testing.T) {
	envelope := `{"type":"error","error":{"type":"invalid_request_error","message":"bad key ` + testKey + `","param":"` + testKey + `","code":"` + testKey + `"}}`
	cases := []struct {
		name   string
		stream bool
		h      http.HandlerFunc
	}{
		{"a 400", false, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, envelope)
		}},
		{"a 200 whose body is an error", false, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, envelope) }},
		{"an error event mid-stream", true, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"claude\",\"usage\":{\"input_tokens\":1}}}\n\n")
			io.WriteString(w, "event: error\ndata: "+envelope+"\n\n")
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := fakeAnthropic(t, c.h)
			resp, err := p.ChatCompletion(context.Background(), &provider.Request{Body: []byte(chatBody), Model: "claude", Stream: c.stream})
			if err == nil && c.stream {
				for err == nil {
					_, err = resp.Stream.Next()
				}
			}
			var e *api.Error
			if !errors.As(err, &e) || e.Status < 400 {
				t.Fatalf("got %v, want an upstream error", err)
			}
			if all := string(e.AppendEnvelope(nil)) + e.Error(); strings.Contains(all, testKey) || !strings.Contains(e.Message, "[redacted]") {
				t.Fatalf("the key is not scrubbed from %s", all)
			}
		})
	}
}
