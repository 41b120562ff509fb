package messages

import (
	"net/http"
	"strconv"
	"time"

	"github.com/edge-agent/edge-agent/internal/api"
)

// Anthropic's error type names, as its SDKs decode them.
const (
	TypeInvalidRequest  = "invalid_request_error" // 400 and other 4xx
	TypeAuthentication  = "authentication_error"  // 401
	TypeBilling         = "billing_error"         // 402
	TypePermission      = "permission_error"      // 403
	TypeNotFound        = "not_found_error"       // 404
	TypeRequestTooLarge = "request_too_large"     // 413
	TypeRateLimit       = "rate_limit_error"      // 429
	TypeAPI             = "api_error"             // 500, 502 and other 5xx
	TypeTimeout         = "timeout_error"         // 504
	TypeOverloaded      = "overloaded_error"      // 503, 529
)

// ErrorType maps an HTTP status to Anthropic's error type name.
//
// Anthropic itself answers 500 api_error, 504 timeout_error and 529
// overloaded_error. The gateway's own 5xx keep their status and take the
// closest name: 502 (the provider failed or answered badly) is api_error;
// 503 (no deployment available, breakers open, provider overloaded) is
// overloaded_error, because it is the one a client should retry after
// backing off, which is what SDKs do with that name.
func ErrorType(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return TypeAuthentication
	case http.StatusPaymentRequired:
		return TypeBilling
	case http.StatusForbidden:
		return TypePermission
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		return TypeNotFound
	case http.StatusRequestEntityTooLarge:
		return TypeRequestTooLarge
	case http.StatusTooManyRequests:
		return TypeRateLimit
	case http.StatusServiceUnavailable, 529:
		return TypeOverloaded
	case http.StatusGatewayTimeout:
		return TypeTimeout
	}
	if status >= 500 || status < 400 {
		return TypeAPI
	}
	return TypeInvalidRequest
}

// AppendError appends e as Anthropic's error envelope:
// {"type":"error","error":{"type":...,"message":...}}. The type follows
// e.Status (ErrorType), not e.Type, whose names are OpenAI's.
func AppendError(dst []byte, e *api.Error) []byte {
	dst = append(dst, `{"type":"error","error":{"type":"`...)
	dst = append(dst, ErrorType(e.Status)...)
	dst = append(dst, `","message":`...)
	dst = api.AppendString(dst, e.Message)
	return append(dst, "}}"...)
}

// AppendErrorEvent appends e as an SSE error event, the way a stream that
// has already sent its 200 reports a failure.
func AppendErrorEvent(dst []byte, e *api.Error) []byte {
	dst = append(dst, "event: error\ndata: "...)
	dst = AppendError(dst, e)
	return append(dst, "\n\n"...)
}

// WriteError writes err as Anthropic's error envelope with its status and
// returns the *api.Error it wrote, as api.WriteError does for chat. The
// mapping of failures to statuses stays in api.FromError.
func WriteError(w http.ResponseWriter, err error) *api.Error {
	e := api.FromError(err)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if e.RetryAfter > 0 {
		secs := int64((e.RetryAfter + time.Second - 1) / time.Second)
		h.Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	status := e.Status
	if status < 400 || status > 599 {
		status = http.StatusInternalServerError
	}
	w.WriteHeader(status)
	_, _ = w.Write(append(AppendError(make([]byte, 0, 96+len(e.Message)), e), '\n'))
	return e
}
