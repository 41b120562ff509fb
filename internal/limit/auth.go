// Package limit decides who may use the gateway and how much: client API
// keys, request and token rate limits, and spend budgets.
package limit

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/edge-agent/edge-agent/internal/api"
)

// Cache scopes of a key.
const (
	ScopeShared   = "shared"
	ScopeIsolated = "isolated"
)

// Names the gateway gives principals that do not come from a configured key.
const (
	AnonymousName = "anonymous"
	AdminName     = "admin"
)

// KeyConfig is one client key as configured.
type KeyConfig struct {
	Name string `yaml:"name"`
	// Key is the plaintext key; KeySHA256 (hex) is the alternative that keeps
	// the secret out of the config file. Exactly one must be set.
	Key       string `yaml:"key"`
	KeySHA256 string `yaml:"key_sha256"`
	// Models the key may call; empty allows all. "*" matches any run of
	// characters, so "gpt-4o*" allows gpt-4o and gpt-4o-mini.
	Models []string `yaml:"models"`
	// Per-key limits: 0 takes the gateway default, a negative value means
	// unlimited for this key.
	RPM   int `yaml:"rpm"`
	TPM   int `yaml:"tpm"`
	Burst int `yaml:"burst"`
	// Budgets in US dollars; 0 means none.
	BudgetDailyUSD   float64 `yaml:"budget_daily_usd"`
	BudgetMonthlyUSD float64 `yaml:"budget_monthly_usd"`
	// CacheScope is ScopeIsolated (the default: the key's cache is its own)
	// or ScopeShared (the one cache of every shared key, an operator's
	// explicit choice). Team puts the key in a named cache group instead:
	// keys of one team share entries with each other and nobody else.
	CacheScope string `yaml:"cache_scope"`
	Team       string `yaml:"team"`
	// AllowCacheBypass lets the key's clients force Cache-Control no-cache
	// and no-store. nil: allowed for an isolated key (it only affects its
	// own cache), refused (the directives are ignored) for a key that
	// shares its cache with others.
	AllowCacheBypass *bool `yaml:"allow_cache_bypass"`
	// ShowCacheKey sends X-Cache-Key to the key's clients. Off by default:
	// the key of an entry tells whoever sees it that someone asked that
	// prompt. The admin key always sees it.
	ShowCacheKey bool `yaml:"show_cache_key"`
	// Redact overrides the global PII redaction switch for this key.
	Redact *bool `yaml:"redact"`
}

// Principal is the authenticated caller. Principals are built once by
// NewAuth and shared between requests: treat them as read-only.
type Principal struct {
	Name string
	// Team is the key's cache group ("" for none).
	Team string
	// CacheNamespace is "" for the shared cache, "team:<team>" for a key in
	// a team and "key:<name>" for an isolated key; it must be part of the
	// cache key.
	CacheNamespace string
	// AllowCacheBypass: the key's clients may force no-cache/no-store.
	AllowCacheBypass bool
	// ShowCacheKey: the key's clients see X-Cache-Key.
	ShowCacheKey bool
	Admin        bool // authenticated with ADMIN_API_KEY
	Anonymous    bool // the gateway runs open (no keys configured)
	Runtime      bool // created through /admin/keys
	// ExpiresAt is when the key stops working; zero: never.
	ExpiresAt time.Time

	RPM, TPM, Burst                  int // as in KeyConfig: 0 default, <0 unlimited
	BudgetDailyUSD, BudgetMonthlyUSD float64
	Redact                           *bool

	models modelMatcher
	// rate limiter bucket names and the team's budget scope, built once so
	// requests do not allocate them
	bucketReq, bucketTok, team string
}

func newPrincipal(p Principal) *Principal {
	p.bucketReq, p.bucketTok = "k:"+p.Name+":r", "k:"+p.Name+":t"
	if p.Team != "" {
		p.team = TeamScope(p.Team)
	}
	return &p
}

func (p *Principal) teamScope() string {
	if p.team != "" || p.Team == "" {
		return p.team
	}
	return TeamScope(p.Team)
}

// AllowsModel reports whether the principal may call model.
func (p *Principal) AllowsModel(model string) bool { return p.models.match(model) }

// HasBudget reports whether any budget applies to the principal.
func (p *Principal) HasBudget() bool { return p.BudgetDailyUSD > 0 || p.BudgetMonthlyUSD > 0 }

// ModelNotAllowed is the 403 the gateway answers when AllowsModel is false.
func ModelNotAllowed(model string) *api.Error {
	return &api.Error{Status: http.StatusForbidden, Type: api.TypePermission, Param: "model", Code: "model_not_allowed",
		Message: fmt.Sprintf("this API key is not allowed to use the model %q", model)}
}

// Auth checks client and admin keys. It holds only SHA-256 digests of keys.
type Auth struct {
	keys     []storedKey
	static   map[string]bool // names of keys
	admin    storedKey       // admin.principal == nil: no admin key configured
	anon     *Principal
	hasAdmin bool
	// runtime are the keys created through /admin/keys (SetRuntimeKeys),
	// swapped whole so requests never wait for a change.
	runtime atomic.Pointer[runtimeKeys]
	now     func() time.Time
}

type storedKey struct {
	digest    [sha256.Size]byte
	principal *Principal
}

// NewAuth builds an Auth from the configured client keys and the admin key
// ("" for none). Every configuration error names the key by its name, never
// by its value.
func NewAuth(keys []KeyConfig, adminKey string) (*Auth, error) {
	names := make(map[string]bool, len(keys))
	a := &Auth{anon: newPrincipal(Principal{Name: AnonymousName, Anonymous: true, AllowCacheBypass: true, ShowCacheKey: true}),
		static: names, now: time.Now}
	digests := make(map[[sha256.Size]byte]string, len(keys)+1)
	if adminKey != "" {
		a.hasAdmin = true
		a.admin = storedKey{digest: sha256.Sum256([]byte(adminKey)), principal: newPrincipal(Principal{Name: AdminName, Admin: true, AllowCacheBypass: true, ShowCacheKey: true})}
		digests[a.admin.digest] = "the admin key"
	}
	for i, k := range keys {
		p, digest, err := buildKey(k)
		if err != nil {
			return nil, fmt.Errorf("api key %d (%q): %w", i+1, k.Name, err)
		}
		if names[k.Name] {
			return nil, fmt.Errorf("api key %d: duplicate name %q", i+1, k.Name)
		}
		names[k.Name] = true
		if other, dup := digests[digest]; dup {
			return nil, fmt.Errorf("api key %q: same key as %s", k.Name, other)
		}
		digests[digest] = fmt.Sprintf("key %q", k.Name)
		a.keys = append(a.keys, storedKey{digest: digest, principal: p})
	}
	return a, nil
}

func buildKey(k KeyConfig) (*Principal, [sha256.Size]byte, error) {
	var digest [sha256.Size]byte
	if err := validName(k.Name); err != nil {
		return nil, digest, err
	}
	switch {
	case k.Key != "" && k.KeySHA256 != "":
		return nil, digest, errors.New("set either key or key_sha256, not both")
	case k.Key != "":
		digest = sha256.Sum256([]byte(k.Key))
	case k.KeySHA256 != "":
		b, err := hex.DecodeString(strings.TrimSpace(k.KeySHA256))
		if err != nil || len(b) != sha256.Size {
			return nil, digest, errors.New("key_sha256 must be 64 hex characters")
		}
		copy(digest[:], b)
	default:
		return nil, digest, errors.New("key or key_sha256 is required")
	}
	if k.BudgetDailyUSD < 0 || k.BudgetMonthlyUSD < 0 {
		return nil, digest, errors.New("budgets must not be negative")
	}
	p := &Principal{
		Name: k.Name, RPM: k.RPM, TPM: k.TPM, Burst: k.Burst,
		BudgetDailyUSD: k.BudgetDailyUSD, BudgetMonthlyUSD: k.BudgetMonthlyUSD,
		Redact: k.Redact, Team: k.Team, ShowCacheKey: k.ShowCacheKey,
	}
	switch {
	case k.CacheScope != "" && k.CacheScope != ScopeShared && k.CacheScope != ScopeIsolated:
		return nil, digest, fmt.Errorf("cache_scope %q must be %q or %q", k.CacheScope, ScopeShared, ScopeIsolated)
	case k.Team != "" && k.CacheScope != "":
		return nil, digest, errors.New("set team or cache_scope, not both (a team is a shared scope of its own)")
	case k.Team != "":
		if err := validName(k.Team); err != nil {
			return nil, digest, fmt.Errorf("team: %w", err)
		}
		p.CacheNamespace = "team:" + k.Team
	case k.CacheScope == ScopeShared:
		// the gateway-wide shared cache, namespace ""
	default:
		p.CacheNamespace = "key:" + k.Name
	}
	// Forcing a fresh answer is harmless in a cache of one's own; in a shared
	// one it lets a tenant re-ask until it gets a sample it likes for all.
	p.AllowCacheBypass = p.CacheNamespace == "key:"+k.Name
	if k.AllowCacheBypass != nil {
		p.AllowCacheBypass = *k.AllowCacheBypass
	}
	m, err := newModelMatcher(k.Models)
	if err != nil {
		return nil, digest, err
	}
	p.models = m
	return newPrincipal(*p), digest, nil
}

// validName keeps names safe to embed in Redis keys, cache namespaces and
// log lines, and keeps them apart from the names the gateway reserves.
func validName(name string) error {
	if name == "" || len(name) > 64 {
		return errors.New("name must be 1 to 64 characters")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("name %q may contain only letters, digits, '-', '_' and '.'", name)
		}
	}
	if name == AnonymousName || name == AdminName {
		return fmt.Errorf("name %q is reserved", name)
	}
	return nil
}

// Open reports whether there are no client keys, configured or created at
// runtime, so that every request is let in as the anonymous principal.
func (a *Auth) Open() bool { return len(a.keys) == 0 && a.runtimeCount() == 0 }

// Anonymous is the principal of every caller of an open gateway; nil when
// keys are configured.
func (a *Auth) Anonymous() *Principal {
	if !a.Open() {
		return nil
	}
	return a.anon
}

// Authenticate finds the principal for the key sent as "Authorization:
// Bearer <key>" or "x-api-key: <key>". The admin key is accepted too and
// yields an Admin principal without model restrictions.
//
// The presented key is hashed and its digest compared, in constant time,
// with every stored digest without stopping at a match, so timing reveals
// neither which key matched nor how much of a digest did.
func (a *Auth) Authenticate(r *http.Request) (*Principal, error) {
	if a.Open() {
		return a.anon, nil
	}
	key, ok := presentedKey(r)
	if !ok {
		return nil, errMissingKey()
	}
	p := a.match(sha256.Sum256([]byte(key)))
	if p == nil {
		return nil, errInvalidKey()
	}
	if !p.ExpiresAt.IsZero() && !a.now().Before(p.ExpiresAt) {
		return nil, &api.Error{Status: http.StatusUnauthorized, Type: api.TypeInvalidRequest, Code: "api_key_expired",
			Message: "This API key has expired."}
	}
	return p, nil
}

func (a *Auth) match(d [sha256.Size]byte) *Principal {
	var found *Principal
	for i := range a.keys {
		if subtle.ConstantTimeCompare(d[:], a.keys[i].digest[:]) == 1 {
			found = a.keys[i].principal
		}
	}
	if a.hasAdmin && subtle.ConstantTimeCompare(d[:], a.admin.digest[:]) == 1 {
		found = a.admin.principal
	}
	if found == nil {
		found = a.matchRuntime(d)
	}
	return found
}

// AuthenticateAdmin guards /metrics and /admin/*. With no keys at all the
// gateway is open and so are these endpoints; once any key is configured
// they need ADMIN_API_KEY: no or a wrong key is 401, a valid client key is
// 403, and with client keys but no admin key configured they are closed (403).
func (a *Auth) AuthenticateAdmin(r *http.Request) error {
	if a.Open() && !a.hasAdmin {
		return nil
	}
	key, ok := presentedKey(r)
	if !ok {
		return errMissingKey()
	}
	p := a.match(sha256.Sum256([]byte(key)))
	switch {
	case p == nil:
		return errInvalidKey()
	case !p.Admin && !a.hasAdmin:
		return &api.Error{Status: http.StatusForbidden, Type: api.TypePermission, Code: "admin_disabled",
			Message: "admin endpoints are disabled: set ADMIN_API_KEY to enable them"}
	case !p.Admin:
		return &api.Error{Status: http.StatusForbidden, Type: api.TypePermission, Code: "admin_key_required",
			Message: "this endpoint needs the admin API key"}
	}
	return nil
}

func presentedKey(r *http.Request) (string, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		const prefix = "bearer "
		if len(h) > len(prefix) && strings.EqualFold(h[:len(prefix)], prefix) {
			if k := strings.TrimSpace(h[len(prefix):]); k != "" {
				return k, true
			}
		}
	}
	if k := strings.TrimSpace(r.Header.Get("X-Api-Key")); k != "" {
		return k, true
	}
	return "", false
}

// The 401 answers follow OpenAI's: type invalid_request_error, code
// invalid_api_key for a wrong key and no code for a missing one. Unlike
// OpenAI they do not echo even a masked key.
func errMissingKey() *api.Error {
	return &api.Error{Status: http.StatusUnauthorized, Type: api.TypeInvalidRequest,
		Message: `You didn't provide an API key. Send it as "Authorization: Bearer <key>" or "x-api-key: <key>".`}
}

func errInvalidKey() *api.Error {
	return &api.Error{Status: http.StatusUnauthorized, Type: api.TypeInvalidRequest, Code: "invalid_api_key",
		Message: "Incorrect API key provided."}
}

// modelMatcher matches model names against exact names and "*" globs; the
// zero value allows every model.
type modelMatcher struct {
	exact map[string]struct{}
	globs [][]string // each glob split at '*'
}

func newModelMatcher(models []string) (modelMatcher, error) {
	if len(models) == 0 {
		return modelMatcher{}, nil
	}
	m := modelMatcher{exact: make(map[string]struct{}, len(models))}
	for _, s := range models {
		s = strings.TrimSpace(s)
		switch {
		case s == "":
			return m, errors.New("models: empty model name")
		case s == "*":
			return modelMatcher{}, nil
		case strings.Contains(s, "*"):
			m.globs = append(m.globs, strings.Split(s, "*"))
		default:
			m.exact[s] = struct{}{}
		}
	}
	return m, nil
}

func (m modelMatcher) match(model string) bool {
	if len(m.exact) == 0 && len(m.globs) == 0 {
		return true
	}
	if _, ok := m.exact[model]; ok {
		return true
	}
	for _, g := range m.globs {
		if globMatch(g, model) {
			return true
		}
	}
	return false
}

// globMatch matches s against parts, the pattern split at '*': s starts with
// the first part, ends with the last, and holds the rest in order between.
func globMatch(parts []string, s string) bool {
	first, last := parts[0], parts[len(parts)-1]
	if !strings.HasPrefix(s, first) {
		return false
	}
	s = s[len(first):]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, last)
}
