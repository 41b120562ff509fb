// Package app wires edge-agent's components from a Config and runs the
// HTTP listeners with graceful shutdown.
package app

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/cache"
	"github.com/edge-agent/edge-agent/internal/cache/memory"
	cacheredis "github.com/edge-agent/edge-agent/internal/cache/redis"
	"github.com/edge-agent/edge-agent/internal/config"
	"github.com/edge-agent/edge-agent/internal/cost"
	"github.com/edge-agent/edge-agent/internal/detach"
	"github.com/edge-agent/edge-agent/internal/gateway"
	"github.com/edge-agent/edge-agent/internal/limit"
	"github.com/edge-agent/edge-agent/internal/provider"
	"github.com/edge-agent/edge-agent/internal/provider/anthropic"
	"github.com/edge-agent/edge-agent/internal/provider/azure"
	"github.com/edge-agent/edge-agent/internal/provider/bedrock"
	"github.com/edge-agent/edge-agent/internal/provider/gemini"
	"github.com/edge-agent/edge-agent/internal/provider/openai"
	"github.com/edge-agent/edge-agent/internal/route"
	"github.com/edge-agent/edge-agent/internal/server"
	"github.com/edge-agent/edge-agent/internal/surface/completions"
	"github.com/edge-agent/edge-agent/internal/surface/messages"
	"github.com/edge-agent/edge-agent/internal/surface/responses"
	"github.com/edge-agent/edge-agent/internal/telemetry"
)

// Version is the gateway's version, reported by /health and `version`.
const Version = "0.1.0"

// App is a wired gateway.
type App struct {
	cfg     config.Config
	logger  *telemetry.Logger
	router  *route.Router
	l1      *memory.Cache
	l2      *cacheredis.Cache
	tiered  *cache.Tiered
	rdb     rueidis.Client // limits and budgets
	metrics *telemetry.Metrics
	stats   *telemetry.Stats
	tracer  *telemetry.Tracer
	traceFn func(context.Context) error
	server  *server.Server
	auth    *limit.Auth
	budgets *limit.Budgets
	keys    *runtimeKeys // /admin/keys and the sync of runtime keys
	// upstream are the providers' transports; Close drops their idle
	// keep-alive connections (and the goroutines serving them).
	upstream []*provider.Transport

	// Reload (reload.go): root is the App Run was called on; it serves
	// whichever generation live holds. A generation borrows the caches
	// and the tracer of the one before it; owns* say who closes them.
	root        *App
	live        atomic.Pointer[App]
	inflight    atomic.Int64 // requests this generation is serving
	retired     atomic.Bool  // replaced by a reload: no new requests
	ownsCache   bool
	ownsTracer  bool
	reloads     atomic.Int64 // on root
	reloadFails atomic.Int64 // on root
	reloadMu    sync.Mutex   // on root: one reload at a time
	draining    bool         // on root, under reloadMu: shutdown began
	retiring    sync.WaitGroup
	closeOnce   sync.Once
	detached    atomic.Pointer[detach.Detacher] // on root, set by Serve
	// respStore is the Responses API's store; closeResponses releases it
	// (nil when a later generation took it over).
	respStore      responses.Store
	closeResponses func()
}

// Option changes how New builds the App.
type Option func(*App)

// WithTracerProvider traces through tp instead of the OTLP exporter the
// environment asks for (tests use an in-memory recorder).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(a *App) { a.tracer = telemetry.NewTracer(tp) }
}

// New builds every component from cfg. It does not listen; see Run and
// Handler.
func New(ctx context.Context, cfg config.Config, logger *telemetry.Logger, opts ...Option) (*App, error) {
	a := &App{cfg: cfg, logger: logger}
	for _, o := range opts {
		o(a)
	}
	if a.root == nil {
		a.root = a
		a.live.Store(a)
	}
	ok := false
	defer func() {
		if !ok {
			a.Close()
		}
	}()
	prices := cost.Default()
	if len(cfg.Prices) > 0 {
		over := make(map[string]cost.Price, len(cfg.Prices))
		for m, p := range cfg.Prices {
			over[m] = cost.Price{InputPerM: p.Input, OutputPerM: p.Output, CachedInputPerM: p.CachedInput,
				CacheWrite5mPerM: p.CacheWrite5m, CacheWrite1hPerM: p.CacheWrite1h, MaxOutputTokens: p.MaxOutput}
			if _, known, ok := prices.Lookup(m); ok && p.MaxOutput == 0 {
				// A new price keeps the model's known output limit.
				o := over[m]
				o.MaxOutputTokens = known.MaxOutputTokens
				over[m] = o
			}
		}
		prices = prices.With(over)
	}

	// Providers and routing.
	providers := make(map[string]provider.Provider, len(cfg.Providers))
	var providerNames, modelNames []string
	for _, p := range cfg.Providers {
		prov, tr, err := newProvider(ctx, p, cfg.UpstreamHTTPClient)
		a.upstream = append(a.upstream, tr)
		if err != nil {
			return nil, fmt.Errorf("provider %s: %w", p.Name, err)
		}
		providers[p.Name] = prov
		providerNames = append(providerNames, p.Name)
		modelNames = append(modelNames, p.Models...)
	}
	rcfg := routeConfig(cfg, providers, prices)
	for _, g := range rcfg.Groups {
		modelNames = append(modelNames, g.Name)
		for _, d := range g.Deployments {
			providerNames = append(providerNames, d.Name)
			modelNames = append(modelNames, d.Model)
		}
	}

	// Cache tiers.
	var l1Stats, l2Stats telemetry.TierStats
	var l2Up func() bool
	if a.l1 != nil { // borrowed from the generation before a reload
		l1Stats = func() (int64, int64) { return int64(a.l1.Len()), a.l1.Bytes() }
		if a.l2 != nil {
			l2Up, l2Stats = a.l2.Healthy, a.l2Entries
		}
	} else if cfg.Cache.Enabled {
		a.ownsCache = true
		var err error
		a.l1, err = memory.New(memory.Options{MaxBytes: cfg.Cache.L1MaxBytes, MaxEntries: cfg.Cache.L1MaxEntries, TTL: cfg.Cache.L1TTL.D()})
		if err != nil {
			return nil, fmt.Errorf("L1 cache: %w", err)
		}
		l1Stats = func() (int64, int64) { return int64(a.l1.Len()), a.l1.Bytes() }
		if cfg.Cache.RedisURL != "" {
			a.l2, err = cacheredis.New(ctx, cacheredis.Options{URL: cfg.Cache.RedisURL, Cluster: cfg.Cache.RedisCluster,
				TTL: cfg.Cache.L2TTL.D(), Timeout: cfg.Cache.RedisTimeout.D()})
			if err != nil {
				return nil, fmt.Errorf("L2 cache: %w", err)
			}
			l2Up = a.l2.Healthy
			l2Stats = a.l2Entries
		}
	}

	// Telemetry.
	var outcomes []string
	for _, o := range route.AttemptOutcomes() {
		outcomes = append(outcomes, o.String())
	}
	a.metrics = telemetry.NewMetrics(telemetry.MetricsOptions{Providers: providerNames, Models: modelNames, Prices: prices,
		L1Stats: l1Stats, L2Stats: l2Stats, L2Up: l2Up, AttemptOutcomes: outcomes, Version: Version})
	a.stats = telemetry.NewStats()
	rcfg.OnRetry = func(_, deployment string) { a.metrics.Retry(deployment) }
	rcfg.OnFallback = func(_, _ string) { a.metrics.Fallback() }
	rcfg.OnAttempt = func(_, provider string, o route.AttemptOutcome) { a.metrics.UpstreamAttempt(provider, o.String()) }
	rcfg.OnBreakerChange = func(deployment string, s route.State) { a.metrics.BreakerState(deployment, float64(s)) }
	var err error
	if a.tracer == nil {
		a.ownsTracer = true
		a.tracer, a.traceFn, err = telemetry.SetupTracing(ctx, Version)
		if err != nil {
			return nil, fmt.Errorf("tracing: %w", err)
		}
	}
	if a.tracer.Enabled() {
		rcfg.TraceAttempt = func(ctx context.Context, h http.Header, deployment, typ, model string, s provider.Surface) (context.Context, func(route.AttemptOutcome)) {
			ctx, end := a.tracer.StartAttempt(ctx, h, deployment, typ, model, s)
			return ctx, func(o route.AttemptOutcome) { end(o.String(), o != route.AttemptOK) }
		}
	}
	a.router, err = route.New(rcfg)
	if err != nil {
		return nil, fmt.Errorf("routing: %w", err)
	}
	registerInflightMetrics(a.metrics.Registry(), a.router)
	for _, h := range a.router.Health() {
		// Export every series from the start, so dashboards and alerts see
		// zeros rather than nothing.
		a.metrics.BreakerState(h.Name, float64(h.State))
	}

	if cfg.Cache.Enabled && a.tiered == nil {
		root := a.root
		t := cache.Options{L1: a.l1, L1TTL: cfg.Cache.L1TTL.D(), L2TTL: cfg.Cache.L2TTL.D(),
			// The live generation's metrics: the tiers outlive reloads.
			OnError: func(tier cache.Tier, op string, _ error) { root.live.Load().metrics.CacheError(tier.String(), op) }}
		if a.tracer.Enabled() {
			t.Trace = func(ctx context.Context, tier cache.Tier) (context.Context, func(bool)) {
				ctx, span := a.tracer.StartSpan(ctx, "cache."+tier.String())
				return ctx, func(hit bool) {
					span.SetAttributes(attribute.Bool("cache.hit", hit))
					span.End()
				}
			}
		}
		if a.l2 != nil {
			t.L2 = a.l2
		}
		a.tiered = cache.NewTiered(t)
	}

	// Access control.
	g, err := a.accessControl(ctx, cfg, prices)
	if err != nil {
		return nil, err
	}
	var keyStore limit.KeyStore
	switch {
	case a.rdb != nil:
		keyStore = limit.NewRedisKeyStore(a.rdb, "")
	case cfg.Auth.KeysFile != "":
		fs, err := limit.OpenFileKeyStore(cfg.Auth.KeysFile)
		if err != nil {
			return nil, err
		}
		keyStore = fs
	}
	a.startRuntimeKeys(keyStore)

	bodies := gateway.NewBodyBudget(cfg.MaxBodyMemoryBytes)
	registerBodyMetrics(a.metrics.Registry(), bodies)
	registerReloadMetrics(a.metrics.Registry(), a.root)
	gw := gateway.New(gateway.Options{
		Router: a.router, Cache: a.tiered, CoalesceWait: cfg.Cache.CoalesceWait.D(), Prices: prices,
		Observer: &telemetry.Observer{Metrics: a.metrics, Stats: a.stats, Logger: logger},
		Tracer:   a.tracer, Logger: logger.Logger, MaxBodyBytes: cfg.MaxRequestSize, MaxCaptureBytes: int(cfg.MaxCaptureBytes),
		BodyBudget: bodies, BodyReadTimeout: cfg.BodyReadTimeout.D(),
		Limits: api.Limits{MaxMessages: cfg.Limits.MaxMessages, MaxMaxTokens: cfg.Limits.MaxMaxTokens, MaxN: cfg.Limits.MaxN},
		Guard:  g,
		Hold:   a.hold,
	})
	if a.respStore == nil { // not carried over from the generation before (reload)
		var err error
		if a.respStore, a.closeResponses, err = newResponsesStore(cfg); err != nil {
			return nil, err
		}
	}
	respStore := a.respStore
	so := server.Options{
		Version: Version, Logger: logger.Logger, Chat: gw,
		Routes: append([]server.Route{
			{Method: http.MethodPost, Path: "/v1/messages", Handler: gw.Handler(messages.Surface{})},
			{Method: http.MethodPost, Path: "/v1/messages/count_tokens", Handler: http.HandlerFunc(gw.ServeCountTokens)},
			{Method: http.MethodPost, Path: "/v1/embeddings", Handler: http.HandlerFunc(gw.ServeEmbeddings)},
			{Method: http.MethodPost, Path: "/v1/completions", Handler: gw.Handler(completions.Surface{})},
		}, responsesRoutes(gw, g, respStore)...),
		Models:  a.router.Models,
		Health:  a.health,
		Ready:   func() bool { return len(cfg.Providers) > 0 },
		Metrics: a.metrics.Handler(),
		Stats:   func() any { return a.stats.Snapshot() },
		Cache:   a.tiered,
	}
	if g != nil {
		so.Authenticate = g.authenticate
		so.AuthenticateAdmin = a.auth.AuthenticateAdmin
		so.Admin = a.budgetRoutes()
		maps.Copy(so.Admin, a.keyRoutes())
	}
	a.server = server.New(so)
	ok = true
	return a, nil
}

// newProvider builds the adapter of p; the transport is returned even
// with an error, for Close.
func newProvider(ctx context.Context, p config.Provider, httpClient string) (provider.Provider, *provider.Transport, error) {
	tr := provider.NewTransport(provider.TransportOptions{ConnectTimeout: p.ConnectTimeout.D(), MaxIdleConnsPerHost: p.MaxIdleConns,
		StdOnly: httpClient == "std", UserAgent: "edge-agent/" + Version})
	client := &http.Client{Transport: tr}
	switch p.Type {
	case "anthropic":
		return anthropic.New(anthropic.Config{Name: p.Name, BaseURL: p.BaseURL, APIKey: p.APIKey, Version: p.AnthropicVersion,
			DefaultMaxTokens: p.DefaultMaxTokens, Client: client}), tr, nil
	case "azure":
		// No api_key: Entra ID tokens from the DefaultAzureCredential chain.
		return azure.New(azure.Config{Name: p.Name, BaseURL: p.BaseURL, APIKey: p.APIKey, APIVersion: p.APIVersion,
			Models: p.Models, Client: client}), tr, nil
	case "bedrock":
		b, err := bedrock.New(ctx, bedrock.Config{Name: p.Name, Region: p.Region, BaseURL: p.BaseURL,
			AccessKeyID: p.AWSAccessKeyID, SecretAccessKey: p.AWSSecretAccessKey, SessionToken: p.AWSSessionToken, Client: client})
		if err != nil {
			return nil, tr, err
		}
		return b, tr, nil
	case "gemini", "vertex":
		g, err := gemini.New(gemini.Config{Name: p.Name, BaseURL: p.BaseURL, APIKey: p.APIKey, Vertex: p.Type == "vertex",
			Project: p.Project, Location: p.Location, AccessToken: p.AccessToken, Models: p.Models, Client: client})
		if err != nil {
			return nil, tr, err
		}
		return g, tr, nil
	}
	var surfaces []provider.Surface
	for _, name := range p.Surfaces {
		if s, ok := provider.ParseSurface(name); ok {
			surfaces = append(surfaces, s)
		}
	}
	return openai.New(openai.Config{Name: p.Name, BaseURL: p.BaseURL, APIKey: p.APIKey, Models: p.Models, Client: client,
		Surfaces: surfaces}), tr, nil
}

func routeConfig(cfg config.Config, providers map[string]provider.Provider, prices *cost.Table) route.Config {
	r := cfg.Routing
	rc := route.Config{
		Providers: providers,
		Aliases:   cfg.Aliases,
		Retry:     route.RetryConfig{MaxRetries: r.MaxRetries, BaseBackoff: r.RetryBaseBackoff.D(), MaxBackoff: r.RetryMaxBackoff.D()},
		Breaker: route.BreakerConfig{ConsecutiveFailures: r.BreakerFailures, FailureRate: r.BreakerRate,
			Window: r.BreakerWindow.D(), OpenFor: r.BreakerOpenFor.D()},
		Timeouts:              route.TimeoutConfig{FirstByte: r.FirstByteTimeout.D(), StreamIdle: r.StreamIdleTimeout.D(), Total: r.TotalTimeout.D()},
		MaxInflight:           r.MaxInflight,
		DeploymentMaxInflight: r.DeploymentMaxInflight,
		QueueWait:             r.QueueWait.D(),
		PriceFunc: func(model string) (float64, bool) {
			_, p, ok := prices.Lookup(model)
			return p.InputPerM, ok
		},
	}
	if rc.MaxInflight == 0 || rc.DeploymentMaxInflight == 0 {
		// Unset: as many as the file-descriptor limit allows, two a request.
		n := route.InflightForFiles(FileLimit())
		rc.MaxInflight = cmp.Or(rc.MaxInflight, n)
		rc.DeploymentMaxInflight = cmp.Or(rc.DeploymentMaxInflight, n)
	}
	if r.MaxRetries == 0 {
		// config defaults to 2, so a 0 here was written by the operator and
		// means no retries (the router reads 0 as "its default").
		rc.Retry.MaxRetries = -1
	}
	for _, m := range cfg.Models {
		g := route.ModelGroup{Name: m.Name, Aliases: m.Aliases, Strategy: m.Strategy, Fallbacks: m.Fallbacks}
		for _, d := range m.Deployments {
			g.Deployments = append(g.Deployments, route.Deployment{Name: d.Name, Provider: providers[d.Provider], Model: d.Model,
				Weight: d.Weight, Priority: d.Priority, RPM: d.RPM, TPM: d.TPM, MaxInflight: d.MaxInflight, Timeout: d.Timeout.D()})
		}
		rc.Groups = append(rc.Groups, g)
	}
	return rc
}

// registerInflightMetrics exports the router's concurrency cap and counts
// requests answered 503 at a cap: reason max_inflight (the router's),
// deployment_max_inflight (every usable deployment stayed at its own for
// queue_wait).
func registerInflightMetrics(reg *prometheus.Registry, r *route.Router) {
	const name, help = "llm_edge_rejected_total", "Requests refused at a concurrency cap, by cap."
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "llm_edge_max_inflight",
			Help: "Requests the router holds at once (MAX_INFLIGHT, or derived from RLIMIT_NOFILE)."},
			func() float64 { return float64(r.MaxInflight()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: prometheus.Labels{"reason": "max_inflight"}},
			func() float64 { g, _ := r.Rejected(); return float64(g) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: prometheus.Labels{"reason": "deployment_max_inflight"}},
			func() float64 { _, d := r.Rejected(); return float64(d) }),
	)
}

// registerBodyMetrics exports the body memory budget: what it holds now,
// its size, and the requests it refused.
func registerBodyMetrics(reg *prometheus.Registry, b *gateway.BodyBudget) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "llm_edge_request_body_memory_bytes",
			Help: "Request-body bytes held in memory now, all requests together."}, func() float64 { return float64(b.Used()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "llm_edge_request_body_memory_limit_bytes",
			Help: "The request-body memory budget (MAX_BODY_MEMORY_BYTES)."}, func() float64 { return float64(b.Limit()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "llm_edge_request_body_memory_rejected_total",
			Help: "Requests answered 503 because the request-body memory budget was spent."}, func() float64 { return float64(b.Rejected()) }),
	)
}

// health reports providers (breakers) and cache tiers.
func (a *App) health(ctx context.Context) map[string]server.Component {
	comps := map[string]server.Component{}
	deps := a.router.Health()
	open := 0
	var names []string
	for _, d := range deps {
		if d.State == route.StateOpen {
			open++
			names = append(names, d.Name)
		}
	}
	sort.Strings(names)
	switch {
	case len(a.cfg.Providers) == 0:
		comps["providers"] = server.Component{Status: "unhealthy", Detail: "no provider configured"}
	case len(deps) > 0 && open == len(deps):
		comps["providers"] = server.Component{Status: "unhealthy", Detail: "every circuit breaker is open"}
	case open > 0:
		comps["providers"] = server.Component{Status: "degraded", Detail: fmt.Sprintf("circuit open: %v", names)}
	default:
		comps["providers"] = server.Component{Status: "healthy", Detail: strconv.Itoa(len(a.cfg.Providers)) + " configured"}
	}
	if a.tiered == nil {
		comps["cache"] = server.Component{Status: "healthy", Detail: "disabled"}
		return comps
	}
	comps["cache_l1"] = server.Component{Status: "healthy"}
	if a.l2 != nil {
		pctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
		err := a.l2.Ping(pctx)
		cancel()
		if err != nil {
			// Serving goes on from L1 and the providers.
			comps["cache_l2"] = server.Component{Status: "degraded", Detail: "redis unreachable; serving from L1 and providers"}
		} else {
			comps["cache_l2"] = server.Component{Status: "healthy"}
		}
	}
	return comps
}

// l2Entries feeds llm_edge_cache_entries{tier="l2"}: the keys under the
// cache's prefix, counted with SCAN at most once a minute, within a second
// (the scrape goes on without it otherwise). The bytes are unknown.
func (a *App) l2Entries() (entries, bytes int64) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	n, err := a.l2.Entries(ctx, time.Minute)
	if err != nil {
		return -1, -1
	}
	return n, -1
}

// Handler is the gateway's HTTP handler, for tests and embedding.
func (a *App) Handler() http.Handler { return http.HandlerFunc(a.serveLive) }

// Run listens on HOST:PORT (and METRICS_PORT) until ctx ends, then shuts
// down gracefully: readiness turns 503 while requests are still accepted
// for the drain delay, then new connections are refused and in-flight
// requests and streams finish up to the shutdown timeout.
func (a *App) Run(ctx context.Context) error {
	defer a.Close()
	addr := net.JoinHostPort(a.cfg.Host, strconv.Itoa(a.cfg.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return a.Serve(ctx, ln)
}

// Serve is Run on an existing listener.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	if a.auth != nil && a.auth.Open() {
		a.logger.Warn("no API keys configured: the gateway is open to anyone who can reach it")
	}
	a.reportStartup(ctx)
	// Every request's context derives from hard: at the shutdown deadline
	// it is cancelled with api.ShuttingDown as the cause, so the requests
	// and streams still running end with an error their clients can read
	// rather than a cut connection.
	hard, stop := context.WithCancelCause(context.Background())
	defer stop(nil)
	srv := newHTTPServer(http.HandlerFunc(a.serveLive))
	secure := a.cfg.TLS.CertPath != ""
	if secure {
		tln, err := tlsListener(ln, a.cfg.TLS.CertPath, a.cfg.TLS.KeyPath)
		if err != nil {
			_ = ln.Close()
			return err
		}
		ln = tln
	}
	// Streams are detached from their connections' goroutines
	// (internal/detach); their connections come back through dln.
	base := context.Context(hard)
	var detached *detach.Detacher
	if a.cfg.DetachStreams {
		dln := detach.NewListener(ln, srv.IdleTimeout)
		ln = dln
		detached = detach.New(hard, dln)
		base = detach.NewContext(hard, detached)
		a.root.detached.Store(detached)
	}
	srv.BaseContext = func(net.Listener) context.Context { return base }
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	var msrv *http.Server
	metricsAddr := "" // none
	if a.cfg.MetricsPort > 0 && a.cfg.MetricsPort != a.cfg.Port {
		mux := http.NewServeMux()
		mux.Handle("/metrics", a.metricsListenerHandler())
		msrv = newHTTPServer(server.WithSecurityHeaders(mux))
		mln, err := net.Listen("tcp", net.JoinHostPort(a.cfg.MetricsHost, strconv.Itoa(a.cfg.MetricsPort)))
		if err != nil {
			_ = srv.Close()
			return fmt.Errorf("metrics listener: %w", err)
		}
		metricsAddr = mln.Addr().String()
		go func() { errc <- msrv.Serve(mln) }()
	}
	a.logger.Info("edge-agent listening", "addr", ln.Addr().String(), "tls", secure, "metrics_addr", metricsAddr,
		"providers", len(a.cfg.Providers), "cache", a.cfg.Cache.Enabled, "l2", a.l2 != nil, "version", Version)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	a.setDraining()
	if d := a.cfg.ShutdownDrainDelay.D(); d > 0 {
		// Readiness answers 503 while the listener still accepts and
		// serves, so endpoints controllers and load balancers stop sending
		// before connections are refused.
		a.logger.Info("draining: readiness answers 503, still serving", "drain_delay", d.String())
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case err := <-errc:
			t.Stop()
			return err
		}
	}
	a.logger.Info("shutting down", "timeout", a.cfg.ShutdownTimeout.D().String())
	sctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout.D())
	defer cancel()
	err := srv.Shutdown(sctx)
	if err == nil && detached != nil {
		err = detached.Wait(sctx) // streams off their connections' goroutines
	}
	if msrv != nil {
		_ = msrv.Shutdown(sctx)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		stop(api.ShuttingDown())
		gctx, gcancel := context.WithTimeout(context.Background(), shutdownGrace)
		_ = srv.Shutdown(gctx) // the stopped requests write their error and return
		if detached != nil {
			_ = detached.Wait(gctx)
		}
		gcancel()
		_ = srv.Close()
		return fmt.Errorf("shutdown: in-flight requests did not finish within %s", a.cfg.ShutdownTimeout.D())
	}
	return nil
}

// tlsListener is what http.Server.ServeTLS serves on, built here so that
// connections detached streams hand back (already TLS) are not wrapped a
// second time: HTTP/2 and HTTP/1.1 offered by ALPN, as ServeTLS does.
func tlsListener(ln net.Listener, certPath, keyPath string) (net.Listener, error) {
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}), nil
}

// hold keeps this generation from being closed by a reload while a stream
// detached from its handler (gateway.Options.Hold) is still running.
func (a *App) hold() (release func()) {
	a.inflight.Add(1)
	return a.unhold
}

func (a *App) unhold() { a.inflight.Add(-1) }

// reportStartup says what the gateway runs with where an operator would
// otherwise find out from failing requests: no provider, Redis not
// answering, and where traces go.
func (a *App) reportStartup(ctx context.Context) {
	if len(a.cfg.Providers) == 0 {
		a.logger.Warn("no provider configured: every model request will fail and /health/ready answers 503; " +
			"set OPENAI_API_KEY or ANTHROPIC_API_KEY, or providers in the --config file")
	}
	if a.l2 != nil {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := a.l2.Ping(pctx)
		cancel()
		if err != nil {
			a.logger.Warn("Redis unreachable at start: serving from L1 and providers, rate limits and budgets per instance, until it answers",
				"redis", redactURL(a.cfg.Cache.RedisURL), "error", err)
		}
	}
	if dest := telemetry.TracesDestination(); a.tracer.Enabled() && dest != "" {
		a.logger.Info("tracing on: spans exported over OTLP/HTTP", "endpoint", dest)
	} else if a.tracer.Enabled() {
		a.logger.Info("tracing on: spans go to the tracer provider the embedding program set")
	} else {
		a.logger.Info("tracing off (set OTEL_EXPORTER_OTLP_ENDPOINT to export spans)")
	}
}

// redactURL drops the password of a Redis URL (there may be several,
// comma-separated) for a log line.
func redactURL(raw string) string {
	parts := strings.Split(raw, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}

// metricsListenerHandler is /metrics on the METRICS_PORT listener. It asks
// for the admin key exactly as /metrics on the main port does (once keys
// are configured), so binding the listener wider never opens it.
func (a *App) metricsListenerHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g := a.live.Load() // the live generation's registry and keys
		if g.auth != nil {
			if err := g.auth.AuthenticateAdmin(r); err != nil {
				api.WriteError(w, err)
				return
			}
		}
		g.metrics.Handler().ServeHTTP(w, r)
	})
}

// shutdownGrace is how long requests stopped at the shutdown deadline have
// to send their error event before their connections are closed.
const shutdownGrace = time.Second

func newHTTPServer(h http.Handler) *http.Server {
	// No WriteTimeout: a long stream must not be cut. Deadlines come from
	// request contexts and the router's timeouts. No ReadTimeout either:
	// the gateway sets a read deadline on each request's body
	// (BODY_READ_TIMEOUT) and clears it once the body is in, which a
	// server-wide ReadTimeout would not let it do.
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
		MaxHeaderBytes: 64 << 10, ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)}
}

// Close releases every component; safe on a partly built App. On the App
// Run was called on it closes the live generation too, after the ones a
// reload retired have finished their requests.
func (a *App) Close() {
	if a.root == a {
		a.retiring.Wait()
		if g := a.live.Load(); g != nil && g != a {
			g.closeGeneration()
		}
	}
	a.closeGeneration()
}

// closeGeneration releases what this generation owns, once.
func (a *App) closeGeneration() {
	a.closeOnce.Do(a.release)
}

func (a *App) release() {
	if a.closeResponses != nil {
		a.closeResponses()
	}
	a.keys.close()
	if a.ownsCache {
		if a.tiered != nil {
			a.tiered.Close()
		}
		if a.l1 != nil {
			a.l1.Close()
		}
		if a.l2 != nil {
			a.l2.Close()
		}
	}
	if a.rdb != nil {
		a.rdb.Close()
	}
	if a.router != nil {
		a.router.Close()
	}
	for _, tr := range a.upstream {
		tr.CloseIdleConnections()
	}
	if a.traceFn != nil && a.ownsTracer {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = a.traceFn(ctx)
		cancel()
	}
}

// ListenLoopback listens on a free 127.0.0.1 port.
func ListenLoopback() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }
