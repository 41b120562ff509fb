package route

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/edge-agent/edge-agent/internal/api"
)

// namePrefixes route a bare model name to the provider that serves it.
var namePrefixes = [...]struct{ prefix, provider string }{
	{"gpt-", "openai"},
	{"chatgpt-", "openai"},
	{"text-embedding-", "openai"},
	{"o1", "openai"},
	{"o3", "openai"},
	{"o4", "openai"},
	{"claude-", "anthropic"},
}

// providerEnv names the environment variable that configures a provider type.
func providerEnv(typ string) string {
	switch typ {
	case "openai":
		return "OPENAI_API_KEY"
	case "anthropic":
		return "ANTHROPIC_API_KEY"
	}
	return ""
}

// Resolve maps a client's model name to a route, in this order:
//
//  1. the model table: group names, group aliases and Config.Aliases;
//  2. "name/model" where name is a configured provider; a known provider
//     type (openai, anthropic) that is not configured is a 400
//     provider_not_configured, anything else ("meta-llama/Llama-3") goes on;
//  3. a model a provider advertises through Models() []string;
//  4. name rules: gpt-*, chatgpt-*, text-embedding-*, o1*, o3*, o4* go to the
//     provider named "openai", claude-* to "anthropic" (400
//     provider_not_configured when it is absent).
//
// Anything else is a 404 model_not_found. A model is never sent to a
// provider it was not routed to. Errors are *api.Error.
func (r *Router) Resolve(model string) (Target, error) {
	if model == "" {
		return Target{}, api.InvalidRequest("model", "model must not be empty")
	}
	if t, ok := r.table[model]; ok {
		return t, nil
	}
	if i := strings.IndexByte(model, '/'); i > 0 {
		name, upstream := model[:i], model[i+1:]
		if g, ok := r.direct[name]; ok {
			if upstream == "" {
				return Target{}, api.InvalidRequest("model", "model %q names provider %q but no model after the '/'", model, name)
			}
			return Target{Provider: name, Model: upstream, g: g}, nil
		}
		if env := providerEnv(name); env != "" {
			return Target{}, notConfigured(model, name, env)
		}
	}
	if t, ok := r.advertised[model]; ok {
		return t, nil
	}
	for _, p := range namePrefixes {
		if strings.HasPrefix(model, p.prefix) {
			if g, ok := r.direct[p.provider]; ok {
				return Target{Provider: p.provider, Model: model, g: g}, nil
			}
			return Target{}, notConfigured(model, p.provider, providerEnv(p.provider))
		}
	}
	return Target{}, r.notFound(model)
}

func notConfigured(model, prov, env string) *api.Error {
	return &api.Error{Status: http.StatusBadRequest, Type: api.TypeInvalidRequest, Param: "model", Code: "provider_not_configured",
		Message: fmt.Sprintf("model %q is served by provider %q, which is not configured: set %s or add a provider named %q",
			model, prov, env, prov)}
}

func (r *Router) notFound(model string) *api.Error {
	provs := r.provList
	if provs == "" {
		provs = "none"
	}
	return api.NotFound("model_not_found",
		"model %q is not known: use \"provider/model\" with a configured provider (%s), a model from GET /v1/models, "+
			"or a name the providers serve (gpt-*, o1*, o3*, o4*, chatgpt-* on openai; claude-* on anthropic)", model, provs)
}

// group returns the route of t, looking it up when t was built by hand.
func (r *Router) group(t Target) (*group, error) {
	if t.g != nil {
		return t.g, nil
	}
	if t.Group != "" {
		if g, ok := r.groups[t.Group]; ok {
			return g, nil
		}
		return nil, r.notFound(t.Group)
	}
	if g, ok := r.direct[t.Provider]; ok && t.Model != "" {
		return g, nil
	}
	return nil, r.notFound(t.String())
}
