package app_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/edge-agent/edge-agent/internal/config"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
)

// TestDemoListsTheModelsTheREADMEUsesAndEachRoutes checks GET /v1/models in
// the demo configuration: it lists the gpt-* and claude-* names of the
// README's examples besides the sim-* ones, and every listed id is served,
// by the provider the list names as its owner.
func TestDemoListsTheModelsTheREADMEUsesAndEachRoutes(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, simConfig(s))
	resp, err := http.Get(g.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Data []struct {
			ID      string `json:"id"`
			OwnedBy string `json:"owned_by"`
		} `json:"data"`
	}
	err = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	owner := map[string]string{}
	for _, m := range list.Data {
		owner[m.ID] = m.OwnedBy
	}
	for id, want := range map[string]string{
		"gpt-4": "openai", "gpt-4o-mini": "openai", "gpt-4o": "openai",
		"claude-3-5-sonnet-20241022": "anthropic", "claude-sonnet-4-5": "anthropic",
		"sim-small": "sim", "sim-large": "sim",
		"gemini-2.5-flash": "gemini", "gemini-2.5-pro": "gemini",
	} {
		if owner[id] != want {
			t.Errorf("/v1/models: %q owned by %q, want listed as %q's (list %v)", id, owner[id], want, owner)
		}
	}
	for id, own := range owner {
		resp, b := post(t, g.URL, chat(id, "demo model "+id))
		if resp.StatusCode != 200 || resp.Header.Get("X-Edge-Provider") != own {
			t.Errorf("listed model %q: %d from %q, want 200 from %q: %s", id, resp.StatusCode, resp.Header.Get("X-Edge-Provider"), own, b)
		}
	}
}

// TestDemoServesEveryProviderFormat: the demo's Azure and Bedrock providers
// reach the simulated provider's Azure paths and its SigV4-checking Bedrock
// endpoint (the demo's credentials are the simulated endpoint's).
func TestDemoServesEveryProviderFormat(t *testing.T) {
	if config.DemoBedrockAccessKeyID != simulated.BedrockAccessKeyID || config.DemoBedrockSecretAccessKey != simulated.BedrockSecretAccessKey {
		t.Fatal("the demo's Bedrock credentials are not the simulated endpoint's")
	}
	s := startSim(t, simulated.Options{})
	g := startGateway(t, simConfig(s))
	for _, model := range []string{"azure/gpt-4o", "bedrock/anthropic.claude-3-5-sonnet-20241022-v2:0", "gemini/gemini-2.5-flash"} {
		resp, b := post(t, g.URL, chat(model, "demo "+model))
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d %s", model, resp.StatusCode, b)
		}
	}
}
