package gateway

import (
	"bytes"
	"context"
	"net/http"
	"time"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/provider"
	"github.com/edge-agent/edge-agent/internal/route"
	"github.com/edge-agent/edge-agent/internal/surface/messages"
	"github.com/edge-agent/edge-agent/internal/telemetry"
)

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
	x := exchange{g: g, w: w, r: r, start: time.Now(), s: messages.Surface{}}
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
		preq := &provider.Request{Body: req.Body, Model: target.Model, Header: messages.UpstreamHeaders(r.Header), Surface: provider.SurfaceMessages}
		answer, counted, err := tc.CountTokens(r.Context(), target, preq)
		x.rec.Provider = target.Provider
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
