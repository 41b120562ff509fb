package route

import (
	"slices"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/internal/provider"
)

func resolveRouter(t *testing.T, provs ...string) *Router {
	t.Helper()
	ps := map[string]provider.Provider{}
	for _, n := range provs {
		f := newFake(n, nil)
		if n == "local" {
			f.models = []string{"llama3", "meta-llama/Llama-3.1-8B"}
		}
		ps[n] = f
	}
	var groups []ModelGroup
	if p, ok := ps["local"]; ok {
		groups = append(groups, ModelGroup{Name: "meta-llama/Llama-3", Aliases: []string{"llama"},
			Deployments: []Deployment{{Provider: p, Model: "llama3:8b"}}})
	}
	aliases := map[string]string{}
	if _, ok := ps["openai"]; ok {
		aliases["fast"] = "gpt-4o-mini"
	}
	if _, ok := ps["anthropic"]; ok {
		aliases["smart"] = "anthropic/claude-3-5-sonnet-20241022"
	}
	if _, ok := ps["local"]; ok {
		aliases["l"] = "llama"
	}
	return mustRouter(t, Config{Providers: ps, Groups: groups, Aliases: aliases})
}

func TestResolveRoutesByProviderTableAliasAndName(t *testing.T) {
	r := resolveRouter(t, "openai", "anthropic", "local")
	cases := []struct {
		model string
		want  Target
	}{
		{"anthropic/claude-3-5-sonnet-20241022", Target{Provider: "anthropic", Model: "claude-3-5-sonnet-20241022"}},
		{"local/llama3", Target{Provider: "local", Model: "llama3"}},
		{"openai/gpt-4o", Target{Provider: "openai", Model: "gpt-4o"}},
		{"meta-llama/Llama-3", Target{Model: "meta-llama/Llama-3", Group: "meta-llama/Llama-3"}},
		{"llama", Target{Model: "meta-llama/Llama-3", Group: "meta-llama/Llama-3"}},
		{"l", Target{Model: "meta-llama/Llama-3", Group: "meta-llama/Llama-3"}},
		{"meta-llama/Llama-3.1-8B", Target{Provider: "local", Model: "meta-llama/Llama-3.1-8B"}},
		{"llama3", Target{Provider: "local", Model: "llama3"}},
		{"fast", Target{Provider: "openai", Model: "gpt-4o-mini"}},
		{"smart", Target{Provider: "anthropic", Model: "claude-3-5-sonnet-20241022"}},
		{"gpt-4o", Target{Provider: "openai", Model: "gpt-4o"}},
		{"chatgpt-4o-latest", Target{Provider: "openai", Model: "chatgpt-4o-latest"}},
		{"o1-mini", Target{Provider: "openai", Model: "o1-mini"}},
		{"o3", Target{Provider: "openai", Model: "o3"}},
		{"o4-mini", Target{Provider: "openai", Model: "o4-mini"}},
		{"text-embedding-3-small", Target{Provider: "openai", Model: "text-embedding-3-small"}},
		{"claude-3-5-haiku-latest", Target{Provider: "anthropic", Model: "claude-3-5-haiku-latest"}},
	}
	for _, c := range cases {
		t.Run(c.model, func(t *testing.T) {
			got := mustResolve(t, r, c.model)
			got.g = nil
			if got != c.want {
				t.Fatalf("Resolve(%q) = %+v, want %+v", c.model, got, c.want)
			}
		})
	}
}

func TestResolveRefusesUnknownModelsAndUnconfiguredProviders(t *testing.T) {
	r := resolveRouter(t, "local")
	cases := []struct {
		model, code, mention string
		status               int
	}{
		{"gpt-4o", "provider_not_configured", "OPENAI_API_KEY", 400},
		{"claude-3-opus", "provider_not_configured", "ANTHROPIC_API_KEY", 400},
		{"anthropic/claude-3-opus", "provider_not_configured", "ANTHROPIC_API_KEY", 400},
		{"openai/gpt-4o", "provider_not_configured", "OPENAI_API_KEY", 400},
		{"mistral-large", "model_not_found", "provider/model", 404},
		{"acme/some-model", "model_not_found", "local", 404},
		{"", "", "empty", 400},
		{"local/", "", "no model", 400},
	}
	for _, c := range cases {
		t.Run(c.model, func(t *testing.T) {
			_, err := r.Resolve(c.model)
			if err == nil {
				t.Fatalf("Resolve(%q) succeeded", c.model)
			}
			e := apiErr(t, err)
			if e.Status != c.status || e.Code != c.code || !strings.Contains(e.Message, c.mention) {
				t.Fatalf("Resolve(%q) = %d %q %q, want %d %q mentioning %q", c.model, e.Status, e.Code, e.Message, c.status, c.code, c.mention)
			}
		})
	}
}

func TestNewRejectsBadTables(t *testing.T) {
	p := newFake("openai", nil)
	provs := map[string]provider.Provider{"openai": p}
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"unknown strategy", Config{Providers: provs, Groups: []ModelGroup{{Name: "m", Strategy: "random",
			Deployments: []Deployment{{Provider: p, Model: "x"}}}}}, "unknown strategy"},
		{"no deployments", Config{Providers: provs, Groups: []ModelGroup{{Name: "m"}}}, "no deployments"},
		{"duplicate deployment", Config{Providers: provs, Groups: []ModelGroup{{Name: "m",
			Deployments: []Deployment{{Provider: p, Model: "x"}, {Provider: p, Model: "x"}}}}}, "used twice"},
		{"unresolvable fallback", Config{Providers: provs, Groups: []ModelGroup{{Name: "m", Fallbacks: []string{"claude-3"},
			Deployments: []Deployment{{Provider: p, Model: "x"}}}}}, "fallback"},
		{"alias cycle", Config{Providers: provs, Aliases: map[string]string{"a": "b", "b": "a"}}, "cycle"},
		{"alias to nothing", Config{Providers: provs, Aliases: map[string]string{"a": "nothing"}}, "not known"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(c.cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New: %v, want an error mentioning %q", err, c.want)
			}
		})
	}
}

func TestModelsListsTableAliasesAndAdvertisedModels(t *testing.T) {
	r := resolveRouter(t, "openai", "local")
	var ids []string
	for _, m := range r.Models() {
		if m.Object != "model" || m.OwnedBy == "" {
			t.Errorf("model %+v lacks object or owner", m)
		}
		ids = append(ids, m.ID)
	}
	for _, want := range []string{"meta-llama/Llama-3", "llama", "fast", "llama3", "meta-llama/Llama-3.1-8B"} {
		if !slices.Contains(ids, want) {
			t.Errorf("Models() = %v, missing %q", ids, want)
		}
	}
	if n := len(ids); n != len(slices.Compact(slices.Sorted(slices.Values(ids)))) {
		t.Errorf("Models() = %v lists a model twice", ids)
	}
}
