package simulated

import (
	"net/http"
	"strconv"

	"github.com/edge-agent/edge-agent/internal/api"
)

// dialect is the wire format a request arrived in.
type dialect uint8

const (
	dialectOpenAI dialect = iota
	dialectAnthropic
)

// errKind is a failure independent of the wire format; each dialect maps
// it to its own status, type and code.
type errKind uint8

const (
	kindBadRequest errKind = iota
	kindUnauthorized
	kindNotFound
	kindMethod
	kindTooLarge
	kindRateLimit
	kindServer
	kindOverloaded
)

// simError is a failure the simulated provider answers with.
type simError struct {
	kind  errKind
	msg   string
	param string // OpenAI param field, "" for null
	code  string // OpenAI code field, "" for null
}

func errRateLimited() *simError {
	return &simError{kind: kindRateLimit, code: "rate_limit_exceeded",
		msg: "Rate limit reached for requests (simulated). Please try again later."}
}

func errServer() *simError {
	return &simError{kind: kindServer, msg: "The server had an error while processing your request (simulated). Sorry about that!"}
}

func errUnauthorized(d dialect) *simError {
	if d == dialectAnthropic {
		return &simError{kind: kindUnauthorized, msg: "invalid x-api-key"}
	}
	return &simError{kind: kindUnauthorized, code: "invalid_api_key",
		msg: "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys."}
}

// status is the HTTP status of e in dialect d.
func (e *simError) status(d dialect) int {
	switch e.kind {
	case kindUnauthorized:
		return http.StatusUnauthorized
	case kindNotFound:
		return http.StatusNotFound
	case kindMethod:
		return http.StatusMethodNotAllowed
	case kindTooLarge:
		return http.StatusRequestEntityTooLarge
	case kindRateLimit:
		return http.StatusTooManyRequests
	case kindServer:
		return http.StatusInternalServerError
	case kindOverloaded:
		if d == dialectAnthropic {
			return 529 // Anthropic's "overloaded" status
		}
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}

// openAIType is the error.type OpenAI sends for e.
func (e *simError) openAIType() string {
	switch e.kind {
	case kindRateLimit:
		return "requests"
	case kindServer, kindOverloaded:
		return "server_error"
	}
	return "invalid_request_error"
}

// anthropicType is the error.type Anthropic sends for e.
func (e *simError) anthropicType() string {
	switch e.kind {
	case kindUnauthorized:
		return "authentication_error"
	case kindNotFound:
		return "not_found_error"
	case kindTooLarge:
		return "request_too_large"
	case kindRateLimit:
		return "rate_limit_error"
	case kindServer:
		return "api_error"
	case kindOverloaded:
		return "overloaded_error"
	}
	return "invalid_request_error"
}

// appendBody appends e's error body in dialect d.
func (e *simError) appendBody(dst []byte, d dialect) []byte {
	if d == dialectAnthropic {
		dst = append(dst, `{"type":"error","error":{"type":`...)
		dst = api.AppendString(dst, e.anthropicType())
		dst = append(dst, `,"message":`...)
		dst = api.AppendString(dst, e.msg)
		return append(dst, "}}"...)
	}
	ae := api.Error{Message: e.msg, Type: e.openAIType(), Param: e.param, Code: e.code}
	return ae.AppendEnvelope(dst)
}

// writeError answers e in dialect d, with Retry-After on rate limits.
func (s *Server) writeError(w http.ResponseWriter, d dialect, e *simError) {
	body := e.appendBody(make([]byte, 0, 96+len(e.msg)), d)
	body = append(body, '\n')
	h := w.Header()
	h["Content-Type"] = s.ctJSON
	if e.kind == kindRateLimit {
		h["Retry-After"] = s.cfg.Load().retryAfter
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(e.status(d))
	_, _ = w.Write(body)
}
