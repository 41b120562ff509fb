package telemetry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// RequestCompleted is the message of the one log line written per request;
// the guide's log extraction greps for it.
const RequestCompleted = "Request completed"

// Redacted replaces the value of an attribute that may carry a secret.
const Redacted = "[REDACTED]"

// ParseLevel maps LOG_LEVEL values (debug, info, warn, error; any case) to
// a slog level. Empty means info.
func ParseLevel(level string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(level)) {
	case "debug":
		return slog.LevelDebug, nil
	case "", "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log level %q: want debug, info, warn or error", level)
}

// Logger is the process logger. Its LogRequest writes the per-request
// line without going through slog's handler machinery, byte for byte what
// the slog handler would have written, because a generic handler costs
// microseconds per line and this one is on every request.
type Logger struct {
	*slog.Logger
	out   *logBuffer
	json  bool
	info  bool      // info lines are written: the level is fixed at construction
	lines sync.Pool // *[]byte line buffers
}

// NewLogger builds the process logger: format "json" (the default, one
// object per line) or "text" (key=value, for people and grep), at level.
// Attributes whose key suggests a secret are redacted (see RedactAttr).
// Every line is written to w at once; see NewBufferedLogger.
func NewLogger(w io.Writer, format, level string) (*Logger, error) {
	return NewBufferedLogger(w, format, level, 0)
}

// NewBufferedLogger is NewLogger with lines batched in memory and written
// at most flushEvery after they were logged (warnings and errors at once).
// Close writes what is left. flushEvery 0 writes every line at once.
func NewBufferedLogger(w io.Writer, format, level string, flushEvery time.Duration) (*Logger, error) {
	lvl, err := ParseLevel(level)
	if err != nil {
		return nil, err
	}
	json := true
	switch strings.ToLower(strings.TrimSpace(format)) {
	case "", "json":
	case "text":
		json = false
	default:
		return nil, fmt.Errorf("log format %q: want json or text", format)
	}
	l := &Logger{out: &logBuffer{w: w, json: json, flushEvery: flushEvery}, info: lvl <= slog.LevelInfo}
	l.lines.New = func() any { b := make([]byte, 0, 512); return &b }
	opts := &slog.HandlerOptions{Level: lvl, ReplaceAttr: RedactAttr}
	var h slog.Handler
	switch strings.ToLower(strings.TrimSpace(format)) {
	case "", "json":
		h, l.json = slog.NewJSONHandler(l.out, opts), true
	case "text":
		h = slog.NewTextHandler(l.out, opts)
	default:
		return nil, fmt.Errorf("log format %q: want json or text", format)
	}
	l.Logger = slog.New(flushingHandler{h, l.out})
	return l, nil
}

// Flush writes the lines held in memory (buffered loggers only).
func (l *Logger) Flush() error { return l.out.Flush() }

// Close flushes; later lines are written at once.
func (l *Logger) Close() error { return l.out.Close() }

// RedactAttr is a slog.HandlerOptions.ReplaceAttr that hides secrets: the
// value of any attribute whose key mentions a key, token, authorization,
// secret, password, cookie or credential (token counts such as
// prompt_tokens excepted), and any string value that looks like a bearer
// token or an "sk-" API key, whatever its key. It is a backstop: code should
// not log secrets in the first place.
func RedactAttr(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindGroup {
		return a
	}
	if sensitiveKey(a.Key) {
		return slog.String(a.Key, Redacted)
	}
	if a.Value.Kind() == slog.KindString && secretLooking(a.Value.String()) {
		return slog.String(a.Key, Redacted)
	}
	return a
}

// sensitiveKey scans key once, without allocating, for the words that name
// secrets, ignoring ASCII case.
func sensitiveKey(key string) bool {
	for i := 0; i < len(key); i++ {
		rest := key[i:]
		switch key[i] | 0x20 {
		case 'k':
			if hasPrefixFold(rest, "key") {
				return true
			}
		case 't':
			if hasPrefixFold(rest, "token") && !tokenCountKey(key) {
				return true
			}
		case 'a':
			if hasPrefixFold(rest, "authorization") {
				return true
			}
		case 's':
			if hasPrefixFold(rest, "secret") {
				return true
			}
		case 'p':
			if hasPrefixFold(rest, "password") {
				return true
			}
		case 'c':
			if hasPrefixFold(rest, "cookie") || hasPrefixFold(rest, "credential") {
				return true
			}
		}
	}
	return false
}

// tokenCountKey lists keys that count tokens rather than hold one.
func tokenCountKey(key string) bool {
	switch key {
	case "prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens",
		"reasoning_tokens", "max_tokens", "max_completion_tokens", "estimated_tokens",
		"input_tokens", "output_tokens":
		return true
	}
	return false
}

func hasPrefixFold(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if s[i]|0x20 != prefix[i] {
			return false
		}
	}
	return true
}

func secretLooking(v string) bool {
	return (len(v) > 7 && hasPrefixFold(v, "bearer ")) || (len(v) > 10 && strings.HasPrefix(v, "sk-"))
}

// nullValue logs as null in JSON and as the bare word null in text, so an
// unknown cost is distinguishable from a zero cost in both formats.
type nullValue struct{}

func (nullValue) MarshalJSON() ([]byte, error) { return []byte("null"), nil }
func (nullValue) MarshalText() ([]byte, error) { return []byte("null"), nil }

// LogRequest writes the request's one "Request completed" line at info
// through any slog logger; (*Logger).LogRequest is the fast equivalent.
// Latencies are integers in milliseconds (rounded, so the guide's
// `grep -oP 'total_latency_ms=\K\d+'` works on text logs) with _us fields
// carrying microsecond precision. cost_usd is null when the model has no
// price. It builds nothing when info is disabled.
func LogRequest(ctx context.Context, logger *slog.Logger, r *Record) {
	if !logger.Enabled(ctx, slog.LevelInfo) {
		return
	}
	cache := r.Cache
	if cache == "" {
		cache = CacheBypass
	}
	overhead := r.Overhead()
	var buf [22]slog.Attr
	a := append(buf[:0],
		slog.String("request_id", r.RequestID),
		slog.String("model", r.Model),
		slog.String("provider", r.Provider),
		slog.String("cache", cache),
		slog.Int("status", r.Status),
		slog.Bool("stream", r.Stream),
		slog.Int64("total_latency_ms", roundMs(r.TotalLatency)),
		slog.Int64("total_latency_us", r.TotalLatency.Microseconds()),
		slog.Int64("provider_latency_ms", roundMs(r.ProviderLatency)),
		slog.Int64("provider_latency_us", r.ProviderLatency.Microseconds()),
		slog.Int64("overhead_ms", roundMs(overhead)),
		slog.Int64("overhead_us", overhead.Microseconds()),
		slog.Int("prompt_tokens", r.PromptTokens),
		slog.Int("completion_tokens", r.CompletionTokens),
	)
	if r.CostKnown {
		a = append(a, slog.Float64("cost_usd", r.CostUSD))
	} else {
		a = append(a, slog.Any("cost_usd", nullValue{}))
	}
	if r.CostEstimated {
		a = append(a, slog.Bool("cost_estimated", true))
	}
	if r.CachedTokens > 0 {
		a = append(a, slog.Int("cached_tokens", r.CachedTokens))
	}
	if r.Stream && r.TTFT > 0 {
		a = append(a, slog.Int64("ttft_ms", roundMs(r.TTFT)), slog.Int64("ttft_us", r.TTFT.Microseconds()))
	}
	if r.SavedUSD > 0 {
		a = append(a, slog.Float64("saved_usd", r.SavedUSD))
	}
	if r.ErrorCode != "" {
		a = append(a, slog.String("error_code", r.ErrorCode))
	}
	logger.LogAttrs(ctx, slog.LevelInfo, RequestCompleted, a...)
}

// roundMs rounds to the nearest whole millisecond.
func roundMs(d time.Duration) int64 {
	return int64((d + time.Millisecond/2) / time.Millisecond)
}
