package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edge-agent/edge-agent/internal/api"
	cacheredis "github.com/edge-agent/edge-agent/internal/cache/redis"
	"github.com/edge-agent/edge-agent/internal/config"
	"github.com/edge-agent/edge-agent/internal/cost"
	"github.com/edge-agent/edge-agent/internal/gateway"
	"github.com/edge-agent/edge-agent/internal/limit"
	"github.com/edge-agent/edge-agent/internal/redact"
)

// guard is the access-control step of the pipeline: who is calling (set by
// the server's authentication hook), which models they may use, their rate
// limits and budget, and PII redaction before the prompt leaves.
type guard struct {
	auth       *limit.Auth
	limits     *limit.Limits
	budgets    *limit.Budgets
	redactor   *redact.Redactor
	redactAll  bool
	redactions *prometheus.CounterVec
	// maxCacheTTL bounds the clients' X-Cache-TTL and max-age.
	maxCacheTTL time.Duration
	// prices and maxMaxTokens price the hold of a hard budget: the most a
	// request can cost.
	prices       *cost.Table
	maxMaxTokens int64
}

type principalKey struct{}

// budgetRedisTimeout bounds one budget round trip to Redis.
const budgetRedisTimeout = time.Second

// accessControl builds auth, limits, budgets and redaction. It always
// returns a guard so open gateways are still rate limited when asked.
func (a *App) accessControl(ctx context.Context, cfg config.Config, prices *cost.Table) (*guard, error) {
	keys := make([]limit.KeyConfig, 0, len(cfg.Auth.Keys))
	for _, k := range cfg.Auth.Keys {
		keys = append(keys, limit.KeyConfig{Name: k.Name, Key: k.Key, KeySHA256: k.KeySHA256, Models: k.Models,
			RPM: k.RPM, TPM: k.TPM, Burst: k.Burst, BudgetDailyUSD: k.BudgetDailyUSD, BudgetMonthlyUSD: k.BudgetMonthlyUSD,
			CacheScope: k.CacheScope, Team: k.Team, AllowCacheBypass: k.AllowCacheBypass, ShowCacheKey: k.ShowCacheKey,
			Redact: k.Redact})
	}
	auth, err := limit.NewAuth(keys, cfg.Auth.AdminKey)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	a.auth = auth
	g := &guard{auth: auth, redactAll: cfg.Redact.Enabled, maxCacheTTL: cfg.Cache.MaxClientTTL.D(),
		prices: prices, maxMaxTokens: cfg.Limits.MaxMaxTokens}
	if g.maxCacheTTL <= 0 {
		g.maxCacheTTL = cfg.Cache.L2TTL.D() // no client keeps an entry longer than the operator would
	}

	var limiter limit.Limiter = limit.NewLocalLimiter(time.Now)
	var store limit.BudgetStore = limit.NewLocalBudgetStore()
	if cfg.Cache.RedisURL != "" {
		rdb, err := cacheredis.NewClient(cfg.Cache.RedisURL, cfg.Cache.RedisCluster)
		if err != nil {
			return nil, fmt.Errorf("redis for limits: %w", err)
		}
		a.rdb = rdb
		onFallback := func(err error) {
			a.logger.Warn("redis unavailable for limits; using local limits", "error", err.Error())
		}
		// A key of the wrong type in Redis is replaced rather than failing
		// every call into local limits; each replacement is counted.
		repairs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "llm_edge_limit_repairs_total",
			Help: "Rate-limit and budget keys in Redis that held the wrong type or a non-number and were replaced, by store."}, []string{"store"})
		a.metrics.Registry().MustRegister(repairs)
		rl, bud := repairs.WithLabelValues("rate_limit"), repairs.WithLabelValues("budget")
		limiter = limit.NewRedisLimiter(rdb, limiter, limit.RedisOptions{OnFallback: onFallback, OnRepair: rl.Inc})
		// A hold is worth waiting for: a timeout hands it to the local
		// store, which knows nothing of the other instances' spend, so
		// budgets get a far longer timeout than the rate limiter's.
		budgetOpts := limit.RedisOptions{OnFallback: onFallback, OnRepair: bud.Inc, Timeout: budgetRedisTimeout}
		if cfg.Cache.RedisCluster {
			// A hold spans a key's and its team's budgets in one script:
			// their keys must share a slot.
			budgetOpts.Prefix = "{llm-edge:budget}:"
		}
		store = limit.NewRedisBudgetStore(rdb, store, budgetOpts)
	}
	g.limits = limit.NewLimits(limiter, limit.Options{KeyRPM: cfg.Auth.RPM, KeyBurst: cfg.Auth.Burst, KeyTPM: cfg.Auth.TPM,
		GlobalRPM: cfg.Auth.GlobalRPM, GlobalTPM: cfg.Auth.GlobalTPM})
	teams := make(map[string]limit.TeamBudget, len(cfg.Auth.Teams))
	for _, t := range cfg.Auth.Teams {
		teams[t.Name] = limit.TeamBudget{DailyUSD: t.BudgetDailyUSD, MonthlyUSD: t.BudgetMonthlyUSD}
	}
	g.budgets = limit.NewBudgets(store, limit.BudgetOptions{Teams: teams, HoldTTL: cfg.Auth.BudgetHoldTTL.D()})
	a.budgets = g.budgets

	needRedactor := cfg.Redact.Enabled
	for _, k := range cfg.Auth.Keys {
		if k.Redact != nil && *k.Redact {
			needRedactor = true
		}
	}
	if needRedactor {
		o := redact.DefaultOptions()
		for _, p := range cfg.Redact.Patterns {
			o.Extra = append(o.Extra, redact.Pattern{Name: p.Name, Regexp: p.Regexp})
		}
		if g.redactor, err = redact.New(o); err != nil {
			return nil, fmt.Errorf("redact: %w", err)
		}
		g.redactions = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "llm_edge_pii_redactions_total",
			Help: "PII items replaced before prompts left for a provider, by type."}, []string{"type"})
		a.metrics.Registry().MustRegister(g.redactions)
	}
	return g, nil
}

// authenticate is the server's hook: it puts the caller in the context.
func (g *guard) authenticate(r *http.Request) (context.Context, error) {
	if g.auth.Open() {
		// Every caller is the anonymous principal (Admit's default): no
		// context value, and no copy of the request to carry it.
		return r.Context(), nil
	}
	p, err := g.auth.Authenticate(r)
	if err != nil {
		return nil, err
	}
	return context.WithValue(r.Context(), principalKey{}, p), nil
}

// Admit implements gateway.Guard.
func (g *guard) Admit(ctx context.Context, h http.Header, model string, body []byte, est gateway.Estimate) (gateway.Admission, error) {
	p, _ := ctx.Value(principalKey{}).(*limit.Principal)
	if p == nil {
		p = g.auth.Anonymous()
	}
	if p == nil {
		return gateway.Admission{}, &api.Error{Status: http.StatusUnauthorized, Type: api.TypeInvalidRequest, Message: "missing credentials"}
	}
	if !p.AllowsModel(model) {
		return gateway.Admission{}, limit.ModelNotAllowed(model)
	}
	var res *limit.Reservation // the hold of a hard budget; nil: none applies
	if !p.Anonymous && g.budgets.Budgeted(p) {
		maxUSD, ok := g.maxCost(est)
		if !ok {
			return gateway.Admission{}, &api.Error{Status: http.StatusForbidden, Type: api.TypePermission, Param: "model",
				Code: "budget_unpriced_model", Message: fmt.Sprintf("the model %q has no price, so a request cannot be held "+
					"against this API key's budget; the operator can price it under prices:", est.Model)}
		}
		var err error
		if res, err = g.budgets.Reserve(ctx, p, maxUSD); err != nil {
			return gateway.Admission{}, err
		}
	}
	tokens := est.Tokens()
	req, tok, err := g.limits.Check(ctx, p, tokens)
	limit.SetHeaders(h, req, tok)
	if err != nil {
		if res != nil {
			_ = res.Settle(ctx, 0)
		}
		return gateway.Admission{}, err
	}
	adm := gateway.Admission{Principal: p.Name, Namespace: p.CacheNamespace, MaxCacheTTL: g.maxCacheTTL,
		NoCacheBypass: !p.AllowCacheBypass, HideCacheKey: !p.ShowCacheKey}
	redactOn := g.redactAll
	if p.Redact != nil {
		redactOn = *p.Redact
	}
	if redactOn && g.redactor != nil {
		out, counts, err := g.redactor.RedactRequest(body)
		if err != nil {
			if res != nil {
				_ = res.Settle(ctx, 0)
			}
			return gateway.Admission{}, api.InvalidRequest("messages", "cannot redact request: %v", err)
		}
		for typ, n := range counts {
			g.redactions.WithLabelValues(typ).Add(float64(n))
		}
		if len(counts) > 0 {
			adm.Body = out
		}
	}
	if p.Anonymous && !g.limits.CountsTokens(p) {
		// An open gateway without token limits has nothing to account
		// afterwards (spend is kept per client key).
		return adm, nil
	}
	adm.Done = func(used int, usd float64) {
		// The client may be gone; accounting must still happen.
		bg := context.WithoutCancel(ctx)
		// Hits and failures used no provider tokens: the estimate is refunded.
		g.limits.Correct(bg, p, tokens, used)
		if res != nil {
			_ = res.Settle(bg, usd) // releases the hold; a failed settle's hold expires
		} else if !p.Anonymous {
			_ = g.budgets.Add(bg, p, usd) // spend is kept for every key
		}
	}
	return adm, nil
}

// maxCost is the most the request can cost: its prompt estimate and its
// max_tokens, or the model's output limit, or the gateway's max_max_tokens
// when neither is known, at the model's prices. ok is false for a model
// without a price.
func (g *guard) maxCost(est gateway.Estimate) (usd float64, ok bool) {
	_, price, ok := g.prices.Lookup(est.Model)
	if !ok {
		return 0, false
	}
	if est.NoCompletion {
		return price.MaxCost(est.PromptTokens, 0), true
	}
	out := est.MaxTokens
	if lim := price.MaxOutputTokens; lim > 0 && (out <= 0 || out > lim) {
		out = lim // the model cannot write more, whatever was asked
	}
	if out <= 0 {
		out = g.maxMaxTokens
	}
	return price.MaxCost(est.PromptTokens, out), true
}

// budgetRoutes are the admin endpoints to read and reset a key's or a
// team's spend.
func (a *App) budgetRoutes() map[string]http.HandlerFunc {
	get := func(scope func(*http.Request) string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			s, err := a.budgets.Spend(r.Context(), scope(r))
			if err != nil {
				api.WriteError(w, err)
				return
			}
			writeJSON(w, s)
		}
	}
	reset := func(scope func(*http.Request) string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			name := scope(r)
			if err := a.budgets.Reset(r.Context(), name); err != nil {
				api.WriteError(w, &api.Error{Status: http.StatusBadGateway, Type: api.TypeServer, Code: "budget_reset_failed", Message: err.Error()})
				return
			}
			a.audit(r, "budget.reset", slog.String("scope", name))
			writeJSON(w, map[string]any{"reset": name})
		}
	}
	key := func(r *http.Request) string { return r.PathValue("name") }
	team := func(r *http.Request) string { return limit.TeamScope(r.PathValue("team")) }
	return map[string]http.HandlerFunc{
		"GET /admin/budgets/{name}":          get(key),
		"DELETE /admin/budgets/{name}":       reset(key),
		"GET /admin/budgets/teams/{team}":    get(team),
		"DELETE /admin/budgets/teams/{team}": reset(team),
	}
}
