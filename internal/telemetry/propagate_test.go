package telemetry

import (
	"context"
	"net/http"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/edge-agent/edge-agent/internal/provider"
)

func TestUpstreamHeadersForwardTraceContextBaggageAndRequestID(t *testing.T) {
	client := http.Header{}
	client.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	client.Set("Tracestate", "vendor=1")
	client.Set("Baggage", "tenant=acme")
	client.Set("Authorization", "Bearer client-key")
	h := UpstreamHeaders(nil, client, "req-1")
	for k, want := range map[string]string{"Traceparent": client.Get("Traceparent"), "Tracestate": "vendor=1", "Baggage": "tenant=acme", "X-Request-Id": "req-1"} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if h.Get("Authorization") != "" {
		t.Error("the client's key was forwarded upstream")
	}
	// Tracing on: the attempt's span continues the client's trace and
	// replaces its traceparent; baggage and the request id stay.
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(context.Background())
	tr := NewTracer(tp)
	in, _ := http.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
	in.Header = client
	ctx, span := tr.StartRequest(context.Background(), in)
	_, end := tr.StartAttempt(ctx, h, "openai", "openai", "gpt-4o", provider.SurfaceChat)
	end("2xx", false)
	span.End()
	if got := h.Get("Traceparent"); got == client.Get("Traceparent") || got[3:35] != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("traceparent with tracing on %q: want the client's trace, a new span", got)
	}
	if h.Get("Baggage") != "tenant=acme" || h.Get("X-Request-Id") != "req-1" {
		t.Errorf("baggage %q, request id %q after the attempt", h.Get("Baggage"), h.Get("X-Request-Id"))
	}
}
