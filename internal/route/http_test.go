package route

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/provider"
	"github.com/edge-agent/edge-agent/internal/provider/anthropic"
	"github.com/edge-agent/edge-agent/internal/provider/openai"
)

// These tests run the real adapters over HTTP: the router must keep its
// promises with real transports, not only with in-memory fakes.

func newClient(t *testing.T) *http.Client {
	tr := provider.NewTransport(provider.TransportOptions{ConnectTimeout: time.Second})
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func TestDeadProviderFailsFastWith502(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connections are refused
	p := openai.New(openai.Config{Name: "openai", BaseURL: "http://" + addr + "/v1", Client: newClient(t)})
	r := mustRouter(t, Config{Providers: map[string]provider.Provider{"openai": p}})
	start := time.Now()
	_, err = r.ChatCompletion(t.Context(), mustResolve(t, r, "gpt-4o"), chatReq("gpt-4o", false), nil)
	e := apiErr(t, err)
	if e.Status != http.StatusBadGateway || e.Code != "upstream_connection_refused" {
		t.Fatalf("got %v, want 502 upstream_connection_refused", e)
	}
	// Three refused connects and two backoffs of at most 100ms and 200ms.
	if el := time.Since(start); el > time.Second {
		t.Fatalf("took %v, want well under the 1s connect timeout", el)
	}
}

func TestStalledHTTPStreamEndsWithinTheIdleTimeout(t *testing.T) {
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "data: %s\n\n", chunks("gpt-4o", 1)[0])
		w.(http.Flusher).Flush()
		select { // stall until the client gives up
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	defer srv.Close()
	defer close(stop)
	p := openai.New(openai.Config{Name: "openai", BaseURL: srv.URL + "/v1", Client: newClient(t)})
	r := mustRouter(t, Config{Providers: map[string]provider.Provider{"openai": p},
		Timeouts: TimeoutConfig{StreamIdle: 150 * time.Millisecond}})
	resp, err := r.ChatCompletion(t.Context(), mustResolve(t, r, "gpt-4o"), chatReq("gpt-4o", true), nil)
	if err != nil {
		t.Fatalf("ChatCompletion: %v", err)
	}
	defer resp.Stream.Close()
	if _, err := resp.Stream.Next(); err != nil {
		t.Fatalf("first chunk: %v", err)
	}
	start := time.Now()
	_, err = resp.Stream.Next()
	if e := apiErr(t, err); e.Code != "stream_idle_timeout" {
		t.Fatalf("got %v, want stream_idle_timeout", err)
	}
	if el := time.Since(start); el < 150*time.Millisecond || el > time.Second {
		t.Fatalf("stalled stream ended after %v, want about the 150ms idle timeout", el)
	}
}

const anthropicMessage = `{"id":"msg_1","type":"message","role":"assistant","model":"claude-3-5-sonnet-20241022",` +
	`"content":[{"type":"text","text":"Hello from Claude"}],"stop_reason":"end_turn","stop_sequence":null,` +
	`"usage":{"input_tokens":5,"output_tokens":4}}`

var anthropicEvents = []string{
	`{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-3-5-sonnet-20241022","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":5,"output_tokens":1}}}`,
	`{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`,
	`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello from Claude"}}`,
	`{"type":"content_block_stop","index":0}`,
	`{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":4}}`,
	`{"type":"message_stop"}`,
}

func TestFallbackFromOpenAIToAnthropicAnswersInOpenAIFormat(t *testing.T) {
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":{"message":"overloaded","type":"server_error"}}`, http.StatusServiceUnavailable)
	}))
	defer broken.Close()
	claude := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/messages" {
			http.NotFound(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		if !gjson.GetBytes(body, "stream").Bool() {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, anthropicMessage)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for _, ev := range anthropicEvents {
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", gjson.Get(ev, "type").String(), ev)
		}
	}))
	defer claude.Close()
	oa := openai.New(openai.Config{Name: "openai", BaseURL: broken.URL + "/v1", Client: newClient(t)})
	an := anthropic.New(anthropic.Config{Name: "anthropic", BaseURL: claude.URL, APIKey: "k", Client: newClient(t)})
	r := mustRouter(t, Config{
		Providers: map[string]provider.Provider{"openai": oa, "anthropic": an},
		Groups: []ModelGroup{{Name: "gpt-4o", Fallbacks: []string{"claude-3-5-sonnet-20241022"},
			Deployments: []Deployment{{Name: "openai-primary", Provider: oa, Model: "gpt-4o"}}}},
		Retry: RetryConfig{BaseBackoff: time.Millisecond},
	})
	tg := mustResolve(t, r, "gpt-4o")

	t.Run("non-streaming", func(t *testing.T) {
		resp, err := r.ChatCompletion(t.Context(), tg, chatReq("gpt-4o", false), nil)
		if err != nil {
			t.Fatalf("ChatCompletion: %v", err)
		}
		if resp.Provider != "anthropic" || resp.Attempts != 4 {
			t.Fatalf("answered by %q after %d attempts, want anthropic after 4", resp.Provider, resp.Attempts)
		}
		b := gjson.ParseBytes(resp.Body)
		if b.Get("object").String() != "chat.completion" || b.Get("choices.0.message.content").String() != "Hello from Claude" {
			t.Fatalf("answer is not an OpenAI chat completion: %s", resp.Body)
		}
	})
	t.Run("streaming", func(t *testing.T) {
		resp, err := r.ChatCompletion(t.Context(), tg, chatReq("gpt-4o", true), nil)
		if err != nil {
			t.Fatalf("ChatCompletion: %v", err)
		}
		defer resp.Stream.Close()
		got, err := readAll(resp.Stream)
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		var text strings.Builder
		for _, c := range got {
			if gjson.Get(c, "object").String() != "chat.completion.chunk" {
				t.Fatalf("chunk is not an OpenAI chunk: %s", c)
			}
			text.WriteString(gjson.Get(c, "choices.0.delta.content").String())
		}
		if text.String() != "Hello from Claude" || resp.Provider != "anthropic" {
			t.Fatalf("streamed %q from %q", text.String(), resp.Provider)
		}
	})
}
