package gateway

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"time"
	"unsafe"

	"github.com/tidwall/gjson"
	"go.opentelemetry.io/otel/trace"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/cache"
	"github.com/edge-agent/edge-agent/internal/cost"
	"github.com/edge-agent/edge-agent/internal/provider"
	"github.com/edge-agent/edge-agent/internal/route"
	"github.com/edge-agent/edge-agent/internal/sse"
	"github.com/edge-agent/edge-agent/internal/surface/messages"
	"github.com/edge-agent/edge-agent/internal/telemetry"
)

// ServeMessages is POST /v1/messages: the same pipeline as chat
// (ServeHTTP) with the Messages surface's parse, key body, envelope,
// accumulator, replay and usage. A model whose providers speak Messages
// (Anthropic) is passed through: the client's bytes go upstream with only
// the model rewritten, anthropic-* headers with them, and the answer's
// bytes come back as sent. Any other model is translated through chat.
// Metadata goes in headers: the answer's bytes are not decorated.
func (g *Gateway) ServeMessages(w http.ResponseWriter, r *http.Request) {
	x := exchange{g: g, w: w, r: r, start: time.Now(), surface: provider.SurfaceMessages}
	x.rec.Cache = telemetry.CacheBypass
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
	req, err := messages.Parse(body, g.o.Limits)
	if err != nil {
		x.fail(err)
		return
	}
	x.rec.Model, x.rec.Stream = req.Model, req.Stream
	target, err := g.o.Router.Resolve(req.Model)
	if err != nil {
		x.fail(err)
		return
	}
	x.rec.Provider, x.rec.Model = target.Provider, target.Model
	if x.rec.Provider == "" {
		x.rec.Provider = target.Group
	}
	native := g.speaks(target, provider.SurfaceMessages)

	var adm Admission
	if g.o.Guard != nil {
		// Parse estimated the prompt already; the body is not scanned again.
		est := Estimate{Model: target.Model, PromptTokens: req.InputTokens, MaxTokens: req.MaxTokens}
		adm, err = g.o.Guard.Admit(ctx, h, req.Model, req.Body, est)
		if err != nil {
			x.fail(err)
			return
		}
		if adm.Body != nil {
			req.Body = adm.Body
		}
		x.admission = adm
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
			ns = ns + "\x00" + v
		}
		// The surface is part of the key: a chat answer never answers a
		// Messages request. cache_control markers are not (KeyBody).
		x.key, err = cache.ComputeKeyIgnoring(ns, "messages\x00"+target.String(), target.Model,
			messages.KeyBody(nil, req.Body), nil)
		if err != nil {
			x.fail(api.InvalidRequest("", "request cannot be cached: %v", err))
			return
		}
		x.keyOK = true
	}
	var lead *cache.Call // set when this request leads a coalesced call
	if x.keyOK && !cc.noCache {
		if e, tier := g.lookup(ctx, &x); e != nil {
			x.markHit(tier)
			x.serveStoredMessage(req, e)
			return
		}
		x.rec.Cache = telemetry.CacheMiss
		call, leader := g.group.Join(x.key)
		if !leader {
			wctx, cancel := context.WithTimeout(ctx, g.o.CoalesceWait)
			e, ok := call.Wait(wctx)
			cancel()
			if ok {
				x.rec.Cache = telemetry.CacheCoalesced
				h["X-Cache-Status"] = hdrHit
				h["X-Cache-Layer"] = hdrCoal
				x.serveStoredMessage(req, e)
				return
			}
			if err := call.Err(); err != nil { // the leader's upstream failure is ours too
				x.fail(err)
				return
			}
		} else {
			lead = call
			defer func() { call.Finish(x.stored) }()
		}
		h["X-Cache-Status"] = hdrMiss
	}

	preq := &provider.Request{Model: target.Model, Stream: req.Stream, MaxTokens: req.MaxTokens}
	var fallbacks []string
	if native {
		preq.Body, preq.Surface = req.Body, provider.SurfaceMessages
		preq.Header = anthropicHeaders(r.Header)
	} else {
		if preq.Body, err = messages.ToChat(req.Body); err != nil {
			x.fail(err)
			return
		}
		if fallbacks, err = requestFallbacks(&api.ChatRequest{}, r.Header); err != nil {
			x.fail(err)
			return
		}
	}
	if g.o.Tracer.Enabled() && preq.Header == nil {
		preq.Header = make(http.Header, 1)
	}
	x.provStart = time.Now()
	resp, err := g.callProvider(ctx, target, preq, fallbacks)
	x.rec.ProviderLatency = time.Since(x.provStart)
	if err != nil {
		lead.Fail(ctx, err)
		x.fail(err)
		return
	}
	if resp.Provider != "" {
		x.rec.Provider = resp.Provider
	}
	x.attempts = max(resp.Attempts, 1)
	if req.Stream {
		x.serveMessageStream(req, resp.Stream, native)
		return
	}
	out := resp.Body
	if !native {
		if out, err = messages.FromChat(resp.Body, req.Model); err != nil {
			x.fail(err)
			return
		}
	}
	u := messages.Usage(out)
	x.price(x.rec.Model, u, false)
	x.rec.Status = http.StatusOK
	if x.cacheable(stopReasons(out)) {
		x.store(out, u)
	}
	x.writeMessage(out)
}

// SurfaceRouter is implemented by routers that know which surfaces a
// target's providers speak natively; *route.Router does. Without it only
// chat is native.
type SurfaceRouter interface {
	Speaks(t route.Target, s provider.Surface) bool
}

func (g *Gateway) speaks(t route.Target, s provider.Surface) bool {
	if sr, ok := g.o.Router.(SurfaceRouter); ok {
		return sr.Speaks(t, s)
	}
	return s == provider.SurfaceChat
}

// anthropicHeaders copies the client's anthropic-* headers (version, beta
// flags) for a passthrough call; nil when there are none.
func anthropicHeaders(in http.Header) http.Header {
	var out http.Header
	for k, vs := range in {
		if strings.HasPrefix(k, "Anthropic-") {
			if out == nil {
				out = make(http.Header, 4)
			}
			out[k] = vs
		}
	}
	return out
}

// stopReasons maps a Messages answer's stop_reason to the finish reason
// the cache decides on.
func stopReasons(answer []byte) []string {
	switch gjson.GetBytes(answer, "stop_reason").Str {
	case "end_turn", "stop_sequence":
		return []string{"stop"}
	case "tool_use":
		return []string{"tool_calls"}
	case "max_tokens":
		return []string{"length"}
	}
	return nil
}

// serveStoredMessage answers from a cached Messages answer, as JSON or as
// the Anthropic event sequence that streams it.
func (x *exchange) serveStoredMessage(req *messages.Request, e *cache.Entry) {
	x.rec.Provider = e.Provider
	x.rec.Status = http.StatusOK
	x.rec.SavedUSD, _ = x.g.o.Prices.Cost(e.Model, cost.Usage{PromptTokens: e.PromptTokens, CompletionTokens: e.CompletionTokens})
	x.rec.CostKnown = true
	if !req.Stream {
		x.writeMessage(e.Body)
		return
	}
	events, err := messages.Replay(nil, e.Body)
	if err != nil {
		x.fail(err)
		return
	}
	sse.SetHeaders(x.w.Header())
	x.setEdgeHeaders(x.w.Header(), -1, time.Now())
	x.w.WriteHeader(http.StatusOK)
	_, _ = x.w.Write(events)
	if f, ok := x.w.(http.Flusher); ok {
		f.Flush()
	}
	x.rec.TTFT = time.Since(x.start)
}

// writeMessage writes a Messages answer's bytes as they are; the gateway's
// metadata is in the X-Edge-* and X-Cache-* headers.
func (x *exchange) writeMessage(body []byte) {
	h := x.w.Header()
	h["Content-Type"] = hdrJSON
	x.setEdgeHeaders(h, len(body), time.Now())
	x.w.WriteHeader(http.StatusOK)
	_, _ = x.w.Write(body)
}

// serveMessageStream copies a stream to the client as Anthropic events:
// the provider's own events when passed through, chat chunks translated
// otherwise, while capturing the answer for the cache.
func (x *exchange) serveMessageStream(req *messages.Request, s provider.Stream, native bool) {
	defer s.Close()
	h := x.w.Header()
	sse.SetHeaders(h)
	x.setEdgeHeaders(h, -1, time.Now())
	x.w.WriteHeader(http.StatusOK)
	x.rec.Status = http.StatusOK
	sw := sse.NewWriter(x.w)
	var acc messages.Accumulator
	var chat api.Accumulator
	chat.SetLimit(x.g.o.MaxCaptureBytes)
	var tr *messages.StreamTranslator
	if !native {
		tr = messages.NewStreamTranslator(req.Model)
	}
	var out []byte
	first := true
	fail := func(err error) {
		e := x.stoppedBy(api.FromError(err))
		x.rec.Status, x.rec.ErrorCode = e.Status, e.Code
		if e.Status != 499 {
			_, _ = x.w.Write(messages.AppendErrorEvent(out[:0], e))
			_ = sw.Flush()
		}
	}
	for {
		waitStart := time.Now()
		chunk, err := s.Next()
		x.rec.ProviderLatency += time.Since(waitStart)
		if err == io.EOF {
			break
		}
		if err != nil {
			fail(err)
			return
		}
		if first {
			x.rec.TTFT = time.Since(x.start)
			first = false
		}
		if native {
			if err := acc.Add(chunk); err != nil {
				fail(err)
				return
			}
			// A string view of the chunk: the name is written at once.
			name := gjson.Get(unsafe.String(unsafe.SliceData(chunk), len(chunk)), "type").Str
			if sw.Event(name, chunk) != nil || sw.Flush() != nil {
				x.rec.Status, x.rec.ErrorCode = 499, "client_closed_request"
				return
			}
			continue
		}
		if err := chat.Add(chunk); err != nil {
			fail(err)
			return
		}
		if out, err = tr.Add(out[:0], chunk); err != nil {
			fail(err)
			return
		}
		if len(out) > 0 {
			if _, err := x.w.Write(out); err != nil || sw.Flush() != nil {
				x.rec.Status, x.rec.ErrorCode = 499, "client_closed_request"
				return
			}
		}
	}
	var answer []byte
	var err error
	if native {
		if !acc.Complete() {
			fail(&api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_stream_truncated",
				Message: "provider ended the stream before message_stop"})
			return
		}
		answer, err = acc.Answer()
	} else {
		if out, err = tr.Finish(out[:0]); err != nil {
			fail(err)
			return
		}
		if _, err := x.w.Write(out); err != nil || sw.Flush() != nil {
			x.rec.Status, x.rec.ErrorCode = 499, "client_closed_request"
			return
		}
		if chat.Overflowed() {
			err = errOverflow
		} else if b, cerr := chat.CompletionJSON(); cerr == nil {
			answer, err = messages.FromChat(b, req.Model)
		} else {
			err = cerr
		}
	}
	if err != nil {
		// Sent whole but not rebuilt (too large, or malformed): priced by
		// estimate, not cached.
		x.price(x.rec.Model, cost.Usage{PromptTokens: req.InputTokens}, true)
		return
	}
	u := messages.Usage(answer)
	x.price(x.rec.Model, u, false)
	if x.cacheable(stopReasons(answer)) {
		x.store(answer, u)
	}
}

var errOverflow = &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "capture_overflow",
	Message: "stream answer larger than max_capture_bytes"}

// TokenCounter counts a Messages request's tokens upstream; *route.Router
// implements it. ok false: no deployment of t can, and the gateway
// answers with its own estimate.
type TokenCounter interface {
	CountTokens(ctx context.Context, t route.Target, req *provider.Request) (answer []byte, ok bool, err error)
}

// ServeCountTokens is POST /v1/messages/count_tokens: passed through to a
// provider that counts tokens (Anthropic), estimated otherwise and
// labelled so (messages.EstimateHeader).
func (g *Gateway) ServeCountTokens(w http.ResponseWriter, r *http.Request) {
	x := exchange{g: g, w: w, r: r, start: time.Now(), surface: provider.SurfaceMessages}
	x.rec.Cache = telemetry.CacheBypass
	h := w.Header()
	x.rec.RequestID = headerValue(r.Header, "X-Request-Id")
	if !api.ValidRequestID(x.rec.RequestID) {
		x.rec.RequestID = g.ids.Next()
	}
	x.set(h, "X-Request-Id", x.rec.RequestID)
	buf := g.pool.Get().(*bytes.Buffer)
	defer g.putBuffer(buf)
	body, held, err := x.readBody(buf)
	defer g.o.BodyBudget.release(held)
	if err != nil {
		x.fail(err)
		return
	}
	req, err := messages.ParseCountTokens(body, g.o.Limits)
	if err != nil {
		x.fail(err)
		return
	}
	target, err := g.o.Router.Resolve(req.Model)
	if err != nil {
		x.fail(err)
		return
	}
	if tc, ok := g.o.Router.(TokenCounter); ok {
		preq := &provider.Request{Body: req.Body, Model: target.Model, Header: anthropicHeaders(r.Header), Surface: provider.SurfaceMessages}
		answer, counted, err := tc.CountTokens(r.Context(), target, preq)
		if err != nil {
			x.fail(err)
			return
		}
		if counted {
			h["Content-Type"] = hdrJSON
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(answer)
			return
		}
	}
	messages.WriteCountTokensEstimate(w, req)
}
