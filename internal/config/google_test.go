package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGeminiAndVertexProvidersTakeTheirDefaultsAndGoogleVariables(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yml")
	yml := "providers:\n  - name: vertex\n  - name: vx\n    type: vertex\n    project: own\n    location: global\n    access_token: ya29.static\n"
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, env(map[string]string{"GEMINI_API_KEY": "AIza-test", "GOOGLE_CLOUD_PROJECT": "proj", "GOOGLE_CLOUD_LOCATION": "europe-west4"}))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Provider{}
	for _, p := range cfg.Providers {
		byName[p.Name] = p
	}
	if p := byName["gemini"]; p.Type != "gemini" || p.APIKey != "AIza-test" || p.BaseURL != "https://generativelanguage.googleapis.com" {
		t.Fatalf("gemini from GEMINI_API_KEY: %+v", p)
	}
	if p := byName["vertex"]; p.Type != "vertex" || p.Project != "proj" || p.Location != "europe-west4" ||
		p.BaseURL != "https://europe-west4-aiplatform.googleapis.com" {
		t.Fatalf("vertex from the Google variables: %+v", p)
	}
	if p := byName["vx"]; p.Project != "own" || p.Location != "global" || p.BaseURL != "https://aiplatform.googleapis.com" || p.AccessToken != "ya29.static" {
		t.Fatalf("vertex with its own settings: %+v", p)
	}
	if cfg, _ := Load("", env(map[string]string{"GOOGLE_CLOUD_PROJECT": "proj"})); len(cfg.Providers) != 0 {
		t.Fatalf("GOOGLE_CLOUD_PROJECT alone implied a provider: %+v", cfg.Providers)
	}
}

func TestGeminiAndVertexProvidersMissingSettingsAreErrorsNamingTheKey(t *testing.T) {
	for _, tc := range []struct {
		p    Provider
		want string
	}{
		{Provider{Name: "g", Type: "gemini"}, "providers[0].api_key: required"},
		{Provider{Name: "v", Type: "vertex", Location: "us-central1"}, "providers[0].project: required"},
		{Provider{Name: "v", Type: "vertex", Project: "p"}, "providers[0].location: required"},
		{Provider{Name: "v", Type: "vertex", Project: "p", Location: "evil.com/x"}, "providers[0].location: \"evil.com/x\" is not a Google Cloud location"},
		{Provider{Name: "x", Type: "palm"}, "is not openai, anthropic, azure, bedrock, gemini, vertex or a preset"},
	} {
		cfg := Default()
		cfg.Providers = []Provider{tc.p}
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.p, err, tc.want)
		}
	}
	cfg := Default()
	cfg.Providers = []Provider{{Name: "g", Type: "gemini", BaseURL: "http://127.0.0.1:9"}}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("a mirror needs no key: %v", err)
	}
}
