package app_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/config"
	"github.com/edge-agent/edge-agent/internal/cost"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
	"github.com/edge-agent/edge-agent/internal/testutil/redistest"
)

// Hard budgets, attacked as in issue 16: many concurrent requests over two
// instances, and one request that could cost far more than is left.

// maxCostOf is what the gateway holds for body: its prompt estimate and
// maxTokens at model's prices.
func maxCostOf(t *testing.T, model, body string, maxTokens int64) float64 {
	t.Helper()
	_, p, ok := cost.Default().Lookup(model)
	if !ok {
		t.Fatalf("%s has no price", model)
	}
	return p.MaxCost(cost.EstimateTokens([]byte(body)), maxTokens)
}

func TestTwoHundredConcurrentRequestsOverTwoInstancesStayWithinABudgetThatFitsTen(t *testing.T) {
	// Every answer runs to its max_tokens, so it costs nearly its hold.
	s := startSim(t, simulated.Options{Words: 500, TTFT: 20 * time.Millisecond})
	r := redistest.Start(t)
	body := func(i int) string {
		return chat("gpt-4o-mini", fmt.Sprintf("question number %03d", i), `"max_tokens":100`)
	}
	budget := 10.5 * maxCostOf(t, "gpt-4o-mini", body(0), 100)
	cfg := redisConfig(s, r)
	cfg.Auth.AdminKey = accessAdminKey
	cfg.Auth.Keys = []config.APIKey{{Name: "tight", Key: "sk-tight", BudgetDailyUSD: budget}}
	gws := []*gw{startGateway(t, cfg), startGateway(t, cfg)}

	var ran, refused atomic.Int64
	var spent sync.Mutex
	answered := 0.0
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			resp, out := post(t, gws[i%2].URL, body(i), bearer("sk-tight"))
			switch {
			case resp.StatusCode == 200:
				ran.Add(1)
				spent.Lock()
				answered += gjson.GetBytes(out, "metadata.cost_usd").Float()
				spent.Unlock()
			case resp.StatusCode == 429 && gjson.GetBytes(out, "error.code").Str == "budget_exceeded":
				refused.Add(1)
			default:
				t.Errorf("request %d: %d %s", i, resp.StatusCode, out)
			}
		})
	}
	wg.Wait()
	if n := ran.Load(); n < 1 || n > 10 || n+refused.Load() != 200 {
		t.Fatalf("%d ran and %d were refused, want at most 10 to run", n, refused.Load())
	}
	if n := s.Calls(); n != ran.Load() {
		t.Fatalf("%d upstream calls for %d answers: a refused request reached the provider", n, ran.Load())
	}
	// Both instances book into the one spend in Redis.
	var booked float64
	waitFor(t, "the spend of every answer booked", func() bool {
		_, _, out := call(t, http.MethodGet, gws[1].URL+"/admin/budgets/tight", bearer(accessAdminKey))
		booked = gjson.GetBytes(out, "daily_usd").Float()
		return booked >= answered-1e-12 && gjson.GetBytes(out, "held_usd").Float() == 0
	})
	if booked > budget || booked > answered+1e-12 {
		t.Fatalf("$%v booked for $%v of answers against a budget of $%v", booked, answered, budget)
	}
}

func TestARequestThatCouldCostMoreThanIsLeftIsRefusedBeforeItRuns(t *testing.T) {
	s := startSim(t, simulated.Options{})
	cfg := accessConfig(s, config.APIKey{Name: "one-dollar", Key: "sk-one", BudgetDailyUSD: 1})
	// A model priced like the attack's: $60 per million output tokens, its
	// output limit unknown.
	cfg.Prices = map[string]config.Price{"sim-large": {Input: 15, Output: 60}}
	g := startGateway(t, cfg)

	for _, tt := range []struct {
		name, extra string
		status      int
	}{
		{"a 1M-token answer ($60 against $1)", `"max_tokens":1000000`, 429},
		{"no max_tokens: the gateway's max_max_tokens is held", "", 429},
		{"an answer of 1000 tokens fits", `"max_tokens":1000`, 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := s.Calls()
			var extra []string
			if tt.extra != "" {
				extra = append(extra, tt.extra)
			}
			resp, out := post(t, g.URL, chat("sim-large", "write me a very long novel", extra...), bearer("sk-one"))
			if resp.StatusCode != tt.status {
				t.Fatalf("%d %s, want %d", resp.StatusCode, out, tt.status)
			}
			if tt.status != 429 {
				return
			}
			msg := gjson.GetBytes(out, "error.message").Str
			if envelope(t, resp.StatusCode, out) != "budget_exceeded" || gjson.GetBytes(out, "error.type").Str != "insufficient_quota" ||
				!strings.Contains(msg, "$1.00") || !strings.Contains(msg, "may cost up to $60.0") || !strings.Contains(msg, "Lower max_tokens") {
				t.Fatalf("refusal: %s", out)
			}
			if resp.Header.Get("Retry-After") == "" {
				t.Fatal("no Retry-After on the refusal")
			}
			if s.Calls() != before {
				t.Fatal("the refused request reached the provider")
			}
		})
	}
}

func TestABudgetedKeyCannotUseAModelWithoutAPrice(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, accessConfig(s,
		config.APIKey{Name: "budgeted", Key: "sk-b", BudgetDailyUSD: 1},
		config.APIKey{Name: "free", Key: "sk-f"}))
	resp, out := post(t, g.URL, chat("sim-small", "what does this cost"), bearer("sk-b"))
	if resp.StatusCode != http.StatusForbidden || envelope(t, resp.StatusCode, out) != "budget_unpriced_model" {
		t.Fatalf("budgeted key, unpriced model: %d %s", resp.StatusCode, out)
	}
	if resp, out := post(t, g.URL, chat("sim-small", "what does this cost"), bearer("sk-f")); resp.StatusCode != 200 {
		t.Fatalf("a key without a budget: %d %s", resp.StatusCode, out)
	}
}

func TestATeamsBudgetIsSharedByItsKeysAndResetThroughTheAdminAPI(t *testing.T) {
	s := startSim(t, simulated.Options{Words: 200})
	body := func(i int) string { return chat("gpt-4o", fmt.Sprintf("team question %d", i), `"max_tokens":50`) }
	cfg := accessConfig(s,
		config.APIKey{Name: "red-1", Key: "sk-red-1", Team: "red"},
		config.APIKey{Name: "red-2", Key: "sk-red-2", Team: "red"})
	cfg.Auth.Teams = []config.Team{{Name: "red", BudgetDailyUSD: 2.5 * maxCostOf(t, "gpt-4o", body(0), 50)}}
	g := startGateway(t, cfg)
	for i, key := range []string{"sk-red-1", "sk-red-2"} {
		if resp, out := post(t, g.URL, body(i), bearer(key)); resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", key, resp.StatusCode, out)
		}
	}
	waitFor(t, "the team's spend booked", func() bool {
		_, _, out := call(t, http.MethodGet, g.URL+"/admin/budgets/teams/red", bearer(accessAdminKey))
		return gjson.GetBytes(out, "daily_usd").Float() > 0 && gjson.GetBytes(out, "held_usd").Float() == 0
	})
	resp, out := post(t, g.URL, body(3), bearer("sk-red-1"))
	if resp.StatusCode != 429 || !strings.Contains(gjson.GetBytes(out, "error.message").Str, `team "red"`) {
		t.Fatalf("third request of the team: %d %s, want the team's budget to refuse it", resp.StatusCode, out)
	}
	if code, _, _ := call(t, http.MethodDelete, g.URL+"/admin/budgets/teams/red", bearer("sk-red-1")); code != 403 {
		t.Fatalf("a client key reset its team's budget: %d", code)
	}
	if code, _, out := call(t, http.MethodDelete, g.URL+"/admin/budgets/teams/red", bearer(accessAdminKey)); code != 200 {
		t.Fatalf("reset: %d %s", code, out)
	}
	if resp, out := post(t, g.URL, body(4), bearer("sk-red-2")); resp.StatusCode != 200 {
		t.Fatalf("after the reset: %d %s", resp.StatusCode, out)
	}
}

func TestAMessagesRequestOverBudgetIsRefusedInAnthropicsEnvelope(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, accessConfig(s, config.APIKey{Name: "claude-user", Key: "sk-claude-user", BudgetDailyUSD: 0.01}))
	// claude-sonnet-4-5 writes at most 64000 tokens at $15/M: $0.96 held.
	long := `{"model":"claude-sonnet-4-5","max_tokens":200000,"messages":[{"role":"user","content":"a long essay"}]}`
	resp, b := postMessages(t, g.URL, long, "X-Api-Key: sk-claude-user", "Anthropic-Version: 2023-06-01")
	if resp.StatusCode != 429 || gjson.GetBytes(b, "type").Str != "error" || gjson.GetBytes(b, "error.type").Str != "rate_limit_error" ||
		!strings.Contains(gjson.GetBytes(b, "error.message").Str, "may cost up to $0.96") {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	short := `{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"a short note"}]}`
	if resp, b := postMessages(t, g.URL, short, "X-Api-Key: sk-claude-user", "Anthropic-Version: 2023-06-01"); resp.StatusCode != 200 {
		t.Fatalf("a request that fits: %d %s", resp.StatusCode, b)
	}
}
