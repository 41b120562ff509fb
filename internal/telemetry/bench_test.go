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

// BenchmarkObserverAll is the whole per-request cost on the request's
// path: metrics, stats and the JSON log line, formatted at once to a
// discarding writer ("log-each") or queued for the batch (the default,
// "log-batched"; the batch's formatting every 1000 requests is not timed:
// see BenchmarkLogRequestToFile for the whole cost).
func BenchmarkObserverAll(b *testing.B) {
	for _, c := range []struct {
		name  string
		every time.Duration
	}{{"log-each", 0}, {"log-batched", time.Hour}} {
		b.Run(c.name, func(b *testing.B) {
			logger, _ := NewBufferedLogger(io.Discard, "json", "info", c.every)
			defer logger.Close()
			o := &Observer{Metrics: newTestMetrics(b), Stats: NewStats(), Logger: logger}
			r, ctx := benchRecord(), context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				o.Observe(ctx, r)
				if i++; c.every > 0 && i%1000 == 0 {
					b.StopTimer()
					_ = logger.Flush()
					b.StartTimer()
				}
			}
		})
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
// file (/dev/null, so the disk is not measured).
//
//   - each: formatted and written by the request, one write system call
//     per line (LOG_FLUSH_INTERVAL=0);
//   - batched: the default; the request queues its record, and a flush
//     every 1024 lines formats and writes them: the whole cost per line;
//   - batched-request-path: the same, timing only what the request does.
func BenchmarkLogRequestToFile(b *testing.B) {
	for _, c := range []struct {
		name        string
		every       time.Duration
		requestOnly bool
	}{{"each", 0, false}, {"batched", time.Hour, false}, {"batched-request-path", time.Hour, true}} {
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
			i := 0
			for b.Loop() {
				logger.LogRequest(ctx, r)
				if i++; c.every > 0 && i%1000 == 0 {
					if c.requestOnly {
						b.StopTimer()
					}
					_ = logger.Flush()
					if c.requestOnly {
						b.StartTimer()
					}
				}
			}
		})
	}
}
