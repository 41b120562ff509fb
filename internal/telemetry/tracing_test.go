package telemetry

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/internal/provider"
)

func TestSpansNestUnderTheRequestAndTraceparentReachesTheProvider(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	tr := NewTracer(tp)
	if !tr.Enabled() {
		t.Fatal("tracer with a provider is disabled")
	}

	var gotTraceparent atomic.Value
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotTraceparent.Store(r.Header.Get("traceparent"))
		io.WriteString(w, `{}`)
	}))
	defer upstream.Close()

	// The client continues its own trace.
	const clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	in := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
	in.Header.Set("traceparent", "00-"+clientTrace+"-00f067aa0ba902b7-01")

	ctx, reqSpan := tr.StartRequest(context.Background(), in)
	_, l1Span := tr.StartSpan(ctx, "cache.l1.get")
	l1Span.End()
	pctx, provSpan := tr.StartProviderCall(ctx, "openai", "gpt-4o", provider.SurfaceChat, 0)
	out, _ := http.NewRequestWithContext(pctx, http.MethodPost, upstream.URL, nil)
	tr.Inject(pctx, out.Header)
	resp, err := http.DefaultClient.Do(out)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	provSpan.End()
	tr.EndSpan(reqSpan, &Record{Status: 200, Cache: CacheMiss, Model: "gpt-4o", Provider: "openai"})

	spans := rec.Ended()
	if len(spans) != 3 {
		t.Fatalf("recorded %d spans; want 3", len(spans))
	}
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byName[s.Name()] = s
	}
	root, l1, prov := byName["POST /v1/chat/completions"], byName["cache.l1.get"], byName["chat gpt-4o"]
	if root == nil || l1 == nil || prov == nil {
		t.Fatalf("span names: %v", byName)
	}
	if root.SpanContext().TraceID().String() != clientTrace || root.Parent().SpanID().String() != "00f067aa0ba902b7" {
		t.Errorf("request span did not continue the client's trace: %v parent %v", root.SpanContext().TraceID(), root.Parent().SpanID())
	}
	if root.SpanKind() != trace.SpanKindServer || prov.SpanKind() != trace.SpanKindClient {
		t.Errorf("kinds: request %v provider %v", root.SpanKind(), prov.SpanKind())
	}
	for _, child := range []sdktrace.ReadOnlySpan{l1, prov} {
		if child.Parent().SpanID() != root.SpanContext().SpanID() {
			t.Errorf("%s is not a child of the request span", child.Name())
		}
	}
	want := "00-" + clientTrace + "-" + prov.SpanContext().SpanID().String() + "-01"
	if got, _ := gotTraceparent.Load().(string); got != want {
		t.Errorf("provider got traceparent %q; want %q", got, want)
	}
	var sawCache bool
	for _, a := range root.Attributes() {
		if a.Key == "llm.cache" && a.Value.AsString() == "miss" {
			sawCache = true
		}
	}
	if !sawCache {
		t.Errorf("request span attributes %v lack llm.cache=miss", root.Attributes())
	}
}

func TestDisabledTracerAddsNothingAndDoesNotAllocate(t *testing.T) {
	for name, tr := range map[string]*Tracer{"disabled": NewTracer(nil), "nil": nil} {
		t.Run(name, func(t *testing.T) {
			if tr.Enabled() {
				t.Fatal("enabled")
			}
			in := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
			in.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
			ctx := context.Background()
			h := http.Header{}
			r := &Record{Status: 200}
			allocs := testing.AllocsPerRun(100, func() {
				c, span := tr.StartRequest(ctx, in)
				c2, child := tr.StartSpan(c, "cache.l1.get")
				child.End()
				c3, prov := tr.StartProviderCall(c2, "openai", "gpt-4o", provider.SurfaceChat, 0)
				tr.Inject(c3, h)
				prov.End()
				tr.EndSpan(span, r)
			})
			if allocs != 0 {
				t.Errorf("disabled tracing allocates %v times per request", allocs)
			}
			if len(h) != 0 {
				t.Errorf("disabled tracer injected %v", h)
			}
		})
	}
}

func TestSetupTracingIsOffWithoutAnOTLPEndpoint(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	tr, shutdown, err := SetupTracing(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	if tr.Enabled() {
		t.Fatal("tracing on without an endpoint")
	}
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
	t.Setenv("OTEL_SDK_DISABLED", "true")
	if TracingEnabledByEnv() {
		t.Fatal("OTEL_SDK_DISABLED=true ignored")
	}
}

func TestSetupTracingExportsSpansOverOTLPWhenTheEndpointIsSet(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	got := make(chan string, 10)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- r.URL.Path + " " + r.Header.Get("Content-Type") + " " + string(body)
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	defer collector.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	t.Setenv("OTEL_SERVICE_NAME", "edge-agent-test")

	ctx := context.Background()
	tr, shutdown, err := SetupTracing(ctx, "v0.0.0-test")
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Enabled() {
		t.Fatal("tracing off with an endpoint set")
	}
	_, span := tr.StartSpan(ctx, "exported-span")
	span.End()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := shutdown(sctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	select {
	case req := <-got:
		if !strings.HasPrefix(req, "/v1/traces application/x-protobuf") || !strings.Contains(req, "exported-span") ||
			!strings.Contains(req, "edge-agent-test") {
			t.Fatalf("collector got %q", req)
		}
	default:
		t.Fatal("no export reached the collector by shutdown")
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestExportErrorsAreStructuredLogLines(t *testing.T) {
	var buf strings.Builder
	l, err := NewLogger(&buf, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	ExportErrorHandler(l.Logger).Handle(errors.New("connection refused"))
	line := strings.TrimSpace(buf.String())
	if !strings.HasPrefix(line, "{") || !strings.Contains(line, `"level":"WARN"`) || !strings.Contains(line, `"error":"connection refused"`) {
		t.Fatalf("log line %q: want one JSON warning carrying the error", line)
	}
}

// TestRequestLogLineCarriesTheTraceAndSpanIDs: a traced request's log line
// names its trace and span, in both formats; an untraced one neither.
func TestRequestLogLineCarriesTheTraceAndSpanIDs(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(context.Background())
	tr := NewTracer(tp)
	_, span := tr.StartRequest(context.Background(), httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil))
	r := &Record{Status: 200, Model: "gpt-4o"}
	tr.EndSpan(span, r)
	sc := span.SpanContext()
	for _, json := range []bool{true, false} {
		line := string(appendRequestLine(nil, json, time.Now(), r))
		q := ""
		if json {
			q = `"`
		}
		for _, want := range []string{"trace_id" + map[bool]string{true: `":`, false: "="}[json] + q + sc.TraceID().String() + q,
			"span_id" + map[bool]string{true: `":`, false: "="}[json] + q + sc.SpanID().String() + q} {
			if !strings.Contains(line, want) {
				t.Errorf("log line %q lacks %s", line, want)
			}
		}
	}
	if line := string(appendRequestLine(nil, true, time.Now(), &Record{Status: 200})); strings.Contains(line, "trace_id") {
		t.Errorf("untraced line %q names a trace", line)
	}
}

// The conventions' operation name is the surface's (a listed name that
// applies must be used): chat for chat, Messages and Responses,
// embeddings, text_completion; the spans are named after it, the
// request's bound and the answer's finish reasons are recorded.
func TestGenAISpansNameTheSurfacesOperation(t *testing.T) {
	for _, tc := range []struct {
		surface provider.Surface
		op      string
	}{
		{provider.SurfaceChat, "chat"},
		{provider.SurfaceMessages, "chat"},
		{provider.SurfaceResponses, "chat"},
		{provider.SurfaceEmbeddings, "embeddings"},
		{provider.SurfaceCompletions, "text_completion"},
	} {
		t.Run(tc.surface.String(), func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			defer tp.Shutdown(context.Background())
			tr := NewTracer(tp)
			ctx, req := tr.StartRequest(context.Background(), httptest.NewRequest(http.MethodPost, "/v1/x", nil))
			pctx, call := tr.StartProviderCall(ctx, "openai/m", "m", tc.surface, 30)
			_, end := tr.StartAttempt(pctx, http.Header{}, "openai", "openai", "m", tc.surface)
			end("ok", false)
			call.End()
			tr.EndSpan(req, &Record{Status: 200, Endpoint: tc.surface, Model: "m", FinishReasons: []string{"stop", "length"}})

			spans := rec.Ended()
			if len(spans) != 3 {
				t.Fatalf("%d spans, want 3", len(spans))
			}
			for i, s := range spans {
				a := map[string]string{}
				for _, kv := range s.Attributes() {
					a[string(kv.Key)] = kv.Value.Emit()
				}
				if a["gen_ai.operation.name"] != tc.op {
					t.Errorf("span %q: gen_ai.operation.name %q, want %q", s.Name(), a["gen_ai.operation.name"], tc.op)
				}
				switch i {
				case 0, 1: // the attempt, the provider call
					if s.Name() != tc.op+" m" {
						t.Errorf("span named %q, want %q", s.Name(), tc.op+" m")
					}
				case 2: // the request
					if a["gen_ai.response.finish_reasons"] != `["stop","length"]` {
						t.Errorf("finish reasons %q", a["gen_ai.response.finish_reasons"])
					}
				}
				if i == 1 && a["gen_ai.request.max_tokens"] != "30" {
					t.Errorf("provider call: gen_ai.request.max_tokens %q, want 30", a["gen_ai.request.max_tokens"])
				}
			}
		})
	}
}
