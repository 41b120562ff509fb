package bedrock

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/provider"
)

// errorKind is how one Bedrock exception looks to an OpenAI client.
type errorKind struct {
	status int    // sent to the client
	typ    string // OpenAI error type
	code   string
	auth   bool // the gateway's AWS credential was refused: provider.AuthFailed
}

// kindOf maps a Bedrock exception name (HTTP errors name them
// ThrottlingException, stream exceptions throttlingException) to what the
// client sees. Throttling and quota errors are 429s the router may retry
// elsewhere; a model still loading or a service briefly away is a 503;
// the model's own failures are 502s; a refused credential is the
// gateway's fault, never the client's.
func kindOf(exception string) (errorKind, bool) {
	switch strings.ToLower(exception) {
	case "throttlingexception":
		return errorKind{http.StatusTooManyRequests, api.TypeRateLimit, "rate_limit_exceeded", false}, true
	case "servicequotaexceededexception":
		return errorKind{http.StatusTooManyRequests, api.TypeRateLimit, "quota_exceeded", false}, true
	case "validationexception", "conflictexception":
		return errorKind{http.StatusBadRequest, api.TypeInvalidRequest, "", false}, true
	case "resourcenotfoundexception":
		return errorKind{http.StatusNotFound, api.TypeInvalidRequest, "model_not_found", false}, true
	case "accessdeniedexception", "unrecognizedclientexception", "invalidsignatureexception",
		"incompletesignatureexception", "expiredtokenexception", "missingauthenticationtokenexception":
		return errorKind{http.StatusBadGateway, api.TypeUpstream, provider.CodeAuthFailed, true}, true
	case "modelnotreadyexception":
		return errorKind{http.StatusServiceUnavailable, api.TypeOverloaded, "model_not_ready", false}, true
	case "serviceunavailableexception":
		return errorKind{http.StatusServiceUnavailable, api.TypeOverloaded, "upstream_unavailable", false}, true
	case "internalserverexception":
		return errorKind{http.StatusBadGateway, api.TypeUpstream, "upstream_error", false}, true
	case "modelerrorexception":
		return errorKind{http.StatusBadGateway, api.TypeUpstream, "upstream_model_error", false}, true
	case "modelstreamerrorexception":
		return errorKind{http.StatusBadGateway, api.TypeUpstream, "upstream_stream_error", false}, true
	case "modeltimeoutexception":
		return errorKind{http.StatusGatewayTimeout, api.TypeTimeout, "upstream_timeout", false}, true
	}
	return errorKind{}, false
}

// errorType is the exception name of an HTTP error: the x-amzn-ErrorType
// header ("ThrottlingException:http://internal.amazon.com/coral/..."), or
// the body's __type or code.
func errorType(h http.Header, body []byte) string {
	t := h.Get("X-Amzn-Errortype")
	if t == "" {
		t = gjson.GetBytes(body, "__type").Str
	}
	if t == "" {
		t = gjson.GetBytes(body, "code").Str
	}
	if i := strings.IndexByte(t, ':'); i >= 0 {
		t = t[:i]
	}
	if i := strings.LastIndexByte(t, '#'); i >= 0 { // "com.amazon.coral.service#ThrottlingException"
		t = t[i+1:]
	}
	return t
}

// errorMessage reads Bedrock's {"message":...} (or "Message").
func errorMessage(body []byte) string {
	if m := gjson.GetBytes(body, "message").Str; m != "" {
		return m
	}
	if m := gjson.GetBytes(body, "Message").Str; m != "" {
		return m
	}
	return ""
}

// httpError maps a non-2xx Bedrock answer. The caller scrubs it.
func httpError(name string, status int, h http.Header, body []byte) *api.Error {
	typ := errorType(h, body)
	msg := errorMessage(body)
	if msg == "" {
		msg = http.StatusText(status)
	}
	k, ok := kindOf(typ)
	if !ok {
		// An exception we do not know: judged by its status, as any
		// upstream's error is, with Bedrock's message.
		b := append([]byte(`{"error":{"message":`), api.AppendString(nil, msg)...)
		return provider.UpstreamError(name, status, h, append(b, "}}"...))
	}
	retry := provider.ParseRetryAfter(h.Get("Retry-After"), time.Now())
	if k.auth {
		a := provider.AuthFailed(name, status, typ+": "+msg)
		a.RetryAfter = retry
		return a
	}
	e := &api.Error{Status: k.status, Type: k.typ, Code: k.code, Message: msg, UpstreamStatus: status, RetryAfter: retry}
	if k.status >= 500 {
		e.Message = fmt.Sprintf("provider %s failed with %s (%d): %s", name, typ, status, msg)
	}
	return e
}

// streamError maps an exception event of a ConverseStream answer
// (:message-type exception, :exception-type throttlingException, ...) or
// an error event (:message-type error, :error-code). The upstream had
// accepted the call, so unknown ones are 502s.
func streamError(name, typ string, payload []byte) *api.Error {
	msg := errorMessage(payload)
	if msg == "" {
		msg = "no message"
	}
	k, ok := kindOf(typ)
	if !ok {
		return &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_stream_error",
			Message: fmt.Sprintf("provider %s failed mid-answer with %s: %s", name, typ, msg)}
	}
	if k.auth {
		return provider.AuthFailed(name, http.StatusForbidden, typ+": "+msg)
	}
	e := &api.Error{Status: k.status, Type: k.typ, Code: k.code, Message: msg}
	if k.status >= 500 {
		e.Message = fmt.Sprintf("provider %s failed mid-answer with %s: %s", name, typ, msg)
	}
	return e
}

func invalidResponse(name, why string) *api.Error {
	return &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_invalid_response",
		Message: fmt.Sprintf("provider %s returned an invalid response: %s", name, why)}
}
