package telemetry

import (
	"context"
	"io"
	"os"
	"testing"
	"time"
)

func benchRecord() *Record {
	return &Record{
		RequestID: "01JD7YQ0D0M7W3ZP0X5N3R0K9V", Provider: "openai", Model: "gpt-4o-2024-08-06", Cache: CacheMiss,
		Status: 200, Stream: true, TotalLatency: 812 * time.Millisecond, ProviderLatency: 810 * time.Millisecond,
		TTFT: 120 * time.Millisecond, PromptTokens: 1200, CompletionTokens: 300, CostUSD: 0.006, CostKnown: true,
	}
}

func BenchmarkObserveRequest(b *testing.B) {
	m := newTestMetrics(b)
	r := benchRecord()
	b.ReportAllocs()
	for b.Loop() {
		m.ObserveRequest(r)
	}
}

func BenchmarkStatsObserve(b *testing.B) {
	s := NewStats()
	r := benchRecord()
	b.ReportAllocs()
	for b.Loop() {
		s.Observe(r)
	}
}

func BenchmarkLogRequest(b *testing.B) {
	for _, format := range []string{"json", "text"} {
		b.Run(format, func(b *testing.B) {
			logger, err := NewLogger(io.Discard, format, "info")
			if err != nil {
				b.Fatal(err)
			}
			r, ctx := benchRecord(), context.Background()
			b.ReportAllocs()
			for b.Loop() {
				logger.LogRequest(ctx, r)
			}
		})
	}
}

func BenchmarkLogRequestAboveInfo(b *testing.B) {
	logger, _ := NewLogger(io.Discard, "json", "warn")
	r, ctx := benchRecord(), context.Background()
	b.ReportAllocs()
	for b.Loop() {
		logger.LogRequest(ctx, r)
	}
}

// BenchmarkLogRequestViaSlog is the generic path through slog's handler.
func BenchmarkLogRequestViaSlog(b *testing.B) {
	logger, _ := NewLogger(io.Discard, "json", "info")
	r, ctx := benchRecord(), context.Background()
	b.ReportAllocs()
	for b.Loop() {
		LogRequest(ctx, logger.Logger, r)
	}
}

// BenchmarkObserverAll is the whole per-request cost: metrics, stats and a
// JSON log line to a discarding writer.
func BenchmarkObserverAll(b *testing.B) {
	logger, _ := NewLogger(io.Discard, "json", "info")
	o := &Observer{Metrics: newTestMetrics(b), Stats: NewStats(), Logger: logger}
	r, ctx := benchRecord(), context.Background()
	b.ReportAllocs()
	for b.Loop() {
		o.Observe(ctx, r)
	}
}

func BenchmarkObserveRequestParallel(b *testing.B) {
	m := newTestMetrics(b)
	r := benchRecord()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.ObserveRequest(r)
		}
	})
}

// BenchmarkLogRequestToFile is the log line with its real write path: a
// file (/dev/null, so the disk is not measured), one write system call per
// line ("each") against lines batched in memory ("batched", the default
// LOG_FLUSH_INTERVAL).
func BenchmarkLogRequestToFile(b *testing.B) {
	for _, c := range []struct {
		name  string
		every time.Duration
	}{{"each", 0}, {"batched", 100 * time.Millisecond}} {
		b.Run(c.name, func(b *testing.B) {
			f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			logger, err := NewBufferedLogger(f, "json", "info", c.every)
			if err != nil {
				b.Fatal(err)
			}
			defer logger.Close()
			r, ctx := benchRecord(), context.Background()
			b.ReportAllocs()
			for b.Loop() {
				logger.LogRequest(ctx, r)
			}
		})
	}
}
