package gateway

import (
	"bytes"
	"context"
	"math"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/cache"
	"github.com/edge-agent/edge-agent/internal/cost"
	"github.com/edge-agent/edge-agent/internal/provider"
	"github.com/edge-agent/edge-agent/internal/route"
	"github.com/edge-agent/edge-agent/internal/surface"
	"github.com/edge-agent/edge-agent/internal/surface/embeddings"
	"github.com/edge-agent/edge-agent/internal/telemetry"
)

// Header values of the embeddings answers.
var (
	hdrPartial = []string{"PARTIAL"}
)

// ServeEmbeddings is POST /v1/embeddings. It is the pipeline (request id,
// body, parse, resolve, admission, cache control, cache tiers, coalescing,
// routing, recording) with the cache applied to each input instead of the
// whole request: every input's vector is an entry of its own, so a batch
// whose inputs were seen before, in any batch, sends upstream only the
// others, in one call, and the answer is put back together in the client's
// order from stored and fresh vectors, each byte for byte as the upstream
// wrote it. Usage and cost count what was sent upstream; what the hits
// would have cost is the saving. X-Cache-Hits and X-Cache-Misses (and the
// answer's metadata) say how many inputs were which.
//
// Only a model whose providers have an embeddings API is served (the
// OpenAI adapter with the surface configured, or an adapter that
// translates to its upstream's API); any other is a 400.
func (g *Gateway) ServeEmbeddings(w http.ResponseWriter, r *http.Request) {
	x := exchange{g: g, w: w, r: r, start: time.Now(), s: embeddingsSurface{}}
	x.rec.Cache = telemetry.CacheBypass
	x.rec.Endpoint = provider.SurfaceEmbeddings
	defer x.finish()
	if m := g.metrics(); m != nil {
		m.InflightInc()
		defer m.InflightDec()
	}
	h := w.Header()
	x.rec.RequestID = headerValue(r.Header, "X-Request-Id")
	if !api.ValidRequestID(x.rec.RequestID) {
		x.rec.RequestID = g.ids.Next()
	}
	x.set(h, "X-Request-Id", x.rec.RequestID)

	ctx := r.Context()
	if g.o.Tracer.Enabled() {
		var span trace.Span
		ctx, span = g.o.Tracer.StartRequest(ctx, r)
		defer func() { g.o.Tracer.EndSpan(span, &x.rec) }()
	}
	buf := g.pool.Get().(*bytes.Buffer)
	defer g.putBuffer(buf)
	body, held, err := x.readBody(buf)
	defer g.o.BodyBudget.release(held)
	if err != nil {
		x.fail(err)
		return
	}
	req, err := embeddings.Parse(body, g.o.Limits)
	if err != nil {
		x.fail(err)
		return
	}
	x.rec.Model = req.Model
	target, err := g.o.Router.Resolve(req.Model)
	if err != nil {
		x.fail(err)
		return
	}
	x.rec.Provider, x.rec.Model = target.Provider, target.Model
	if x.rec.Provider == "" {
		x.rec.Provider = target.Group
	}
	if !g.speaks(target, provider.SurfaceEmbeddings) {
		x.fail(&api.Error{Status: http.StatusBadRequest, Type: api.TypeInvalidRequest, Param: "model", Code: "model_not_supported",
			Message: "model " + strconv.Quote(req.Model) + " does not support embeddings: its providers have no embeddings API"})
		return
	}
	fallbacks, err := requestFallbacks(req, r.Header)
	if err != nil {
		x.fail(err)
		return
	}

	var adm Admission
	if g.o.Guard != nil {
		adm, err = g.o.Guard.Admit(ctx, h, req.Model, req.Body,
			Estimate{Model: target.Model, PromptTokens: req.EstimateTokens(nil), NoCompletion: true})
		if err != nil {
			x.fail(err)
			return
		}
		if adm.Body != nil { // redacted: the inputs are the new body's
			if req, err = embeddings.Parse(adm.Body, g.o.Limits); err != nil {
				x.fail(err)
				return
			}
		}
		x.tenant = tenant{principal: adm.Principal, namespace: adm.Namespace, hideKey: adm.HideCacheKey, done: adm.Done}
	}
	cc, err := parseCacheControl(r.Header)
	if err != nil {
		x.fail(err)
		return
	}
	x.cc = adm.bound(cc)

	b := embedBatch{x: &x, req: req, target: target, fallbacks: fallbacks, elems: make([][]byte, len(req.Inputs))}
	if g.o.Cache != nil {
		ns := adm.Namespace
		if v := headerValue(r.Header, "X-Cache-Namespace"); v != "" {
			ns = ns + "\x00" + v
		}
		if b.keys, err = req.Keys(nil, ns, target.String(), target.Model); err != nil {
			x.fail(api.InvalidRequest("", "request cannot be cached: %v", err))
			return
		}
	}
	if err := b.answer(ctx); err != nil {
		x.fail(err)
		return
	}
	b.write()
}

// embeddingsSurface is what the pipeline's shared steps (fail) need of the
// embeddings API: its ID and OpenAI's error envelope. Its requests do not
// go down serve (one answer per request); ServeEmbeddings is their path.
type embeddingsSurface struct{}

func (embeddingsSurface) ID() provider.Surface { return provider.SurfaceEmbeddings }

func (embeddingsSurface) WriteError(w http.ResponseWriter, e *api.Error) { api.WriteError(w, e) }

// Parse is the per-input path's parse; serve never calls it (the route is
// ServeEmbeddings).
func (embeddingsSurface) Parse(body []byte, lim api.Limits) (surface.Request, error) {
	return nil, &api.Error{Status: http.StatusInternalServerError, Type: api.TypeServer, Code: "internal_error",
		Message: "embeddings are served by ServeEmbeddings, not the one-answer pipeline"}
}

// embedBatch is the state of one embeddings request: which input came from
// where, and what the upstream calls cost.
type embedBatch struct {
	x         *exchange
	req       *embeddings.Request
	target    route.Target
	fallbacks []string
	keys      []cache.Key // per input; nil when the cache is off

	elems     [][]byte           // per input: its data element, stored or fresh
	first     *embeddings.Answer // the first upstream answer: the envelope
	sent      int                // inputs sent upstream
	calls     int                // upstream calls made
	tokens    int                // prompt tokens of those calls
	total     int                // their total tokens
	fromL2    bool               // a hit came from L2
	coalesced int                // inputs answered by another request's call
}

// answer fills every input's element: from the cache, from another
// request's call for the same input, or from upstream.
func (b *embedBatch) answer(ctx context.Context) error {
	x, g := b.x, b.x.g
	lookup := b.keys != nil && !x.cc.noCache
	if lookup {
		b.lookup(ctx)
	}
	// The inputs still missing: one per key (a batch may repeat an input),
	// the first of each leading. With the cache on, identical inputs of
	// concurrent requests are coalesced: each is fetched by the request
	// that asked first, and the others wait for its vector.
	var send []int
	var lead []*cache.Call
	var wait []pendingInput
	owner := make(map[cache.Key]int)
	var dups []int
	for i := range b.req.Inputs {
		if b.elems[i] != nil {
			continue
		}
		if b.keys != nil {
			if _, ok := owner[b.keys[i]]; ok {
				dups = append(dups, i)
				continue
			}
			owner[b.keys[i]] = i
		}
		if !lookup {
			send = append(send, i)
			continue
		}
		call, leader := g.group.Join(b.keys[i])
		if leader {
			send = append(send, i)
			lead = append(lead, call)
		} else {
			wait = append(wait, pendingInput{i, call})
		}
	}
	if len(send)+len(wait) > 0 && lookup {
		x.rec.Cache = telemetry.CacheMiss
	}
	// A leader always finishes its calls, answer or not, or their
	// followers wait in vain.
	defer func() {
		for _, c := range lead {
			c.Finish(nil)
		}
	}()
	if len(send) > 0 {
		stored, err := b.fetch(ctx, send)
		if err != nil {
			for _, c := range lead {
				c.Fail(ctx, err)
			}
			return err
		}
		for k, c := range lead {
			c.Finish(stored[k])
		}
	}
	// Wait for the vectors other requests are fetching; one that gave up
	// without an answer or an error is fetched here.
	var again []int
	for _, p := range wait {
		wctx, cancel := context.WithTimeout(ctx, g.o.CoalesceWait)
		e, ok := p.call.Wait(wctx)
		cancel()
		switch {
		case ok:
			b.elems[p.input] = e.Body
			b.coalesced++
		case p.call.Err() != nil:
			return p.call.Err()
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			again = append(again, p.input)
		}
	}
	if len(again) > 0 {
		if _, err := b.fetch(ctx, again); err != nil {
			return err
		}
	}
	for _, i := range dups {
		b.elems[i] = b.elems[owner[b.keys[i]]]
	}
	return nil
}

type pendingInput struct {
	input int
	call  *cache.Call
}

// lookup asks the cache for every input, L1 then L2, and counts what the
// hits would have cost.
func (b *embedBatch) lookup(ctx context.Context) {
	x, g := b.x, b.x.g
	if g.o.Tracer.Enabled() {
		var span trace.Span
		ctx, span = g.o.Tracer.StartSpan(ctx, "cache.lookup")
		defer span.End()
	}
	es, tiers := g.o.Cache.GetMany(ctx, b.keys, x.cc.maxAge) // L2: one round trip for the batch
	for i, e := range es {
		tier := tiers[i]
		if e == nil {
			continue
		}
		b.elems[i] = e.Body
		b.fromL2 = b.fromL2 || tier == cache.TierL2
		saved := e.CostUSD
		if math.IsNaN(saved) {
			saved, _ = g.o.Prices.Cost(e.Model, cost.Usage{PromptTokens: e.PromptTokens})
		}
		x.rec.SavedUSD += saved
	}
}

// fetch makes one upstream call for the inputs idx, fills their elements,
// stores each as its own entry (unless the client said no-store) and
// returns the entries, in idx's order (nil where not stored).
func (b *embedBatch) fetch(ctx context.Context, idx []int) ([]*cache.Entry, error) {
	x, g := b.x, b.x.g
	body, err := b.req.UpstreamBody(idx)
	if err != nil {
		return nil, err
	}
	preq := &provider.Request{Body: body, Model: b.target.Model, Surface: provider.SurfaceEmbeddings}
	if g.o.Tracer.Enabled() {
		preq.Header = make(http.Header, 1)
	}
	start := time.Now()
	if x.provStart.IsZero() {
		x.provStart = start
	}
	resp, err := g.callProvider(ctx, b.target, preq, b.fallbacks)
	x.rec.ProviderLatency += time.Since(start)
	if err != nil {
		return nil, err
	}
	if resp.Provider != "" {
		x.rec.Provider = resp.Provider
	}
	x.attempts += int32(min(max(resp.Attempts, 1), math.MaxInt32))
	ans, err := embeddings.ReadAnswer(resp.Body, len(idx))
	if err != nil {
		return nil, err
	}
	if b.first == nil {
		b.first = ans
	}
	b.calls++
	b.sent += len(idx)
	b.tokens += ans.PromptTokens
	b.total += max(ans.TotalTokens, ans.PromptTokens)
	for k, i := range idx {
		b.elems[i] = ans.Elems[k]
	}
	if b.keys == nil || x.cc.noStore {
		return make([]*cache.Entry, len(idx)), nil
	}
	model := ans.Model
	if model == "" {
		model = b.target.Model
	}
	shares := b.req.Shares(ans.PromptTokens, idx)
	out := make([]*cache.Entry, len(idx))
	for k, i := range idx {
		e := &cache.Entry{Body: bytes.Clone(ans.Elems[k]), Provider: x.rec.Provider, Model: model,
			PromptTokens: shares[k], CostUSD: math.NaN()}
		if usd, ok := g.o.Prices.Cost(model, cost.Usage{PromptTokens: shares[k]}); ok {
			e.CostUSD = usd
		}
		g.o.Cache.Set(b.keys[i], e, x.cc.ttl)
		out[k] = e
	}
	return out, nil
}

// write prices the request and sends the reassembled answer.
func (b *embedBatch) write() {
	x := b.x
	h := x.w.Header()
	hits := len(b.req.Inputs) - b.sent
	model := b.target.Model
	if b.first != nil && b.first.Model != "" {
		model = b.first.Model
	}
	x.price(model, cost.Usage{PromptTokens: b.tokens}, false)
	x.rec.Status = http.StatusOK
	switch {
	case b.keys == nil || x.cc.noCache:
		x.rec.Cache = telemetry.CacheBypass
		h["X-Cache-Status"] = hdrBypass
	case b.calls == 0 && b.coalesced > 0:
		x.rec.Cache = telemetry.CacheCoalesced
		h["X-Cache-Status"] = hdrHit
		h["X-Cache-Layer"] = hdrCoal
	case b.calls == 0:
		tier := cache.TierL1
		if b.fromL2 {
			tier = cache.TierL2
		}
		x.markHit(tier)
	case hits > 0:
		x.rec.Cache = telemetry.CacheMiss
		h["X-Cache-Status"] = hdrPartial
	default:
		x.rec.Cache = telemetry.CacheMiss
		h["X-Cache-Status"] = hdrMiss
	}
	if b.keys != nil {
		x.set(h, "X-Cache-Hits", strconv.Itoa(hits))
		x.set(h, "X-Cache-Misses", strconv.Itoa(b.sent))
	}

	buf := x.g.pool.Get().(*bytes.Buffer)
	defer x.g.putBuffer(buf)
	// One allocation for the answer (vectors are large: a batch of 100 at
	// 1536 dimensions is 2 MB), not a doubling chain.
	size := 512
	for _, e := range b.elems {
		size += len(e) + 8
	}
	if b.first != nil {
		size += len(b.first.Body) - (b.first.DataEnd() - b.first.DataStart())
	}
	buf.Grow(size)
	now := time.Now()
	out := embeddings.AppendAnswer(buf.AvailableBuffer(), b.first, b.elems, model, b.tokens, b.total)
	out = b.appendMetadata(out, hits, now.Sub(x.start))
	h["Content-Type"] = hdrJSON
	x.setEdgeHeaders(h, len(out), now)
	x.w.WriteHeader(http.StatusOK)
	_, _ = x.w.Write(out)
}

// appendMetadata adds the gateway's "metadata" member to the answer, as
// chat's answers carry it: every value a string.
func (b *embedBatch) appendMetadata(out []byte, hits int, elapsed time.Duration) []byte {
	x := b.x
	end := len(out) - 1
	for end >= 0 && out[end] != '}' {
		end--
	}
	if end < 0 {
		return out
	}
	tail := append([]byte(nil), out[end:]...)
	out = out[:end]
	out = append(out, `,"metadata":{"provider":`...)
	out = api.AppendString(out, x.rec.Provider)
	out = append(out, `,"model":`...)
	out = api.AppendString(out, x.rec.Model)
	out = append(out, `,"cached":"`...)
	out = strconv.AppendBool(out, b.calls == 0 && b.keys != nil && !x.cc.noCache)
	out = append(out, `","cache_hits":"`...)
	out = strconv.AppendInt(out, int64(hits), 10)
	out = append(out, `","cache_misses":"`...)
	out = strconv.AppendInt(out, int64(b.sent), 10)
	out = append(out, `","latency_ms":"`...)
	out = api.AppendMillis(out, elapsed)
	out = append(out, '"')
	if b.calls > 0 {
		out = append(out, `,"provider_latency_ms":"`...)
		out = api.AppendMillis(out, x.rec.ProviderLatency)
		out = append(out, '"')
	}
	if x.rec.CostKnown {
		out = append(out, `,"cost_usd":"`...)
		out = api.AppendFloat(out, x.rec.CostUSD, 8)
		out = append(out, '"')
	}
	if hits > 0 {
		out = append(out, `,"saved_cost_usd":"`...)
		out = api.AppendFloat(out, x.rec.SavedUSD, 8)
		out = append(out, '"')
	}
	out = append(out, `,"request_id":`...)
	out = api.AppendString(out, x.rec.RequestID)
	out = append(out, '}')
	return append(out, tail...)
}
