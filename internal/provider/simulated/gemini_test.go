package simulated

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

// TestGoogleTokenEndpointChecksTheAssertion posts JWT bearer grants that
// are each wrong in one way, and one that is right.
func TestGoogleTokenEndpointChecksTheAssertion(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	s := New(Options{APIKey: "k", GoogleTokenKey: &key.PublicKey})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	tokenURL := srv.URL + "/oauth2/token"
	now := time.Now().Unix()
	good := map[string]any{"iss": "sa@p.iam.gserviceaccount.com", "aud": tokenURL,
		"scope": "https://www.googleapis.com/auth/cloud-platform", "iat": now, "exp": now + 3600}
	with := func(k string, v any) map[string]any {
		c := map[string]any{}
		for kk, vv := range good {
			c[kk] = vv
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	sign := func(alg string, claims map[string]any, signer *rsa.PrivateKey) string {
		h, _ := json.Marshal(map[string]string{"alg": alg, "typ": "JWT"})
		c, _ := json.Marshal(claims)
		in := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
		sum := sha256.Sum256([]byte(in))
		sig, err := rsa.SignPKCS1v15(rand.Reader, signer, crypto.SHA256, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		return in + "." + base64.RawURLEncoding.EncodeToString(sig)
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	const grant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	for _, tc := range []struct {
		name, grant, assertion, wantErr string
	}{
		{"a good assertion", grant, sign("RS256", good, key), ""},
		{"another grant", "client_credentials", sign("RS256", good, key), "unsupported_grant_type"},
		{"not a JWT", grant, "abc", "invalid_grant"},
		{"unsigned", grant, sign("none", good, key), "invalid_grant"},
		{"another audience", grant, sign("RS256", with("aud", "https://oauth2.googleapis.com/token"), key), "invalid_grant"},
		{"no scope", grant, sign("RS256", with("scope", nil), key), "invalid_scope"},
		{"expired", grant, sign("RS256", with("exp", now-10), key), "invalid_grant"},
		{"no issuer", grant, sign("RS256", with("iss", nil), key), "invalid_grant"},
		{"signed by another key", grant, sign("RS256", good, other), "invalid_grant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.PostForm(tokenURL, url.Values{"grant_type": {tc.grant}, "assertion": {tc.assertion}})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if tc.wantErr == "" {
				tok := gjson.GetBytes(b, "access_token").Str
				if resp.StatusCode != 200 || !strings.HasPrefix(tok, "ya29.sim-") || gjson.GetBytes(b, "expires_in").Int() != 3600 {
					t.Fatalf("%d %s", resp.StatusCode, b)
				}
				// The token opens the Vertex AI routes.
				req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/projects/p/locations/l/publishers/google/models/m:generateContent",
					strings.NewReader(`{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`))
				req.Header.Set("Authorization", "Bearer "+tok)
				r2, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				r2.Body.Close()
				if r2.StatusCode != 200 {
					t.Fatalf("the issued token was refused: %d", r2.StatusCode)
				}
				return
			}
			if resp.StatusCode != 400 || gjson.GetBytes(b, "error").Str != tc.wantErr {
				t.Fatalf("%d %s, want 400 %s", resp.StatusCode, b, tc.wantErr)
			}
		})
	}
	if n := s.TokenRequests(); n != 1 {
		t.Fatalf("%d tokens issued, want 1", n)
	}
}

func TestVertexRoutesRefuseAMissingOrUnknownToken(t *testing.T) {
	s := New(Options{APIKey: "static"})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	for auth, want := range map[string]int{"": 401, "Bearer ya29.forged": 401, "Bearer static": 200} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/projects/p/locations/l/publishers/google/models/m:generateContent",
			strings.NewReader(`{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%q: %d %s, want %d", auth, resp.StatusCode, b, want)
		}
		if want == 401 && gjson.GetBytes(b, "error.status").Str != "UNAUTHENTICATED" {
			t.Errorf("%q: %s", auth, b)
		}
	}
}
