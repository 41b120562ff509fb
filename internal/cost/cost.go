// Package cost prices LLM usage with a built-in, overridable table of
// per-million-token prices for OpenAI, Anthropic and Google Gemini models.
package cost

import (
	_ "embed"
	"fmt"
	"maps"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

//go:embed prices.yaml
var pricesYAML []byte

// Price is what a model costs, in USD per million tokens.
//
// CachedInputPerM is the price of a prompt token read from the provider's
// prompt cache (OpenAI "cached input", Anthropic "cache read"); zero means
// the model has no discounted price and cache reads cost InputPerM.
// CacheWrite5mPerM and CacheWrite1hPerM are the prices of a prompt token
// written to Anthropic's 5-minute and 1-hour prompt cache; zero means the
// provider's usual multiple of the input price (1.25x and 2x).
type Price struct {
	InputPerM        float64
	OutputPerM       float64
	CachedInputPerM  float64
	CacheWrite5mPerM float64
	CacheWrite1hPerM float64
	// MaxOutputTokens is the model's output limit, the most completion
	// tokens one answer can have; 0: unknown.
	MaxOutputTokens int64
}

// Cache-write prices as multiples of the input price, used when the table
// gives no explicit figure (Anthropic's published rule).
const (
	CacheWrite5mFactor = 1.25
	CacheWrite1hFactor = 2
)

// Usage is what a provider reported for one request, by token kind. The two
// providers count prompt-cache tokens differently, and each kind is priced
// once:
//
//   - OpenAI: CachedTokens (prompt_tokens_details.cached_tokens) are
//     INCLUDED in PromptTokens; they are billed at the cached-input price
//     and the rest of PromptTokens at the input price.
//   - Anthropic: CacheReadTokens (cache_read_input_tokens) and the cache
//     writes (cache_creation_input_tokens, split by TTL into
//     CacheWrite5mTokens and CacheWrite1hTokens) are NOT included in
//     PromptTokens (input_tokens); each is billed on top of it.
//
// ReasoningTokens are INCLUDED in CompletionTokens (OpenAI's
// completion_tokens_details.reasoning_tokens; Anthropic's thinking is part
// of output_tokens): they are priced as output, once, and the field is a
// breakdown for metrics, never added to the cost again.
type Usage struct {
	PromptTokens     int
	CompletionTokens int
	CachedTokens     int // OpenAI cached input, included in PromptTokens

	CacheReadTokens    int // Anthropic cache reads, not in PromptTokens
	CacheWrite5mTokens int // Anthropic 5-minute cache writes, not in PromptTokens
	CacheWrite1hTokens int // Anthropic 1-hour cache writes, not in PromptTokens

	ReasoningTokens int // included in CompletionTokens
}

// InputTokens is every prompt token of u whatever its price: what the
// model read.
func (u Usage) InputTokens() int {
	return max(u.PromptTokens, 0) + max(u.CacheReadTokens, 0) + max(u.CacheWrite5mTokens, 0) + max(u.CacheWrite1hTokens, 0)
}

// Table maps model names to prices. It is immutable after construction, so
// one Table is safe for concurrent use; With returns a new Table.
type Table struct {
	prices map[string]Price  // canonical name -> price
	names  map[string]string // canonical names and aliases -> canonical name
	models []string          // sorted canonical names
}

type fileEntry struct {
	Input        float64  `yaml:"input"`
	Output       float64  `yaml:"output"`
	CachedInput  float64  `yaml:"cached_input"`
	CacheWrite5m float64  `yaml:"cache_write_5m"`
	CacheWrite1h float64  `yaml:"cache_write_1h"`
	MaxOutput    int64    `yaml:"max_output"`
	Aliases      []string `yaml:"aliases"`
}

type file struct {
	Models map[string]fileEntry `yaml:"models"`
}

// Default returns the table compiled into the binary. It parses the embedded
// data on every call; call it once at start-up.
func Default() *Table {
	t, err := parse(pricesYAML)
	if err != nil {
		// The data is compiled in and covered by tests, so this is a build defect.
		panic(fmt.Sprintf("cost: embedded prices.yaml: %v", err))
	}
	return t
}

func parse(data []byte) (*Table, error) {
	var f file
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("decode price table: %w", err)
	}
	t := &Table{prices: map[string]Price{}, names: map[string]string{}}
	for name, e := range f.Models {
		if err := validName(name); err != nil {
			return nil, err
		}
		if e.Input < 0 || e.Output < 0 || e.CachedInput < 0 || e.CacheWrite5m < 0 || e.CacheWrite1h < 0 || e.MaxOutput < 0 {
			return nil, fmt.Errorf("model %q: negative price or output limit", name)
		}
		t.prices[name] = Price{InputPerM: e.Input, OutputPerM: e.Output, CachedInputPerM: e.CachedInput,
			CacheWrite5mPerM: e.CacheWrite5m, CacheWrite1hPerM: e.CacheWrite1h, MaxOutputTokens: e.MaxOutput}
		t.names[name] = name
	}
	for name, e := range f.Models {
		for _, a := range e.Aliases {
			if err := validName(a); err != nil {
				return nil, err
			}
			if prev, dup := t.names[a]; dup {
				return nil, fmt.Errorf("alias %q of %q already names %q", a, name, prev)
			}
			t.names[a] = name
		}
	}
	t.models = slices.Sorted(maps.Keys(t.prices))
	return t, nil
}

func validName(name string) error {
	if name == "" || name != strings.ToLower(name) || strings.ContainsAny(name, " /") {
		return fmt.Errorf("model name %q: want a lower-case id without spaces or '/'", name)
	}
	return nil
}

// With returns a copy of t where each entry of overrides replaces the price
// of a model of that name, or adds the model. Names are lower-cased; a
// provider prefix ("openai/") is dropped.
func (t *Table) With(overrides map[string]Price) *Table {
	n := &Table{prices: maps.Clone(t.prices), names: maps.Clone(t.names)}
	for name, p := range overrides {
		name = strings.ToLower(strings.TrimSpace(name))
		if i := strings.LastIndexByte(name, '/'); i >= 0 {
			name = name[i+1:]
		}
		if name == "" {
			continue
		}
		if c, ok := n.names[name]; ok && c != name {
			// Overriding an alias prices that name on its own rather than
			// silently repricing the whole family.
			delete(n.names, name)
		}
		n.prices[name] = p
		n.names[name] = name
	}
	n.models = slices.Sorted(maps.Keys(n.prices))
	return n
}

// Models returns the canonical model names, sorted. Callers use them as the
// bounded set of metric label values; the slice must not be modified.
func (t *Table) Models() []string { return t.models }

// Lookup resolves a model id to its canonical name and price. It accepts
// canonical names and aliases, drops a provider prefix ("openai/gpt-4o"),
// and strips one trailing snapshot suffix from a known name: a date
// (2024-08-06, 20241022), an OpenAI 4-digit snapshot (0613) or "latest".
// Other suffixes do not resolve — "gpt-4-32k" or "o1-pro" are different
// products with different prices, and an unknown price must stay unknown.
//
// Lookup does not allocate for lower-case ids: it is at most a handful of
// map lookups on substrings of model, so results need no cache (and random
// client-supplied names cannot grow one).
func (t *Table) Lookup(model string) (canonical string, p Price, ok bool) {
	c, ok := t.resolve(model)
	if !ok {
		return "", Price{}, false
	}
	return c, t.prices[c], true
}

func (t *Table) resolve(model string) (string, bool) {
	if i := strings.LastIndexByte(model, '/'); i >= 0 {
		model = model[i+1:]
	}
	if c, ok := t.names[model]; ok {
		return c, true
	}
	if hasUpper(model) {
		model = strings.ToLower(model) // rare; allocates
		if c, ok := t.names[model]; ok {
			return c, true
		}
	}
	// A snapshot suffix spans at most three '-' separated segments
	// (YYYY-MM-DD), so only the last three cut points are candidates.
	cuts := 0
	for i := len(model) - 1; i > 0 && cuts < 3; i-- {
		if model[i] != '-' {
			continue
		}
		cuts++
		if !isSnapshotSuffix(model[i+1:]) {
			continue
		}
		if c, ok := t.names[model[:i]]; ok {
			return c, true
		}
	}
	return "", false
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// isSnapshotSuffix reports whether s names a snapshot of a model rather than
// a different model: "latest", YYYYMMDD, YYYY-MM-DD or MMDD.
func isSnapshotSuffix(s string) bool {
	switch len(s) {
	case 6:
		return s == "latest"
	case 4, 8:
		return allDigits(s)
	case 10:
		return allDigits(s[:4]) && s[4] == '-' && allDigits(s[5:7]) && s[7] == '-' && allDigits(s[8:])
	}
	return false
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return len(s) > 0
}

// Cost prices usage for model. ok is false when the model has no price:
// callers report the cost as unknown (null), never as zero.
func (t *Table) Cost(model string, u Usage) (usd float64, ok bool) {
	_, p, ok := t.Lookup(model)
	if !ok {
		return 0, false
	}
	return p.Cost(u), true
}

// Cost prices usage at p: each token kind at its own price (see Usage for
// which counts include which). Negative counts count as zero.
func (p Price) Cost(u Usage) float64 {
	cached := min(max(u.CachedTokens, 0), max(u.PromptTokens, 0))
	uncached := max(u.PromptTokens, 0) - cached
	micro := float64(uncached)*p.InputPerM +
		float64(cached+max(u.CacheReadTokens, 0))*p.CachedInput() +
		float64(max(u.CacheWrite5mTokens, 0))*p.CacheWrite5m() +
		float64(max(u.CacheWrite1hTokens, 0))*p.CacheWrite1h() +
		float64(max(u.CompletionTokens, 0))*p.OutputPerM
	return micro / 1e6
}

// MaxCost is what a request can cost at p before it is made: promptTokens
// (an estimate) at the input price plus outputTokens, the most the answer
// may have, at the output price.
func (p Price) MaxCost(promptTokens int, outputTokens int64) float64 {
	return (float64(max(promptTokens, 0))*p.InputPerM + float64(max(outputTokens, 0))*p.OutputPerM) / 1e6
}

// CachedInput is the price of a prompt-cache read per million tokens.
func (p Price) CachedInput() float64 {
	if p.CachedInputPerM == 0 {
		return p.InputPerM
	}
	return p.CachedInputPerM
}

// CacheWrite5m is the price of a 5-minute prompt-cache write per million tokens.
func (p Price) CacheWrite5m() float64 {
	if p.CacheWrite5mPerM == 0 {
		return p.InputPerM * CacheWrite5mFactor
	}
	return p.CacheWrite5mPerM
}

// CacheWrite1h is the price of a 1-hour prompt-cache write per million tokens.
func (p Price) CacheWrite1h() float64 {
	if p.CacheWrite1hPerM == 0 {
		return p.InputPerM * CacheWrite1hFactor
	}
	return p.CacheWrite1hPerM
}

// EstimateTokens guesses the token count of text at about four bytes per
// token. It is a last resort for streams that report no usage; a cost built
// on it must be marked as estimated.
func EstimateTokens(text []byte) int {
	return EstimateTokensOfLen(len(text))
}

// EstimateTokensOfLen is EstimateTokens for a text of n bytes, for callers
// that know the size of what they would estimate without holding it whole.
func EstimateTokensOfLen(n int) int {
	return (max(n, 0) + 3) / 4
}
