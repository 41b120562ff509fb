package config

import (
	"os"
	"slices"
	"strings"
	"testing"
)

func TestAzureProviderFromFileWithDefaults(t *testing.T) {
	var cfg Config = Default()
	err := Parse(&cfg, []byte(`
providers:
  - name: azure
    type: azure
    base_url: https://res.openai.azure.com
    api_key: ${AZURE_OPENAI_API_KEY}
  - name: azure-v1
    type: azure
    base_url: https://other.openai.azure.com/openai/v1
    api_version: v1
`), env(map[string]string{"AZURE_OPENAI_API_KEY": "azure-key"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if p := cfg.Providers[0]; p.APIKey != "azure-key" || p.APIVersion != "2024-10-21" || p.Type != "azure" {
		t.Fatalf("azure: %+v", p)
	}
	if p := cfg.Providers[1]; p.APIVersion != "v1" || p.APIKey != "" {
		t.Fatalf("azure-v1: %+v", p)
	}
}

func TestAzureProviderFromEnvironment(t *testing.T) {
	cfg, err := Load("", env(map[string]string{"AZURE_OPENAI_API_KEY": "azure-key", "AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com",
		"AZURE_OPENAI_API_VERSION": "2025-04-01-preview"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Providers) != 1 {
		t.Fatalf("providers %+v", cfg.Providers)
	}
	if p := cfg.Providers[0]; p.Name != "azure" || p.Type != "azure" || p.APIKey != "azure-key" ||
		p.BaseURL != "https://res.openai.azure.com" || p.APIVersion != "2025-04-01-preview" {
		t.Fatalf("azure: %+v", p)
	}
	// The endpoint alone: Entra ID, no key.
	cfg, err = Load("", env(map[string]string{"AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com"}))
	if err != nil {
		t.Fatal(err)
	}
	if p := cfg.Providers[0]; p.APIKey != "" || p.APIVersion != "2024-10-21" {
		t.Fatalf("azure with Entra ID: %+v", p)
	}
	// The key alone names no resource.
	if _, err := Load("", env(map[string]string{"AZURE_OPENAI_API_KEY": "k"})); err == nil || !strings.Contains(err.Error(), "AZURE_OPENAI_ENDPOINT") {
		t.Fatalf("key without endpoint: %v", err)
	}
}

func TestAzureRefusesSurfaces(t *testing.T) {
	cfg := Default()
	cfg.Providers = []Provider{{Name: "azure", Type: "azure", BaseURL: "https://r", Surfaces: []string{"completions"}}}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "providers[0].surfaces") {
		t.Fatalf("err %v", err)
	}
}

func TestPresetsResolveByTypeOrName(t *testing.T) {
	want := map[string]struct {
		url, keyEnv string
		surfaces    []string
	}{
		"mistral":    {"https://api.mistral.ai/v1", "MISTRAL_API_KEY", []string{"embeddings"}},
		"groq":       {"https://api.groq.com/openai/v1", "GROQ_API_KEY", []string{"responses"}},
		"deepseek":   {"https://api.deepseek.com/v1", "DEEPSEEK_API_KEY", []string{}},
		"together":   {"https://api.together.xyz/v1", "TOGETHER_API_KEY", []string{"embeddings", "completions"}},
		"fireworks":  {"https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY", []string{"embeddings", "completions"}},
		"openrouter": {"https://openrouter.ai/api/v1", "OPENROUTER_API_KEY", []string{"completions"}},
		"xai":        {"https://api.x.ai/v1", "XAI_API_KEY", []string{"responses"}},
		"perplexity": {"https://api.perplexity.ai", "PERPLEXITY_API_KEY", []string{}},
		"cerebras":   {"https://api.cerebras.ai/v1", "CEREBRAS_API_KEY", []string{"completions"}},
		"vllm":       {"http://localhost:8000/v1", "VLLM_API_KEY", []string{"responses", "embeddings", "completions"}},
		"ollama":     {"http://localhost:11434/v1", "OLLAMA_API_KEY", []string{"embeddings", "completions"}},
		"lmstudio":   {"http://localhost:1234/v1", "LMSTUDIO_API_KEY", []string{"embeddings", "completions"}},
	}
	if len(Presets()) != len(want) {
		t.Fatalf("%d presets, the test knows %d", len(Presets()), len(want))
	}
	for name, w := range want {
		t.Run(name, func(t *testing.T) {
			for _, p := range []Provider{{Name: name}, {Name: "my-" + name, Type: name}} {
				cfg := Default()
				cfg.Providers = []Provider{p}
				if err := ApplyEnv(&cfg, env(map[string]string{w.keyEnv: "key-" + name})); err != nil {
					t.Fatal(err)
				}
				if err := cfg.Validate(); err != nil {
					t.Fatal(err)
				}
				if len(cfg.Providers) != 1 {
					t.Fatalf("providers %+v: the key's variable added another", cfg.Providers)
				}
				got := cfg.Providers[0]
				if got.BaseURL != w.url || got.APIKey != "key-"+name || got.Type != name || !slices.Equal(got.Surfaces, w.surfaces) {
					t.Fatalf("%+v resolved to %+v", p, got)
				}
			}
		})
	}
}

func TestPresetSettingsWinOverItsDefaults(t *testing.T) {
	cfg := Default()
	cfg.Providers = []Provider{{Name: "groq", BaseURL: "https://mirror.example/v1", APIKey: "own", Surfaces: []string{"embeddings"}}}
	if err := ApplyEnv(&cfg, env(map[string]string{"GROQ_API_KEY": "from-env"})); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if p := cfg.Providers[0]; p.BaseURL != "https://mirror.example/v1" || p.APIKey != "own" || !slices.Equal(p.Surfaces, []string{"embeddings"}) {
		t.Fatalf("%+v", p)
	}
}

func TestACloudKeyVariableAloneEnablesItsPreset(t *testing.T) {
	cfg, err := Load("", env(map[string]string{"GROQ_API_KEY": "gsk-1", "DEEPSEEK_API_KEY": "sk-ds", "VLLM_API_KEY": "local"}))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range cfg.Providers {
		names = append(names, p.Name)
	}
	if !slices.Equal(names, []string{"groq", "deepseek"}) {
		t.Fatalf("providers %v, want groq and deepseek (a local server's key alone names no server)", names)
	}
	if p := cfg.Providers[0]; p.BaseURL != "https://api.groq.com/openai/v1" || p.APIKey != "gsk-1" {
		t.Fatalf("groq %+v", p)
	}
}

func TestAProviderNamedLikeAPresetWithTypeOpenAIIsNotThePreset(t *testing.T) {
	cfg := Default()
	cfg.Providers = []Provider{{Name: "groq", Type: "openai", BaseURL: "https://own.example/v1"}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if p := cfg.Providers[0]; p.Type != "openai" || !slices.Equal(p.Surfaces, []string{"embeddings", "completions"}) {
		t.Fatalf("%+v", p)
	}
}

// TestREADMEProviderExamplesAreValid keeps the README's Azure and preset
// examples true: each must parse strictly and validate.
func TestREADMEProviderExamplesAreValid(t *testing.T) {
	doc, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, heading := range []string{"### Azure OpenAI\n", "### Provider presets\n"} {
		_, rest, ok := strings.Cut(string(doc), heading)
		if !ok {
			t.Fatalf("README has no %q section", strings.TrimSpace(heading))
		}
		_, rest, ok = strings.Cut(rest, "```yaml\n")
		if !ok {
			t.Fatalf("no yaml block under %q", strings.TrimSpace(heading))
		}
		block, _, _ := strings.Cut(rest, "```")
		cfg := Default()
		if err := Parse(&cfg, []byte(block), func(k string) string { return "value-of-" + k }); err != nil {
			t.Fatalf("%s example does not parse: %v", strings.TrimSpace(heading), err)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("%s example does not validate: %v", strings.TrimSpace(heading), err)
		}
	}
}
