package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/cache"
	"github.com/edge-agent/edge-agent/internal/cost"
	"github.com/edge-agent/edge-agent/internal/provider"
	"github.com/edge-agent/edge-agent/internal/sse"
	"github.com/edge-agent/edge-agent/internal/surface/messages"
	"github.com/edge-agent/edge-agent/internal/telemetry"
)

// exchange is the state of one request as it moves down the pipeline.
type exchange struct {
	g         *Gateway
	w         http.ResponseWriter
	r         *http.Request
	start     time.Time
	provStart time.Time
	rec       telemetry.Record
	cc        cacheControl
	key       cache.Key
	keyOK     bool
	surface   provider.Surface // chat (zero) or messages: which envelope errors use; in keyOK's padding
	stored    *cache.Entry     // the leader's cached answer, handed to followers
	attempts  int
	admission Admission
	vals      [8]string // backing for one-value headers, see set
	nv        int
}

// fail answers with the error envelope, unless the answer has started.
func (x *exchange) fail(err error) {
	e := x.stoppedBy(api.FromError(err))
	x.rec.Status, x.rec.ErrorCode = e.Status, e.Code
	if m := x.g.metrics(); e.UpstreamStatus != 0 && m != nil {
		m.UpstreamError(x.rec.Provider, strconv.Itoa(e.UpstreamStatus))
	}
	h := x.w.Header()
	if h["X-Cache-Status"] == nil {
		// Refused before the cache was asked (bad input, unknown model,
		// auth, limits): a bypass, as the metrics and the log call it.
		if x.rec.Cache == telemetry.CacheMiss {
			h["X-Cache-Status"] = hdrMiss
		} else {
			h["X-Cache-Status"] = hdrBypass
		}
	}
	x.setEdgeHeaders(h, -1, time.Now())
	if e.Status == 499 {
		return // nobody is listening
	}
	if x.surface == provider.SurfaceMessages {
		messages.WriteError(x.w, e)
		return
	}
	api.WriteError(x.w, e)
}

// stoppedBy turns e, when it says the request's context was cancelled, into
// the reason the server gave when it was the server that cancelled it (see
// api.ShuttingDown); a client that left stays a 499.
func (x *exchange) stoppedBy(e *api.Error) *api.Error {
	if e.Status != 499 {
		return e
	}
	var se *api.Error
	if errors.As(context.Cause(x.r.Context()), &se) {
		return se
	}
	return e
}

// set sets a one-value header whose []string lives in the exchange, so
// headers cost no allocation of their own.
func (x *exchange) set(h http.Header, name, v string) {
	if x.nv == len(x.vals) {
		h[name] = []string{v}
		return
	}
	x.vals[x.nv] = v
	h[name] = x.vals[x.nv : x.nv+1 : x.nv+1]
	x.nv++
}

// setEdgeHeaders sets the headers known only when the answer is written:
// X-Cache-Key, X-Edge-Provider, X-Edge-Attempts, X-Edge-Overhead-Ms and,
// when contentLength >= 0, Content-Length. Their values are cut from one
// string: one allocation for all of them.
func (x *exchange) setEdgeHeaders(h http.Header, contentLength int, now time.Time) {
	over := now.Sub(x.start)
	if !x.provStart.IsZero() {
		over = x.provStart.Sub(x.start) + max(0, now.Sub(x.provStart)-x.rec.ProviderLatency)
	}
	var buf [96]byte
	b := buf[:0]
	showKey := x.keyOK && !x.admission.HideCacheKey
	if showKey {
		b = x.key.AppendHex(b)
	}
	keyEnd := len(b)
	b = api.AppendMillis(b, over)
	overEnd := len(b)
	if contentLength >= 0 {
		b = strconv.AppendInt(b, int64(contentLength), 10)
	}
	clEnd := len(b)
	if x.attempts > 1 {
		b = strconv.AppendInt(b, int64(x.attempts), 10)
	}
	s := string(b)
	if showKey {
		x.set(h, "X-Cache-Key", s[:keyEnd])
	}
	x.set(h, "X-Edge-Overhead-Ms", s[keyEnd:overEnd])
	if contentLength >= 0 {
		x.set(h, "Content-Length", s[overEnd:clEnd])
	}
	if x.attempts > 1 {
		x.set(h, "X-Edge-Attempts", s[clEnd:])
	}
	if x.rec.Provider != "" {
		x.set(h, "X-Edge-Provider", x.rec.Provider)
	}
}

// serveHit answers from a cached entry, as JSON or as a replayed stream.
func (x *exchange) serveHit(req *api.ChatRequest, e *cache.Entry, tier cache.Tier) {
	x.markHit(tier)
	x.serveStored(req, e)
}

// markHit records a cache hit from tier and sets its headers, on every
// surface.
func (x *exchange) markHit(tier cache.Tier) {
	h := x.w.Header()
	x.rec.Cache = tier.String()
	h["X-Cache-Status"] = hdrHit
	if tier == cache.TierL2 {
		h["X-Cache-Layer"] = hdrL2
	} else {
		h["X-Cache-Layer"] = hdrL1
	}
}

// serveCoalesced answers a miss with the answer of the identical request it
// waited for. It is a HIT to the client (no provider call of its own) with
// its own layer, and its own outcome in metrics: its latency is the
// provider's, so it must not count as a hit there.
func (x *exchange) serveCoalesced(req *api.ChatRequest, e *cache.Entry) {
	h := x.w.Header()
	x.rec.Cache = telemetry.CacheCoalesced
	h["X-Cache-Status"] = hdrHit
	h["X-Cache-Layer"] = hdrCoal
	x.serveStored(req, e)
}

// serveStored writes a stored answer, as JSON or as a replayed stream.
func (x *exchange) serveStored(req *api.ChatRequest, e *cache.Entry) {
	x.rec.Provider = e.Provider
	x.rec.Status = http.StatusOK
	// What the miss cost, priced by token kind when it was stored; older
	// entries without a cost are priced from their token counts.
	if x.rec.SavedUSD = e.CostUSD; math.IsNaN(e.CostUSD) {
		x.rec.SavedUSD, _ = x.g.o.Prices.Cost(e.Model, cost.Usage{PromptTokens: e.PromptTokens, CompletionTokens: e.CompletionTokens})
	}
	x.rec.CostKnown = true // a hit costs nothing, and we know it
	if req.Stream {
		x.replay(req, e.Body)
		return
	}
	x.writeJSON(e.Body, e.Provider, e.Model)
}

// replay writes a cached answer as one burst of SSE events.
func (x *exchange) replay(req *api.ChatRequest, completion []byte) {
	chunks, err := api.StreamChunks(completion, req.IncludeUsage)
	if err != nil {
		// A stored answer that does not parse is a bug, not the client's
		// problem; it was validated when stored.
		x.fail(err)
		return
	}
	sse.SetHeaders(x.w.Header())
	x.setEdgeHeaders(x.w.Header(), -1, time.Now())
	x.w.WriteHeader(http.StatusOK)
	sw := sse.NewWriter(x.w)
	for _, c := range chunks {
		if sw.Data(c) != nil {
			return
		}
	}
	_ = sw.Data(sse.Done)
	_ = sw.Flush()
	x.rec.TTFT = time.Since(x.start)
}

// serveJSON answers a non-streaming miss and stores it when cacheable.
// ku is the adapter's usage by kind, when it has one.
func (x *exchange) serveJSON(req *api.ChatRequest, body []byte, ku *cost.Usage) {
	body = withoutMetadata(body) // ours is the only metadata, stored or sent
	a := readAnswer(body)
	if ku != nil {
		a.usage = *ku
	}
	model := a.model
	if model == "" {
		model = x.rec.Model
	}
	x.price(model, a.usage, false)
	x.rec.Status = http.StatusOK
	if x.cacheable(a.finish) {
		x.store(body, a.usage)
	}
	x.writeJSON(body, x.answeredBy(), model)
}

func (x *exchange) answeredBy() string { return x.rec.Provider }

// serveStream copies a streamed answer to the client chunk by chunk,
// flushing each, while capturing it for the cache.
func (x *exchange) serveStream(req *api.ChatRequest, s provider.Stream) {
	defer s.Close()
	h := x.w.Header()
	sse.SetHeaders(h)
	// X-Edge-Overhead-Ms is the gateway's time up to here, the provider's
	// wait for its first byte left out (x.rec.ProviderLatency holds it).
	x.setEdgeHeaders(h, -1, time.Now())
	x.w.WriteHeader(http.StatusOK)
	x.rec.Status = http.StatusOK
	sw := sse.NewWriter(x.w)
	var acc api.Accumulator
	acc.SetLimit(x.g.o.MaxCaptureBytes)
	first := true
	for {
		// Time spent waiting on the provider is its latency; the rest of
		// the stream's time is the gateway's overhead, in the log and
		// metrics.
		waitStart := time.Now()
		chunk, err := s.Next()
		x.rec.ProviderLatency += time.Since(waitStart)
		if err == io.EOF {
			break
		}
		if err != nil {
			e := x.stoppedBy(api.FromError(err))
			x.rec.Status, x.rec.ErrorCode = e.Status, e.Code
			if e.Status != 499 {
				// OpenAI's own way to report a failure inside a stream; the
				// SDKs raise it. No [DONE]: the answer is not complete.
				_ = sw.Data(e.AppendEnvelope(nil))
				_ = sw.Flush()
			}
			return
		}
		if first {
			x.rec.TTFT = time.Since(x.start)
			first = false
		}
		if err := acc.Add(chunk); err != nil {
			x.rec.Status, x.rec.ErrorCode = http.StatusBadGateway, "upstream_invalid_chunk"
			_ = sw.Data((&api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_invalid_chunk",
				Message: "provider sent a stream chunk that is not JSON"}).AppendEnvelope(nil))
			_ = sw.Flush()
			return
		}
		if !req.IncludeUsage && isUsageOnly(chunk) {
			continue // we asked for it to price the answer; the client did not
		}
		if sw.Data(chunk) != nil || sw.Flush() != nil {
			x.rec.Status, x.rec.ErrorCode = 499, "client_closed_request"
			return
		}
	}
	if sw.Data(sse.Done) != nil || sw.Flush() != nil {
		x.rec.Status, x.rec.ErrorCode = 499, "client_closed_request"
		return
	}
	var u cost.Usage
	estimated := false
	if au := acc.Usage(); au != nil {
		u = cost.Usage{PromptTokens: au.PromptTokens, CompletionTokens: au.CompletionTokens}
		if au.PromptTokensDetails != nil {
			u.CachedTokens = au.PromptTokensDetails.CachedTokens
		}
		if ur, ok := s.(provider.UsageReporter); ok {
			if ku, ok := ur.Usage(); ok {
				u = ku
			}
		}
	} else {
		// The upstream reported no usage; estimate, and say so.
		estimated = true
		u = cost.Usage{PromptTokens: cost.EstimateTokens(req.Body)}
		if acc.Overflowed() {
			u.CompletionTokens = (acc.TextBytes() + 3) / 4 // as cost.EstimateTokens, from the count kept
		} else if b, err := acc.CompletionJSON(); err == nil {
			u.CompletionTokens = cost.EstimateTokens(b)
		}
	}
	model := x.rec.Model
	x.price(model, u, estimated)
	if acc.Overflowed() {
		// Sent whole, priced, but too large to hold: not cached.
		x.g.o.Logger.LogAttrs(x.r.Context(), slog.LevelWarn, "stream answer not cached: larger than max_capture_bytes",
			slog.String("request_id", x.rec.RequestID), slog.Int("max_capture_bytes", x.g.o.MaxCaptureBytes),
			slog.Int("text_bytes", acc.TextBytes()))
		return
	}
	if acc.Complete() && x.cacheable(acc.FinishReasons()) && !estimated {
		if b, err := acc.CompletionJSON(); err == nil {
			x.store(b, u)
		}
	}
}

// price fills the record's tokens and cost.
func (x *exchange) price(model string, u cost.Usage, estimated bool) {
	// Every prompt token the model read, whatever its price, as the chat
	// usage reports it; the kinds go to the record for metrics.
	x.rec.PromptTokens, x.rec.CompletionTokens = u.InputTokens(), u.CompletionTokens
	x.rec.CachedTokens = u.CachedTokens + u.CacheReadTokens
	x.rec.CacheWriteTokens = u.CacheWrite5mTokens + u.CacheWrite1hTokens
	x.rec.CostUSD, x.rec.CostKnown = x.g.o.Prices.Cost(model, u)
	x.rec.CostEstimated = estimated && x.rec.CostKnown
}

// cacheable decides whether this answer may be stored.
func (x *exchange) cacheable(finish []string) bool {
	if !x.keyOK || x.cc.noStore || len(finish) == 0 {
		return false
	}
	for _, f := range finish {
		if !cache.Cacheable(f) {
			return false
		}
	}
	return true
}

// store puts a complete answer in the cache (L1 now, L2 in the background)
// and keeps it for coalesced followers.
func (x *exchange) store(body []byte, u cost.Usage) {
	e := &cache.Entry{Body: body, Provider: x.answeredBy(), Model: x.rec.Model, StoredAt: time.Now(),
		PromptTokens: u.InputTokens(), CompletionTokens: u.CompletionTokens, CostUSD: math.NaN()}
	if x.rec.CostKnown {
		e.CostUSD = x.rec.CostUSD
	}
	x.g.o.Cache.Set(x.key, e, x.cc.ttl)
	x.stored = e
}

// writeJSON writes a chat.completion with the gateway's metadata object.
func (x *exchange) writeJSON(body []byte, providerName, model string) {
	buf := x.g.pool.Get().(*bytes.Buffer)
	defer x.g.putBuffer(buf)
	// One clock read for latency_ms and X-Edge-Overhead-Ms, taken before
	// the answer is assembled: both leave out that last step (well under a
	// microsecond), and they agree with each other.
	now := time.Now()
	out := appendWithMetadata(buf.AvailableBuffer(), body, x, providerName, model, now.Sub(x.start))
	h := x.w.Header()
	h["Content-Type"] = hdrJSON
	// net/http sets Content-Length itself for a body that fits its
	// 2 KiB response buffer (net/http's bufferBeforeChunkingSize) and is
	// written in one go: one header less in the map (a ninth one makes Go
	// grow the map to a table, in the handler's map and in net/http's copy
	// of it). A larger body gets it from us, so it is never chunked.
	cl := -1
	if len(out) >= autoContentLengthMax {
		cl = len(out)
	}
	x.setEdgeHeaders(h, cl, now)
	x.w.WriteHeader(http.StatusOK)
	_, _ = x.w.Write(out)
}

// autoContentLengthMax is the body size from which net/http would switch to
// chunked encoding unless Content-Length is set.
const autoContentLengthMax = 2048

// appendWithMetadata appends body with a "metadata" member added before
// its closing brace. body has no metadata of its own: provider answers are
// cleaned by serveJSON (OpenAI echoes stored metadata), and cached ones were
// cleaned before they were stored.
func appendWithMetadata(dst, body []byte, x *exchange, providerName, model string, elapsed time.Duration) []byte {
	body = bytes.TrimRight(body, " \t\r\n")
	if len(body) < 2 || body[len(body)-1] != '}' {
		return append(dst, body...)
	}
	dst = append(dst, body[:len(body)-1]...)
	if len(bytes.TrimSpace(body[1:len(body)-1])) > 0 {
		dst = append(dst, ',')
	}
	// Every value is a string, as OpenAI's schema declares metadata (a map
	// of strings to strings); a value we do not have is left out, not null.
	cached := x.rec.Cache != telemetry.CacheMiss && x.rec.Cache != telemetry.CacheBypass
	dst = append(dst, `"metadata":{"provider":`...)
	dst = api.AppendString(dst, providerName)
	dst = append(dst, `,"model":`...)
	dst = api.AppendString(dst, model)
	if cached {
		dst = append(dst, `,"cached":"true","cache_tier":"`...)
		dst = append(dst, x.rec.Cache...)
		dst = append(dst, `","latency_ms":"`...)
		dst = api.AppendMillis(dst, elapsed)
		dst = append(dst, `","cost_usd":"0","saved_cost_usd":"`...)
		dst = api.AppendFloat(dst, x.rec.SavedUSD, 8)
		dst = append(dst, '"')
	} else {
		dst = append(dst, `,"cached":"false","latency_ms":"`...)
		dst = api.AppendMillis(dst, elapsed)
		dst = append(dst, `","provider_latency_ms":"`...)
		dst = api.AppendMillis(dst, x.rec.ProviderLatency)
		dst = append(dst, '"')
		if x.rec.CostKnown {
			dst = append(dst, `,"cost_usd":"`...)
			dst = api.AppendFloat(dst, x.rec.CostUSD, 8)
			dst = append(dst, '"')
			if x.rec.CostEstimated {
				dst = append(dst, `,"cost_estimated":"true"`...)
			}
		}
	}
	if x.attempts > 1 {
		dst = append(dst, `,"attempts":"`...)
		dst = strconv.AppendInt(dst, int64(x.attempts), 10)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"request_id":`...)
	dst = api.AppendString(dst, x.rec.RequestID)
	return append(dst, "}}\n"...)
}

// withoutMetadata removes a "metadata" member from an answer, so ours is
// the only one.
func withoutMetadata(body []byte) []byte {
	if !bytes.Contains(body, []byte(`"metadata"`)) || !gjson.GetBytes(body, "metadata").Exists() {
		return body
	}
	if b, err := sjson.DeleteBytes(bytes.Clone(body), "metadata"); err == nil {
		return b
	}
	return body
}

// finish records the request once: metrics, stats, the log line, and the
// guard's accounting.
func (x *exchange) finish() {
	x.rec.TotalLatency = time.Since(x.start)
	if x.admission.Done != nil {
		spent := 0.0
		if x.rec.Cache == telemetry.CacheMiss || x.rec.Cache == telemetry.CacheBypass {
			spent = x.rec.CostUSD
		}
		x.admission.Done(x.rec.PromptTokens+x.rec.CompletionTokens, spent)
	}
	if o := x.g.o.Observer; o != nil {
		o.Observe(x.r.Context(), &x.rec)
	}
}

// answer is what the gateway reads from a chat.completion.
type answer struct {
	model  string
	usage  cost.Usage
	finish []string // the finish_reason of each choice
}

// readAnswer reads model, usage and finish reasons in one pass over the
// answer's top-level members, instead of a scan from the start for each.
// The body is read in place (no copy); only model outlives the call, and
// it is copied.
func readAnswer(body []byte) answer {
	var a answer
	js := unsafe.String(unsafe.SliceData(body), len(body))
	gjson.Parse(js).ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "model":
			a.model = strings.Clone(v.String())
		case "usage":
			a.usage = cost.Usage{
				PromptTokens:     int(v.Get("prompt_tokens").Int()),
				CompletionTokens: int(v.Get("completion_tokens").Int()),
				CachedTokens:     int(v.Get("prompt_tokens_details.cached_tokens").Int()),
			}
		case "choices":
			v.ForEach(func(_, c gjson.Result) bool {
				a.finish = append(a.finish, c.Get("finish_reason").String())
				return true
			})
		}
		return true
	})
	return a
}

// isUsageOnly reports the extra usage chunk: no choices, a usage object.
func isUsageOnly(chunk []byte) bool {
	if !bytes.Contains(chunk, []byte(`"usage"`)) {
		return false
	}
	r := gjson.GetManyBytes(chunk, "choices.#", "usage")
	return r[0].Int() == 0 && r[1].IsObject()
}
