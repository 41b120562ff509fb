package route

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/provider"
)

// ewmaAlpha weighs a new latency sample against the running average.
const ewmaAlpha = 0.2

// deployment is the runtime state of one place a model is served.
type deployment struct {
	name     string
	prov     provider.Provider
	provName string
	model    string // "" for a provider's direct route: the Target names it
	weight   int
	priority int
	timeout  time.Duration
	sem      semaphore
	ewma     atomic.Int64 // successful latency (to the answer or first chunk), ns; 0: no sample yet

	mu  sync.Mutex
	br  breaker
	rpm bucket
	tpm bucket
}

func newDeployment(dc Deployment, cfg *Config) *deployment {
	if dc.Weight <= 0 {
		dc.Weight = 1
	}
	if dc.MaxInflight <= 0 {
		dc.MaxInflight = cfg.DeploymentMaxInflight
	}
	return &deployment{
		name: dc.Name, prov: dc.Provider, provName: dc.Provider.Name(), model: dc.Model,
		weight: dc.Weight, priority: dc.Priority, timeout: dc.Timeout,
		sem: newSemaphore(dc.MaxInflight),
		br:  newBreaker(&cfg.Breaker),
		rpm: newBucket(dc.RPM), tpm: newBucket(dc.TPM),
	}
}

// available says whether the breaker and the caps would admit a call now,
// without claiming anything. Capacity is the semaphore's business.
func (d *deployment) available(now time.Time) bool {
	d.mu.Lock()
	ok := d.br.available(now) && d.rpm.has(now) && d.tpm.has(now)
	d.mu.Unlock()
	return ok
}

// admit claims the breaker and the RPM cap for one call; the caller holds a
// semaphore slot already.
func (d *deployment) admit(now time.Time, onChange func(string, State)) (ok, probe bool) {
	d.mu.Lock()
	if !d.rpm.has(now) || !d.tpm.has(now) {
		d.mu.Unlock()
		return false, false
	}
	ok, probe, changed := d.br.admit(now)
	if ok {
		d.rpm.take(now, 1)
	}
	state := d.br.state
	d.mu.Unlock()
	if changed && onChange != nil {
		onChange(d.name, state)
	}
	return ok, probe
}

// record applies a call's outcome to the breaker and the latency average.
func (d *deployment) record(now time.Time, o outcome, probe bool, latency time.Duration, onChange func(string, State)) {
	if o == outcomeSuccess {
		old := d.ewma.Load()
		if old == 0 {
			d.ewma.Store(int64(latency))
		} else {
			d.ewma.Store(old + int64(ewmaAlpha*float64(int64(latency)-old)))
		}
	}
	d.mu.Lock()
	changed := d.br.record(now, o, probe)
	state := d.br.state
	d.mu.Unlock()
	if changed && onChange != nil {
		onChange(d.name, state)
	}
}

// chargeTokens takes used tokens from the TPM cap after the fact: a request's
// size is only known once it was answered.
func (d *deployment) chargeTokens(now time.Time, tokens int64) {
	if !d.tpm.enabled() || tokens <= 0 {
		return
	}
	d.mu.Lock()
	d.tpm.take(now, float64(tokens))
	d.mu.Unlock()
}

// retryIn is how long until the deployment may admit a call again (0:
// unknown or now).
func (d *deployment) retryIn(now time.Time) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	w := d.br.retryIn(now)
	if v := d.rpm.wait(now); v > w {
		w = v
	}
	if v := d.tpm.wait(now); v > w {
		w = v
	}
	return w
}

func (d *deployment) health(now time.Time) DeploymentHealth {
	d.mu.Lock()
	state := d.br.current(now)
	d.mu.Unlock()
	return DeploymentHealth{Name: d.name, Provider: d.provName, Model: d.model, State: state,
		Inflight: d.sem.inflight(), MaxInflight: cap(d.sem), Latency: time.Duration(d.ewma.Load())}
}

// bucket is a local token bucket refilled continuously to its per-minute
// capacity. It may go negative: tokens are charged after the answer.
type bucket struct {
	perMin float64 // 0: no cap
	tokens float64
	last   time.Time
}

func newBucket(perMin int) bucket { return bucket{perMin: float64(perMin), tokens: float64(perMin)} }

func (b *bucket) enabled() bool { return b.perMin > 0 }

func (b *bucket) refill(now time.Time) {
	if !b.last.IsZero() {
		b.tokens += now.Sub(b.last).Minutes() * b.perMin
		if b.tokens > b.perMin {
			b.tokens = b.perMin
		}
	}
	b.last = now
}

func (b *bucket) has(now time.Time) bool {
	if b.perMin <= 0 {
		return true
	}
	b.refill(now)
	return b.tokens >= 1
}

func (b *bucket) take(now time.Time, n float64) {
	if b.perMin <= 0 {
		return
	}
	b.refill(now)
	b.tokens -= n
}

// wait is how long until the bucket holds a token again.
func (b *bucket) wait(now time.Time) time.Duration {
	if b.perMin <= 0 {
		return 0
	}
	b.refill(now)
	if b.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - b.tokens) / b.perMin * float64(time.Minute))
}

// semaphore bounds concurrent calls; a buffered channel so waits can select
// on a context.
type semaphore chan struct{}

func newSemaphore(n int) semaphore { return make(semaphore, n) }

func (s semaphore) tryAcquire() bool {
	select {
	case s <- struct{}{}:
		return true
	default:
		return false
	}
}

// acquire waits at most wait for a slot. It returns false when the wait ran
// out and the context's error when it ended first.
func (s semaphore) acquire(ctx context.Context, wait time.Duration) (bool, error) {
	if s.tryAcquire() {
		return true, nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case s <- struct{}{}:
		return true, nil
	case <-t.C:
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

func (s semaphore) release()      { <-s }
func (s semaphore) full() bool    { return len(s) == cap(s) }
func (s semaphore) inflight() int { return len(s) }

func errOverloaded(limit int) *api.Error {
	return &api.Error{Status: http.StatusServiceUnavailable, Type: api.TypeOverloaded, Code: "server_overloaded",
		Message: "the gateway is at its limit of " + strconv.Itoa(limit) +
			" concurrent requests (max_inflight, MAX_INFLIGHT); retry shortly", RetryAfter: time.Second}
}
