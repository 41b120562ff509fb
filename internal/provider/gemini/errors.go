package gemini

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/provider"
)

// Google's errors are {"error":{"code":429,"message":"...","status":
// "RESOURCE_EXHAUSTED","details":[...]}}: status is the google.rpc.Code
// name, and it decides what the client sees.

// statusKind is how the gateway answers one google.rpc.Code.
type statusKind struct {
	status int    // HTTP status the client sees
	typ    string // OpenAI error type
}

// statusKinds maps every google.rpc.Code the Gemini and Vertex AI APIs
// document. UNAUTHENTICATED and PERMISSION_DENIED are the gateway's
// credential failing (provider.AuthFailed: 502 upstream_auth_failed).
var statusKinds = map[string]statusKind{
	"INVALID_ARGUMENT":    {http.StatusBadRequest, api.TypeInvalidRequest},
	"FAILED_PRECONDITION": {http.StatusBadRequest, api.TypeInvalidRequest},
	"OUT_OF_RANGE":        {http.StatusBadRequest, api.TypeInvalidRequest},
	"NOT_FOUND":           {http.StatusNotFound, api.TypeNotFound},
	"ALREADY_EXISTS":      {http.StatusConflict, api.TypeInvalidRequest},
	"RESOURCE_EXHAUSTED":  {http.StatusTooManyRequests, api.TypeRateLimit},
	"CANCELLED":           {http.StatusBadGateway, api.TypeUpstream},
	"ABORTED":             {http.StatusBadGateway, api.TypeUpstream},
	"UNKNOWN":             {http.StatusBadGateway, api.TypeUpstream},
	"INTERNAL":            {http.StatusBadGateway, api.TypeUpstream},
	"DATA_LOSS":           {http.StatusBadGateway, api.TypeUpstream},
	"UNIMPLEMENTED":       {http.StatusBadGateway, api.TypeUpstream},
	"UNAVAILABLE":         {http.StatusServiceUnavailable, api.TypeOverloaded},
	"DEADLINE_EXCEEDED":   {http.StatusGatewayTimeout, api.TypeTimeout},
}

// upstreamError maps a non-2xx Gemini answer to the error the client sees.
// The caller scrubs it with provider.ScrubSecret.
func upstreamError(name string, status int, header http.Header, body []byte) *api.Error {
	root := gjson.ParseBytes(body)
	ge := root.Get("error")
	if root.IsArray() { // streamGenerateContent without alt=sse answers errors as an array
		ge = root.Get("0.error")
	}
	gstatus, msg := ge.Get("status").Str, ge.Get("message").Str
	if !ge.IsObject() {
		// Not Google's envelope (a proxy's page): the shared mapping by
		// HTTP status.
		return provider.UpstreamError(name, status, header, body)
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	retry := provider.ParseRetryAfter(header.Get("Retry-After"), time.Now())
	if retry == 0 {
		retry = retryDelay(ge.Get("details"))
	}
	// AI Studio answers a bad key with 400 INVALID_ARGUMENT and reason
	// API_KEY_INVALID: the gateway's credential, not the client's request.
	if gstatus == "UNAUTHENTICATED" || gstatus == "PERMISSION_DENIED" || hasReason(ge.Get("details"), "API_KEY_INVALID") ||
		gstatus == "" && (status == http.StatusUnauthorized || status == http.StatusForbidden) {
		a := provider.AuthFailed(name, status, msg)
		a.RetryAfter = retry
		return a
	}
	k, ok := statusKinds[gstatus]
	if !ok {
		k = kindForHTTP(status)
	}
	e := &api.Error{Status: k.status, Type: k.typ, Code: strings.ToLower(gstatus), Message: msg,
		UpstreamStatus: status, RetryAfter: retry}
	switch {
	case k.status == http.StatusGatewayTimeout:
		e.Message = fmt.Sprintf("provider %s timed out: %s", name, msg)
	case k.status >= 500:
		e.Message = fmt.Sprintf("provider %s failed with status %d %s: %s", name, status, gstatus, msg)
	}
	if e.Code == "" {
		e.Code = "upstream_error"
	}
	return e
}

// kindForHTTP is the answer for a Google error without a known status.
func kindForHTTP(status int) statusKind {
	switch {
	case status == http.StatusTooManyRequests:
		return statusKind{status, api.TypeRateLimit}
	case status == http.StatusNotFound:
		return statusKind{status, api.TypeNotFound}
	case status >= 400 && status < 500:
		return statusKind{status, api.TypeInvalidRequest}
	case status == http.StatusServiceUnavailable:
		return statusKind{status, api.TypeOverloaded}
	case status == http.StatusGatewayTimeout:
		return statusKind{status, api.TypeTimeout}
	}
	return statusKind{http.StatusBadGateway, api.TypeUpstream}
}

// retryDelay reads google.rpc.RetryInfo's retryDelay ("37s") from details.
func retryDelay(details gjson.Result) time.Duration {
	var d time.Duration
	details.ForEach(func(_, v gjson.Result) bool {
		if strings.HasSuffix(v.Get("@type").Str, "google.rpc.RetryInfo") {
			if p, err := time.ParseDuration(v.Get("retryDelay").Str); err == nil && p > 0 {
				d = p
			}
			return false
		}
		return true
	})
	return d
}

// hasReason reports a google.rpc.ErrorInfo with reason in details.
func hasReason(details gjson.Result, reason string) bool {
	found := false
	details.ForEach(func(_, v gjson.Result) bool {
		found = v.Get("reason").Str == reason
		return !found
	})
	return found
}

// streamError maps an error object received with a 200 status or inside a
// stream. The upstream had already accepted the call, so it is a provider
// failure: 502, or the status's own answer when that is a 429, 503 or 504
// worth retrying elsewhere.
func streamError(name string, ge gjson.Result) *api.Error {
	gstatus, msg := ge.Get("status").Str, ge.Get("message").Str
	if msg == "" {
		msg = "unknown error"
	}
	e := &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_stream_error",
		Message: fmt.Sprintf("provider %s failed mid-answer: %s %s", name, gstatus, msg)}
	switch gstatus {
	case "UNAVAILABLE":
		e.Status, e.Type = http.StatusServiceUnavailable, api.TypeOverloaded
	case "RESOURCE_EXHAUSTED":
		e.Status, e.Type = http.StatusTooManyRequests, api.TypeRateLimit
	case "DEADLINE_EXCEEDED":
		e.Status, e.Type = http.StatusGatewayTimeout, api.TypeTimeout
	}
	return e
}
