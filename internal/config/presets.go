package config

import "strings"

// Preset is an OpenAI-compatible cloud or local server known by name: a
// provider whose type (or, without a type, whose name) is the preset's
// gets its base URL, its key from KeyEnv and the surfaces it serves
// natively, unless the provider sets them.
type Preset struct {
	Name    string
	BaseURL string
	// KeyEnv is the environment variable of the key, sent as a Bearer
	// token. For a cloud, setting it alone adds the provider.
	KeyEnv string
	// Surfaces are the APIs beside chat the server serves itself; the
	// others are translated through chat.
	Surfaces []string
	// Local servers need no key.
	Local bool
}

// Presets lists the known OpenAI-compatible servers (README, "Provider
// presets"). A new slice each call: callers may not share it.
func Presets() []Preset {
	return []Preset{
		{Name: "mistral", BaseURL: "https://api.mistral.ai/v1", KeyEnv: "MISTRAL_API_KEY", Surfaces: []string{"embeddings"}},
		{Name: "groq", BaseURL: "https://api.groq.com/openai/v1", KeyEnv: "GROQ_API_KEY", Surfaces: []string{"responses"}},
		{Name: "deepseek", BaseURL: "https://api.deepseek.com/v1", KeyEnv: "DEEPSEEK_API_KEY", Surfaces: []string{}},
		{Name: "together", BaseURL: "https://api.together.xyz/v1", KeyEnv: "TOGETHER_API_KEY", Surfaces: []string{"embeddings", "completions"}},
		{Name: "fireworks", BaseURL: "https://api.fireworks.ai/inference/v1", KeyEnv: "FIREWORKS_API_KEY", Surfaces: []string{"embeddings", "completions"}},
		{Name: "openrouter", BaseURL: "https://openrouter.ai/api/v1", KeyEnv: "OPENROUTER_API_KEY", Surfaces: []string{"completions"}},
		{Name: "xai", BaseURL: "https://api.x.ai/v1", KeyEnv: "XAI_API_KEY", Surfaces: []string{"responses"}},
		{Name: "perplexity", BaseURL: "https://api.perplexity.ai", KeyEnv: "PERPLEXITY_API_KEY", Surfaces: []string{}},
		{Name: "cerebras", BaseURL: "https://api.cerebras.ai/v1", KeyEnv: "CEREBRAS_API_KEY", Surfaces: []string{"completions"}},
		{Name: "vllm", BaseURL: "http://localhost:8000/v1", KeyEnv: "VLLM_API_KEY", Surfaces: []string{"responses", "embeddings", "completions"}, Local: true},
		{Name: "ollama", BaseURL: "http://localhost:11434/v1", KeyEnv: "OLLAMA_API_KEY", Surfaces: []string{"embeddings", "completions"}, Local: true},
		{Name: "lmstudio", BaseURL: "http://localhost:1234/v1", KeyEnv: "LMSTUDIO_API_KEY", Surfaces: []string{"embeddings", "completions"}, Local: true},
	}
}

// PresetNamed is the preset called name.
func PresetNamed(name string) (Preset, bool) {
	for _, p := range Presets() {
		if p.Name == name {
			return p, true
		}
	}
	return Preset{}, false
}

// presetOf is the preset a provider uses: its type's, or its name's when
// it has no type.
func presetOf(p *Provider) (Preset, bool) {
	if p.Type != "" {
		return PresetNamed(p.Type)
	}
	return PresetNamed(p.Name)
}

// applyPresetEnv fills the key of every preset provider that has none from
// its preset's variable, and adds a provider named after each cloud preset
// whose variable is set and that no provider uses yet.
func applyPresetEnv(cfg *Config, getenv func(string) string) {
	for _, ps := range Presets() {
		key := getenv(ps.KeyEnv)
		if key == "" {
			continue
		}
		used := false
		for i := range cfg.Providers {
			p := &cfg.Providers[i]
			if pp, ok := presetOf(p); ok && pp.Name == ps.Name {
				used = true
				if p.APIKey == "" {
					p.APIKey = key
				}
			}
		}
		if !used && !ps.Local {
			cfg.Providers = append(cfg.Providers, Provider{Name: ps.Name, Type: ps.Name, APIKey: key})
		}
	}
}

// resolvePreset gives p its preset's defaults; Validate then checks it as
// the OpenAI-compatible provider it is.
func resolvePreset(p *Provider, ps Preset) {
	p.Type = ps.Name
	if p.BaseURL == "" {
		p.BaseURL = ps.BaseURL
	}
	if p.Surfaces == nil {
		p.Surfaces = append([]string{}, ps.Surfaces...)
	}
}

// presetNames lists the presets for error messages.
func presetNames() string {
	var b strings.Builder
	for i, p := range Presets() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(p.Name)
	}
	return b.String()
}
