package messages

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/api"
)

func TestErrorTypeFollowsAnthropicsTable(t *testing.T) {
	for status, want := range map[int]string{
		400: "invalid_request_error", 401: "authentication_error", 402: "billing_error", 403: "permission_error",
		404: "not_found_error", 405: "not_found_error", 408: "invalid_request_error", 409: "invalid_request_error",
		413: "request_too_large", 422: "invalid_request_error", 429: "rate_limit_error", 499: "invalid_request_error",
		500: "api_error", 502: "api_error", 503: "overloaded_error", 504: "timeout_error", 529: "overloaded_error",
		200: "api_error", 0: "api_error",
	} {
		if got := ErrorType(status); got != want {
			t.Errorf("ErrorType(%d) = %q; want %q", status, got, want)
		}
	}
}

// envelope is Anthropic's error body, decoded strictly.
type envelope struct {
	Type  string `json:"type"`
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

func decodeEnvelope(t *testing.T, b []byte) envelope {
	t.Helper()
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatalf("envelope %q: %v", b, err)
	}
	return env
}

func TestWriteErrorSendsAnthropicsEnvelopeWithTheStatus(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		status     int
		typ, retry string
	}{
		{"bad field", api.InvalidRequest("max_tokens", "max_tokens: field required"), 400, "invalid_request_error", ""},
		{"rate limited", &api.Error{Status: 429, Type: api.TypeRateLimit, Message: "slow down", RetryAfter: 1500 * time.Millisecond}, 429, "rate_limit_error", "2"},
		{"body too large", fmt.Errorf("read: %w", &http.MaxBytesError{Limit: 1 << 20}), 413, "request_too_large", ""},
		{"timeout", context.DeadlineExceeded, 504, "timeout_error", ""},
		{"no deployment", &api.Error{Status: 503, Type: api.TypeOverloaded, Message: "all deployments are unavailable"}, 503, "overloaded_error", ""},
		{"plain error", errors.New("boom"), 500, "api_error", ""},
		{"out-of-range status", &api.Error{Status: 200, Message: "odd"}, 500, "api_error", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			WriteError(rec, tt.err)
			if rec.Code != tt.status || rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("Retry-After") != tt.retry {
				t.Fatalf("status %d headers %v", rec.Code, rec.Header())
			}
			env := decodeEnvelope(t, rec.Body.Bytes())
			if env.Type != "error" || env.Error.Type != tt.typ || env.Error.Message == "" {
				t.Fatalf("envelope %+v; want error type %q", env, tt.typ)
			}
		})
	}
}

func TestAppendErrorEventIsAnSSEErrorEvent(t *testing.T) {
	e := &api.Error{Status: 503, Message: "provider overloaded \"now\""}
	got := string(AppendErrorEvent([]byte("x"), e))
	want := "xevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"provider overloaded \\\"now\\\"\"}}\n\n"
	if got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}
