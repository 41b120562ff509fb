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
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/cache"
	"github.com/edge-agent/edge-agent/internal/cost"
	"github.com/edge-agent/edge-agent/internal/provider"
	"github.com/edge-agent/edge-agent/internal/sse"
	"github.com/edge-agent/edge-agent/internal/surface"
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
	// keyOK's padding holds the flags, nv and attempts: with its malloc
	// header the exchange stays in the 576-byte size class.
	keyOK    bool
	native   bool  // the provider speaks the surface: the client's bytes go upstream
	detached bool  // the answer goes on in a goroutine of its own (detach)
	nv       uint8 // vals in use
	attempts int32
	s        surface.Surface
	req      surface.Request // nil until parsed
	stored   *cache.Entry    // the leader's cached answer, handed to followers
	tenant   tenant
	vals     [6]string // backing for one-value headers (at most 6 per answer), see set

	// What end releases.
	span trace.Span  // the request's span; nil: not traced
	held int64       // request-body bytes counted in the BodyBudget
	lead *cache.Call // set when this request leads a coalesced call
}

// tenant is what the exchange keeps of its Admission.
type tenant struct {
	principal, namespace string
	done                 func(tokens int, usd float64)
	hideKey              bool
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
	x.s.WriteError(x.w, e)
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
	if int(x.nv) == len(x.vals) {
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
	showKey := x.keyOK && !x.tenant.hideKey
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

// markHit records a cache hit from tier and sets its headers.
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
func (x *exchange) serveCoalesced(e *cache.Entry) {
	h := x.w.Header()
	x.rec.Cache = telemetry.CacheCoalesced
	h["X-Cache-Status"] = hdrHit
	h["X-Cache-Layer"] = hdrCoal
	x.serveStored(e)
}

// serveStored writes a stored answer, as JSON or as the surface's stream.
func (x *exchange) serveStored(e *cache.Entry) {
	x.rec.Provider = e.Provider
	x.rec.Status = http.StatusOK
	// What the miss cost, priced by token kind when it was stored; older
	// entries without a cost are priced from their token counts.
	if x.rec.SavedUSD = e.CostUSD; math.IsNaN(e.CostUSD) {
		x.rec.SavedUSD, _ = x.g.o.Prices.Cost(e.Model, cost.Usage{PromptTokens: e.PromptTokens, CompletionTokens: e.CompletionTokens})
	}
	x.rec.CostKnown = true // a hit costs nothing, and we know it
	if x.rec.Stream {
		x.replay(e.Body)
		return
	}
	x.writeJSON(e.Body, e.Provider, e.Model)
}

// replay writes a stored answer as the surface's events, in one burst.
func (x *exchange) replay(answer []byte) {
	buf := x.g.pool.Get().(*bytes.Buffer)
	defer x.g.putBuffer(buf)
	out, err := x.req.AppendReplay(buf.AvailableBuffer(), answer)
	if err != nil {
		// A stored answer that does not replay is a bug, not the client's
		// problem; it was validated when stored.
		x.fail(err)
		return
	}
	h := x.w.Header()
	sse.SetHeaders(h)
	x.setEdgeHeaders(h, -1, time.Now())
	x.w.WriteHeader(http.StatusOK)
	_, _ = x.w.Write(out)
	if f, ok := x.w.(http.Flusher); ok {
		f.Flush()
	}
	x.rec.TTFT = time.Since(x.start)
	x.record(answer, false)
}

// serveAnswer answers a non-streamed miss and stores it when cacheable.
func (x *exchange) serveAnswer(resp *provider.Response) {
	a, err := x.req.Answer(resp.Body, x.native)
	if err != nil {
		x.fail(err)
		return
	}
	if resp.Usage != nil && (!x.native || x.s.ID() == provider.SurfaceChat) {
		a.Usage, a.Estimated = *resp.Usage, false // the adapter's count by kind
	}
	model := a.Model
	if model == "" {
		model = x.rec.Model
	}
	x.price(model, a.Usage, a.Estimated)
	x.rec.Status, x.rec.FinishReasons = http.StatusOK, a.Finish
	if x.cacheable(a.Finish) {
		x.store(a.Body, a.Usage)
	}
	x.writeJSON(a.Body, x.rec.Provider, model)
}

// serveStream copies a streamed answer to the client event by event,
// flushing each, while the surface accumulates it for the cache.
func (x *exchange) serveStream(ps provider.Stream) {
	defer ps.Close()
	h := x.w.Header()
	sse.SetHeaders(h)
	// X-Edge-Overhead-Ms is the gateway's time up to here, the provider's
	// wait for its first byte left out (x.rec.ProviderLatency holds it).
	x.setEdgeHeaders(h, -1, time.Now())
	x.w.WriteHeader(http.StatusOK)
	x.rec.Status = http.StatusOK
	st := x.req.NewStream(x.native, x.g.o.MaxCaptureBytes)
	// Whatever ends the stream, what the provider produced is charged: its
	// usage when it reported it, an estimate from the text delivered when
	// not (the client left, the upstream cut, an error event).
	charged := false
	defer func() {
		if !charged {
			u, est := st.Partial()
			x.price(x.rec.Model, u, est)
		}
	}()
	flusher, _ := x.w.(http.Flusher)
	// out holds what is not written yet: events the provider had sent
	// while the gateway was busy are written together, with one flush,
	// when the stream can tell (provider.Buffered) that the next one is in
	// memory already; otherwise each is flushed as it comes. Its buffer
	// (ob, from a pool) is held only while there is something to write:
	// it goes back before each wait on the provider, so thousands of
	// streams waiting for their next chunk hold none.
	var (
		ob  *[]byte
		out []byte
	)
	take := func() {
		if ob == nil {
			ob = x.g.streamBufs.Get().(*[]byte)
			out = (*ob)[:0]
		}
	}
	defer func() {
		if ob != nil {
			*ob = out // out may have grown
			x.g.putStreamBuf(ob)
		}
	}()
	buffered, _ := ps.(provider.Buffered)
	first := true
	fail := func(err error) {
		e := x.stoppedBy(api.FromError(err))
		x.rec.Status, x.rec.ErrorCode = e.Status, e.Code
		if e.Status == 499 {
			return // the client is gone
		}
		// Events held back go first, then the error.
		if _, werr := x.w.Write(st.AppendError(out, e)); werr == nil && flusher != nil {
			flusher.Flush()
		}
	}
	for {
		// Time spent waiting on the provider is its latency; the rest of
		// the stream's time is the gateway's overhead, in the log and
		// metrics. Both ends of a wait are read as time since the start
		// (the monotonic clock alone, not time.Now's two clocks: this is
		// read twice per chunk).
		waitStart := time.Since(x.start)
		chunk, err := ps.Next()
		waitEnd := time.Since(x.start)
		x.rec.ProviderLatency += waitEnd - waitStart
		if err == io.EOF {
			break
		}
		if err != nil {
			fail(err)
			return
		}
		if first {
			x.rec.TTFT = waitEnd
			first = false
		}
		take()
		if out, err = st.Add(out, chunk); err != nil {
			fail(err)
			return
		}
		if len(out) == 0 || len(out) < maxPendingStream && buffered != nil && buffered.NextBuffered() {
			continue
		}
		if !x.send(out, flusher) {
			return
		}
		*ob = out
		x.g.putStreamBuf(ob)
		ob, out = nil, nil
	}
	take()
	_, records := x.req.(surface.Recorder)
	out, a, err := st.End(out, records || x.keyOK && !x.cc.noStore)
	if err != nil {
		fail(err)
		return
	}
	if !x.sendLast(out, flusher) {
		return
	}
	if a == nil {
		// Sent whole but not rebuilt (too large to hold, or malformed):
		// priced from what was seen (the deferred charge), not stored.
		if st.Overflowed() {
			x.g.o.Logger.LogAttrs(x.r.Context(), slog.LevelWarn, "stream answer not cached: larger than max_capture_bytes",
				slog.String("request_id", x.rec.RequestID), slog.Int("max_capture_bytes", x.g.o.MaxCaptureBytes))
		}
		return
	}
	if ur, ok := ps.(provider.UsageReporter); ok && (!x.native || x.s.ID() == provider.SurfaceChat) {
		if ku, ok := ur.Usage(); ok {
			a.Usage, a.Estimated = ku, false // the adapter's count by kind
		}
	}
	charged = true
	x.rec.FinishReasons = a.Finish
	x.price(x.rec.Model, a.Usage, a.Estimated)
	if x.cacheable(a.Finish) {
		x.store(a.Body, a.Usage)
	}
	x.record(a.Body, true)
}

// streamBufSize is the start size of a stream's output buffer: one event
// and its framing, or a few (serveStream). A stream takes one for each
// event it writes, from a pool of its own, not the body buffers', which
// may have grown to a large answer.
const streamBufSize = 2 << 10

func (g *Gateway) putStreamBuf(b *[]byte) {
	if cap(*b) > 4*maxPendingStream {
		return
	}
	*b = (*b)[:0]
	g.streamBufs.Put(b)
}

// maxPendingStream bounds the events of a stream held back to be written
// with the next ones (serveStream).
const maxPendingStream = 16 << 10

// send writes and flushes one piece of a stream; false when the client is
// gone.
func (x *exchange) send(b []byte, f http.Flusher) bool {
	if _, err := x.w.Write(b); err != nil {
		x.rec.Status, x.rec.ErrorCode = 499, "client_closed_request"
		return false
	}
	if f != nil {
		f.Flush()
	}
	return true
}

// sendLast writes a stream's last bytes and, when the writer can
// (detach.Response), the end of its body in the same write: the client
// has its whole answer before the cache and the price are done, with one
// system call less than a flush and the end at Close.
func (x *exchange) sendLast(b []byte, f http.Flusher) bool {
	e, ok := x.w.(bodyEnder)
	if !ok {
		return x.send(b, f)
	}
	if _, err := x.w.Write(b); err != nil || e.EndBody() != nil {
		x.rec.Status, x.rec.ErrorCode = 499, "client_closed_request"
		return false
	}
	return true
}

// bodyEnder is a ResponseWriter that can end the body before the handler
// returns (detach.Response).
type bodyEnder interface{ EndBody() error }

// record hands an answer the client received whole to a surface that keeps
// its answers (the Responses API's store).
func (x *exchange) record(answer []byte, fresh bool) {
	rc, ok := x.req.(surface.Recorder)
	if !ok {
		return
	}
	if err := rc.Record(x.r.Context(), x.scope(), answer, fresh); err != nil {
		x.g.o.Logger.LogAttrs(x.r.Context(), slog.LevelWarn, "answer not kept",
			slog.String("request_id", x.rec.RequestID), slog.String("error", err.Error()))
	}
}

// scope is who the caller is, for surfaces that keep state.
func (x *exchange) scope() surface.Scope {
	return surface.Scope{Principal: x.tenant.principal, Namespace: x.tenant.namespace}
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
	e := &cache.Entry{Body: body, Provider: x.rec.Provider, Model: x.rec.Model, StoredAt: time.Now(),
		PromptTokens: u.InputTokens(), CompletionTokens: u.CompletionTokens, CostUSD: math.NaN()}
	if x.rec.CostKnown {
		e.CostUSD = x.rec.CostUSD
	}
	x.g.o.Cache.Set(x.key, e, x.cc.ttl)
	x.stored = e
}

// writeJSON writes a non-streamed answer, with the gateway's metadata
// where the surface carries it.
func (x *exchange) writeJSON(body []byte, providerName, model string) {
	buf := x.g.pool.Get().(*bytes.Buffer)
	defer x.g.putBuffer(buf)
	// One clock read for latency_ms and X-Edge-Overhead-Ms, taken before
	// the answer is assembled: both leave out that last step (well under a
	// microsecond), and they agree with each other.
	now := time.Now()
	m := surface.Meta{Provider: providerName, Model: model, RequestID: x.rec.RequestID, Elapsed: now.Sub(x.start),
		ProviderLatency: x.rec.ProviderLatency, CostUSD: x.rec.CostUSD, SavedUSD: x.rec.SavedUSD,
		CostKnown: x.rec.CostKnown, CostEstimated: x.rec.CostEstimated, Attempts: int(x.attempts)}
	if x.rec.Cache != telemetry.CacheMiss && x.rec.Cache != telemetry.CacheBypass {
		m.Tier = x.rec.Cache
	}
	out := x.req.AppendJSON(buf.AvailableBuffer(), body, m)
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
	x.record(body, m.Tier == "")
}

// autoContentLengthMax is the body size from which net/http would switch to
// chunked encoding unless Content-Length is set.
const autoContentLengthMax = 2048

// end releases what the exchange holds, in the reverse order of taking it,
// and records it (finish).
func (x *exchange) end() {
	if x.lead != nil {
		x.lead.Finish(x.stored)
	}
	x.g.o.BodyBudget.release(x.held)
	if x.span != nil {
		x.g.o.Tracer.EndSpan(x.span, &x.rec)
	}
	if m := x.g.metrics(); m != nil {
		m.InflightDec() // serve counted it
	}
	x.finish()
}

// finish records the request once: metrics, stats, the log line, and the
// guard's accounting.
func (x *exchange) finish() {
	x.rec.TotalLatency = time.Since(x.start)
	if x.tenant.done != nil {
		spent := 0.0
		if x.rec.Cache == telemetry.CacheMiss || x.rec.Cache == telemetry.CacheBypass {
			spent = x.rec.CostUSD
		}
		x.tenant.done(x.rec.PromptTokens+x.rec.CompletionTokens, spent)
	}
	if o := x.g.o.Observer; o != nil {
		o.Observe(x.r.Context(), &x.rec)
	}
}
