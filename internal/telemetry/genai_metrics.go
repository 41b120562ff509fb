package telemetry

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
)

// genAIMetrics are the GenAI semantic conventions' client metrics, exported
// over OTLP beside the Prometheus names.
type genAIMetrics struct {
	duration metric.Float64Histogram // gen_ai.client.operation.duration, s
	tokens   metric.Int64Histogram   // gen_ai.client.token.usage, {token}
}

// The conventions' advised bucket boundaries.
var (
	durationBuckets = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}
	tokenBuckets    = []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864}
)

func newGenAIMetrics(mp metric.MeterProvider) (*genAIMetrics, error) {
	m := mp.Meter(tracerName)
	d, err := m.Float64Histogram("gen_ai.client.operation.duration", metric.WithUnit("s"),
		metric.WithDescription("GenAI operation duration."), metric.WithExplicitBucketBoundaries(durationBuckets...))
	if err != nil {
		return nil, err
	}
	tk, err := m.Int64Histogram("gen_ai.client.token.usage", metric.WithUnit("{token}"),
		metric.WithDescription("Number of input and output tokens used."), metric.WithExplicitBucketBoundaries(tokenBuckets...))
	if err != nil {
		return nil, err
	}
	return &genAIMetrics{duration: d, tokens: tk}, nil
}

// record adds one provider call: its duration and, when the provider
// billed any, its tokens. Cache hits call no provider and are left out.
func (g *genAIMetrics) record(r *Record) {
	if g == nil || r.ProviderLatency <= 0 || r.Replayed() {
		return
	}
	attrs := []attribute.KeyValue{attrGenAIOperation.String(genAIOperation(r.Endpoint)), attrGenAIRequestModel.String(r.Model)}
	if p := providerOf(r.Provider); p != "" {
		attrs = append(attrs, attrGenAIProvider.String(p))
	}
	ctx := context.Background()
	if r.Status >= 500 || r.Status < 400 && r.ErrorCode != "" {
		g.duration.Record(ctx, r.ProviderLatency.Seconds(), metric.WithAttributes(append(attrs, attrErrorType.String(r.ErrorCode))...))
	} else {
		g.duration.Record(ctx, r.ProviderLatency.Seconds(), metric.WithAttributes(attrs...))
	}
	if r.PromptTokens > 0 {
		g.tokens.Record(ctx, int64(r.PromptTokens), metric.WithAttributes(append(attrs, attribute.String("gen_ai.token.type", "input"))...))
	}
	if r.CompletionTokens > 0 {
		g.tokens.Record(ctx, int64(r.CompletionTokens), metric.WithAttributes(append(attrs, attribute.String("gen_ai.token.type", "output"))...))
	}
}

// providerOf is the provider part of a "provider/model" route name or a
// deployment name as recorded; "" when it names none.
func providerOf(name string) string {
	if p, _, ok := strings.Cut(name, "/"); ok {
		return genAIProvider(p)
	}
	return genAIProvider(name)
}

// metricsEnabledByEnv: GenAI metrics go over OTLP with the traces unless
// OTEL_METRICS_EXPORTER=none.
func metricsEnabledByEnv() bool {
	return !strings.EqualFold(os.Getenv("OTEL_METRICS_EXPORTER"), "none")
}

// setupGenAIMetrics starts the OTLP/HTTP metric exporter (it reads the
// standard OTEL_EXPORTER_OTLP_* variables) with a periodic reader.
func setupGenAIMetrics(ctx context.Context, res *resource.Resource) (*genAIMetrics, func(context.Context) error, error) {
	exp, err := otlpmetrichttp.New(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("otlp metric exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)), sdkmetric.WithResource(res))
	g, err := newGenAIMetrics(mp)
	if err != nil {
		_ = mp.Shutdown(ctx)
		return nil, nil, err
	}
	return g, mp.Shutdown, nil
}

// ExportErrorHandler routes the OpenTelemetry SDK's errors (an exporter
// that cannot reach its collector, say) through the structured logger, as
// warnings, instead of the SDK's default plain-text line into the JSON log
// stream. main installs it with otel.SetErrorHandler.
func ExportErrorHandler(l *slog.Logger) otel.ErrorHandler {
	return otel.ErrorHandlerFunc(func(err error) {
		l.Warn("opentelemetry export failed", "error", err)
	})
}
