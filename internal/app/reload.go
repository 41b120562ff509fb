package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edge-agent/edge-agent/internal/config"
)

// serveLive hands the request to the live generation. A request counts in
// its generation's inflight before it checks that the generation was not
// retired, and a retired generation is closed only once its inflight is
// back to zero, so no request ever reaches a closed one.
func (a *App) serveLive(w http.ResponseWriter, r *http.Request) {
	for {
		g := a.root.live.Load()
		g.inflight.Add(1)
		if g.retired.Load() {
			g.inflight.Add(-1)
			continue // a reload swapped it out just now: take the new one
		}
		defer g.inflight.Add(-1)
		g.server.ServeHTTP(w, r)
		return
	}
}

// setDraining turns readiness to 503 on the live generation (and keeps it
// so on any later one: Reload refuses to run once shutdown began).
func (a *App) setDraining() {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	a.draining = true
	a.live.Load().server.SetDraining()
}

// errShuttingDown refuses a reload once shutdown began.
var errShuttingDown = errors.New("reload: the gateway is shutting down")

// Reload builds a new generation of the gateway from cfg (providers, the
// model table, keys, limits, prices, everything) and makes it serve new
// requests; requests and streams in flight finish on the generation they
// started on, which is closed after them. The L1 and L2 caches (and their
// entries) and the tracer carry over when the cache settings did not
// change; metrics start again from zero, as after a restart. On error the
// running generation stays, untouched.
func (a *App) Reload(ctx context.Context, cfg config.Config) error {
	root := a.root
	root.reloadMu.Lock()
	defer root.reloadMu.Unlock()
	if root.draining {
		return errShuttingDown
	}
	old := root.live.Load()
	opts := []Option{func(n *App) {
		n.root = root
		n.tracer, n.traceFn = old.tracer, old.traceFn
	}}
	sameCache := reflect.DeepEqual(old.cfg.Cache, cfg.Cache)
	if sameCache {
		opts = append(opts, func(n *App) { n.l1, n.l2, n.tiered = old.l1, old.l2, old.tiered })
	}
	sameStore := sameCache && reflect.DeepEqual(old.cfg.Responses, cfg.Responses)
	if sameStore {
		// Stored responses survive the reload: previous_response_id keeps
		// working on the memory store too.
		opts = append(opts, func(n *App) { n.respStore = old.respStore })
	}
	next, err := New(ctx, cfg, a.logger, opts...)
	if err != nil {
		root.reloadFails.Add(1)
		return fmt.Errorf("reload: %w", err)
	}
	// Ownership of what was borrowed moves to the new generation.
	next.ownsTracer, old.ownsTracer = old.ownsTracer, false
	if sameCache {
		next.ownsCache, old.ownsCache = old.ownsCache, false
	}
	if sameStore {
		next.closeResponses, old.closeResponses = old.closeResponses, nil
	}
	root.live.Store(next)
	old.retired.Store(true)
	root.reloads.Add(1)
	// The retired generation is closed once its last request is done;
	// root.Close waits for that.
	root.retiring.Add(1)
	go func() {
		defer root.retiring.Done()
		old.waitIdle()
		old.closeGeneration()
	}()
	a.logger.Info("configuration reloaded", "providers", len(cfg.Providers), "models", len(cfg.Models),
		"keys", len(cfg.Auth.Keys), "cache_kept", sameCache)
	return nil
}

// waitIdle returns once the retired generation serves no request.
func (a *App) waitIdle() {
	for a.inflight.Load() > 0 {
		time.Sleep(10 * time.Millisecond)
	}
}

// ReloadFile loads the configuration again (load reads the file and the
// environment, as at start) and reloads; an invalid file keeps the running
// configuration and says why.
func (a *App) ReloadFile(ctx context.Context, load func() (config.Config, error)) error {
	cfg, err := load()
	if err == nil {
		err = a.Reload(ctx, cfg)
	} else {
		a.root.reloadFails.Add(1)
	}
	if err != nil {
		a.logger.Warn("configuration not reloaded; the running one stays", "error", err)
	}
	return err
}

// WatchConfig reloads on every value from hup (SIGHUP) and whenever the
// file at path changes (checked every poll; "" watches no file), until ctx
// ends.
func (a *App) WatchConfig(ctx context.Context, path string, poll time.Duration, hup <-chan os.Signal, load func() (config.Config, error)) {
	var last time.Time
	if fi, err := os.Stat(path); err == nil {
		last = fi.ModTime()
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		case <-tick.C:
			if path == "" {
				continue
			}
			fi, err := os.Stat(path)
			if err != nil || fi.ModTime().Equal(last) {
				continue
			}
			last = fi.ModTime()
		}
		_ = a.ReloadFile(ctx, load)
	}
}

// registerReloadMetrics exports the root's reload counts on a generation's
// registry.
func registerReloadMetrics(reg *prometheus.Registry, root *App) {
	const name, help = "llm_edge_config_reloads_total", "Configuration reloads (SIGHUP or a change of the --config file), by result."
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: prometheus.Labels{"result": "success"}},
			func() float64 { return float64(root.reloads.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: prometheus.Labels{"result": "failure"}},
			func() float64 { return float64(root.reloadFails.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "llm_edge_detached_streams",
			Help: "Streams served off their connection's goroutine (DETACH_STREAMS), now: part of llm_edge_inflight_requests."},
			func() float64 { return float64(root.DetachedStreams()) }),
	)
}

// DetachedStreams is the number of streams now served off their
// connection's goroutine (internal/detach).
func (a *App) DetachedStreams() int {
	if d := a.root.detached.Load(); d != nil {
		return d.Active()
	}
	return 0
}
