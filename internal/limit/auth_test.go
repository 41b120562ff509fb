package limit

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/internal/api"
)

const (
	keyA     = "sk-edge-alpha-0123456789"
	keyB     = "sk-edge-bravo-9876543210"
	keyC     = "sk-edge-charlie-secret"
	adminKey = "sk-edge-admin-key"
)

func sha(s string) string {
	d := sha256.Sum256([]byte(s))
	return hex.EncodeToString(d[:])
}

func testAuth(t *testing.T) *Auth {
	t.Helper()
	a, err := NewAuth([]KeyConfig{
		{Name: "alpha", Key: keyA},
		{Name: "bravo", Key: keyB, Models: []string{"gpt-4o*", "claude-3-5-sonnet"}, CacheScope: ScopeIsolated},
		{Name: "charlie", KeySHA256: sha(keyC)},
	}, adminKey)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func request(headers ...string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Set(headers[i], headers[i+1])
	}
	return r
}

func wantAPIError(t *testing.T, err error, status int, code string) {
	t.Helper()
	var e *api.Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v, want *api.Error %d", err, status)
	}
	if e.Status != status || e.Code != code {
		t.Fatalf("error = %d %q (%s), want %d %q", e.Status, e.Code, e.Message, status, code)
	}
}

func TestAuthenticateAcceptsOnlyConfiguredKeys(t *testing.T) {
	a := testAuth(t)
	tests := []struct {
		name     string
		headers  []string
		wantName string
		status   int
		code     string
	}{
		{name: "no key", status: 401},
		{name: "wrong bearer key", headers: []string{"Authorization", "Bearer sk-wrong"}, status: 401, code: "invalid_api_key"},
		{name: "wrong x-api-key", headers: []string{"X-Api-Key", "sk-wrong"}, status: 401, code: "invalid_api_key"},
		{name: "prefix of a good key", headers: []string{"Authorization", "Bearer " + keyA[:10]}, status: 401, code: "invalid_api_key"},
		{name: "basic auth is not a key", headers: []string{"Authorization", "Basic " + keyA}, status: 401},
		{name: "empty bearer", headers: []string{"Authorization", "Bearer "}, status: 401},
		{name: "bearer", headers: []string{"Authorization", "Bearer " + keyA}, wantName: "alpha"},
		{name: "bearer scheme is case-insensitive", headers: []string{"Authorization", "bearer " + keyB}, wantName: "bravo"},
		{name: "x-api-key", headers: []string{"x-api-key", keyB}, wantName: "bravo"},
		{name: "key stored as sha256", headers: []string{"Authorization", "Bearer " + keyC}, wantName: "charlie"},
		{name: "admin key", headers: []string{"Authorization", "Bearer " + adminKey}, wantName: AdminName},
		{name: "bearer wins over x-api-key", headers: []string{"Authorization", "Bearer " + keyA, "x-api-key", keyB}, wantName: "alpha"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := a.Authenticate(request(tt.headers...))
			if tt.status != 0 {
				wantAPIError(t, err, tt.status, tt.code)
				if e := api.FromError(err); e.Type != api.TypeInvalidRequest {
					t.Errorf("type = %q, want %q as OpenAI answers", e.Type, api.TypeInvalidRequest)
				}
				for _, k := range []string{keyA, keyB, keyC, adminKey} {
					if strings.Contains(err.Error(), k) {
						t.Errorf("error message leaks a key: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if p.Name != tt.wantName {
				t.Fatalf("principal = %q, want %q", p.Name, tt.wantName)
			}
		})
	}
}

func TestOpenAuthLetsEveryoneInAsAnonymous(t *testing.T) {
	a, err := NewAuth(nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if !a.Open() {
		t.Fatal("Open() = false with no keys")
	}
	for _, r := range []*http.Request{request(), request("Authorization", "Bearer anything")} {
		p, err := a.Authenticate(r)
		if err != nil || !p.Anonymous || p.Name != AnonymousName || !p.AllowsModel("gpt-4o") {
			t.Fatalf("Authenticate = %+v, %v; want the anonymous principal", p, err)
		}
	}
	if err := a.AuthenticateAdmin(request()); err != nil {
		t.Fatalf("admin endpoints must be open with no keys at all: %v", err)
	}
	if testAuth(t).Open() {
		t.Fatal("Open() = true with keys configured")
	}
}

func TestAdminKeyGuardsAdminEndpoints(t *testing.T) {
	withAdmin := testAuth(t)
	noAdmin, err := NewAuth([]KeyConfig{{Name: "alpha", Key: keyA}}, "")
	if err != nil {
		t.Fatal(err)
	}
	onlyAdmin, err := NewAuth(nil, adminKey)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		auth   *Auth
		r      *http.Request
		status int
		code   string
	}{
		{"no key", withAdmin, request(), 401, ""},
		{"wrong key", withAdmin, request("Authorization", "Bearer nope"), 401, "invalid_api_key"},
		{"client key", withAdmin, request("Authorization", "Bearer "+keyA), 403, "admin_key_required"},
		{"admin key", withAdmin, request("Authorization", "Bearer "+adminKey), 0, ""},
		{"admin key as x-api-key", withAdmin, request("x-api-key", adminKey), 0, ""},
		{"client keys but no admin key configured", noAdmin, request("Authorization", "Bearer "+keyA), 403, "admin_disabled"},
		{"only an admin key configured: required", onlyAdmin, request(), 401, ""},
		{"only an admin key configured: given", onlyAdmin, request("x-api-key", adminKey), 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.auth.AuthenticateAdmin(tt.r)
			if tt.status == 0 {
				if err != nil {
					t.Fatalf("AuthenticateAdmin: %v", err)
				}
				return
			}
			wantAPIError(t, err, tt.status, tt.code)
		})
	}
}

func TestPrincipalModelsAndCacheScope(t *testing.T) {
	a := testAuth(t)
	alpha, _ := a.Authenticate(request("x-api-key", keyA))
	bravo, _ := a.Authenticate(request("x-api-key", keyB))
	if alpha.CacheNamespace != "key:alpha" || !alpha.AllowCacheBypass || alpha.ShowCacheKey {
		t.Errorf("a key without a scope must be isolated: namespace %q, bypass %v, show key %v", alpha.CacheNamespace, alpha.AllowCacheBypass, alpha.ShowCacheKey)
	}
	if bravo.CacheNamespace != "key:bravo" {
		t.Errorf("isolated key namespace = %q, want key:bravo", bravo.CacheNamespace)
	}
	for model, want := range map[string]bool{
		"gpt-4o": true, "gpt-4o-mini": true, "claude-3-5-sonnet": true,
		"gpt-4": false, "claude-3-5-sonnet-latest": false, "my-gpt-4o": false, "": false,
	} {
		if got := bravo.AllowsModel(model); got != want {
			t.Errorf("bravo.AllowsModel(%q) = %v, want %v", model, got, want)
		}
		if !alpha.AllowsModel(model) {
			t.Errorf("a key without a model list must allow %q", model)
		}
	}
	if e := ModelNotAllowed("gpt-4"); e.Status != 403 || e.Type != api.TypePermission || e.Code != "model_not_allowed" || e.Param != "model" {
		t.Errorf("ModelNotAllowed = %+v", e)
	}
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		glob, s string
		want    bool
	}{
		{"gpt-4o*", "gpt-4o", true},
		{"gpt-4o*", "gpt-4o-2024-08-06", true},
		{"*-mini", "gpt-4o-mini", true},
		{"*-mini", "gpt-4o", false},
		{"gpt-*-mini", "gpt-4o-mini", true},
		{"gpt-*-mini", "gpt-mini", false},
		{"a*a", "a", false},
		{"meta-llama/*", "meta-llama/Llama-3-8B", true},
		{"*", "", true},
	}
	for _, tt := range tests {
		if got := globMatch(strings.Split(tt.glob, "*"), tt.s); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tt.glob, tt.s, got, tt.want)
		}
	}
}

func TestNewAuthRejectsBadKeyConfigsWithoutLeakingKeys(t *testing.T) {
	tests := []struct {
		name  string
		keys  []KeyConfig
		admin string
		want  string
	}{
		{"duplicate name", []KeyConfig{{Name: "a", Key: keyA}, {Name: "a", Key: keyB}}, "", "duplicate name"},
		{"duplicate key", []KeyConfig{{Name: "a", Key: keyA}, {Name: "b", Key: keyA}}, "", `same key as key "a"`},
		{"duplicate key via hash", []KeyConfig{{Name: "a", Key: keyA}, {Name: "b", KeySHA256: sha(keyA)}}, "", "same key"},
		{"client key equals admin key", []KeyConfig{{Name: "a", Key: adminKey}}, adminKey, "same key as the admin key"},
		{"no key", []KeyConfig{{Name: "a"}}, "", "required"},
		{"both key forms", []KeyConfig{{Name: "a", Key: keyA, KeySHA256: sha(keyA)}}, "", "not both"},
		{"bad hash", []KeyConfig{{Name: "a", KeySHA256: "abc"}}, "", "64 hex"},
		{"empty name", []KeyConfig{{Key: keyA}}, "", "name"},
		{"name with colon", []KeyConfig{{Name: "a:b", Key: keyA}}, "", "may contain only"},
		{"reserved name", []KeyConfig{{Name: "admin", Key: keyA}}, "", "reserved"},
		{"bad cache scope", []KeyConfig{{Name: "a", Key: keyA, CacheScope: "private"}}, "", "cache_scope"},
		{"negative budget", []KeyConfig{{Name: "a", Key: keyA, BudgetDailyUSD: -1}}, "", "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewAuth(tt.keys, tt.admin)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewAuth error = %v, want one containing %q", err, tt.want)
			}
			for _, k := range []string{keyA, keyB, adminKey} {
				if strings.Contains(err.Error(), k) {
					t.Fatalf("error leaks a key: %v", err)
				}
			}
		})
	}
}

func TestAnonymousOnlyWhenOpen(t *testing.T) {
	open, err := NewAuth(nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if p := open.Anonymous(); p == nil || !p.Anonymous || p.Name != AnonymousName {
		t.Fatalf("open gateway: anonymous principal %+v", p)
	}
	keyed, err := NewAuth([]KeyConfig{{Name: "alpha", Key: "sk-edge-alpha-0123456789"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if p := keyed.Anonymous(); p != nil {
		t.Fatalf("gateway with keys has an anonymous principal: %+v", p)
	}
}

func TestCacheScopeIsTheKeysOwnUnlessTheOperatorSharesIt(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name       string
		key        KeyConfig
		wantNS     string
		wantBypass bool
	}{
		{"default is isolated", KeyConfig{Name: "a"}, "key:a", true},
		{"explicit isolated", KeyConfig{Name: "a", CacheScope: ScopeIsolated}, "key:a", true},
		{"team shares within the team", KeyConfig{Name: "a", Team: "red"}, "team:red", false},
		{"shared is the gateway-wide cache", KeyConfig{Name: "a", CacheScope: ScopeShared}, "", false},
		{"team member granted bypass", KeyConfig{Name: "a", Team: "red", AllowCacheBypass: &yes}, "team:red", true},
		{"isolated key refused bypass", KeyConfig{Name: "a", AllowCacheBypass: &no}, "key:a", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.key.Key = keyA
			a, err := NewAuth([]KeyConfig{tt.key}, "")
			if err != nil {
				t.Fatal(err)
			}
			p, err := a.Authenticate(request("x-api-key", keyA))
			if err != nil {
				t.Fatal(err)
			}
			if p.CacheNamespace != tt.wantNS || p.AllowCacheBypass != tt.wantBypass || p.ShowCacheKey {
				t.Errorf("namespace %q bypass %v show %v, want %q %v false", p.CacheNamespace, p.AllowCacheBypass, p.ShowCacheKey, tt.wantNS, tt.wantBypass)
			}
		})
	}
	if _, err := NewAuth([]KeyConfig{{Name: "a", Key: keyA, Team: "red", CacheScope: ScopeShared}}, ""); err == nil || !strings.Contains(err.Error(), "team") {
		t.Errorf("team with cache_scope: err = %v", err)
	}
	if _, err := NewAuth([]KeyConfig{{Name: "a", Key: keyA, Team: "red team"}}, ""); err == nil || !strings.Contains(err.Error(), "team") {
		t.Errorf("bad team name: err = %v", err)
	}
}
