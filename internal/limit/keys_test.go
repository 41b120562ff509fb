package limit

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/testutil/redistest"
)

func bearerRequest(key string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
	r.Header.Set("Authorization", "Bearer "+key)
	return r
}

func TestRuntimeKeysAuthenticateBesideTheConfiguredOnesAndNeverShadowThem(t *testing.T) {
	a, err := NewAuth([]KeyConfig{{Name: "static", Key: "sk-static"}}, "admin-secret")
	if err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Minute)
	err = a.SetRuntimeKeys([]KeyRecord{
		{Name: "bot", KeySHA256: Digest("sk-bot"), Team: "red"},
		{Name: "static", KeySHA256: Digest("sk-other")}, // a configured key's name
		{Name: "twin", KeySHA256: Digest("sk-static")},  // a configured key's secret
		{Name: "old", KeySHA256: Digest("sk-old"), ExpiresAt: &past},
		{Name: "bad scope", KeySHA256: Digest("sk-x")},
	})
	for _, want := range []string{`"static"`, `"twin"`, `"bad scope"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("SetRuntimeKeys error %v, want %s named", err, want)
		}
	}
	if p, err := a.Authenticate(bearerRequest("sk-bot")); err != nil || p.Name != "bot" || p.CacheNamespace != "team:red" || !p.Runtime {
		t.Fatalf("runtime key: %+v, %v", p, err)
	}
	if p, err := a.Authenticate(bearerRequest("sk-static")); err != nil || p.Name != "static" {
		t.Fatalf("configured key: %+v, %v", p, err)
	}
	if _, err := a.Authenticate(bearerRequest("sk-other")); err == nil {
		t.Fatal("a runtime key took a configured key's name")
	}
	_, err = a.Authenticate(bearerRequest("sk-old"))
	wantAPIError(t, err, http.StatusUnauthorized, "api_key_expired")
	wantAPIError(t, a.AuthenticateAdmin(bearerRequest("sk-bot")), http.StatusForbidden, "admin_key_required")

	if err := a.SetRuntimeKeys(nil); err != nil {
		t.Fatal(err)
	}
	_, err = a.Authenticate(bearerRequest("sk-bot"))
	wantAPIError(t, err, http.StatusUnauthorized, "invalid_api_key")
}

func TestKeyStoresCreateReplaceOnlyWhatTheyReadAndBumpTheirVersion(t *testing.T) {
	stores := map[string]func(t *testing.T) KeyStore{
		"file": func(t *testing.T) KeyStore {
			s, err := OpenFileKeyStore(filepath.Join(t.TempDir(), "keys.json"))
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		"redis": func(t *testing.T) KeyStore { return NewRedisKeyStore(redisClient(t, redistest.Start(t)), "") },
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			s, ctx := open(t), t.Context()
			v0, _ := s.Version(ctx)
			rec := KeyRecord{Name: "k", KeySHA256: Digest("a"), CreatedAt: time.Unix(1, 0).UTC()}
			if err := s.Create(ctx, rec); err != nil {
				t.Fatal(err)
			}
			if err := s.Create(ctx, rec); !errors.Is(err, ErrKeyExists) {
				t.Fatalf("second create: %v", err)
			}
			next := rec
			next.RPM = 5
			if err := s.Replace(ctx, rec, next); err != nil {
				t.Fatal(err)
			}
			stale := rec
			stale.TPM = 9
			if err := s.Replace(ctx, rec, stale); !errors.Is(err, ErrKeyChanged) {
				t.Fatalf("replace of a stale read: %v, want ErrKeyChanged", err)
			}
			list, err := s.List(ctx)
			if err != nil || len(list) != 1 || list[0].RPM != 5 || list[0].TPM != 0 {
				t.Fatalf("List = %+v, %v", list, err)
			}
			if err := s.Delete(ctx, "k"); err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(ctx, "k"); !errors.Is(err, ErrKeyNotFound) {
				t.Fatalf("second delete: %v", err)
			}
			if err := s.Replace(ctx, rec, next); !errors.Is(err, ErrKeyNotFound) {
				t.Fatalf("replace of a deleted key: %v", err)
			}
			if v, _ := s.Version(ctx); v != v0+3 {
				t.Fatalf("version %d after three writes from %d", v, v0)
			}
		})
	}
}
