package gateway

import (
	"context"
	"fmt"
	"net/http"
	"runtime/debug"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/detach"
	"github.com/edge-agent/edge-agent/internal/provider"
	"github.com/edge-agent/edge-agent/internal/route"
	"github.com/edge-agent/edge-agent/internal/stack"
)

// detach hands a stream's provider call and answer to a goroutine of its
// own, off net/http's connection (internal/detach), when the server's
// context carries a Detacher and the request can be detached (HTTP/1.1,
// its body read to the end). The goroutine starts with a small stack, and
// net/http's buffers and the handler's stack, grown deep by parsing and
// routing, are freed: at thousands of open streams that is most of a
// stream's memory. It reports whether it did; the handler then returns.
func (x *exchange) detach(ctx context.Context, target route.Target, preq *provider.Request, fallbacks []string) bool {
	d := detach.FromContext(ctx)
	if d == nil {
		return false
	}
	rw, err := d.Detach(ctx, x.w, x.r)
	if err != nil {
		return false
	}
	var release func()
	if x.g.o.Hold != nil {
		release = x.g.o.Hold()
	}
	x.detached = true
	x.w = rw
	// The request's context now ends with the detached response's; its
	// body (net/http's, over the connection's buffer) is read and let go,
	// and its header map: what the call needs of it is in preq (about
	// 500 bytes a stream, held for the stream's life).
	r := x.r.WithContext(rw.Context())
	r.Body, r.Header = http.NoBody, nil
	x.r = r
	go x.serveDetached(rw, target, preq, fallbacks, release)
	return true
}

// serveDetached is the rest of a detached stream: the call, the answer,
// the exchange's end, and the response's (the connection serves the
// client's next request). A panic is the server's recovery's: logged, a
// 500 envelope when nothing was sent, the connection closed.
func (x *exchange) serveDetached(rw *detach.Response, target route.Target, preq *provider.Request, fallbacks []string, release func()) {
	stack.Grow8K()
	defer func() {
		if v := recover(); v != nil {
			rw.Abort()
			if v != http.ErrAbortHandler {
				x.g.o.Logger.Error("panic serving request", "path", x.r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				x.rec.Status = http.StatusInternalServerError
				if !rw.Started() {
					x.s.WriteError(rw, &api.Error{Status: http.StatusInternalServerError, Type: api.TypeServer, Message: "internal error"})
				}
			}
		}
		x.end()
		rw.Close()
		if release != nil {
			release()
		}
	}()
	x.answer(rw.Context(), target, preq, fallbacks)
}
