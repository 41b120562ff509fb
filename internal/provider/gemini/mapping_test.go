package gemini

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/provider"
)

// TestEveryDocumentedFinishReasonMapsToAnOpenAIFinishReason covers the
// FinishReason enum of the Gemini API and Vertex AI.
func TestEveryDocumentedFinishReasonMapsToAnOpenAIFinishReason(t *testing.T) {
	for _, tc := range []struct {
		reason string
		calls  bool
		want   string
	}{
		{"STOP", false, "stop"},
		{"STOP", true, "tool_calls"},
		{"MAX_TOKENS", false, "length"},
		{"MAX_TOKENS", true, "length"},
		{"SAFETY", false, "content_filter"},
		{"RECITATION", false, "content_filter"},
		{"LANGUAGE", false, "content_filter"},
		{"BLOCKLIST", false, "content_filter"},
		{"PROHIBITED_CONTENT", false, "content_filter"},
		{"SPII", false, "content_filter"},
		{"IMAGE_SAFETY", false, "content_filter"},
		{"IMAGE_PROHIBITED_CONTENT", false, "content_filter"},
		{"IMAGE_RECITATION", false, "content_filter"},
		{"SAFETY", true, "content_filter"},
		{"MALFORMED_FUNCTION_CALL", false, "stop"},
		{"UNEXPECTED_TOOL_CALL", false, "stop"},
		{"TOO_MANY_TOOL_CALLS", false, "stop"},
		{"MISSING_THOUGHT_SIGNATURE", false, "stop"},
		{"OTHER", false, "stop"},
		{"IMAGE_OTHER", false, "stop"},
		{"NO_IMAGE", false, "stop"},
		{"FINISH_REASON_UNSPECIFIED", false, "stop"},
		{"A_REASON_FROM_THE_FUTURE", false, "stop"},
		{"A_REASON_FROM_THE_FUTURE", true, "tool_calls"},
	} {
		if got := FinishReason(tc.reason, tc.calls); got != tc.want {
			t.Errorf("FinishReason(%s, calls=%v) = %s, want %s", tc.reason, tc.calls, got, tc.want)
		}
	}
}

// TestEveryGoogleErrorStatusMapsToTheClientsAnswer covers the google.rpc
// codes Google's APIs answer with, as the Gemini API sends them.
func TestEveryGoogleErrorStatusMapsToTheClientsAnswer(t *testing.T) {
	body := func(code int, status, extra string) []byte {
		return []byte(`{"error":{"code":` + strconv.Itoa(code) + `,"message":"upstream says ` + status + `","status":"` + status + `"` + extra + `}}`)
	}
	for _, tc := range []struct {
		name   string
		http   int
		body   []byte
		status int
		typ    string
		code   string
	}{
		{"invalid argument", 400, body(400, "INVALID_ARGUMENT", ""), 400, api.TypeInvalidRequest, "invalid_argument"},
		{"failed precondition", 400, body(400, "FAILED_PRECONDITION", ""), 400, api.TypeInvalidRequest, "failed_precondition"},
		{"out of range", 400, body(400, "OUT_OF_RANGE", ""), 400, api.TypeInvalidRequest, "out_of_range"},
		{"bad API key", 400, body(400, "INVALID_ARGUMENT",
			`,"details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]`),
			502, api.TypeUpstream, provider.CodeAuthFailed},
		{"unauthenticated", 401, body(401, "UNAUTHENTICATED", ""), 502, api.TypeUpstream, provider.CodeAuthFailed},
		{"permission denied", 403, body(403, "PERMISSION_DENIED", ""), 502, api.TypeUpstream, provider.CodeAuthFailed},
		{"not found", 404, body(404, "NOT_FOUND", ""), 404, api.TypeNotFound, "not_found"},
		{"already exists", 409, body(409, "ALREADY_EXISTS", ""), 409, api.TypeInvalidRequest, "already_exists"},
		{"aborted", 409, body(409, "ABORTED", ""), 502, api.TypeUpstream, "aborted"},
		{"resource exhausted", 429, body(429, "RESOURCE_EXHAUSTED", ""), 429, api.TypeRateLimit, "resource_exhausted"},
		{"cancelled", 499, body(499, "CANCELLED", ""), 502, api.TypeUpstream, "cancelled"},
		{"unknown", 500, body(500, "UNKNOWN", ""), 502, api.TypeUpstream, "unknown"},
		{"internal", 500, body(500, "INTERNAL", ""), 502, api.TypeUpstream, "internal"},
		{"data loss", 500, body(500, "DATA_LOSS", ""), 502, api.TypeUpstream, "data_loss"},
		{"unimplemented", 501, body(501, "UNIMPLEMENTED", ""), 502, api.TypeUpstream, "unimplemented"},
		{"unavailable", 503, body(503, "UNAVAILABLE", ""), 503, api.TypeOverloaded, "unavailable"},
		{"deadline exceeded", 504, body(504, "DEADLINE_EXCEEDED", ""), 504, api.TypeTimeout, "deadline_exceeded"},
		{"a status from the future", 418, body(418, "SOMETHING_NEW", ""), 418, api.TypeInvalidRequest, "something_new"},
		{"no status, 401", 401, []byte(`{"error":{"code":401,"message":"no"}}`), 502, api.TypeUpstream, provider.CodeAuthFailed},
		{"a proxy's page", 502, []byte(`<html>Bad Gateway</html>`), 502, api.TypeUpstream, "upstream_error"},
		{"an array of errors (no alt=sse)", 429, []byte(`[` + string(body(429, "RESOURCE_EXHAUSTED", "")) + `]`), 429, api.TypeRateLimit, "resource_exhausted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := upstreamError("gemini", tc.http, http.Header{}, tc.body)
			if e.Status != tc.status || e.Type != tc.typ || e.Code != tc.code {
				t.Fatalf("got status %d type %q code %q, want %d %q %q (%s)", e.Status, e.Type, e.Code, tc.status, tc.typ, tc.code, e.Message)
			}
			if e.UpstreamStatus != tc.http {
				t.Fatalf("UpstreamStatus %d, want %d", e.UpstreamStatus, tc.http)
			}
			if tc.body[0] != '<' && !strings.Contains(e.Message, "upstream says") && !strings.Contains(e.Message, "no") {
				t.Fatalf("message %q drops the upstream's", e.Message)
			}
		})
	}
}

func TestRateLimitErrorsCarryGooglesRetryDelay(t *testing.T) {
	b := []byte(`{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED","details":[
		{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[]},
		{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}`)
	if e := upstreamError("gemini", 429, http.Header{}, b); e.RetryAfter != 37*time.Second {
		t.Fatalf("RetryAfter %v, want 37s", e.RetryAfter)
	}
	h := http.Header{"Retry-After": {"5"}}
	if e := upstreamError("gemini", 429, h, b); e.RetryAfter != 5*time.Second {
		t.Fatalf("RetryAfter %v, want the header's 5s", e.RetryAfter)
	}
}

func TestStreamErrorsMapRetryableStatuses(t *testing.T) {
	for status, want := range map[string]int{"UNAVAILABLE": 503, "RESOURCE_EXHAUSTED": 429, "DEADLINE_EXCEEDED": 504, "INTERNAL": 502, "": 502} {
		r := gjson.Parse(`{"status":"` + status + `","message":"m"}`)
		if e := streamError("gemini", r); e.Status != want {
			t.Errorf("%q: status %d, want %d", status, e.Status, want)
		}
	}
}
