// Package api holds the OpenAI wire types, the error envelope and the
// zero-copy request view the gateway works from.
package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Error types used in the OpenAI error envelope.
const (
	TypeInvalidRequest = "invalid_request_error"
	TypeAuthentication = "authentication_error"
	TypePermission     = "permission_error"
	TypeNotFound       = "not_found_error"
	TypeRateLimit      = "rate_limit_error"
	TypeServer         = "server_error"
	TypeUpstream       = "upstream_error"
	TypeTimeout        = "timeout_error"
	TypeOverloaded     = "overloaded_error"
)

// Error is a failure that knows how it should look to an OpenAI client:
// an HTTP status and the four fields of {"error":{...}}.
type Error struct {
	Status  int    // HTTP status sent to the client
	Message string // human readable; never contains a key
	Type    string
	Param   string // request field at fault, "" for none
	Code    string // machine readable code, "" for none

	// UpstreamStatus is the provider's HTTP status when the error came from a
	// provider (0 otherwise). Retry and breaker logic read it.
	UpstreamStatus int
	// RetryAfter, when positive, is sent as Retry-After and tells the retry
	// logic how long the provider asked us to wait.
	RetryAfter time.Duration
	// Err is the underlying cause, kept for logs and errors.Is.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s (%d): %v", e.Message, e.Status, e.Err)
	}
	return fmt.Sprintf("%s (%d)", e.Message, e.Status)
}

func (e *Error) Unwrap() error { return e.Err }

// InvalidRequest is a 400 naming the request field at fault.
func InvalidRequest(param, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Type: TypeInvalidRequest, Param: param, Message: fmt.Sprintf(format, args...)}
}

// NotFound is a 404 with the given code.
func NotFound(code, format string, args ...any) *Error {
	return &Error{Status: http.StatusNotFound, Type: TypeNotFound, Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeShuttingDown is the code of a request the server ended at its
// shutdown deadline.
const CodeShuttingDown = "server_shutting_down"

// ShuttingDown is the error of a request still running when the server's
// shutdown deadline passed: the server, not the client, ended it. A server
// cancels its requests' contexts with it as the cause (context.Cause), so a
// stream can tell its client why it ends.
func ShuttingDown() *Error {
	return &Error{Status: http.StatusServiceUnavailable, Type: TypeServer, Code: CodeShuttingDown,
		Message: "the gateway is shutting down and stopped this request at its shutdown deadline; retry it"}
}

// FromError maps any error to an *Error: an *Error is returned as is,
// anything else becomes a status that describes it.
func FromError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return &Error{Status: http.StatusRequestEntityTooLarge, Type: TypeInvalidRequest, Code: "request_too_large",
			Message: fmt.Sprintf("request body exceeds the limit of %d bytes", mbe.Limit), Err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Status: http.StatusGatewayTimeout, Type: TypeTimeout, Code: "timeout", Message: "the request timed out", Err: err}
	case errors.Is(err, context.Canceled):
		// 499 is what proxies conventionally log for a client that went away.
		return &Error{Status: 499, Type: TypeInvalidRequest, Code: "client_closed_request", Message: "the client closed the request", Err: err}
	}
	return &Error{Status: http.StatusInternalServerError, Type: TypeServer, Message: "internal error", Err: err}
}

// AppendEnvelope appends {"error":{"message","type","param","code"}} to dst.
func (e *Error) AppendEnvelope(dst []byte) []byte {
	dst = append(dst, `{"error":{"message":`...)
	dst = AppendString(dst, e.Message)
	dst = append(dst, `,"type":`...)
	dst = AppendString(dst, e.Type)
	dst = append(dst, `,"param":`...)
	dst = appendNullable(dst, e.Param)
	dst = append(dst, `,"code":`...)
	dst = appendNullable(dst, e.Code)
	return append(dst, "}}"...)
}

func appendNullable(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, "null"...)
	}
	return AppendString(dst, s)
}

// WriteError writes err as an OpenAI error envelope with its status.
// It is the one place that turns failures into HTTP answers.
func WriteError(w http.ResponseWriter, err error) *Error {
	e := FromError(err)
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
	_, _ = w.Write(append(e.AppendEnvelope(make([]byte, 0, 128+len(e.Message))), '\n'))
	return e
}
