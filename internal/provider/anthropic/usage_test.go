package anthropic

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/cost"
	"github.com/edge-agent/edge-agent/internal/provider"
)

// TestAnswerReportsUsageByKindAndCachedTokensInChatUsage: the adapter hands
// the gateway Anthropic's usage by kind (cache writes split by TTL when
// the upstream says, 5-minute otherwise), and the translated chat usage
// counts every prompt token with the cache reads in cached_tokens.
func TestAnswerReportsUsageByKindAndCachedTokensInChatUsage(t *testing.T) {
	const msg = `{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":`
	tests := []struct {
		name, usage string
		want        cost.Usage
	}{
		{"split by ttl", `{"input_tokens":10,"cache_read_input_tokens":300,"cache_creation_input_tokens":120,"cache_creation":{"ephemeral_5m_input_tokens":20,"ephemeral_1h_input_tokens":100},"output_tokens":7}`,
			cost.Usage{PromptTokens: 10, CacheReadTokens: 300, CacheWrite5mTokens: 20, CacheWrite1hTokens: 100, CompletionTokens: 7}},
		{"no split is 5-minute", `{"input_tokens":10,"cache_read_input_tokens":300,"cache_creation_input_tokens":120,"output_tokens":7}`,
			cost.Usage{PromptTokens: 10, CacheReadTokens: 300, CacheWrite5mTokens: 120, CompletionTokens: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := fakeAnthropic(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, msg+tt.usage+"}")
			})
			resp, err := p.ChatCompletion(context.Background(), &provider.Request{Body: []byte(chatBody), Model: "claude"})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Usage == nil || *resp.Usage != tt.want {
				t.Fatalf("Usage = %+v, want %+v", resp.Usage, tt.want)
			}
			u := gjson.GetBytes(resp.Body, "usage")
			if u.Get("prompt_tokens").Int() != 430 || u.Get("prompt_tokens_details.cached_tokens").Int() != 300 {
				t.Fatalf("chat usage %s: want prompt_tokens 430 (input + reads + writes), cached_tokens 300", u.Raw)
			}
		})
	}
}

func TestStreamReportsUsageByKindAfterEOF(t *testing.T) {
	p := fakeAnthropic(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, strings.Replace(sseEvents("msg_s", "Hi"), `"usage":{"input_tokens":10,`,
			`"usage":{"input_tokens":10,"cache_read_input_tokens":50,"cache_creation_input_tokens":5,`, 1))
	})
	resp, err := p.ChatCompletion(context.Background(), &provider.Request{Body: []byte(chatBody), Model: "claude", Stream: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := drain(resp.Stream.(*Stream)); err != io.EOF {
		t.Fatalf("stream ended with %v", err)
	}
	ur, ok := resp.Stream.(provider.UsageReporter)
	if !ok {
		t.Fatal("stream does not report usage by kind")
	}
	got, ok := ur.Usage()
	want := cost.Usage{PromptTokens: 10, CacheReadTokens: 50, CacheWrite5mTokens: 5, CompletionTokens: 2}
	if !ok || got != want {
		t.Fatalf("Usage() = %+v, %v; want %+v", got, ok, want)
	}
}
