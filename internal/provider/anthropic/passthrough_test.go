package anthropic

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/provider"
)

func passthroughUpstream(t *testing.T, events string) *Provider {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, events)
	}))
	t.Cleanup(up.Close)
	return New(Config{BaseURL: up.URL, APIKey: "sk-ant-secret-key"})
}

func TestPassthroughStreamYieldsRawEventsAndFailsWhenCutOrErrored(t *testing.T) {
	start := `{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"usage":{"input_tokens":1}}}`
	for _, tc := range []struct {
		name, events string
		want         []string
		errCode      string
	}{
		{"complete", "event: message_start\ndata: " + start + "\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
			[]string{start, `{"type":"message_stop"}`}, ""},
		{"cut before message_stop", "event: message_start\ndata: " + start + "\n\n", []string{start}, "upstream_stream_truncated"},
		{"error event", "event: message_start\ndata: " + start + "\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"bad key sk-ant-secret-key\"}}\n\n",
			[]string{start}, "upstream_error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := passthroughUpstream(t, tc.events)
			resp, err := p.ChatCompletion(context.Background(), &provider.Request{Surface: provider.SurfaceMessages, Stream: true,
				Body: []byte(`{"model":"claude-x","max_tokens":5,"stream":true,"messages":[]}`)})
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Stream.Close()
			var got []string
			for {
				b, err := resp.Stream.Next()
				if err == io.EOF {
					if tc.errCode != "" {
						t.Fatalf("EOF, want %s", tc.errCode)
					}
					break
				}
				if err != nil {
					var e *api.Error
					if !errors.As(err, &e) || e.Code != tc.errCode || strings.Contains(e.Message, "sk-ant-secret-key") {
						t.Fatalf("error %v, want code %s without the key", err, tc.errCode)
					}
					break
				}
				got = append(got, string(b))
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("events %q, want %q", got, tc.want)
			}
		})
	}
}
