package app_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/config"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
	"github.com/edge-agent/edge-agent/internal/testutil/redistest"
)

// These tests attack the gateway as a hostile tenant would (issue 16): two
// instances on one Redis, several keys, a client that tries to read or pin
// other tenants' answers.

func bearer(key string) string { return "Authorization: Bearer " + key }

func TestAnotherKeyNeverGetsAKeysAnswerOnEitherInstanceButATeamShares(t *testing.T) {
	s := startSim(t, simulated.Options{})
	r := redistest.Start(t)
	cfg := redisConfig(s, r)
	cfg.Auth.AdminKey = accessAdminKey
	cfg.Auth.Keys = config.ParseAPIKeys("sk-tenant-a, sk-tenant-b, sk-red-1@red, sk-red-2@red")
	cfg.Auth.Keys[0].ShowCacheKey = true // to find A's entry in Redis
	cfg.Auth.Keys[2].ShowCacheKey = true
	one, two := startGateway(t, cfg), startGateway(t, cfg)
	body := chat("gpt-4o-mini", "tenant a's confidential question")

	a, _ := post(t, one.URL, body, bearer("sk-tenant-a"))
	if layer(a) != "MISS/" || a.Header.Get("X-Cache-Key") == "" {
		t.Fatalf("A first: %s, key %q", layer(a), a.Header.Get("X-Cache-Key"))
	}
	waitInL2(t, r, a.Header.Get("X-Cache-Key"))
	if resp, _ := post(t, two.URL, body, bearer("sk-tenant-a")); layer(resp) != "HIT/L2" {
		t.Fatalf("A on the second instance: %s, want its own entry from L2", layer(resp))
	}
	// B asks A's prompt: on the instance whose L1 holds A's entry (no-store,
	// so B's own answer is not written), then on the other one.
	for _, g := range []*gw{one, two} {
		resp, _ := post(t, g.URL, body, bearer("sk-tenant-b"), "Cache-Control: no-store")
		if layer(resp) != "MISS/" {
			t.Fatalf("B got A's answer: %s", layer(resp))
		}
		if k := resp.Header.Get("X-Cache-Key"); k != "" {
			t.Fatalf("B was shown its cache key %q (a membership oracle)", k)
		}
	}
	// B cannot name its way into A's scope either.
	if resp, _ := post(t, two.URL, body, bearer("sk-tenant-b"), "X-Cache-Namespace: key:"+cfg.Auth.Keys[0].Name); layer(resp) != "MISS/" {
		t.Fatalf("B reached A's scope with X-Cache-Namespace: %s", layer(resp))
	}

	red, _ := post(t, one.URL, body, bearer("sk-red-1"))
	if layer(red) != "MISS/" {
		t.Fatalf("team red's first: %s", layer(red))
	}
	waitInL2(t, r, red.Header.Get("X-Cache-Key"))
	if resp, _ := post(t, two.URL, body, bearer("sk-red-2")); layer(resp) != "HIT/L2" {
		t.Fatalf("a team member on the other instance: %s, want the team's entry", layer(resp))
	}
	if resp, _ := post(t, one.URL, body, bearer(accessAdminKey)); resp.Header.Get("X-Cache-Key") == "" {
		t.Fatal("the admin key must always see X-Cache-Key")
	}
	if n := s.Calls(); n != 6 {
		t.Fatalf("%d upstream calls, want 6 (A, B twice, B's namespace, team red, the admin)", n)
	}
}

// pttl reads the remaining lifetime of a cache entry in Redis.
func pttl(t *testing.T, r *redistest.Server, key string) time.Duration {
	t.Helper()
	client, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{r.Addr}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ms, err := client.Do(context.Background(), client.B().Pttl().Key("llm-edge:v1:"+key).Build()).AsInt64()
	if err != nil {
		t.Fatal(err)
	}
	return time.Duration(ms) * time.Millisecond
}

func TestClientTTLIsClampedToTheOperatorsMaximum(t *testing.T) {
	tests := []struct {
		name   string
		max    time.Duration // cache.max_client_ttl; 0 takes L2_TTL
		header string
		want   time.Duration
	}{
		{"explicit maximum", time.Minute, "31536000", time.Minute},
		{"defaults to the L2 TTL", 0, "31536000", time.Hour},
		{"shorter TTLs are kept", time.Minute, "30", 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startSim(t, simulated.Options{})
			r := redistest.Start(t)
			cfg := redisConfig(s, r)
			cfg.Cache.L2TTL = config.Duration(time.Hour)
			cfg.Cache.MaxClientTTL = config.Duration(tt.max)
			g := startGateway(t, cfg)
			resp, _ := post(t, g.URL, chat("gpt-4o-mini", "pin me for a year"), "X-Cache-TTL: "+tt.header)
			key := resp.Header.Get("X-Cache-Key")
			waitInL2(t, r, key)
			if got := pttl(t, r, key); got <= tt.want-5*time.Second || got > tt.want {
				t.Fatalf("PTTL %v, want about %v", got, tt.want)
			}
		})
	}
}

func TestOnlyPermittedKeysMayForceAFreshAnswerIntoASharedCache(t *testing.T) {
	s := startSim(t, simulated.Options{})
	yes := true
	g := startGateway(t, accessConfig(s,
		config.APIKey{Name: "solo", Key: "key-solo"},
		config.APIKey{Name: "red-1", Key: "key-red-1", Team: "red"},
		config.APIKey{Name: "red-ops", Key: "key-red-ops", Team: "red", AllowCacheBypass: &yes}))
	body := chat("gpt-4o-mini", "a sample worth re-rolling")
	for i, step := range []struct{ key, cc, want string }{
		{"key-red-1", "", "MISS/"},
		{"key-red-1", "no-cache", "HIT/L1"},  // ignored: cannot re-roll the team's entry
		{"key-red-1", "max-age=0", "HIT/L1"}, // the same, spelled otherwise
		{"key-red-ops", "no-cache", "BYPASS/"},
		{"key-solo", "", "MISS/"},
		{"key-solo", "no-cache", "BYPASS/"}, // its own cache: allowed
	} {
		h := []string{bearer(step.key)}
		if step.cc != "" {
			h = append(h, "Cache-Control: "+step.cc)
		}
		if resp, out := post(t, g.URL, body, h...); resp.StatusCode != http.StatusOK || layer(resp) != step.want {
			t.Fatalf("step %d (%s, %q): %d %s, want %s: %s", i, step.key, step.cc, resp.StatusCode, layer(resp), step.want, out)
		}
	}
	if n := s.Calls(); n != 4 {
		t.Fatalf("%d upstream calls, want 4", n)
	}
}

func TestTheSameKeysInAnotherOrderKeepEachTenantsBuckets(t *testing.T) {
	s := startSim(t, simulated.Options{})
	r := redistest.Start(t)
	cfg := redisConfig(s, r)
	cfg.Auth.RPM, cfg.Auth.Burst = 100, 100
	cfg.Auth.Keys = config.ParseAPIKeys("sk-tenant-a,sk-tenant-b")
	one := startGateway(t, cfg)
	cfg.Auth.Keys = config.ParseAPIKeys("sk-tenant-b,sk-tenant-a")
	two := startGateway(t, cfg)
	// 100 a minute refills one request every 0.6 s while the burst runs:
	// on a loaded machine the 150 requests can take seconds, so the bound
	// allows what refilled meanwhile.
	start := time.Now()
	limited, _ := burst(t, []string{one.URL}, "sk-tenant-a", 150, 100)
	refilled := int(time.Since(start).Seconds()/0.6) + 1
	if limited < 50-refilled-2 || limited > 50 {
		t.Fatalf("A: %d of 150 limited in %v, want about 50 (at least %d)", limited, time.Since(start), 50-refilled-2)
	}
	if limited, _ := burst(t, []string{two.URL}, "sk-tenant-b", 100, 100); limited != 0 {
		t.Fatalf("B limited %d times on the instance listing it first: A's bucket moved to B", limited)
	}
	if limited, _ := burst(t, []string{two.URL}, "sk-tenant-a", 10, 100); limited < 9 {
		t.Fatalf("A on the other instance: %d of 10 limited, want its own spent bucket", limited)
	}
}

func TestCoalescedWaitersAnswerWithTheLeadersUpstreamErrorWithoutCallingAgain(t *testing.T) {
	s := startSim(t, simulated.Options{TTFT: 2 * time.Second}) // hangs past the first-byte timeout
	cfg := simConfig(s)
	cfg.Routing.MaxRetries = 0
	cfg.Routing.FirstByteTimeout = config.Duration(300 * time.Millisecond)
	cfg.Cache.CoalesceWait = config.Duration(10 * time.Second)
	g := startGateway(t, cfg)
	body := chat("gpt-4o-mini", "ask a hanging provider")
	const n = 8
	var wg sync.WaitGroup
	status := make([]int, n)
	codes := make([]string, n)
	took := make([]time.Duration, n)
	for i := range n {
		wg.Go(func() {
			start := time.Now()
			resp, out := post(t, g.URL, body)
			status[i], codes[i], took[i] = resp.StatusCode, gjson.GetBytes(out, "error.code").Str, time.Since(start)
		})
	}
	wg.Wait()
	if c := s.Calls(); c != 1 {
		t.Fatalf("%d upstream calls for %d identical requests against a failing provider, want 1", c, n)
	}
	for i := range n {
		if status[i] != status[0] || codes[i] != codes[0] || status[i] < 500 {
			t.Fatalf("answer %d: %d %q, want the leader's %d %q", i, status[i], codes[i], status[0], codes[0])
		}
		if took[i] > 1500*time.Millisecond {
			t.Fatalf("answer %d took %v: a waiter waited past the leader's failure", i, took[i])
		}
	}
}
