package limit

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Keys created at runtime (POST /admin/keys) live beside the configured
// ones: a KeyStore keeps their records, digested, and every instance loads
// them into its Auth with SetRuntimeKeys.

// KeyRecord is a key created at runtime, as stored: the SHA-256 of the
// secret, never the secret.
type KeyRecord struct {
	Name             string     `json:"name"`
	KeySHA256        string     `json:"key_sha256,omitempty"` // "" only in API answers
	Team             string     `json:"team,omitempty"`
	Models           []string   `json:"models,omitempty"`
	RPM              int        `json:"rpm,omitempty"`
	TPM              int        `json:"tpm,omitempty"`
	Burst            int        `json:"burst,omitempty"`
	BudgetDailyUSD   float64    `json:"budget_daily_usd,omitempty"`
	BudgetMonthlyUSD float64    `json:"budget_monthly_usd,omitempty"`
	ExpiresAt        *time.Time `json:"expires_at,omitempty"`
	CacheScope       string     `json:"cache_scope,omitempty"`
	AllowCacheBypass *bool      `json:"allow_cache_bypass,omitempty"`
	ShowCacheKey     bool       `json:"show_cache_key,omitempty"`
	Redact           *bool      `json:"redact,omitempty"`
	CreatedAt        time.Time  `json:"created_at"`
	UpdatedAt        time.Time  `json:"updated_at"`
}

func (r KeyRecord) config() KeyConfig {
	return KeyConfig{Name: r.Name, KeySHA256: r.KeySHA256, Models: r.Models, RPM: r.RPM, TPM: r.TPM, Burst: r.Burst,
		BudgetDailyUSD: r.BudgetDailyUSD, BudgetMonthlyUSD: r.BudgetMonthlyUSD, CacheScope: r.CacheScope, Team: r.Team,
		AllowCacheBypass: r.AllowCacheBypass, ShowCacheKey: r.ShowCacheKey, Redact: r.Redact}
}

// Validate checks r as NewAuth checks a configured key; the error names
// the field, never the secret.
func (r KeyRecord) Validate() error {
	if r.Burst < 0 {
		return errors.New("burst must not be negative")
	}
	_, _, err := buildKey(r.config())
	return err
}

// Errors of a KeyStore.
var (
	ErrKeyExists   = errors.New("a key of that name exists")
	ErrKeyNotFound = errors.New("no key of that name")
	ErrKeyChanged  = errors.New("the key was changed meanwhile")
)

// NewSecret returns a new client key: "sk-edge-" and 32 random bytes.
func NewSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return "sk-edge-" + base64.RawURLEncoding.EncodeToString(b[:])
}

// Digest is the hex SHA-256 of a secret, as KeyRecord stores it.
func Digest(secret string) string {
	d := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(d[:])
}

// runtimeKeys is one immutable snapshot of the runtime keys.
type runtimeKeys struct {
	byDigest map[[sha256.Size]byte]*Principal
	names    map[string]bool
}

// SetRuntimeKeys replaces the runtime keys with recs. A record that is not
// valid, whose name is a configured key's or whose secret is another key's
// is left out and reported in the error; the others are in use either way.
func (a *Auth) SetRuntimeKeys(recs []KeyRecord) error {
	rk := &runtimeKeys{byDigest: make(map[[sha256.Size]byte]*Principal, len(recs)), names: make(map[string]bool, len(recs))}
	var errs []error
	for _, r := range recs {
		p, digest, err := buildKey(r.config())
		switch {
		case err != nil:
		case a.static[r.Name]:
			err = errors.New("the name of a configured key")
		case rk.names[r.Name]:
			err = errors.New("duplicate name")
		case rk.byDigest[digest] != nil || a.staticDigest(digest):
			err = errors.New("the secret of another key")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("runtime key %q: %w", r.Name, err))
			continue
		}
		if r.ExpiresAt != nil {
			p.ExpiresAt = *r.ExpiresAt
		}
		p.Runtime = true
		rk.byDigest[digest] = p
		rk.names[r.Name] = true
	}
	a.runtime.Store(rk)
	return errors.Join(errs...)
}

// IsStatic reports whether name is a key of the configuration (which the
// keys API cannot change).
func (a *Auth) IsStatic(name string) bool { return a.static[name] }

func (a *Auth) staticDigest(d [sha256.Size]byte) bool {
	for i := range a.keys {
		if a.keys[i].digest == d {
			return true
		}
	}
	return a.hasAdmin && a.admin.digest == d
}

// HasAdmin reports whether an admin key is configured.
func (a *Auth) HasAdmin() bool { return a.hasAdmin }

func (a *Auth) runtimeCount() int {
	if rk := a.runtime.Load(); rk != nil {
		return len(rk.byDigest)
	}
	return 0
}

// matchRuntime finds a runtime key by the digest of the presented key. A
// map lookup rather than a constant-time scan: the digest of a guess tells
// its sender nothing about the digests stored.
func (a *Auth) matchRuntime(d [sha256.Size]byte) *Principal {
	if rk := a.runtime.Load(); rk != nil {
		return rk.byDigest[d]
	}
	return nil
}
