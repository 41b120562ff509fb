// Package telemetry measures edge-agent: Prometheus metrics, the one-line
// request log, OpenTelemetry traces and the in-process stats behind
// /admin/stats, all fed from one Record per finished request.
package telemetry

import (
	"github.com/edge-agent/edge-agent/internal/provider"

	"context"
	"go.opentelemetry.io/otel/trace"
	"time"
)

// Cache outcomes of a request, as Record.Cache and the log's cache field.
const (
	CacheL1     = "l1"     // served from the in-process tier
	CacheL2     = "l2"     // served from Redis
	CacheMiss   = "miss"   // looked up, not found, sent to a provider
	CacheBypass = "bypass" // not looked up (no-cache, uncacheable request, cache off)
	// CacheCoalesced: a miss that waited for an identical request's answer
	// instead of calling the provider. It is neither a hit (its latency is
	// the provider's) nor a miss (it cost nothing).
	CacheCoalesced = "coalesced"
)

// Record describes one finished request. The gateway fills it once, when the
// response is complete, and hands the same value to metrics, stats and the
// log so the three always agree.
type Record struct {
	RequestID string
	Provider  string // provider name from config; "" when no provider was involved
	Model     string // model as priced: the upstream model id
	Stream    bool
	Endpoint  provider.Surface // the API surface served (in Stream's padding)
	Cache     string           // CacheL1, CacheL2, CacheCoalesced, CacheMiss or CacheBypass; "" counts as bypass
	Status    int              // HTTP status sent to the client

	TotalLatency    time.Duration // arrival to last byte written
	ProviderLatency time.Duration // time spent waiting on the provider; 0 when none was called
	TTFT            time.Duration // streams: arrival to first content chunk; 0 when not a stream

	PromptTokens     int
	CompletionTokens int
	CachedTokens     int // provider prompt-cache reads, included in PromptTokens
	CacheWriteTokens int // provider prompt-cache writes, included in PromptTokens

	CostUSD       float64 // what the provider charges for this request
	CostKnown     bool    // false: model has no price; cost_usd is logged as null
	CostEstimated bool    // tokens were estimated because the provider sent no usage
	SavedUSD      float64 // cache hits: what the provider would have charged

	ErrorCode string // the OpenAI envelope's error code or type when Status >= 400

	// FinishReasons are the answer's, a choice each, in chat's terms
	// (stop, length, tool_calls, ...); nil when no whole answer was seen.
	FinishReasons []string

	// TraceID and SpanID are the request span's, set by Tracer.EndSpan
	// when tracing is on, so the log line can be joined to its trace.
	TraceID trace.TraceID
	SpanID  trace.SpanID
}

// Hit reports whether a cache tier served the request.
func (r *Record) Hit() bool { return r.Cache == CacheL1 || r.Cache == CacheL2 }

// Replayed reports whether the answer was a stored one, from a cache tier or
// a coalesced leader: no provider billed this request.
func (r *Record) Replayed() bool { return r.Hit() || r.Cache == CacheCoalesced }

// Overhead is the time the gateway itself added: total minus provider time.
func (r *Record) Overhead() time.Duration {
	return max(r.TotalLatency-r.ProviderLatency, 0)
}

// statusClass buckets an HTTP status into "1xx".."5xx" so metric labels stay
// bounded; anything else (0 for a client that went away first) is "other".
func statusClass(status int) string {
	switch status / 100 {
	case 1:
		return "1xx"
	case 2:
		return "2xx"
	case 3:
		return "3xx"
	case 4:
		return "4xx"
	case 5:
		return "5xx"
	}
	return "other"
}

// Observer fans one Record out to metrics, stats and the request log. Nil
// fields are skipped, so a test can observe through a partial Observer.
type Observer struct {
	Metrics *Metrics
	Stats   *Stats
	Logger  *Logger
}

// Observe records r everywhere. Call it exactly once per request.
func (o *Observer) Observe(ctx context.Context, r *Record) {
	if o.Metrics != nil {
		o.Metrics.ObserveRequest(r)
	}
	if o.Stats != nil {
		o.Stats.Observe(r)
	}
	if o.Logger != nil {
		o.Logger.LogRequest(ctx, r)
	}
}

// ms converts a duration to float milliseconds, the unit of every latency
// metric (the guide's names end in _ms).
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
