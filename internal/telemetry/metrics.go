package telemetry

import (
	"cmp"
	"maps"
	"net/http"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/edge-agent/edge-agent/internal/cost"
)

// LatencyBucketsMs are the bucket bounds, in milliseconds, of every latency
// histogram: 0.05 ms (an L1 hit) to 60 s (a long generation), on a 1-2.5-5
// scale so 1, 10, 100 and 1000 ms — the guide's targets — are exact bounds.
var latencyBucketsMs = []float64{
	0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500,
	1000, 2500, 5000, 10000, 20000, 30000, 60000,
}

// Label values outside the configured sets collapse to these, so a client
// sending random model names cannot create new series.
const (
	labelOther = "other"
	labelNone  = "none" // no provider involved (cache hit, rejected request)
)

// TierStats reports a cache tier's size for the llm_edge_cache_entries and
// llm_edge_cache_bytes gauges. It is called on every scrape; a negative
// value is unknown and leaves its series out of that scrape.
type TierStats func() (entries, bytes int64)

// MetricsOptions configures NewMetrics.
type MetricsOptions struct {
	// Providers are the configured provider names, the only provider label
	// values besides "other" and "none".
	Providers []string
	// Models are configured model names (client-facing names and upstream
	// ids) allowed as model label values in addition to Prices' models.
	Models []string
	// Prices resolves dated ids to canonical names ("gpt-4o-2024-08-06" is
	// labelled "gpt-4o"); its Models are allowed label values. Optional.
	Prices *cost.Table
	// L1Stats and L2Stats feed the cache size gauges; nil leaves a tier out.
	L1Stats, L2Stats TierStats
	// L2Up reports whether Redis answered its last health check; it feeds
	// llm_edge_cache_l2_up (1 or 0). Nil when no L2 is configured: the
	// gauge is then absent, so the "L2 down" alert cannot fire.
	L2Up func() bool
	// AttemptOutcomes are the outcome label values of
	// llm_edge_upstream_attempts_total (route.AttemptOutcome's names); every
	// provider's series of each is exported from the start, so an alert's
	// rate() sees zeros before the first failure.
	AttemptOutcomes []string
	// Version is llm_edge_build_info's version label.
	Version string
	// DisableRuntimeMetrics leaves out the Go runtime and process
	// collectors (tests that compare whole scrapes).
	DisableRuntimeMetrics bool
}

// Metrics holds edge-agent's Prometheus metrics on a registry of its own.
// Series for a label combination are created on first use and cached, so
// ObserveRequest does not allocate once traffic has warmed up.
type Metrics struct {
	reg *prometheus.Registry

	providers map[string]struct{}
	models    map[string]struct{}
	prices    *cost.Table

	cacheHits      *prometheus.CounterVec
	cacheMisses    *prometheus.CounterVec
	cacheCoalesced prometheus.Counter
	inflight       prometheus.Gauge

	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	tokens       *prometheus.CounterVec
	costUSD      *prometheus.CounterVec
	savedUSD     *prometheus.CounterVec
	providerDur  *prometheus.HistogramVec
	ttft         *prometheus.HistogramVec
	cacheErrors  map[cacheErrKey]prometheus.Counter
	upstreamErrs *prometheus.CounterVec

	mu        sync.RWMutex
	reqs      map[reqKey]*reqSeries
	pairs     map[pairKey]*pairSeries
	upstream  map[pairKey]prometheus.Counter // provider, code
	retries   *prometheus.CounterVec
	fallbacks prometheus.Counter
	breaker   *prometheus.GaugeVec
	// attempts is built in NewMetrics and only read after: no lock.
	attempts map[pairKey]prometheus.Counter // provider, outcome
}

type pairKey struct{ a, b string }

type reqKey struct{ endpoint, provider, model, cache, status string }

type reqSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

type pairSeries struct {
	hitL1, hitL2, miss                   prometheus.Counter
	input, output, cacheRead, cacheWrite prometheus.Counter
	cost, saved                          prometheus.Counter
	providerDur, ttft                    prometheus.Observer
}

type cacheErrKey struct{ tier, op string }

var (
	cacheErrTiers = []string{CacheL1, CacheL2, labelOther}
	cacheErrOps   = []string{"get", "set", "delete", "encode", "decode", labelOther}
	// upstreamCodes are the non-numeric upstream error codes worth a series
	// of their own; HTTP statuses (3 digits) are always kept.
	upstreamCodes = map[string]struct{}{
		"timeout": {}, "connect": {}, "canceled": {}, "protocol": {}, "stream": {},
		"breaker_open": {}, "overloaded": {}, "rate_limited": {},
	}
)

// NewMetrics builds the metrics and registers them on a new registry.
func NewMetrics(o MetricsOptions) *Metrics {
	m := &Metrics{
		reg:       prometheus.NewRegistry(),
		providers: map[string]struct{}{},
		models:    map[string]struct{}{},
		prices:    o.Prices,
		reqs:      map[reqKey]*reqSeries{},
		pairs:     map[pairKey]*pairSeries{},
		upstream:  map[pairKey]prometheus.Counter{},
		attempts:  map[pairKey]prometheus.Counter{},
	}
	for _, p := range o.Providers {
		if p != "" {
			m.providers[p] = struct{}{}
		}
	}
	if o.Prices != nil {
		for _, name := range o.Prices.Models() {
			m.models[name] = struct{}{}
		}
	}
	for _, name := range o.Models {
		if name != "" {
			m.models[name] = struct{}{}
		}
	}

	m.cacheHits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llm_edge_cache_hits_total",
		Help: "Requests served from the cache, by tier, and the provider and model of the answer.",
	}, []string{"tier", "provider", "model"})
	m.cacheMisses = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llm_edge_cache_misses_total",
		Help: "Requests looked up in the cache and not found, by provider and model (bypassed requests are neither hits nor misses).",
	}, []string{"provider", "model"})
	m.cacheCoalesced = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "llm_edge_cache_coalesced_total",
		Help: "Misses answered by an identical request's provider call instead of their own (neither hits nor misses).",
	})
	m.inflight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "llm_edge_inflight_requests",
		Help: "Chat completion requests being served.",
	})
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llm_edge_requests_total",
		Help: "Finished requests, by endpoint (the API surface: chat, messages, responses, embeddings, completions), provider, model and status class.",
	}, []string{"endpoint", "provider", "model", "status"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "llm_edge_request_duration_ms",
		Help:    "Time from request arrival to the last byte of the response, in milliseconds, by endpoint. cache is hit, coalesced, miss or bypass.",
		Buckets: latencyBucketsMs,
	}, []string{"endpoint", "provider", "model", "cache", "status"})
	m.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llm_edge_tokens_total",
		Help: "Tokens billed by providers (cache hits consume none), by type: input (uncached prompt), cache_read, cache_write (prompt tokens read from or written to the provider's prompt cache) or output (reasoning included). The types sum to every token.",
	}, []string{"provider", "model", "type"})
	m.costUSD = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llm_edge_cost_usd_total",
		Help: "Provider cost in US dollars of requests with a known price.",
	}, []string{"provider", "model"})
	m.savedUSD = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llm_edge_cache_saved_cost_usd_total",
		Help: "Provider cost in US dollars avoided by serving from the cache.",
	}, []string{"provider", "model"})
	m.providerDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "llm_edge_provider_duration_ms",
		Help:    "Time spent waiting on the provider per request, in milliseconds.",
		Buckets: latencyBucketsMs,
	}, []string{"provider", "model"})
	m.ttft = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "llm_edge_time_to_first_token_ms",
		Help:    "Streams: time from request arrival to the first content chunk, in milliseconds.",
		Buckets: latencyBucketsMs,
	}, []string{"provider", "model"})
	cacheErrs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llm_edge_cache_errors_total",
		Help: "Cache operations that failed, by tier and operation.",
	}, []string{"tier", "op"})
	m.cacheErrors = map[cacheErrKey]prometheus.Counter{}
	for _, tier := range cacheErrTiers {
		for _, op := range cacheErrOps {
			// Created up front so rate() sees a zero before the first error.
			m.cacheErrors[cacheErrKey{tier, op}] = cacheErrs.WithLabelValues(tier, op)
		}
	}
	m.upstreamErrs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llm_edge_upstream_errors_total",
		Help: "Requests that failed with an upstream HTTP status (the last attempt's), by provider and status; every attempt is in llm_edge_upstream_attempts_total.",
	}, []string{"provider", "code"})
	attempts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llm_edge_upstream_attempts_total",
		Help: "Upstream attempts (retries and fallbacks each count; a stream when it ends), by provider and outcome: 2xx, 4xx (the client's own errors), auth, 429, 5xx, timeout, connection_error, breaker_open (not sent), stream_error, canceled, other.",
	}, []string{"provider", "outcome"})
	for _, p := range append(slices.Sorted(maps.Keys(m.providers)), labelOther) {
		for _, name := range append(slices.Clone(o.AttemptOutcomes), labelOther) {
			m.attempts[pairKey{p, name}] = attempts.WithLabelValues(p, name)
		}
	}
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "llm_edge_retries_total",
		Help: "Upstream calls retried, by the deployment that failed."}, []string{"deployment"})
	m.fallbacks = prometheus.NewCounter(prometheus.CounterOpts{Name: "llm_edge_fallbacks_total",
		Help: "Requests that moved to a fallback model."})
	m.breaker = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "llm_edge_circuit_breaker_state",
		Help: "Circuit breaker state per deployment: 0 closed, 1 half-open, 2 open."}, []string{"deployment"})
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "llm_edge_build_info",
		Help: "Always 1; the labels say which build runs.",
	}, []string{"version", "goversion", "revision"})
	buildInfo.WithLabelValues(cmp.Or(o.Version, "unknown"), runtime.Version(), vcsRevision()).Set(1)

	m.reg.MustRegister(m.cacheHits, m.cacheMisses, attempts, buildInfo, m.retries, m.fallbacks, m.breaker, m.cacheCoalesced, m.inflight, m.requests, m.duration, m.tokens,
		m.costUSD, m.savedUSD, m.providerDur, m.ttft, cacheErrs, m.upstreamErrs)
	if o.L1Stats != nil || o.L2Stats != nil {
		m.reg.MustRegister(newCacheSizeCollector(o.L1Stats, o.L2Stats))
	}
	if o.L2Up != nil {
		up := o.L2Up
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "llm_edge_cache_l2_up",
			Help: "1 when the L2 cache (Redis) answered its last health check, else 0.",
		}, func() float64 {
			if up() {
				return 1
			}
			return 0
		}))
	}
	if !o.DisableRuntimeMetrics {
		m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return m
}

// Registry is the registry holding every metric, for extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		Registry:          m.reg, // counts promhttp's own errors
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: false,
	})
}

// InflightInc and InflightDec track requests being served; call Dec in a
// defer so a panic does not leave the gauge high.
func (m *Metrics) InflightInc() { m.inflight.Inc() }

// InflightDec is the counterpart of InflightInc.
func (m *Metrics) InflightDec() { m.inflight.Dec() }

// CacheError counts a failed cache operation. tier is "l1" or "l2"; op is
// get, set, delete, encode or decode; other values are labelled "other".
func (m *Metrics) CacheError(tier, op string) {
	if tier != CacheL1 && tier != CacheL2 {
		tier = labelOther
	}
	c, ok := m.cacheErrors[cacheErrKey{tier, op}]
	if !ok {
		c = m.cacheErrors[cacheErrKey{tier, labelOther}]
	}
	c.Inc()
}

// UpstreamAttempt counts one upstream attempt. provider is a configured
// provider's name and outcome one of MetricsOptions.AttemptOutcomes; other
// values are labelled "other". It takes no lock and does not allocate.
func (m *Metrics) UpstreamAttempt(provider, outcome string) {
	p := provider
	if _, ok := m.providers[p]; !ok {
		p = labelOther
	}
	c, ok := m.attempts[pairKey{p, outcome}]
	if !ok {
		c = m.attempts[pairKey{p, labelOther}]
	}
	c.Inc()
}

// Retry counts a retry after deployment failed; Fallback a request moved to
// a fallback model; BreakerState exports a deployment's breaker (0 closed,
// 1 half-open, 2 open). Deployment names are labelled as configured
// (MetricsOptions.Providers lists them), others "other".
func (m *Metrics) Retry(deployment string) {
	m.retries.WithLabelValues(m.providerLabel(deployment)).Inc()
}

// Fallback: see Retry.
func (m *Metrics) Fallback() { m.fallbacks.Inc() }

// BreakerState: see Retry. Calling it for every deployment at start
// exports the retry series too, so dashboards see zeros.
func (m *Metrics) BreakerState(deployment string, state float64) {
	d := m.providerLabel(deployment)
	m.breaker.WithLabelValues(d).Set(state)
	m.retries.WithLabelValues(d)
}

// vcsRevision is the commit the binary was built from, when the build
// recorded it.
func vcsRevision() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

// UpstreamError counts a request that failed with an upstream status (the
// last attempt's). code is the upstream
// HTTP status ("429", "503") or a kind: timeout, connect, canceled,
// protocol, stream, breaker_open, overloaded, rate_limited; others are
// labelled "other".
func (m *Metrics) UpstreamError(provider, code string) {
	k := pairKey{m.providerLabel(provider), upstreamCodeLabel(code)}
	m.mu.RLock()
	c, ok := m.upstream[k]
	m.mu.RUnlock()
	if !ok {
		m.mu.Lock()
		if c, ok = m.upstream[k]; !ok {
			c = m.upstreamErrs.WithLabelValues(k.a, k.b)
			m.upstream[k] = c
		}
		m.mu.Unlock()
	}
	c.Inc()
}

func upstreamCodeLabel(code string) string {
	if len(code) == 3 && '1' <= code[0] && code[0] <= '5' && allDigits(code) {
		return code
	}
	if _, ok := upstreamCodes[code]; ok {
		return code
	}
	return labelOther
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ObserveRequest counts one finished request. Call it once per request:
// a hit adds to llm_edge_cache_hits_total{tier} and the saved cost; a miss
// adds to llm_edge_cache_misses_total; tokens and cost count only what a
// provider billed, so a hit adds none.
func (m *Metrics) ObserveRequest(r *Record) {
	provider := m.providerLabel(r.Provider)
	model := m.modelLabel(r.Model)
	ps := m.pairSeries(pairKey{provider, model})
	cacheLabel, status := "bypass", statusClass(r.Status)
	switch r.Cache {
	case CacheL1:
		ps.hitL1.Inc()
		cacheLabel = "hit"
	case CacheL2:
		ps.hitL2.Inc()
		cacheLabel = "hit"
	case CacheCoalesced:
		m.cacheCoalesced.Inc()
		cacheLabel = CacheCoalesced
	case CacheMiss:
		ps.miss.Inc()
		cacheLabel = "miss"
	}

	rs := m.reqSeries(reqKey{r.Endpoint.String(), provider, model, cacheLabel, status})
	rs.requests.Inc()
	rs.duration.Observe(ms(r.TotalLatency))

	if r.Replayed() {
		if r.SavedUSD > 0 {
			ps.saved.Add(r.SavedUSD)
		}
	} else {
		read, write := max(r.CachedTokens, 0), max(r.CacheWriteTokens, 0)
		if in := r.PromptTokens - read - write; in > 0 {
			ps.input.Add(float64(in))
		}
		if read > 0 {
			ps.cacheRead.Add(float64(read))
		}
		if write > 0 {
			ps.cacheWrite.Add(float64(write))
		}
		if r.CompletionTokens > 0 {
			ps.output.Add(float64(r.CompletionTokens))
		}
		if r.CostKnown && r.CostUSD > 0 {
			ps.cost.Add(r.CostUSD)
		}
	}
	if r.ProviderLatency > 0 {
		ps.providerDur.Observe(ms(r.ProviderLatency))
	}
	if r.Stream && r.TTFT > 0 {
		ps.ttft.Observe(ms(r.TTFT))
	}
}

func (m *Metrics) reqSeries(k reqKey) *reqSeries {
	m.mu.RLock()
	s, ok := m.reqs[k]
	m.mu.RUnlock()
	if ok {
		return s
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok = m.reqs[k]; !ok {
		s = &reqSeries{
			requests: m.requests.WithLabelValues(k.endpoint, k.provider, k.model, k.status),
			duration: m.duration.WithLabelValues(k.endpoint, k.provider, k.model, k.cache, k.status),
		}
		m.reqs[k] = s
	}
	return s
}

func (m *Metrics) pairSeries(k pairKey) *pairSeries {
	m.mu.RLock()
	s, ok := m.pairs[k]
	m.mu.RUnlock()
	if ok {
		return s
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok = m.pairs[k]; !ok {
		s = &pairSeries{
			hitL1:       m.cacheHits.WithLabelValues(CacheL1, k.a, k.b),
			hitL2:       m.cacheHits.WithLabelValues(CacheL2, k.a, k.b),
			miss:        m.cacheMisses.WithLabelValues(k.a, k.b),
			input:       m.tokens.WithLabelValues(k.a, k.b, "input"),
			output:      m.tokens.WithLabelValues(k.a, k.b, "output"),
			cacheRead:   m.tokens.WithLabelValues(k.a, k.b, "cache_read"),
			cacheWrite:  m.tokens.WithLabelValues(k.a, k.b, "cache_write"),
			cost:        m.costUSD.WithLabelValues(k.a, k.b),
			saved:       m.savedUSD.WithLabelValues(k.a, k.b),
			providerDur: m.providerDur.WithLabelValues(k.a, k.b),
			ttft:        m.ttft.WithLabelValues(k.a, k.b),
		}
		m.pairs[k] = s
	}
	return s
}

func (m *Metrics) providerLabel(p string) string {
	if p == "" {
		return labelNone
	}
	if _, ok := m.providers[p]; ok {
		return p
	}
	return labelOther
}

// modelLabel keeps configured and priced names, maps dated ids to their
// priced family and folds everything else into "other".
func (m *Metrics) modelLabel(model string) string {
	if model == "" {
		return labelNone
	}
	if _, ok := m.models[model]; ok {
		return model
	}
	if m.prices != nil {
		if c, _, ok := m.prices.Lookup(model); ok {
			if _, ok := m.models[c]; ok {
				return c
			}
		}
	}
	return labelOther
}

// cacheSizeCollector reads each tier's size once per scrape and reports it
// as two gauges.
type cacheSizeCollector struct {
	entries, bytes *prometheus.Desc
	tiers          []string
	stats          []TierStats
}

func newCacheSizeCollector(l1, l2 TierStats) *cacheSizeCollector {
	c := &cacheSizeCollector{
		entries: prometheus.NewDesc("llm_edge_cache_entries", "Entries held by a cache tier.", []string{"tier"}, nil),
		bytes:   prometheus.NewDesc("llm_edge_cache_bytes", "Bytes held by a cache tier.", []string{"tier"}, nil),
	}
	if l1 != nil {
		c.tiers, c.stats = append(c.tiers, CacheL1), append(c.stats, l1)
	}
	if l2 != nil {
		c.tiers, c.stats = append(c.tiers, CacheL2), append(c.stats, l2)
	}
	return c
}

func (c *cacheSizeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.entries
	ch <- c.bytes
}

func (c *cacheSizeCollector) Collect(ch chan<- prometheus.Metric) {
	for i, f := range c.stats {
		entries, bytes := f()
		if entries >= 0 {
			ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(entries), c.tiers[i])
		}
		if bytes >= 0 {
			ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(bytes), c.tiers[i])
		}
	}
}
