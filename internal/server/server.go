// Package server is edge-agent's HTTP surface: routes, middleware (request
// recovery, authentication), health, models and admin endpoints.
package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/cache"
	"github.com/edge-agent/edge-agent/internal/surface/messages"
)

// Component is the health of one part of the gateway.
type Component struct {
	Status string `json:"status"` // healthy | degraded | unhealthy
	Detail string `json:"detail,omitempty"`
}

// Options wire a Server. Function fields keep this package free of the
// packages it serves.
type Options struct {
	Version string
	Logger  *slog.Logger
	// Chat serves POST /v1/chat/completions.
	Chat http.Handler
	// Routes are the other API surfaces (POST /v1/messages, /v1/responses,
	// ...), each behind client authentication. Errors on /v1/messages*,
	// auth and 404/405 included, are in Anthropic's envelope.
	Routes []Route
	// Models lists what GET /v1/models returns.
	Models func() []api.Model
	// Health reports per-component status; called by /health.
	Health func(ctx context.Context) map[string]Component
	// Ready reports whether requests can be served (providers configured).
	Ready func() bool
	// Metrics serves GET /metrics; nil: not exposed.
	Metrics http.Handler
	// Stats returns the JSON-able body of GET /admin/stats; nil: 404.
	Stats func() any
	// Cache is cleared by DELETE /admin/cache; nil: 404.
	Cache *cache.Tiered
	// Authenticate checks a client request and returns the context to
	// continue with (carrying the caller's identity); nil: open.
	Authenticate func(r *http.Request) (context.Context, error)
	// AuthenticateAdmin guards /metrics and /admin/*; nil: open.
	AuthenticateAdmin func(r *http.Request) error
	// Admin adds more admin routes (budgets); patterns must start with /admin/.
	Admin map[string]http.HandlerFunc
}

// Route is one API route: Method on Path (a net/http ServeMux pattern
// without the method, e.g. "/v1/responses/{id}").
type Route struct {
	Method, Path string
	Handler      http.Handler
}

// Server is the HTTP handler of edge-agent.
type Server struct {
	o        Options
	mux      *http.ServeMux
	chat     http.Handler    // POST /v1/chat/completions, served before the mux
	ids      *api.RequestIDs // X-Request-Id of the answers the gateway does not make
	draining atomic.Bool
	started  time.Time
}

// New builds the routes.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{o: o, mux: http.NewServeMux(), ids: api.NewRequestIDs(), started: time.Now()}
	chat := o.Chat
	if o.Authenticate != nil {
		chat = s.authenticated(chat)
	}
	s.chat = chat
	s.handle("/v1/chat/completions", http.MethodPost, chat)
	s.handle("/chat/completions", http.MethodPost, chat) // clients configured without /v1
	for _, rt := range o.Routes {
		s.handle(rt.Path, rt.Method, s.authenticated(rt.Handler))
	}
	s.handle("/v1/models", http.MethodGet, s.authenticated(http.HandlerFunc(s.models)))
	s.handle("/health", http.MethodGet, http.HandlerFunc(s.health))
	s.handle("/health/live", http.MethodGet, http.HandlerFunc(s.live))
	s.handle("/health/ready", http.MethodGet, http.HandlerFunc(s.ready))
	if o.Metrics != nil {
		s.handle("/metrics", http.MethodGet, s.admin(o.Metrics))
	}
	if o.Stats != nil {
		s.handle("/admin/stats", http.MethodGet, s.admin(http.HandlerFunc(s.stats)))
	}
	if o.Cache != nil {
		s.handle("/admin/cache", http.MethodDelete, s.admin(http.HandlerFunc(s.clearCache)))
		s.handle("/admin/cache/{key}", http.MethodDelete, s.admin(http.HandlerFunc(s.deleteCacheKey)))
	}
	for pattern, h := range o.Admin {
		s.mux.Handle(pattern, s.admin(h))
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, api.NotFound("unknown_url", "unknown route %s %s", r.Method, r.URL.Path))
	})
	return s
}

// SetDraining makes /health/ready answer 503 while the server shuts down.
func (s *Server) SetDraining() { s.draining.Store(true) }

// Security headers every answer carries (404, 405 and admin errors too);
// shared slices: no allocation per request.
var (
	hdrNosniff = []string{"nosniff"}
	hdrDeny    = []string{"DENY"}
)

// SetSecurityHeaders sets the headers every answer carries, on every
// listener.
func SetSecurityHeaders(h http.Header) {
	h["X-Content-Type-Options"] = hdrNosniff
	h["X-Frame-Options"] = hdrDeny
}

// WithSecurityHeaders wraps a handler served outside Server (the metrics
// listener) so that its answers carry the same security headers.
func WithSecurityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		SetSecurityHeaders(w.Header())
		next.ServeHTTP(w, r)
	})
}

// ServeHTTP recovers panics into a 500 envelope.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	SetSecurityHeaders(w.Header())
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.o.Logger.Error("panic serving request", "path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			api.WriteError(w, &api.Error{Status: http.StatusInternalServerError, Type: api.TypeServer, Message: "internal error"})
		}
	}()
	// The one hot route skips the mux's pattern matching (about half a
	// microsecond a request); everything else, including other methods on
	// this path, goes through the mux. The gateway sets X-Request-Id on the
	// hot route itself (authentication failures before it get theirs in
	// authenticated); every other answer, the mux's own redirects and 405s
	// included, gets it here.
	if r.Method == http.MethodPost && r.URL.Path == "/v1/chat/completions" {
		s.chat.ServeHTTP(w, r)
		return
	}
	s.setRequestID(w, r)
	s.mux.ServeHTTP(w, r)
}

// setRequestID answers with the client's X-Request-Id when it is valid, a
// new id otherwise. A new id is also put on the request, so that the
// gateway behind /chat/completions (which sets the header itself) answers
// and logs the same one.
func (s *Server) setRequestID(w http.ResponseWriter, r *http.Request) {
	var id string
	if v := r.Header["X-Request-Id"]; len(v) > 0 {
		id = v[0]
	}
	if !api.ValidRequestID(id) {
		id = s.ids.Next()
		r.Header["X-Request-Id"] = []string{id}
	}
	w.Header()["X-Request-Id"] = []string{id}
}

// handle registers h for path and answers other methods with a 405 envelope.
func (s *Server) handle(path, method string, h http.Handler) {
	s.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
			w.Header().Set("Allow", method)
			writeError(w, r, &api.Error{Status: http.StatusMethodNotAllowed, Type: api.TypeInvalidRequest, Code: "method_not_allowed",
				Message: fmt.Sprintf("method %s is not allowed on %s; use %s", r.Method, r.URL.Path, method)})
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (s *Server) authenticated(h http.Handler) http.Handler {
	if s.o.Authenticate == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, err := s.o.Authenticate(r)
		if err != nil {
			if _, ok := w.Header()["X-Request-Id"]; !ok { // refused before the gateway
				s.setRequestID(w, r)
			}
			writeError(w, r, err)
			return
		}
		if ctx != r.Context() {
			r = r.WithContext(ctx)
		}
		h.ServeHTTP(w, r)
	})
}

// anthropicRequest reports a request of Anthropic's API: a /v1/messages
// path, or the anthropic-version header its SDKs and Claude Code send.
func anthropicRequest(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, "/v1/messages") || r.Header["Anthropic-Version"] != nil
}

// writeError writes err in the envelope of the API the request speaks.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	if anthropicRequest(r) {
		messages.WriteError(w, err)
		return
	}
	api.WriteError(w, err)
}

func (s *Server) admin(h http.Handler) http.Handler {
	if s.o.AuthenticateAdmin == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.o.AuthenticateAdmin(r); err != nil {
			api.WriteError(w, err)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	var data []api.Model
	if s.o.Models != nil {
		data = s.o.Models()
	}
	if data == nil {
		data = []api.Model{}
	}
	if r.Header["Anthropic-Version"] != nil {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(append(messages.AppendModelList(nil, data), '\n'))
		return
	}
	writeJSON(w, http.StatusOK, api.ModelList{Object: "list", Data: data})
}

type healthBody struct {
	Status     string               `json:"status"`
	Version    string               `json:"version"`
	UptimeS    float64              `json:"uptime_seconds"`
	Components map[string]Component `json:"components"`
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	comps := map[string]Component{}
	if s.o.Health != nil {
		comps = s.o.Health(r.Context())
	}
	status := "healthy"
	for _, c := range comps {
		switch c.Status {
		case "unhealthy":
			status = "unhealthy"
		case "degraded":
			if status == "healthy" {
				status = "degraded"
			}
		}
	}
	if s.draining.Load() {
		status = "unhealthy"
		comps["server"] = Component{Status: "unhealthy", Detail: "shutting down"}
	}
	code := http.StatusOK
	if status == "unhealthy" {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, healthBody{Status: status, Version: s.o.Version, UptimeS: time.Since(s.started).Seconds(), Components: comps})
}

func (s *Server) live(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "alive"})
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	switch {
	case s.draining.Load():
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
	case s.o.Ready != nil && !s.o.Ready():
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "detail": "no provider is configured"})
	default:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	}
}

func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.o.Stats())
}

func (s *Server) clearCache(w http.ResponseWriter, r *http.Request) {
	if err := s.o.Cache.Clear(r.Context()); err != nil {
		api.WriteError(w, &api.Error{Status: http.StatusBadGateway, Type: api.TypeServer, Code: "cache_clear_failed",
			Message: "L1 cleared; L2 could not be cleared: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"cleared": true})
}

func (s *Server) deleteCacheKey(w http.ResponseWriter, r *http.Request) {
	k, err := cache.ParseKey(r.PathValue("key"))
	if err != nil {
		api.WriteError(w, api.InvalidRequest("key", "%q is not a cache key (32 hex digits, as in X-Cache-Key)", r.PathValue("key")))
		return
	}
	if err := s.o.Cache.Delete(r.Context(), k); err != nil {
		api.WriteError(w, &api.Error{Status: http.StatusBadGateway, Type: api.TypeServer, Code: "cache_delete_failed",
			Message: "L1 entry deleted; L2 could not be reached: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"deleted": k.String()})
}
