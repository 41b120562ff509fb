package app_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/config"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
	"github.com/edge-agent/edge-agent/internal/testutil/redistest"
)

func keyedConfig(s *sim, keys ...config.APIKey) config.Config {
	cfg := simConfig(s)
	cfg.Auth.AdminKey = "admin-secret"
	cfg.Auth.Keys = keys
	return cfg
}

func get(t *testing.T, url string, headers ...string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(k, strings.TrimSpace(v))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestAPIKeysGuardTheGatewayAndTheAdminEndpoints(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, keyedConfig(s, config.APIKey{Name: "team-a", Key: "key-a"}))
	body := chat("gpt-4o-mini", "auth")
	tests := []struct {
		name   string
		header []string
		status int
	}{
		{"no key", nil, 401},
		{"wrong key", []string{"Authorization: Bearer nope"}, 401},
		{"bearer", []string{"Authorization: Bearer key-a"}, 200},
		{"x-api-key", []string{"x-api-key: key-a"}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, out := post(t, g.URL, body, tt.header...)
			if resp.StatusCode != tt.status {
				t.Fatalf("%d %s", resp.StatusCode, out)
			}
			if tt.status == 401 && (!gjson.GetBytes(out, "error.message").Exists() || strings.Contains(string(out), "nope")) {
				t.Fatalf("401 envelope %s", out)
			}
		})
	}
	if c := get(t, g.URL+"/metrics"); c != 401 {
		t.Fatalf("/metrics without admin key: %d", c)
	}
	if c := get(t, g.URL+"/metrics", "Authorization: Bearer key-a"); c != 403 {
		t.Fatalf("/metrics with a client key: %d", c)
	}
	if c := get(t, g.URL+"/admin/stats", "Authorization: Bearer admin-secret"); c != 200 {
		t.Fatalf("/admin/stats with the admin key: %d", c)
	}
	if c := get(t, g.URL+"/health"); c != 200 {
		t.Fatalf("/health must stay open: %d", c)
	}
}

func TestRateLimitsPerKeyAndShared(t *testing.T) {
	s := startSim(t, simulated.Options{})
	keys := []config.APIKey{{Name: "a", Key: "key-a", RPM: 100, Burst: 100}, {Name: "b", Key: "key-b", RPM: 100, Burst: 100}}
	count := func(urls []string, key string, n int) (limited int) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, _ := post(t, urls[i%len(urls)], chat("gpt-4o-mini", "rl"), "Authorization: Bearer "+key)
				if resp.Header.Get("x-ratelimit-limit-requests") != "100" {
					t.Errorf("x-ratelimit headers missing: %v", resp.Header)
				}
				if resp.StatusCode == 429 {
					if resp.Header.Get("Retry-After") == "" {
						t.Error("429 without Retry-After")
					}
					mu.Lock()
					limited++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return limited
	}
	t.Run("one instance", func(t *testing.T) {
		g := startGateway(t, keyedConfig(s, keys...))
		if l := count([]string{g.URL}, "key-a", 150); l < 45 || l > 55 {
			t.Fatalf("%d of 150 limited, want about 50", l)
		}
		if l := count([]string{g.URL}, "key-b", 50); l != 0 {
			t.Fatalf("key b limited %d times by key a's traffic", l)
		}
	})
	t.Run("two instances share one limit through Redis", func(t *testing.T) {
		r := redistest.Start(t)
		cfg := keyedConfig(s, keys...)
		cfg.Cache.RedisURL = r.URL()
		a, b := startGateway(t, cfg), startGateway(t, cfg)
		if l := count([]string{a.URL, b.URL}, "key-a", 150); l < 45 || l > 55 {
			t.Fatalf("%d of 150 limited across two instances, want about 50", l)
		}
		r.Stop()
		// Redis down: each instance limits locally, never refuses everyone.
		if l := count([]string{a.URL}, "key-b", 150); l < 45 || l > 55 {
			t.Fatalf("with Redis down, %d of 150 limited, want about 50 (local limits)", l)
		}
	})
}

func TestBudgetsStopSpendAndCanBeReset(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, keyedConfig(s, config.APIKey{Name: "spender", Key: "key-s", BudgetDailyUSD: 0.0001}))
	var last *http.Response
	var out []byte
	for i := range 20 {
		last, out = post(t, g.URL, chat("gpt-4o", "spend "+string(rune('a'+i))), "Authorization: Bearer key-s")
		if last.StatusCode == 429 {
			break
		}
	}
	if last.StatusCode != 429 || gjson.GetBytes(out, "error.code").Str != "budget_exceeded" {
		t.Fatalf("budget never enforced: %d %s", last.StatusCode, out)
	}
	req, _ := http.NewRequest(http.MethodGet, g.URL+"/admin/budgets/spender", nil)
	req.Header.Set("Authorization", "Bearer admin-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("read spend: %v %v", err, resp)
	}
	resp.Body.Close()
	req, _ = http.NewRequest(http.MethodDelete, g.URL+"/admin/budgets/spender", nil)
	req.Header.Set("Authorization", "Bearer admin-secret")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("reset: %v %v", err, resp)
	}
	if resp, out := post(t, g.URL, chat("gpt-4o", "after reset"), "Authorization: Bearer key-s"); resp.StatusCode != 200 {
		t.Fatalf("after reset: %d %s", resp.StatusCode, out)
	}
}

func TestIsolatedKeysNeverSeeAnotherTenantsAnswers(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, keyedConfig(s,
		config.APIKey{Name: "a", Key: "key-a", CacheScope: "isolated"},
		config.APIKey{Name: "b", Key: "key-b", CacheScope: "isolated"},
		config.APIKey{Name: "c", Key: "key-c"},
		config.APIKey{Name: "d", Key: "key-d"}))
	body := chat("gpt-4o-mini", "tenant secret question")
	post(t, g.URL, body, "Authorization: Bearer key-a")
	if resp, _ := post(t, g.URL, body, "Authorization: Bearer key-a"); layer(resp) != "HIT/L1" {
		t.Fatalf("key a's own answer: %s", layer(resp))
	}
	for _, k := range []string{"key-b", "key-c"} {
		if resp, _ := post(t, g.URL, body, "Authorization: Bearer "+k, "X-Cache-Namespace: "); layer(resp) != "MISS/" {
			t.Fatalf("%s was served key a's isolated answer: %s", k, layer(resp))
		}
	}
	// Shared keys share.
	if resp, _ := post(t, g.URL, body, "Authorization: Bearer key-d"); layer(resp) != "HIT/L1" {
		t.Fatalf("shared keys must share: %s", layer(resp))
	}
}

func TestModelAllowListAndRedaction(t *testing.T) {
	s := startSim(t, simulated.Options{})
	yes := true
	g := startGateway(t, keyedConfig(s,
		config.APIKey{Name: "narrow", Key: "key-n", Models: []string{"gpt-4o-mini"}},
		config.APIKey{Name: "private", Key: "key-p", Redact: &yes}))
	resp, out := post(t, g.URL, chat("claude-3-5-sonnet-20241022", "x"), "Authorization: Bearer key-n")
	if resp.StatusCode != 403 || gjson.GetBytes(out, "error.code").Str != "model_not_allowed" {
		t.Fatalf("%d %s", resp.StatusCode, out)
	}
	resp, _ = post(t, g.URL, chat("gpt-4o-mini", "mail jane.doe@example.com or call 415-555-0134"), "Authorization: Bearer key-p")
	if resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	_, _, sent := s.LastRequest()
	if strings.Contains(string(sent), "jane.doe@example.com") || !strings.Contains(string(sent), "[EMAIL]") {
		t.Fatalf("PII reached the provider: %s", sent)
	}
	// The key is computed after redaction: another address hits.
	resp, _ = post(t, g.URL, chat("gpt-4o-mini", "mail john@example.org or call 415-555-0199"), "Authorization: Bearer key-p")
	if layer(resp) != "HIT/L1" {
		t.Fatalf("redacted prompts must share a cache key: %s", layer(resp))
	}
}
