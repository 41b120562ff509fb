package app

import (
	"net/http"

	"github.com/edge-agent/edge-agent/internal/config"
	"github.com/edge-agent/edge-agent/internal/gateway"
	"github.com/edge-agent/edge-agent/internal/limit"
	"github.com/edge-agent/edge-agent/internal/server"
	"github.com/edge-agent/edge-agent/internal/surface"
	"github.com/edge-agent/edge-agent/internal/surface/responses"
)

// newResponsesStore is the Responses API's store: in Redis when the cache
// has one (every instance sees every response), in memory otherwise; nil
// when responses.store is false. close releases it.
func newResponsesStore(cfg config.Config) (store responses.Store, close func(), err error) {
	r := cfg.Responses
	if !r.Store {
		return nil, func() {}, nil
	}
	if cfg.Cache.RedisURL != "" {
		rs, err := responses.NewRedisStore(cfg.Cache.RedisURL, r.StoreTTL.D(), int(r.StoreMaxEntryBytes))
		if err != nil {
			return nil, nil, err
		}
		return rs, rs.Close, nil
	}
	return responses.NewMemoryStore(r.StoreTTL.D(), int(r.StoreMaxBytes), int(r.StoreMaxEntryBytes)), func() {}, nil
}

// responsesRoutes are POST /v1/responses through the pipeline and the
// stored-response routes, which see the caller's responses only.
func responsesRoutes(gw *gateway.Gateway, g *guard, store responses.Store) []server.Route {
	rt := responses.Routes{Store: store, Scope: g.scope}
	return []server.Route{
		{Method: http.MethodPost, Path: "/v1/responses", Handler: gw.Handler(&responses.Surface{Store: store})},
		{Method: http.MethodGet, Path: "/v1/responses/{id}", Handler: http.HandlerFunc(rt.Retrieve)},
		{Method: http.MethodDelete, Path: "/v1/responses/{id}", Handler: http.HandlerFunc(rt.Delete)},
		{Method: http.MethodGet, Path: "/v1/responses/{id}/input_items", Handler: http.HandlerFunc(rt.InputItems)},
	}
}

// scope is the caller as the pipeline's admission names it (Admit): the
// authenticated key, or the anonymous principal of an open gateway.
func (g *guard) scope(r *http.Request) surface.Scope {
	if g == nil {
		return surface.Scope{}
	}
	p, _ := r.Context().Value(principalKey{}).(*limit.Principal)
	if p == nil {
		p = g.auth.Anonymous()
	}
	if p == nil {
		return surface.Scope{}
	}
	return surface.Scope{Principal: p.Name, Namespace: p.CacheNamespace}
}
