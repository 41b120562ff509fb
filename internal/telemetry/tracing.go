package telemetry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/edge-agent/edge-agent/internal/provider"
)

const tracerName = "github.com/edge-agent/edge-agent"

// Tracer starts the gateway's spans and propagates W3C trace context to
// providers. A nil or disabled Tracer costs one branch per call: no spans,
// no context values, no header writes.
type Tracer struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	genai  *genAIMetrics // nil: no GenAI metrics
}

// NewTracer traces through tp; a nil tp gives a disabled Tracer.
func NewTracer(tp trace.TracerProvider) *Tracer {
	if tp == nil {
		return &Tracer{}
	}
	return &Tracer{
		tracer: tp.Tracer(tracerName),
		prop:   propagation.TraceContext{},
	}
}

// TracingEnabledByEnv reports whether the standard OpenTelemetry variables
// ask for trace export: an OTLP endpoint is set, and neither
// OTEL_SDK_DISABLED=true nor OTEL_TRACES_EXPORTER=none says otherwise.
func TracingEnabledByEnv() bool {
	if strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") ||
		strings.EqualFold(os.Getenv("OTEL_TRACES_EXPORTER"), "none") {
		return false
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// TracesDestination is where spans are sent when TracingEnabledByEnv:
// the traces endpoint, else the OTLP endpoint with the exporter's
// /v1/traces; "" when tracing is off.
func TracesDestination() string {
	if !TracingEnabledByEnv() {
		return ""
	}
	if e := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); e != "" {
		return e
	}
	return strings.TrimSuffix(os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT"), "/") + "/v1/traces"
}

// EnvVars are the environment variables the telemetry setup reads: the
// ones above, and those the OTLP exporter and the SDK's resource and
// sampler read themselves. The Helm chart's check keeps to these.
func EnvVars() []string {
	return []string{
		"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER",
		"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
		"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
		"OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
		"OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
		"OTEL_EXPORTER_OTLP_CERTIFICATE", "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
		"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "OTEL_EXPORTER_OTLP_CLIENT_KEY",
		"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES",
		"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
		"OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
		"OTEL_METRIC_EXPORT_INTERVAL", "OTEL_METRIC_EXPORT_TIMEOUT",
		"OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "OTEL_BSP_EXPORT_TIMEOUT",
	}
}

// SetupTracing exports spans over OTLP/HTTP when TracingEnabledByEnv; the
// exporter reads the rest of the standard variables (headers, timeout,
// protocol details, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
// OTEL_TRACES_SAMPLER). Otherwise it returns a disabled Tracer. shutdown
// flushes buffered spans; call it during graceful shutdown with a deadline.
func SetupTracing(ctx context.Context, version string) (t *Tracer, shutdown func(context.Context) error, err error) {
	noop := func(context.Context) error { return nil }
	if !TracingEnabledByEnv() {
		return NewTracer(nil), noop, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, noop, fmt.Errorf("otlp trace exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName("edge-agent"), semconv.ServiceVersion(version)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(), // after the defaults, so OTEL_SERVICE_NAME wins
	)
	if err != nil {
		_ = exp.Shutdown(ctx)
		return nil, noop, fmt.Errorf("trace resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	t = NewTracer(tp)
	if !metricsEnabledByEnv() {
		return t, tp.Shutdown, nil
	}
	g, mshutdown, err := setupGenAIMetrics(ctx, res)
	if err != nil {
		_ = tp.Shutdown(ctx)
		return nil, noop, err
	}
	t.genai = g
	return t, func(ctx context.Context) error { return errors.Join(tp.Shutdown(ctx), mshutdown(ctx)) }, nil
}

// Enabled reports whether spans are recorded. Callers building span
// attributes check it first.
func (t *Tracer) Enabled() bool { return t != nil && t.tracer != nil }

// StartRequest starts the server span of an incoming request, continuing
// the caller's trace when it sent a traceparent header.
func (t *Tracer) StartRequest(ctx context.Context, r *http.Request) (context.Context, trace.Span) {
	if !t.Enabled() {
		return ctx, trace.SpanFromContext(ctx)
	}
	ctx = t.prop.Extract(ctx, propagation.HeaderCarrier(r.Header))
	// The gateway's routes are fixed paths: the path is the route.
	return t.tracer.Start(ctx, r.Method+" "+r.URL.Path,
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(
			semconv.HTTPRequestMethodKey.String(r.Method),
			semconv.URLPath(r.URL.Path),
			semconv.HTTPRoute(r.URL.Path),
		))
}

// StartSpan starts an internal child span (a cache tier lookup, say).
func (t *Tracer) StartSpan(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if !t.Enabled() {
		return ctx, trace.SpanFromContext(ctx)
	}
	return t.tracer.Start(ctx, name, trace.WithAttributes(attrs...))
}

// The OpenTelemetry GenAI semantic conventions' attribute names.
const (
	attrGenAIOperation     = attribute.Key("gen_ai.operation.name")
	attrGenAIProvider      = attribute.Key("gen_ai.provider.name")
	attrGenAIRequestModel  = attribute.Key("gen_ai.request.model")
	attrGenAIResponseModel = attribute.Key("gen_ai.response.model")
	attrGenAIFinish        = attribute.Key("gen_ai.response.finish_reasons")
	attrGenAIMaxTokens     = attribute.Key("gen_ai.request.max_tokens")
	attrGenAIInputTokens   = attribute.Key("gen_ai.usage.input_tokens")
	attrGenAIOutputTokens  = attribute.Key("gen_ai.usage.output_tokens")
	attrErrorType          = attribute.Key("error.type")
	attrAttemptOutcome     = attribute.Key("edge_agent.attempt.outcome")
	attrDeployment         = attribute.Key("edge_agent.deployment")
)

// genAIOperation is the conventions' operation name of a surface's call:
// "chat" for chat, Messages and Responses, "embeddings", and
// "text_completion" for the legacy completions (the conventions say a
// listed name that applies must be used).
func genAIOperation(s provider.Surface) string {
	switch s {
	case provider.SurfaceEmbeddings:
		return "embeddings"
	case provider.SurfaceCompletions:
		return "text_completion"
	}
	return "chat"
}

// genAIProvider maps an adapter type to the conventions' provider names.
func genAIProvider(typ string) string {
	switch typ {
	case "gemini":
		return "gcp.gemini"
	case "vertex", "vertexai":
		return "gcp.vertex_ai"
	case "bedrock":
		return "aws.bedrock"
	case "azure":
		return "azure.ai.openai"
	}
	return typ
}

// StartProviderCall starts the GenAI operation span of a provider call,
// "{operation} {model}" (route is the route name: "provider/model" or a
// model table entry; s the surface called upstream; maxTokens the
// request's bound, 0 when it set none); each upstream attempt is a child
// of it (StartAttempt). Inject its context into the outgoing request.
func (t *Tracer) StartProviderCall(ctx context.Context, route, model string, s provider.Surface, maxTokens int64) (context.Context, trace.Span) {
	if !t.Enabled() {
		return ctx, trace.SpanFromContext(ctx)
	}
	op := genAIOperation(s)
	attrs := []attribute.KeyValue{
		attrGenAIOperation.String(op),
		attrGenAIRequestModel.String(model),
		attribute.String("llm.provider", route),
		attribute.String("llm.model", model),
	}
	if p, _, ok := strings.Cut(route, "/"); ok {
		attrs = append(attrs, attrGenAIProvider.String(genAIProvider(p)))
	}
	if maxTokens > 0 {
		attrs = append(attrs, attrGenAIMaxTokens.Int64(maxTokens))
	}
	return t.tracer.Start(ctx, op+" "+model, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
}

// StartAttempt starts the span of one upstream attempt, a child of the
// provider call's, and writes its trace context into header (the
// attempt's copy of the request's). end records how the attempt ended
// (failed: the span's status is an error) and ends the span; for a stream
// that is when the stream ends.
func (t *Tracer) StartAttempt(ctx context.Context, header http.Header, deployment, providerType, model string, s provider.Surface) (context.Context, func(outcome string, failed bool)) {
	if !t.Enabled() {
		return ctx, func(string, bool) {}
	}
	op := genAIOperation(s)
	ctx, span := t.tracer.Start(ctx, op+" "+model, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attrGenAIOperation.String(op),
		attrGenAIProvider.String(genAIProvider(providerType)),
		attrGenAIRequestModel.String(model),
		attrDeployment.String(deployment),
	))
	t.prop.Inject(ctx, propagation.HeaderCarrier(header))
	return ctx, func(outcome string, failed bool) {
		span.SetAttributes(attrAttemptOutcome.String(outcome))
		if failed {
			span.SetAttributes(attrErrorType.String(outcome))
			span.SetStatus(codes.Error, outcome)
		}
		span.End()
	}
}

// Inject writes the W3C traceparent (and tracestate) of ctx's span into h.
func (t *Tracer) Inject(ctx context.Context, h http.Header) {
	if !t.Enabled() {
		return
	}
	t.prop.Inject(ctx, propagation.HeaderCarrier(h))
}

// EndSpan records the request's outcome on span and ends it: status, cache
// outcome, tokens, and an error status for 5xx responses.
func (t *Tracer) EndSpan(span trace.Span, r *Record) {
	if !t.Enabled() {
		return
	}
	cache := r.Cache
	if cache == "" {
		cache = CacheBypass
	}
	sc := span.SpanContext()
	r.TraceID, r.SpanID = sc.TraceID(), sc.SpanID()
	span.SetAttributes(
		semconv.HTTPResponseStatusCode(r.Status),
		attribute.String("llm.cache", cache),
		attribute.String("llm.model", r.Model),
		attribute.String("llm.provider", r.Provider),
		attribute.Int("llm.usage.prompt_tokens", r.PromptTokens),
		attribute.Int("llm.usage.completion_tokens", r.CompletionTokens),
		attrGenAIOperation.String(genAIOperation(r.Endpoint)),
		attrGenAIResponseModel.String(r.Model),
		attrGenAIInputTokens.Int(r.PromptTokens),
		attrGenAIOutputTokens.Int(r.CompletionTokens),
	)
	if len(r.FinishReasons) > 0 {
		span.SetAttributes(attrGenAIFinish.StringSlice(r.FinishReasons))
	}
	// A 5xx, or a stream that failed after its 200 (the record keeps the
	// error code of its last event), is an error; a client's 4xx is not.
	if r.Status >= 500 || r.Status < 400 && r.ErrorCode != "" {
		span.SetAttributes(attrErrorType.String(cmp.Or(r.ErrorCode, strconv.Itoa(r.Status))))
		span.SetStatus(codes.Error, r.ErrorCode)
	}
	span.End()
	t.genai.record(r)
}
