// Package route decides which deployment answers a model and keeps the
// answer coming when providers fail: resolution, load-balancing strategies,
// retries, fallbacks, circuit breakers, timeouts and backpressure.
package route

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tidwall/sjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/provider"
)

// Strategy names accepted in ModelGroup.Strategy.
const (
	// StrategyWeighted spreads load by Weight with smooth weighted
	// round-robin: the default, for deployments of equal quality.
	StrategyWeighted = "weighted"
	// StrategyLeastLatency sends to the deployment with the lowest recent
	// latency (EWMA), exploring the others a little so a recovered one is
	// noticed: for latency-sensitive traffic across regions or vendors.
	StrategyLeastLatency = "least-latency"
	// StrategyLowestCost sends to the cheapest deployment by input price
	// and moves on only when it fails: for batch or cost-bound traffic.
	StrategyLowestCost = "lowest-cost"
	// StrategyPriority sends to the lowest Priority number and fails over
	// to the next: for a primary with standby capacity.
	StrategyPriority = "priority"
)

// Defaults applied by New for zero config values.
const (
	DefaultMaxRetries          = 2
	DefaultBaseBackoff         = 100 * time.Millisecond
	DefaultMaxBackoff          = 2 * time.Second
	DefaultMaxRetryAfter       = 10 * time.Second
	DefaultConsecutiveFailures = 5
	DefaultFailureRate         = 0.5
	DefaultBreakerWindow       = 10 * time.Second
	DefaultMinRequests         = 20
	DefaultOpenFor             = 30 * time.Second
	DefaultHalfOpenProbes      = 1
	DefaultFirstByteTimeout    = 60 * time.Second
	DefaultStreamIdleTimeout   = 60 * time.Second
	DefaultTotalTimeout        = 10 * time.Minute
	// DefaultMaxInflight and DefaultDeploymentInflight hold LLM traffic:
	// a call lasts seconds to minutes, so one instance holds tens of
	// thousands at once. They are the floor of InflightForFiles.
	DefaultMaxInflight        = 20000
	DefaultDeploymentInflight = 20000
	DefaultQueueWait          = 100 * time.Millisecond
	// DefaultExploration is the share of least-latency picks made at random.
	DefaultExploration = 0.05
)

// maxGroupDeployments bounds a group so a request can track the deployments
// it tried in one machine word.
const maxGroupDeployments = 64

// Deployment is one place a model is served.
type Deployment struct {
	// Name is unique in the model table (default "provider/model") and used in
	// metrics and headers. A provider's direct route ("provider/model" and
	// name rules) is a deployment named after the provider; a table
	// deployment may share that name, and then shares its metric labels.
	Name        string
	Provider    provider.Provider
	Model       string        // upstream model id at this deployment
	Weight      int           // weighted round-robin share (0: 1)
	Priority    int           // lower first, for the priority strategy
	RPM, TPM    int           // local caps (0: none); a capped deployment is skipped like an open breaker
	MaxInflight int           // concurrent upstream calls (0: DefaultDeploymentInflight)
	Timeout     time.Duration // replaces Timeouts.FirstByte for this deployment (0: keep it)
}

// ModelGroup is a model name clients use, served by one or more deployments.
type ModelGroup struct {
	Name        string
	Aliases     []string
	Deployments []Deployment
	Strategy    string   // one of the Strategy constants; "" is StrategyWeighted
	Fallbacks   []string // model names tried, in order, when every deployment failed
}

// RetryConfig bounds retries. Attempts per model are 1+MaxRetries; every
// fallback model gets its own attempts.
type RetryConfig struct {
	MaxRetries    int           // 0: DefaultMaxRetries; negative: no retries
	BaseBackoff   time.Duration // first backoff ceiling; doubles per retry (full jitter)
	MaxBackoff    time.Duration // backoff ceiling
	MaxRetryAfter time.Duration // a longer Retry-After is not waited for: the deployment is left for this request
}

// BreakerConfig tunes the per-deployment circuit breakers. Failures are 5xx,
// connection errors and timeouts; a 429 is not a failure (the deployment is
// alive and says so) but is retried elsewhere or after Retry-After.
type BreakerConfig struct {
	Disabled            bool
	ConsecutiveFailures int           // open after this many failures in a row (0: default; negative: off)
	FailureRate         float64       // open when this share of calls in Window failed (0: default; negative: off)
	Window              time.Duration // failure-rate window
	MinRequests         int           // calls needed in Window before the rate counts
	OpenFor             time.Duration // then half-open
	HalfOpenProbes      int           // concurrent probes admitted when half-open; one success closes
}

// TimeoutConfig bounds the time an answer may take.
type TimeoutConfig struct {
	// FirstByte bounds one attempt until the answer (non-streaming) or the
	// first chunk (streaming).
	FirstByte time.Duration
	// StreamIdle bounds the wait between two chunks once a stream started.
	StreamIdle time.Duration
	// Total bounds the whole request: attempts, backoffs and the stream.
	Total time.Duration
}

// Config configures a Router. The zero value of every field is a default.
type Config struct {
	// Providers holds every configured provider by name.
	Providers map[string]provider.Provider
	// Groups is the explicit model table (may be empty).
	Groups []ModelGroup
	// Aliases maps a name to a model name, a group or "provider/model".
	Aliases map[string]string

	Retry    RetryConfig
	Breaker  BreakerConfig
	Timeouts TimeoutConfig

	// MaxInflight bounds requests inside the router (upstream calls, their
	// retries and open streams); QueueWait is how long an excess request, or
	// one whose deployments are all at MaxInflight, waits before a 503.
	MaxInflight int
	QueueWait   time.Duration
	// DeploymentMaxInflight is the MaxInflight of a deployment that sets
	// none (0: DefaultDeploymentInflight).
	DeploymentMaxInflight int

	// PriceFunc gives a model's input price in USD per million tokens, for
	// the lowest-cost strategy. Deployments without a price go last.
	PriceFunc func(model string) (usdPerMInput float64, ok bool)

	// Exploration is the share of least-latency picks made at random
	// (0: DefaultExploration; negative: none).
	Exploration float64

	// Now and Rand are injectable for tests; Rand must be safe for
	// concurrent use and return values in [0,1).
	Now  func() time.Time
	Rand func() float64

	// Metric hooks, called without locks held. Model is the route name
	// (Target.String()); mind label cardinality when exporting it.
	OnRetry         func(model, deployment string)
	OnFallback      func(fromModel, toModel string)
	OnBreakerChange func(deployment string, state State)
	// OnAttempt is called once per upstream attempt with how it ended
	// (retries and fallbacks each count); a stream's when it ends. A
	// request that found every deployment's breaker open counts one
	// breaker_open attempt per such deployment.
	OnAttempt func(deployment, provider string, outcome AttemptOutcome)
	// TraceAttempt, if set, starts the span of one upstream attempt: ctx
	// is the call's, header the attempt's own copy of the request headers
	// (to write the attempt's trace context into), providerType the
	// provider's Type(), surface the API called upstream. The returned
	// context is the attempt's; end is called once, when the attempt (a
	// stream: the whole stream) ends.
	TraceAttempt func(ctx context.Context, header http.Header, deployment, providerType, model string, surface provider.Surface) (context.Context, func(AttemptOutcome))
}

// Target is a resolved model: what the cache key is computed from.
//
// For a model table entry, Group is the entry's name and Model equals it;
// Provider is empty because any of the group's deployments may answer, and
// all of them share cache entries. For a direct route, Provider is the
// configured provider's name and Model the upstream model.
type Target struct {
	Provider string
	Model    string
	Group    string

	g *group // resolved route; nil for a Target built by hand
}

// String is the canonical route name: the group, or "provider/model".
func (t Target) String() string {
	if t.Group != "" {
		return t.Group
	}
	return t.Provider + "/" + t.Model
}

// DeploymentHealth is one deployment's state for /health.
type DeploymentHealth struct {
	Name        string        `json:"name"`
	Provider    string        `json:"provider"`
	Model       string        `json:"model,omitempty"` // "" for a provider's direct route
	State       State         `json:"state"`
	Inflight    int           `json:"inflight"`
	MaxInflight int           `json:"max_inflight"`
	Latency     time.Duration `json:"latency_ewma_ns"`
}

// Router routes chat completions to deployments. It starts no goroutines;
// all its methods are safe for concurrent use.
type Router struct {
	cfg        Config
	groups     map[string]*group // by group name
	direct     map[string]*group // by provider name: one deployment each, model from the Target
	table      map[string]Target // group names, group aliases and aliases
	advertised map[string]Target // models providers list through Models()
	order      []*group          // groups then direct routes, for Health
	provList   string            // configured provider names, for error messages
	global     semaphore
	closed     atomic.Bool
	// rejected counts requests refused at MaxInflight; depRejected those
	// that waited QueueWait for a deployment at its MaxInflight in vain.
	rejected    atomic.Int64
	depRejected atomic.Int64
	created     int64
}

// New validates cfg, applies defaults and builds a Router.
func New(cfg Config) (*Router, error) {
	applyDefaults(&cfg)
	r := &Router{
		cfg:        cfg,
		groups:     make(map[string]*group, len(cfg.Groups)),
		direct:     make(map[string]*group, len(cfg.Providers)),
		table:      make(map[string]Target),
		advertised: make(map[string]Target),
		global:     newSemaphore(cfg.MaxInflight),
		created:    cfg.Now().Unix(),
	}
	names := make([]string, 0, len(cfg.Providers))
	for name, p := range cfg.Providers {
		if p == nil {
			return nil, fmt.Errorf("route: provider %q is nil", name)
		}
		if name == "" || strings.Contains(name, "/") {
			return nil, fmt.Errorf("route: provider name %q must be non-empty and contain no '/'", name)
		}
		names = append(names, name)
	}
	sort.Strings(names)
	r.provList = strings.Join(names, ", ")

	depNames := make(map[string]bool)
	for _, name := range names {
		d := newDeployment(Deployment{Name: name, Provider: cfg.Providers[name]}, &r.cfg)
		g := newGroup(&r.cfg, name, StrategyWeighted, []*deployment{d}, nil, true)
		r.direct[name] = g
		if lister, ok := cfg.Providers[name].(interface{ Models() []string }); ok {
			for _, m := range lister.Models() {
				if _, dup := r.advertised[m]; !dup && m != "" {
					r.advertised[m] = Target{Provider: name, Model: m, g: g}
				}
			}
		}
	}
	for i := range cfg.Groups {
		g, err := r.buildGroup(&cfg.Groups[i], depNames)
		if err != nil {
			return nil, err
		}
		if _, dup := r.table[g.name]; dup {
			return nil, fmt.Errorf("route: model %q is defined twice", g.name)
		}
		r.groups[g.name] = g
		r.order = append(r.order, g)
		r.table[g.name] = Target{Model: g.name, Group: g.name, g: g}
	}
	for i := range cfg.Groups {
		for _, a := range cfg.Groups[i].Aliases {
			if _, dup := r.table[a]; dup {
				return nil, fmt.Errorf("route: alias %q of model %q is already a model or alias", a, cfg.Groups[i].Name)
			}
			r.table[a] = r.table[cfg.Groups[i].Name]
		}
	}
	for _, name := range names {
		r.order = append(r.order, r.direct[name])
	}
	if err := r.resolveAliases(); err != nil {
		return nil, err
	}
	for _, g := range r.order {
		for _, fb := range g.fallbacks {
			if _, err := r.Resolve(fb); err != nil {
				return nil, fmt.Errorf("route: fallback %q of model %q: %w", fb, g.name, err)
			}
		}
	}
	return r, nil
}

func applyDefaults(c *Config) {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Retry.MaxRetries == 0 {
		c.Retry.MaxRetries = DefaultMaxRetries
	} else if c.Retry.MaxRetries < 0 {
		c.Retry.MaxRetries = 0
	}
	def(&c.Retry.BaseBackoff, DefaultBaseBackoff)
	def(&c.Retry.MaxBackoff, DefaultMaxBackoff)
	def(&c.Retry.MaxRetryAfter, DefaultMaxRetryAfter)
	if c.Breaker.ConsecutiveFailures == 0 {
		c.Breaker.ConsecutiveFailures = DefaultConsecutiveFailures
	}
	if c.Breaker.FailureRate == 0 {
		c.Breaker.FailureRate = DefaultFailureRate
	}
	def(&c.Breaker.Window, DefaultBreakerWindow)
	if c.Breaker.MinRequests <= 0 {
		c.Breaker.MinRequests = DefaultMinRequests
	}
	def(&c.Breaker.OpenFor, DefaultOpenFor)
	if c.Breaker.HalfOpenProbes <= 0 {
		c.Breaker.HalfOpenProbes = DefaultHalfOpenProbes
	}
	def(&c.Timeouts.FirstByte, DefaultFirstByteTimeout)
	def(&c.Timeouts.StreamIdle, DefaultStreamIdleTimeout)
	def(&c.Timeouts.Total, DefaultTotalTimeout)
	if c.MaxInflight <= 0 {
		c.MaxInflight = DefaultMaxInflight
	}
	if c.DeploymentMaxInflight <= 0 {
		c.DeploymentMaxInflight = DefaultDeploymentInflight
	}
	def(&c.QueueWait, DefaultQueueWait)
	if c.Exploration == 0 {
		c.Exploration = DefaultExploration
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
}

func (r *Router) buildGroup(mg *ModelGroup, depNames map[string]bool) (*group, error) {
	if mg.Name == "" {
		return nil, errors.New("route: a model table entry has no name")
	}
	strategy := mg.Strategy
	if strategy == "" {
		strategy = StrategyWeighted
	}
	switch strategy {
	case StrategyWeighted, StrategyLeastLatency, StrategyLowestCost, StrategyPriority:
	default:
		return nil, fmt.Errorf("route: model %q: unknown strategy %q (want %s, %s, %s or %s)", mg.Name, mg.Strategy,
			StrategyWeighted, StrategyLeastLatency, StrategyLowestCost, StrategyPriority)
	}
	if len(mg.Deployments) == 0 {
		return nil, fmt.Errorf("route: model %q has no deployments", mg.Name)
	}
	if len(mg.Deployments) > maxGroupDeployments {
		return nil, fmt.Errorf("route: model %q has %d deployments, at most %d are supported", mg.Name, len(mg.Deployments), maxGroupDeployments)
	}
	deps := make([]*deployment, 0, len(mg.Deployments))
	for _, dc := range mg.Deployments {
		if dc.Provider == nil {
			return nil, fmt.Errorf("route: model %q: deployment %q has no provider", mg.Name, dc.Name)
		}
		if dc.Model == "" {
			return nil, fmt.Errorf("route: model %q: deployment %q has no upstream model", mg.Name, dc.Name)
		}
		if dc.Name == "" {
			dc.Name = dc.Provider.Name() + "/" + dc.Model
		}
		if dc.Weight < 0 || dc.RPM < 0 || dc.TPM < 0 || dc.MaxInflight < 0 || dc.Timeout < 0 {
			return nil, fmt.Errorf("route: model %q: deployment %q: weight, rpm, tpm, max_inflight and timeout must not be negative", mg.Name, dc.Name)
		}
		if depNames[dc.Name] {
			return nil, fmt.Errorf("route: deployment name %q is used twice in the model table", dc.Name)
		}
		depNames[dc.Name] = true
		deps = append(deps, newDeployment(dc, &r.cfg))
	}
	return newGroup(&r.cfg, mg.Name, strategy, deps, slices.Clone(mg.Fallbacks), false), nil
}

// resolveAliases turns every alias into the Target it finally names, so
// Resolve is one map lookup. Aliases may name other aliases.
func (r *Router) resolveAliases() error {
	pending := make(map[string]string, len(r.cfg.Aliases))
	for a, to := range r.cfg.Aliases {
		if _, dup := r.table[a]; dup {
			return fmt.Errorf("route: alias %q is already a model or alias", a)
		}
		pending[a] = to
	}
	for len(pending) > 0 {
		progress := false
		for a, to := range pending {
			if _, waiting := pending[to]; waiting {
				continue
			}
			t, err := r.Resolve(to)
			if err != nil {
				return fmt.Errorf("route: alias %q -> %q: %w", a, to, err)
			}
			r.table[a] = t
			delete(pending, a)
			progress = true
		}
		if !progress {
			return fmt.Errorf("route: aliases form a cycle: %v", mapKeys(pending))
		}
	}
	return nil
}

func mapKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Models lists what clients can ask for: model table entries, aliases and
// the models providers advertise (by implementing Models() []string), each
// once.
func (r *Router) Models() []api.Model {
	seen := make(map[string]bool)
	var out []api.Model
	add := func(id, owner string) {
		if id == "" || seen[id] {
			return
		}
		seen[id] = true
		out = append(out, api.Model{ID: id, Object: "model", Created: r.created, OwnedBy: owner})
	}
	for _, g := range r.order {
		if g.direct {
			continue
		}
		add(g.name, g.deps[0].provName)
	}
	aliases := make([]string, 0, len(r.table))
	for a := range r.table {
		aliases = append(aliases, a)
	}
	sort.Strings(aliases)
	for _, a := range aliases {
		t := r.table[a]
		owner := t.Provider
		if t.g != nil {
			owner = t.g.deps[0].provName
		}
		add(a, owner)
	}
	for _, g := range r.order {
		if !g.direct {
			continue
		}
		if lister, ok := g.deps[0].prov.(interface{ Models() []string }); ok {
			for _, m := range lister.Models() {
				add(m, g.name)
			}
		}
	}
	return out
}

// Health reports every deployment: the model table's first, then one per
// provider for direct routes.
func (r *Router) Health() []DeploymentHealth {
	now := r.cfg.Now()
	var out []DeploymentHealth
	for _, g := range r.order {
		for _, d := range g.deps {
			out = append(out, d.health(now))
		}
	}
	return out
}

// Close makes further calls fail with 503. Streams already returned keep
// running until their end.
func (r *Router) Close() { r.closed.Store(true) }

func errClosed() *api.Error {
	return &api.Error{Status: http.StatusServiceUnavailable, Type: api.TypeOverloaded, Code: "shutting_down",
		Message: "the gateway is shutting down", RetryAfter: time.Second}
}

// Speaks reports whether every deployment that may serve t speaks surface
// s natively (provider.Speaks), so a request in that surface's format can
// be passed through to whichever of them answers.
func (t Target) Speaks(s provider.Surface) bool {
	if t.g == nil || len(t.g.deps) == 0 {
		return s == provider.SurfaceChat
	}
	for _, d := range t.g.deps {
		if !provider.Speaks(d.prov, s) {
			return false
		}
	}
	return true
}

// Speaks is t.Speaks(s), for the gateway's SurfaceRouter.
func (r *Router) Speaks(t Target, s provider.Surface) bool { return t.Speaks(s) }

// TokenCounter is implemented by providers that count a Messages
// request's tokens upstream (Anthropic's /v1/messages/count_tokens).
type TokenCounter interface {
	CountTokens(ctx context.Context, req *provider.Request) ([]byte, error)
}

// CountTokens asks the first of t's deployments that can count tokens
// upstream, with the body's model rewritten to the deployment's; ok is
// false when none can (the caller estimates).
func (r *Router) CountTokens(ctx context.Context, t Target, req *provider.Request) (answer []byte, ok bool, err error) {
	if t.g == nil {
		return nil, false, nil
	}
	for _, d := range t.g.deps {
		tc, can := d.prov.(TokenCounter)
		if !can {
			continue
		}
		model := d.model
		if model == "" {
			model = t.Model
		}
		body, err := sjson.SetBytes(bytes.Clone(req.Body), "model", model)
		if err != nil {
			return nil, true, api.InvalidRequest("", "cannot rewrite the request for model %q: %v", model, err)
		}
		preq := *req
		preq.Body, preq.Model = body, model
		b, err := tc.CountTokens(ctx, &preq)
		return b, true, err
	}
	return nil, false, nil
}

// Rejected reports the requests refused because the router was at
// MaxInflight, and those refused because every deployment they could use
// stayed at its MaxInflight for QueueWait.
func (r *Router) Rejected() (maxInflight, deploymentMaxInflight int64) {
	return r.rejected.Load(), r.depRejected.Load()
}

// MaxInflightCap bounds what InflightForFiles derives, so that a huge
// RLIMIT_NOFILE (some systems allow 2^30) does not size a cap that the
// memory of one instance could never hold.
const MaxInflightCap = 200000

// InflightForFiles is the concurrency cap for a process allowed nofile open
// files: every proxied request holds about two (the client's connection and
// the upstream's), so max(DefaultMaxInflight, nofile/2), at most
// MaxInflightCap.
func InflightForFiles(nofile uint64) int {
	n := nofile / 2
	if n > MaxInflightCap {
		n = MaxInflightCap
	}
	return max(DefaultMaxInflight, int(n))
}

// MaxInflight is the router's concurrency cap, after defaults.
func (r *Router) MaxInflight() int { return cap(r.global) }
