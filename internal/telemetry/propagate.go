package telemetry

import "net/http"

// UpstreamHeaders returns the headers a provider call carries on top of
// the adapter's own: the client's traceparent, tracestate and baggage as
// they came (tracing on, the attempt's span replaces traceparent and
// tracestate; see StartAttempt), and X-Request-Id, the request's id. dst
// is reused when not nil. The values are the client's slices, not copies.
func UpstreamHeaders(dst, client http.Header, requestID string) http.Header {
	if dst == nil {
		dst = make(http.Header, 4)
	}
	// Forwarded whatever the tracing setting, so that a trace passing
	// through the gateway with tracing off still joins up at the provider.
	for _, k := range [...]string{"Traceparent", "Tracestate", "Baggage"} {
		if v := client[k]; len(v) > 0 {
			dst[k] = v
		}
	}
	if requestID != "" {
		dst["X-Request-Id"] = []string{requestID}
	}
	return dst
}
