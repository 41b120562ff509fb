package telemetry

import (
	"context"
	"encoding/hex"
	"math"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/edge-agent/edge-agent/internal/api"
)

// LogRequest writes r's "Request completed" line: the same fields, order
// and encoding as the package-level LogRequest through this logger's slog
// handler, in a fraction of the time.
//
// A batching logger (NewBufferedLogger) only queues a copy of r with the
// time: the line is formatted when the batch is written, off the request's
// path.
func (l *Logger) LogRequest(_ context.Context, r *Record) {
	if !l.info {
		return
	}
	now := time.Now()
	if l.out.enqueue(now, r) {
		return
	}
	bp := l.lines.Get().(*[]byte)
	b := appendRequestLine((*bp)[:0], l.json, now, r)
	_, _ = l.out.Write(b)
	if cap(b) <= 4<<10 { // do not pin a buffer grown by a huge request id
		*bp = b
		l.lines.Put(bp)
	}
}

// appendRequestLine appends r's line, logged at t, in JSON or text.
func appendRequestLine(dst []byte, json bool, t time.Time, r *Record) []byte {
	b := lineAppender{buf: dst, json: json}
	b.start(t)

	cache := r.Cache
	if cache == "" {
		cache = CacheBypass
	}
	overhead := r.Overhead()
	b.str("request_id", r.RequestID)
	b.str("model", r.Model)
	b.str("provider", r.Provider)
	b.str("cache", cache)
	b.int("status", int64(r.Status))
	b.bool("stream", r.Stream)
	b.int("total_latency_ms", roundMs(r.TotalLatency))
	b.int("total_latency_us", r.TotalLatency.Microseconds())
	b.int("provider_latency_ms", roundMs(r.ProviderLatency))
	b.int("provider_latency_us", r.ProviderLatency.Microseconds())
	b.int("overhead_ms", roundMs(overhead))
	b.int("overhead_us", overhead.Microseconds())
	b.int("prompt_tokens", int64(r.PromptTokens))
	b.int("completion_tokens", int64(r.CompletionTokens))
	if r.CostKnown {
		b.float("cost_usd", r.CostUSD)
	} else {
		b.null("cost_usd")
	}
	if r.CostEstimated {
		b.bool("cost_estimated", true)
	}
	if r.CachedTokens > 0 {
		b.int("cached_tokens", int64(r.CachedTokens))
	}
	if r.Stream && r.TTFT > 0 {
		b.int("ttft_ms", roundMs(r.TTFT))
		b.int("ttft_us", r.TTFT.Microseconds())
	}
	if r.SavedUSD > 0 {
		b.float("saved_usd", r.SavedUSD)
	}
	if r.ErrorCode != "" {
		b.str("error_code", r.ErrorCode)
	}
	if r.TraceID.IsValid() {
		b.hex("trace_id", r.TraceID[:])
		b.hex("span_id", r.SpanID[:])
	}
	b.end()
	return b.buf
}

// lineAppender encodes attributes exactly as slog's JSON and text handlers
// do for these kinds (strings, ints, bools, floats, null).
type lineAppender struct {
	buf  []byte
	json bool
}

func (b *lineAppender) start(t time.Time) {
	if b.json {
		b.buf = append(b.buf, `{"time":"`...)
		b.buf = t.AppendFormat(b.buf, time.RFC3339Nano)
		b.buf = append(b.buf, `","level":"INFO","msg":"`+RequestCompleted+`"`...)
		return
	}
	b.buf = append(b.buf, "time="...)
	b.buf = appendRFC3339Millis(b.buf, t)
	b.buf = append(b.buf, ` level=INFO msg="`+RequestCompleted+`"`...)
}

func (b *lineAppender) end() {
	if b.json {
		b.buf = append(b.buf, '}')
	}
	b.buf = append(b.buf, '\n')
}

func (b *lineAppender) key(k string) {
	if b.json {
		b.buf = append(b.buf, ',', '"')
		b.buf = append(b.buf, k...)
		b.buf = append(b.buf, '"', ':')
		return
	}
	b.buf = append(b.buf, ' ')
	b.buf = append(b.buf, k...)
	b.buf = append(b.buf, '=')
}

// hex writes v in lowercase hex, as the W3C trace context spells ids.
func (b *lineAppender) hex(k string, v []byte) {
	b.key(k)
	if b.json {
		b.buf = append(b.buf, '"')
	}
	b.buf = hex.AppendEncode(b.buf, v)
	if b.json {
		b.buf = append(b.buf, '"')
	}
}

func (b *lineAppender) str(k, v string) {
	if secretLooking(v) {
		v = Redacted
	}
	b.key(k)
	switch {
	case b.json:
		b.buf = append(b.buf, '"')
		b.buf = appendJSONEscaped(b.buf, v)
		b.buf = append(b.buf, '"')
	case needsQuoting(v):
		b.buf = strconv.AppendQuote(b.buf, v)
	default:
		b.buf = append(b.buf, v...)
	}
}

func (b *lineAppender) int(k string, v int64) {
	b.key(k)
	b.buf = strconv.AppendInt(b.buf, v, 10)
}

func (b *lineAppender) bool(k string, v bool) {
	b.key(k)
	b.buf = strconv.AppendBool(b.buf, v)
}

func (b *lineAppender) null(k string) {
	b.key(k)
	b.buf = append(b.buf, "null"...)
}

func (b *lineAppender) float(k string, f float64) {
	b.key(k)
	if !b.json {
		b.buf = strconv.AppendFloat(b.buf, f, 'g', -1, 64)
		return
	}
	if math.IsInf(f, 0) || math.IsNaN(f) {
		// encoding/json refuses these and slog logs the error text; a cost
		// is never one of them, so null is the honest value.
		b.buf = append(b.buf, "null"...)
		return
	}
	// encoding/json's float format, which slog's JSON handler uses.
	format, abs := byte('f'), math.Abs(f)
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b.buf = strconv.AppendFloat(b.buf, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		if n := len(b.buf); n >= 4 && b.buf[n-4] == 'e' && b.buf[n-3] == '-' && b.buf[n-2] == '0' {
			b.buf[n-2] = b.buf[n-1]
			b.buf = b.buf[:n-1]
		}
	}
}

// jsonSafe reports whether an ASCII byte needs no escaping in a JSON string.
func jsonSafe(c byte) bool { return c >= 0x20 && c != '"' && c != '\\' }

// appendJSONEscaped escapes s as slog's JSON handler does.
func appendJSONEscaped(buf []byte, s string) []byte { return api.AppendEscaped(buf, s) }

// needsQuoting mirrors slog's text handler: quote empty strings and
// anything with spaces, '=', quotes or unprintable runes.
func needsQuoting(s string) bool {
	if len(s) == 0 {
		return true
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c != '\\' && (c == ' ' || c == '=' || !jsonSafe(c)) {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
}

// appendRFC3339Millis is slog's text-handler time format.
func appendRFC3339Millis(b []byte, t time.Time) []byte {
	const prefixLen = len("2006-01-02T15:04:05.000")
	n := len(b)
	t = t.Truncate(time.Millisecond).Add(time.Millisecond / 10)
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b[:n+prefixLen], b[n+prefixLen+1:]...)
}
