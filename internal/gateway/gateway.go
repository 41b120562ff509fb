// Package gateway is the request pipeline every API surface goes through:
// read -> parse (the surface) -> resolve -> admit -> key -> L1/L2 ->
// coalesce -> route -> provider -> stream capture -> store -> price ->
// record. What differs between surfaces lives in internal/surface.
package gateway

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/cache"
	"github.com/edge-agent/edge-agent/internal/cost"
	"github.com/edge-agent/edge-agent/internal/provider"
	"github.com/edge-agent/edge-agent/internal/route"
	"github.com/edge-agent/edge-agent/internal/stack"
	"github.com/edge-agent/edge-agent/internal/surface"
	"github.com/edge-agent/edge-agent/internal/surface/chat"
	"github.com/edge-agent/edge-agent/internal/telemetry"
)

// Router chooses where a model is served and makes the upstream call with
// retries and fallbacks. *route.Router implements it.
type Router interface {
	Resolve(model string) (route.Target, error)
	ChatCompletion(ctx context.Context, t route.Target, req *provider.Request, fallbacks []string) (*provider.Response, error)
}

// Options wire a Gateway. Only Router is required.
type Options struct {
	Router       Router
	Cache        *cache.Tiered // nil: caching off
	CoalesceWait time.Duration // how long identical misses wait for the leader
	Prices       *cost.Table
	Observer     *telemetry.Observer // metrics, stats and the request log
	Tracer       *telemetry.Tracer
	Logger       *slog.Logger
	MaxBodyBytes int64
	// BodyBudget bounds the request-body bytes held at once, across
	// requests (503 past it); nil: a budget of DefaultBodyMemory.
	BodyBudget *BodyBudget
	// BodyReadTimeout is how long a client may take to send a request
	// body (408 past it); 0: DefaultBodyReadTimeout. It is set per request
	// on the connection, apart from the write side: streams have no
	// write deadline.
	BodyReadTimeout time.Duration
	// MaxCaptureBytes bounds the text of a streamed answer the gateway
	// holds to cache it; a longer answer reaches the client whole and is
	// not cached. 0: DefaultMaxCaptureBytes.
	MaxCaptureBytes int
	Limits          api.Limits
	Guard           Guard // access control; nil: open
	// Hold is called when a stream is detached from its connection's
	// goroutine (internal/detach: the server's BaseContext carries a
	// Detacher), before the handler returns; the release it returns is
	// called once the stream has ended. Whatever counts a request as in
	// flight until its handler returns (a configuration generation) holds
	// on through it. nil: nothing to hold.
	Hold func() (release func())
}

// Guard is the access-control step: authentication happens in the server
// middleware; the gateway asks the guard, once the model and an estimate of
// tokens are known, whether the request may proceed, and reports what it
// cost afterwards.
type Guard interface {
	// Admit checks model permission, rate limits and budget. It may set
	// headers (x-ratelimit-*) on h. It returns the cache namespace for the
	// caller's key ("" for shared) and may rewrite the body (redaction).
	Admit(ctx context.Context, h http.Header, model string, body []byte, est Estimate) (Admission, error)
}

// Estimate is what a request may use, known before the call: for token
// rate limits and for the hold of a hard budget.
type Estimate struct {
	Model        string // the model it is priced at (the routed target's)
	PromptTokens int    // the prompt's estimate
	MaxTokens    int64  // the completion limit the client asked for; 0: none
	// NoCompletion: the request produces no tokens of its own
	// (embeddings), so nothing is held for an answer.
	NoCompletion bool
}

// Tokens is what token rate limits spend before the call: the prompt plus
// the completion limit asked for (256 without one; none for a request
// without a completion).
func (e Estimate) Tokens() int {
	if e.NoCompletion {
		return e.PromptTokens
	}
	if e.MaxTokens > 0 {
		return e.PromptTokens + int(min(e.MaxTokens, 1<<20))
	}
	return e.PromptTokens + 256
}

// Admission is what a Guard decided for one request.
type Admission struct {
	// Principal is the client key's stable name ("" on an open gateway).
	Principal string
	Namespace string
	Body      []byte // possibly redacted; nil: unchanged
	// MaxCacheTTL bounds the client's X-Cache-TTL and max-age (0: no bound).
	MaxCacheTTL time.Duration
	// NoCacheBypass ignores the client's no-cache and no-store.
	NoCacheBypass bool
	// HideCacheKey leaves X-Cache-Key out of the answer.
	HideCacheKey bool
	// Done reports the outcome: tokens actually used and the dollars spent.
	Done func(tokens int, usd float64)
}

// DefaultMaxCaptureBytes is Options.MaxCaptureBytes' default: 4 MiB of
// text, some hundred times a long answer.
const DefaultMaxCaptureBytes = 4 << 20

// Gateway serves every surface through one pipeline.
type Gateway struct {
	o    Options
	ids  *api.RequestIDs
	pool sync.Pool // *bytes.Buffer for request and response bodies
	// streamBufs: *[]byte, a stream's output buffer (serveStream)
	streamBufs sync.Pool
	group      cache.Group
}

// New returns a Gateway.
func New(o Options) *Gateway {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 10 << 20
	}
	if o.BodyReadTimeout <= 0 {
		o.BodyReadTimeout = DefaultBodyReadTimeout
	}
	if o.BodyBudget == nil {
		o.BodyBudget = NewBodyBudget(DefaultBodyMemory)
	}
	if o.MaxCaptureBytes <= 0 {
		o.MaxCaptureBytes = DefaultMaxCaptureBytes
	}
	if o.CoalesceWait <= 0 {
		o.CoalesceWait = 2 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Prices == nil {
		o.Prices = cost.Default()
	}
	g := &Gateway{o: o, ids: api.NewRequestIDs()}
	g.pool.New = func() any { return new(bytes.Buffer) }
	g.streamBufs.New = func() any { b := make([]byte, 0, streamBufSize); return &b }
	return g
}

// Shared header values: assigning these slices avoids an allocation per
// header per request. net/http never mutates them.
var (
	hdrHit    = []string{"HIT"}
	hdrMiss   = []string{"MISS"}
	hdrBypass = []string{"BYPASS"}
	hdrL1     = []string{"L1"}
	hdrL2     = []string{"L2"}
	hdrCoal   = []string{"COALESCED"}
	hdrJSON   = []string{"application/json"}
)

// ServeHTTP serves POST /v1/chat/completions.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	stack.Grow16K() // here: serve's own frame is 1.6 KiB
	g.serve(w, r, chat.Surface{})
}

// Handler serves surface s through the pipeline.
func (g *Gateway) Handler(s surface.Surface) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stack.Grow16K()
		g.serve(w, r, s)
	})
}

// serve is the whole request path, top to bottom, for every surface: the
// surface parses, keys, translates and replays; everything else is here.
func (g *Gateway) serve(w http.ResponseWriter, r *http.Request, s surface.Surface) {
	x := exchange{g: g, w: w, r: r, start: time.Now(), s: s}
	// "bypass" until a lookup misses: a request refused before the cache
	// (bad input, auth, limits) is not a cache miss.
	x.rec.Cache = telemetry.CacheBypass
	id := s.ID()
	x.rec.Endpoint = id
	// A detached stream ends the exchange in its own goroutine.
	defer func() {
		if !x.detached {
			x.end()
		}
	}()
	if m := g.metrics(); m != nil {
		m.InflightInc() // end decrements it
	}

	h := w.Header()
	x.rec.RequestID = headerValue(r.Header, "X-Request-Id")
	if !api.ValidRequestID(x.rec.RequestID) {
		x.rec.RequestID = g.ids.Next()
	}
	x.set(h, "X-Request-Id", x.rec.RequestID)
	// X-Content-Type-Options and X-Frame-Options are set by the server,
	// on every answer of every route.

	ctx := r.Context()
	if g.o.Tracer.Enabled() {
		ctx, x.span = g.o.Tracer.StartRequest(ctx, r)
	}

	buf := g.pool.Get().(*bytes.Buffer)
	body, held, err := x.readBody(buf)
	x.held = held // the body is held until the answer is finished
	if err != nil {
		g.putBuffer(buf)
		x.fail(err)
		return
	}
	// The body is held until the answer ends, the whole of a stream for a
	// streamed one: a copy of its own size, and the pooled read buffer
	// (4 KiB at least, up to 1 MiB) goes back at once, so thousands of open
	// streams do not each pin one.
	body = bytes.Clone(body)
	g.putBuffer(buf)
	req, err := s.Parse(body, g.o.Limits)
	if err != nil {
		x.fail(err)
		return
	}
	x.req = req
	info := req.Info()
	x.rec.Model, x.rec.Stream = info.Model, info.Stream
	fallbacks, err := requestFallbacks(req, r.Header)
	if err != nil {
		x.fail(err)
		return
	}
	target, err := g.o.Router.Resolve(info.Model)
	if err != nil {
		x.fail(err)
		return
	}
	x.rec.Provider, x.rec.Model = target.Provider, target.Model
	if x.rec.Provider == "" {
		x.rec.Provider = target.Group
	}
	// Chat is every provider's own API; another surface is passed through
	// when every deployment of the target speaks it, translated otherwise.
	x.native = id == provider.SurfaceChat || g.speaks(target, id)

	var adm Admission
	if g.o.Guard != nil {
		adm, err = g.o.Guard.Admit(ctx, h, info.Model, req.Raw(),
			Estimate{Model: target.Model, PromptTokens: req.PromptTokens(), MaxTokens: info.MaxTokens})
		if err != nil {
			x.fail(err)
			return
		}
		if adm.Body != nil {
			req.SetRaw(adm.Body)
		}
		x.tenant = tenant{principal: adm.Principal, namespace: adm.Namespace, hideKey: adm.HideCacheKey, done: adm.Done}
	}
	if p, ok := req.(surface.Preparer); ok {
		if err := p.Prepare(ctx, x.scope(), x.native); err != nil {
			x.fail(err)
			return
		}
	}

	cc, err := parseCacheControl(r.Header)
	if err != nil {
		x.fail(err)
		return
	}
	cc = adm.bound(cc)
	x.cc = cc
	if g.o.Cache == nil || cc.noCache {
		x.rec.Cache = telemetry.CacheBypass
		h["X-Cache-Status"] = hdrBypass
	}
	if g.o.Cache != nil {
		ns := adm.Namespace
		if v := headerValue(r.Header, "X-Cache-Namespace"); v != "" {
			// A client namespace partitions within the key's own namespace,
			// never across tenants.
			ns = ns + "\x00" + v
		}
		scope := target.String()
		if id != provider.SurfaceChat {
			// The surface is part of the key: an answer of one API never
			// answers another. (Chat's keys carry no prefix, as before
			// surfaces: entries in L2 survive the upgrade.)
			scope = id.String() + "\x00" + scope
		}
		kb, ignore := req.KeyBody()
		x.key, err = cache.ComputeKeyIgnoring(ns, scope, target.Model, kb, ignore)
		if err != nil {
			x.fail(api.InvalidRequest("", "request cannot be cached: %v", err))
			return
		}
		x.keyOK = true // X-Cache-Key is set with the answer, see setEdgeHeaders
	}

	if x.keyOK && !cc.noCache {
		if e, tier := g.lookup(ctx, &x); e != nil {
			x.markHit(tier)
			x.serveStored(e)
			return
		}
		x.rec.Cache = telemetry.CacheMiss
		// Coalesce identical misses: the first caller fetches, the others
		// wait for its answer and replay it.
		call, leader := g.group.Join(x.key)
		if !leader {
			wctx, cancel := context.WithTimeout(ctx, g.o.CoalesceWait)
			e, ok := call.Wait(wctx)
			cancel()
			if ok {
				x.serveCoalesced(e)
				return
			}
			if err := call.Err(); err != nil { // the leader's upstream failure is ours too
				x.fail(err)
				return
			}
		} else {
			x.lead = call // finished in end
		}
		h["X-Cache-Status"] = hdrMiss
	}

	ubody, uh, err := req.Upstream(x.native, r.Header)
	if err != nil {
		x.lead.Fail(ctx, err)
		x.fail(err)
		return
	}
	preq := &provider.Request{Body: ubody, Model: target.Model, Stream: info.Stream, MaxTokens: info.MaxTokens, Header: uh}
	if x.native {
		preq.Surface = id
	}
	// The client's trace context and the request id go upstream whether or
	// not the gateway traces (with tracing on, callProvider's span
	// replaces traceparent).
	preq.Header = telemetry.UpstreamHeaders(preq.Header, r.Header, x.rec.RequestID)
	if info.Stream && x.detach(ctx, target, preq, fallbacks) {
		return
	}
	x.answer(ctx, target, preq, fallbacks)
}

// answer calls the provider and answers with what it returned.
func (x *exchange) answer(ctx context.Context, target route.Target, preq *provider.Request, fallbacks []string) {
	x.provStart = time.Now()
	resp, err := x.g.callProvider(ctx, target, preq, fallbacks)
	if err != nil {
		x.rec.ProviderLatency = time.Since(x.provStart)
		x.lead.Fail(ctx, err)
		x.fail(err)
		return
	}
	if resp.Provider != "" {
		x.rec.Provider = resp.Provider
	}
	x.attempts = int32(min(max(resp.Attempts, 1), math.MaxInt32))
	// The wait until the provider answered (a stream's first byte); a
	// stream adds its waits for each chunk.
	x.rec.ProviderLatency = time.Since(x.provStart)
	if preq.Stream {
		x.serveStream(resp.Stream)
		return
	}
	x.serveAnswer(resp)
}

func (g *Gateway) callProvider(ctx context.Context, t route.Target, req *provider.Request, fallbacks []string) (*provider.Response, error) {
	if g.o.Tracer.Enabled() {
		ctx, span := g.o.Tracer.StartProviderCall(ctx, t.String(), t.Model, req.Surface, req.MaxTokens)
		g.o.Tracer.Inject(ctx, req.Header)
		resp, err := g.o.Router.ChatCompletion(ctx, t, req, fallbacks)
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		if err == nil && resp.Stream != nil {
			// The provider span of a stream covers the whole generation.
			resp.Stream = &spanStream{Stream: resp.Stream, span: span}
			return resp, nil
		}
		span.End()
		return resp, err
	}
	return g.o.Router.ChatCompletion(ctx, t, req, fallbacks)
}

// spanStream ends the provider call's span when its stream ends, with an
// error status when it failed.
type spanStream struct {
	provider.Stream
	span  trace.Span
	ended bool
}

func (s *spanStream) Next() ([]byte, error) {
	b, err := s.Stream.Next()
	if err != nil && !s.ended {
		if err != io.EOF {
			s.span.RecordError(err)
			s.span.SetStatus(codes.Error, err.Error())
		}
		s.ended = true
		s.span.End()
	}
	return b, err
}

func (s *spanStream) Close() error {
	if !s.ended {
		s.ended = true
		s.span.End()
	}
	return s.Stream.Close()
}

// NextBuffered forwards provider.Buffered.
func (s *spanStream) NextBuffered() bool {
	b, ok := s.Stream.(provider.Buffered)
	return ok && b.NextBuffered()
}

// Usage forwards the stream's usage by kind (provider.UsageReporter).
func (s *spanStream) Usage() (cost.Usage, bool) {
	if ur, ok := s.Stream.(provider.UsageReporter); ok {
		return ur.Usage()
	}
	return cost.Usage{}, false
}

// lookup asks L1 then L2 for x.key.
func (g *Gateway) lookup(ctx context.Context, x *exchange) (*cache.Entry, cache.Tier) {
	if g.o.Tracer.Enabled() {
		var span trace.Span
		ctx, span = g.o.Tracer.StartSpan(ctx, "cache.lookup")
		defer span.End()
	}
	return g.o.Cache.Get(ctx, x.key, x.cc.maxAge)
}

func (g *Gateway) metrics() *telemetry.Metrics {
	if g.o.Observer == nil {
		return nil
	}
	return g.o.Observer.Metrics
}

func (g *Gateway) putBuffer(b *bytes.Buffer) {
	if b.Cap() > 1<<20 {
		return // let huge buffers go rather than pin them
	}
	b.Reset()
	g.pool.Put(b)
}

// requestFallbacks reads the per-request fallback models: the
// X-Fallback-Models header (comma-separated) and those the body names (chat's
// "fallbacks" array, removed before forwarding by the router).
func requestFallbacks(req interface{ Fallbacks() ([]string, error) }, h http.Header) ([]string, error) {
	var out []string
	if v := headerValue(h, "X-Fallback-Models"); v != "" {
		for m := range strings.SplitSeq(v, ",") {
			if m = strings.TrimSpace(m); m != "" {
				if err := api.CheckModelName("X-Fallback-Models", m); err != nil {
					return nil, err
				}
				out = append(out, m)
			}
		}
	}
	in, err := req.Fallbacks()
	if err != nil || len(in) == 0 {
		return out, err
	}
	if out = append(out, in...); len(out) > 8 {
		return nil, api.InvalidRequest("fallbacks", "at most 8 fallback models")
	}
	return out, nil
}

// headerValue is h.Get(key) for a key already in canonical form, without
// canonicalizing it again (Get does, on every call).
func headerValue(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}
