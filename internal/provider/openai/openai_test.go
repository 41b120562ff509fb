package openai

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/provider"
)

const completion = `{"id":"c","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`

func TestForwardsClientBytesWithBearerAuth(t *testing.T) {
	var gotBody []byte
	var gotAuth, gotTrace string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotBody, _ = io.ReadAll(r.Body)
		gotAuth, gotTrace = r.Header.Get("Authorization"), r.Header.Get("Traceparent")
		if r.URL.Path != "/v1/chat/completions" {
			t.Errorf("path %s", r.URL.Path)
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, completion)
	}))
	defer srv.Close()
	p := New(Config{Name: "openai", BaseURL: srv.URL + "/v1/", APIKey: "sk-test"})
	body := `{"model":"gpt-4o","x_future":{"k":[1,2]},"messages":[{"role":"user","content":"hi"}]}`
	resp, err := p.ChatCompletion(context.Background(), &provider.Request{Body: []byte(body), Model: "gpt-4o",
		Header: http.Header{"Traceparent": {"00-abc-def-01"}}})
	if err != nil {
		t.Fatal(err)
	}
	if string(gotBody) != body {
		t.Fatalf("upstream got %s, want the client's bytes", gotBody)
	}
	if gotAuth != "Bearer sk-test" || gotTrace != "00-abc-def-01" {
		t.Fatalf("auth %q trace %q", gotAuth, gotTrace)
	}
	if string(resp.Body) != completion {
		t.Fatalf("body %s", resp.Body)
	}
}

func TestStreamAsksForUsageWithoutTouchingClientBody(t *testing.T) {
	var gotBody []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotBody, _ = io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n")
		io.WriteString(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\ndata: [DONE]\n\n")
	}))
	defer srv.Close()
	p := New(Config{Name: "openai", BaseURL: srv.URL})
	body := []byte(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	orig := string(body)
	resp, err := p.ChatCompletion(context.Background(), &provider.Request{Body: body, Model: "m", Stream: true})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Stream.Close()
	if string(body) != orig {
		t.Fatal("the client's body was modified in place")
	}
	if !gjson.GetBytes(gotBody, "stream_options.include_usage").Bool() {
		t.Fatalf("upstream body %s lacks include_usage", gotBody)
	}
	var n int
	for {
		_, err := resp.Stream.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 2 {
		t.Fatalf("got %d chunks, want 2", n)
	}
}

func TestStreamWithoutDoneIsAnError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n")
	}))
	defer srv.Close()
	p := New(Config{Name: "openai", BaseURL: srv.URL})
	resp, err := p.ChatCompletion(context.Background(), &provider.Request{Body: []byte(`{"model":"m","stream":true}`), Stream: true})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Stream.Close()
	if _, err := resp.Stream.Next(); err != nil {
		t.Fatal(err)
	}
	_, err = resp.Stream.Next()
	var e *api.Error
	if !errors.As(err, &e) || e.Code != "upstream_stream_truncated" || e.Status != 502 {
		t.Fatalf("got %v, want a truncated-stream error", err)
	}
}

func TestUpstreamErrorsAreMapped(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		body       string
		wantStatus int
		wantMsg    string
	}{
		{"4xx passes through", 400, `{"error":{"message":"Invalid value for temperature","type":"invalid_request_error","param":"temperature","code":null}}`, 400, "Invalid value for temperature"},
		{"401 is the gateway's credential: 502", 401, `{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}`, 502, "credential for provider openai was rejected (401): Incorrect API key"},
		{"403 is the gateway's credential: 502", 403, `{"error":{"message":"Project does not have access"}}`, 502, "credential for provider openai was rejected (403)"},
		{"429 passes through", 429, `{"error":{"message":"Rate limit reached","type":"requests"}}`, 429, "Rate limit"},
		{"500 becomes 502", 500, `{"error":{"message":"The server had an error"}}`, 502, "status 500"},
		{"504 stays 504", 504, `gateway timeout`, 504, "timed out"},
		{"html body", 503, `<html>down</html>`, 502, "Service Unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "3")
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			_, err := New(Config{Name: "openai", BaseURL: srv.URL, APIKey: "sk-secret"}).ChatCompletion(context.Background(),
				&provider.Request{Body: []byte(`{"model":"m"}`)})
			var e *api.Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v", err)
			}
			if e.Status != tt.wantStatus || !strings.Contains(e.Message, tt.wantMsg) || e.UpstreamStatus != tt.status {
				t.Fatalf("got %d %q (upstream %d)", e.Status, e.Message, e.UpstreamStatus)
			}
			if e.RetryAfter != 3*time.Second {
				t.Fatalf("Retry-After not read: %v", e.RetryAfter)
			}
			if strings.Contains(e.Error(), "sk-secret") {
				t.Fatal("key leaked into the error")
			}
		})
	}
}

func TestDeadUpstreamIs502(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	_, err := New(Config{Name: "openai", BaseURL: "http://" + addr}).ChatCompletion(context.Background(), &provider.Request{Body: []byte(`{}`)})
	var e *api.Error
	if !errors.As(err, &e) || e.Status != 502 || e.Code != "upstream_connection_refused" {
		t.Fatalf("got %v", err)
	}
}

func TestTimeoutIs504(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // lets the server notice the client leaving
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := New(Config{Name: "openai", BaseURL: srv.URL}).ChatCompletion(ctx, &provider.Request{Body: []byte(`{}`)})
	var e *api.Error
	if !errors.As(err, &e) || e.Status != 504 {
		t.Fatalf("got %v", err)
	}
}

func TestBadBaseURLFailsAsNewRequest(t *testing.T) {
	const base = "http://[::1"
	_, want := http.NewRequest(http.MethodPost, base+"/chat/completions", nil)
	_, err := New(Config{Name: "openai", BaseURL: base}).ChatCompletion(context.Background(), &provider.Request{Body: []byte(`{}`)})
	if err == nil || want == nil || err.Error() != "openai: build request: "+want.Error() {
		t.Fatalf("got %v, want the error of http.NewRequest (%v)", err, want)
	}
}

func TestCredentialsInBaseURLAreSentAsBasicAuth(t *testing.T) {
	var gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		io.WriteString(w, completion)
	}))
	defer srv.Close()
	base := strings.Replace(srv.URL, "http://", "http://user:pass@", 1)
	if _, err := New(Config{Name: "openai", BaseURL: base}).ChatCompletion(context.Background(), &provider.Request{Body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if gotAuth != "Basic dXNlcjpwYXNz" {
		t.Fatalf("Authorization %q, want Basic auth from the URL", gotAuth)
	}
}

func TestAnswerOverTheSizeCapIsA502ThatSaysSo(t *testing.T) {
	big := `{"id":"c","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"` +
		strings.Repeat("x", 4096) + `"},"finish_reason":"stop"}]}`
	for _, chunked := range []bool{false, true} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			if chunked {
				// No Content-Length: the bound is found while reading.
				io.WriteString(w, big[:100])
				w.(http.Flusher).Flush()
				io.WriteString(w, big[100:])
				return
			}
			io.WriteString(w, big)
		}))
		p := New(Config{Name: "mirror", BaseURL: srv.URL, MaxResponseBytes: 1024})
		_, err := p.ChatCompletion(context.Background(), &provider.Request{Body: []byte(`{"model":"m"}`)})
		srv.Close()
		var e *api.Error
		if !errors.As(err, &e) || e.Status != http.StatusBadGateway || e.Code != "upstream_response_too_large" ||
			!strings.Contains(e.Message, "provider mirror sent an answer larger than the gateway's limit of 1024 bytes") {
			t.Fatalf("chunked=%v: got %v, want a 502 upstream_response_too_large naming the limit", chunked, err)
		}
	}
	// At the cap exactly, the answer is served.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, big) }))
	defer srv.Close()
	if _, err := New(Config{Name: "mirror", BaseURL: srv.URL, MaxResponseBytes: int64(len(big))}).ChatCompletion(context.Background(),
		&provider.Request{Body: []byte(`{"model":"m"}`)}); err != nil {
		t.Fatalf("an answer of exactly the cap failed: %v", err)
	}
}
