package app_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/config"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
	"github.com/edge-agent/edge-agent/internal/testutil/redistest"
)

// The keys API (issue 16): keys created, changed, rotated and revoked at
// runtime, seen by every instance within a second.

// admin sends an admin request with a JSON body ("" for none).
func adminCall(t *testing.T, method, url, body string, headers ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// within waits up to a second for the status of a chat request with key
// on url to become want; it returns how long that took.
func within(t *testing.T, what, url, key, model string, want int) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		resp, out := post(t, url, chat(model, "runtime key "+what), bearer(key))
		if resp.StatusCode == want {
			t.Logf("%s: %v", what, time.Since(start).Round(time.Millisecond))
			return time.Since(start)
		}
		if time.Since(start) > time.Second {
			t.Fatalf("%s: still %d %s after a second, want %d", what, resp.StatusCode, out, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestARuntimeKeyIsSeenByEveryInstanceWithinASecondUntilItIsRevoked(t *testing.T) {
	s := startSim(t, simulated.Options{})
	r := redistest.Start(t)
	cfg := redisConfig(s, r)
	cfg.Auth.AdminKey = accessAdminKey
	cfg.Auth.Keys = []config.APIKey{{Name: "static", Key: "sk-static"}}
	one, two := startGateway(t, cfg), startGateway(t, cfg)
	admin := bearer(accessAdminKey)

	code, out := adminCall(t, http.MethodPost, one.URL+"/admin/keys",
		`{"name":"ci-bot","team":"red","models":["gpt-4o-mini"],"rpm":600,"budget_daily_usd":5}`, admin)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, out)
	}
	secret := gjson.GetBytes(out, "key").Str
	if !strings.HasPrefix(secret, "sk-edge-") || gjson.GetBytes(out, "key_sha256").Exists() || gjson.GetBytes(out, "team").Str != "red" {
		t.Fatalf("create answered %s", out)
	}
	within(t, "created on one, used on two", two.URL, secret, "gpt-4o-mini", 200)

	code, out = adminCall(t, http.MethodGet, two.URL+"/admin/keys", "", admin)
	if code != 200 || gjson.GetBytes(out, "data.#").Int() != 1 || gjson.GetBytes(out, "data.0.name").Str != "ci-bot" ||
		strings.Contains(string(out), secret) || gjson.GetBytes(out, "data.0.key_sha256").Exists() {
		t.Fatalf("list: %d %s", code, out)
	}

	// A change on two reaches one: the key may no longer call gpt-4o-mini.
	if code, out := adminCall(t, http.MethodPatch, two.URL+"/admin/keys/ci-bot", `{"models":["gpt-4o"]}`, admin); code != 200 ||
		gjson.GetBytes(out, "models.0").Str != "gpt-4o" || gjson.GetBytes(out, "rpm").Int() != 600 {
		t.Fatalf("patch: %d %s", code, out)
	}
	within(t, "changed on two, seen on one", one.URL, secret, "gpt-4o-mini", http.StatusForbidden)

	// Rotation: the old secret stops everywhere, the new one works.
	code, out = adminCall(t, http.MethodPost, one.URL+"/admin/keys/ci-bot/rotate", "", admin)
	rotated := gjson.GetBytes(out, "key").Str
	if code != 200 || rotated == "" || rotated == secret {
		t.Fatalf("rotate: %d %s", code, out)
	}
	within(t, "old secret after rotation", two.URL, secret, "gpt-4o", http.StatusUnauthorized)
	within(t, "new secret after rotation", two.URL, rotated, "gpt-4o", 200)

	// Revocation on one: refused on two within a second.
	if code, out := adminCall(t, http.MethodDelete, one.URL+"/admin/keys/ci-bot", "", admin); code != 200 {
		t.Fatalf("delete: %d %s", code, out)
	}
	within(t, "revoked on one, used on two", two.URL, rotated, "gpt-4o", http.StatusUnauthorized)
	if code, _ := adminCall(t, http.MethodGet, two.URL+"/admin/keys/ci-bot", "", admin); code != http.StatusNotFound {
		t.Fatalf("GET of a revoked key: %d, want 404", code)
	}
	// The configured key was never touched.
	if resp, out := post(t, two.URL, chat("gpt-4o", "static"), bearer("sk-static")); resp.StatusCode != 200 {
		t.Fatalf("static key: %d %s", resp.StatusCode, out)
	}

	// Every action is an audit line, and no line holds a secret.
	logs := one.Logs.String() + two.Logs.String()
	for _, action := range []string{"key.create", "key.update", "key.rotate", "key.delete"} {
		if !strings.Contains(logs, `"action":"`+action+`"`) || !strings.Contains(logs, `"audit":true`) {
			t.Errorf("no audit line for %s", action)
		}
	}
	for _, s := range []string{secret, rotated, accessAdminKey} {
		if strings.Contains(logs, s) {
			t.Fatalf("a secret is in the logs: %s", s[:10])
		}
	}
}

func TestTheKeysAPIAcceptsOnlyTheAdminKey(t *testing.T) {
	s := startSim(t, simulated.Options{})
	dir := t.TempDir()
	cfg := accessConfig(s, config.APIKey{Name: "client", Key: "sk-client"})
	cfg.Auth.KeysFile = filepath.Join(dir, "keys.json")
	g := startGateway(t, cfg)
	code, out := adminCall(t, http.MethodPost, g.URL+"/admin/keys", `{"name":"made"}`, bearer(accessAdminKey))
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, out)
	}
	runtimeSecret := gjson.GetBytes(out, "key").Str
	for _, tt := range []struct {
		name    string
		headers []string
		status  int
	}{
		{"no key", nil, 401},
		{"a wrong key", []string{bearer("sk-nope")}, 401},
		{"a configured client key", []string{bearer("sk-client")}, 403},
		{"a runtime client key", []string{bearer(runtimeSecret)}, 403},
		{"a client key as x-api-key", []string{"x-api-key: sk-client"}, 403},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, rt := range []struct{ method, path, body string }{
				{http.MethodGet, "/admin/keys", ""},
				{http.MethodPost, "/admin/keys", `{"name":"sneaky"}`},
				{http.MethodGet, "/admin/keys/made", ""},
				{http.MethodPatch, "/admin/keys/made", `{"rpm":-1}`},
				{http.MethodPost, "/admin/keys/made/rotate", ""},
				{http.MethodDelete, "/admin/keys/made", ""},
			} {
				code, out := adminCall(t, rt.method, g.URL+rt.path, rt.body, tt.headers...)
				if code != tt.status {
					t.Fatalf("%s %s: %d %s, want %d", rt.method, rt.path, code, out, tt.status)
				}
				envelope(t, code, out)
			}
		})
	}
	if code, out := adminCall(t, http.MethodGet, g.URL+"/admin/keys/made", "", bearer(accessAdminKey)); code != 200 || gjson.GetBytes(out, "rpm").Int() != 0 {
		t.Fatalf("the key after the refused calls: %d %s", code, out)
	}

	// Without ADMIN_API_KEY an open gateway's admin routes are open, so the
	// keys API is off.
	open := simConfig(s)
	open.Auth.KeysFile = filepath.Join(dir, "open.json")
	og := startGateway(t, open)
	if code, out := adminCall(t, http.MethodPost, og.URL+"/admin/keys", `{"name":"x"}`); code != 403 || envelope(t, code, out) != "admin_disabled" {
		t.Fatalf("keys API without an admin key: %d %s", code, out)
	}
}

func TestTheKeysAPIRefusesBadInputWithTheErrorEnvelope(t *testing.T) {
	s := startSim(t, simulated.Options{})
	cfg := accessConfig(s, config.APIKey{Name: "static", Key: "sk-static"})
	cfg.Auth.KeysFile = filepath.Join(t.TempDir(), "keys.json")
	g := startGateway(t, cfg)
	admin := bearer(accessAdminKey)
	if code, out := adminCall(t, http.MethodPost, g.URL+"/admin/keys", `{"name":"taken"}`, admin); code != 201 {
		t.Fatalf("create: %d %s", code, out)
	}
	for _, tt := range []struct {
		name, method, path, body string
		status                   int
		code, param              string
	}{
		{"not JSON", "POST", "/admin/keys", `{"name":`, 400, "", ""},
		{"no name", "POST", "/admin/keys", `{"team":"red"}`, 400, "", "name"},
		{"unknown field", "POST", "/admin/keys", `{"name":"x","rmp":5}`, 400, "", "rmp"},
		{"wrong type", "POST", "/admin/keys", `{"name":"x","rpm":"many"}`, 400, "", "rpm"},
		{"bad name", "POST", "/admin/keys", `{"name":"a b"}`, 400, "", ""},
		{"bad cache scope", "POST", "/admin/keys", `{"name":"x","cache_scope":"everyone"}`, 400, "", ""},
		{"team and scope", "POST", "/admin/keys", `{"name":"x","team":"red","cache_scope":"shared"}`, 400, "", ""},
		{"negative budget", "POST", "/admin/keys", `{"name":"x","budget_daily_usd":-1}`, 400, "", ""},
		{"a configured key's name", "POST", "/admin/keys", `{"name":"static"}`, 409, "key_exists", "name"},
		{"a name taken", "POST", "/admin/keys", `{"name":"taken"}`, 409, "key_exists", ""},
		{"rename", "PATCH", "/admin/keys/taken", `{"name":"other"}`, 400, "", "name"},
		{"change a configured key", "PATCH", "/admin/keys/static", `{"rpm":5}`, 409, "key_is_static", ""},
		{"no such key", "DELETE", "/admin/keys/ghost", "", 404, "key_not_found", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out := adminCall(t, tt.method, g.URL+tt.path, tt.body, admin)
			if code != tt.status {
				t.Fatalf("%d %s, want %d", code, out, tt.status)
			}
			if got := envelope(t, code, out); got != tt.code {
				t.Fatalf("code %q, want %q: %s", got, tt.code, out)
			}
			if tt.param != "" && gjson.GetBytes(out, "error.param").Str != tt.param {
				t.Fatalf("param %q, want %q", gjson.GetBytes(out, "error.param").Str, tt.param)
			}
		})
	}
}

func TestAnExpiredRuntimeKeyIsRefused(t *testing.T) {
	s := startSim(t, simulated.Options{})
	cfg := accessConfig(s)
	cfg.Auth.KeysFile = filepath.Join(t.TempDir(), "keys.json")
	g := startGateway(t, cfg)
	expires := time.Now().Add(1500 * time.Millisecond).UTC().Format(time.RFC3339Nano)
	code, out := adminCall(t, http.MethodPost, g.URL+"/admin/keys", `{"name":"brief","expires_at":"`+expires+`"}`, bearer(accessAdminKey))
	if code != 201 {
		t.Fatalf("create: %d %s", code, out)
	}
	secret := gjson.GetBytes(out, "key").Str
	if resp, out := post(t, g.URL, chat("gpt-4o", "before"), bearer(secret)); resp.StatusCode != 200 {
		t.Fatalf("before expiry: %d %s", resp.StatusCode, out)
	}
	time.Sleep(time.Until(time.Now().Add(1600 * time.Millisecond)))
	resp, out := post(t, g.URL, chat("gpt-4o", "after"), bearer(secret))
	if resp.StatusCode != 401 || envelope(t, resp.StatusCode, out) != "api_key_expired" {
		t.Fatalf("after expiry: %d %s", resp.StatusCode, out)
	}
	// Clearing the expiry brings it back.
	if code, out := adminCall(t, http.MethodPatch, g.URL+"/admin/keys/brief", `{"expires_at":null}`, bearer(accessAdminKey)); code != 200 || gjson.GetBytes(out, "expires_at").Exists() {
		t.Fatalf("clear expiry: %d %s", code, out)
	}
	if resp, out := post(t, g.URL, chat("gpt-4o", "again"), bearer(secret)); resp.StatusCode != 200 {
		t.Fatalf("after clearing the expiry: %d %s", resp.StatusCode, out)
	}
}

func TestRuntimeKeysSurviveARestartInTheKeysFileWithoutTheirSecret(t *testing.T) {
	s := startSim(t, simulated.Options{})
	path := filepath.Join(t.TempDir(), "keys.json")
	cfg := accessConfig(s)
	cfg.Auth.KeysFile = path
	g := startGateway(t, cfg)
	code, out := adminCall(t, http.MethodPost, g.URL+"/admin/keys", `{"name":"kept","tpm":1000}`, bearer(accessAdminKey))
	if code != 201 {
		t.Fatalf("create: %d %s", code, out)
	}
	secret := gjson.GetBytes(out, "key").Str
	g.Stop()

	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), secret) || !gjson.GetBytes(b, "keys.0.key_sha256").Exists() {
		t.Fatalf("keys file: %s", b)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("keys file mode %v, want 0600", fi.Mode().Perm())
	}
	again := startGateway(t, cfg)
	if resp, out := post(t, again.URL, chat("gpt-4o", "after a restart"), bearer(secret)); resp.StatusCode != 200 {
		t.Fatalf("after a restart: %d %s", resp.StatusCode, out)
	}
	// Once a runtime key exists the gateway is closed to anonymous callers.
	if resp, _ := post(t, again.URL, chat("gpt-4o", "anonymous")); resp.StatusCode != 401 {
		t.Fatalf("anonymous with a runtime key: %d", resp.StatusCode)
	}
}

func TestWithoutRedisOrAKeysFileTheKeysAPISaysWhatIsMissing(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, accessConfig(s, config.APIKey{Name: "c", Key: "sk-c"}))
	code, out := adminCall(t, http.MethodPost, g.URL+"/admin/keys", `{"name":"x"}`, bearer(accessAdminKey))
	if code != http.StatusNotImplemented || envelope(t, code, out) != "keys_store_not_configured" {
		t.Fatalf("%d %s", code, out)
	}
}
