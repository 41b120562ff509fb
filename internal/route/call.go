package route

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/provider"
)

// ChatCompletion sends req to t's deployments, retrying, failing over and
// falling back until one answers:
//
//   - each model (t, then its configured fallbacks, then the request's
//     fallbacks, each resolved with Resolve and tried once) gets
//     1+MaxRetries attempts; a retry goes to a deployment not tried yet when
//     one is available, and otherwise waits (exponential backoff with full
//     jitter, or the upstream's Retry-After) before reusing one;
//   - 429, 408, 5xx, connection errors and timeouts are retried; an
//     upstream 401/403 (the deployment's credential refused) moves on to
//     other deployments and fallbacks but never back to that deployment;
//     any other error ends the request at once, fallbacks included;
//   - a stream is retried only until its first chunk: the router reads it
//     before returning, so nothing has reached the client yet.
//
// The answer's Provider is the deployment that answered and Attempts the
// upstream calls made. A returned Stream holds capacity until it ends or is
// closed, so the caller must Close it. The error is the last upstream error,
// or a 503 no_healthy_deployment with Retry-After when no deployment could
// take the call. req is not modified. Errors are *api.Error.
func (r *Router) ChatCompletion(ctx context.Context, t Target, req *provider.Request, fallbacks []string) (*provider.Response, error) {
	if r.closed.Load() {
		return nil, errClosed()
	}
	g, err := r.group(t)
	if err != nil {
		return nil, err
	}
	ok, err := r.global.acquire(ctx, r.cfg.QueueWait)
	if err != nil {
		return nil, api.FromError(err)
	}
	if !ok {
		r.rejected.Add(1)
		return nil, errOverloaded(cap(r.global))
	}
	start := r.cfg.Now()
	c := &call{r: r, ctx: ctx, req: req, deadline: start.Add(r.cfg.Timeouts.Total)}
	resp, err := c.run(g, t, fallbacks)
	if resp == nil || resp.Stream == nil {
		// A stream releases its slot when it ends.
		r.global.release()
	}
	return resp, err
}

// call is one ChatCompletion in progress.
type call struct {
	r        *Router
	ctx      context.Context
	req      *provider.Request
	preq     provider.Request // the request as one attempt sends it
	deadline time.Time
	attempts int
	lastErr  *api.Error
	unavail  *api.Error // set when a model had no deployment able to take the call

	body      []byte // req.Body rewritten for bodyModel
	bodyModel string
}

func (c *call) run(g *group, t Target, fallbacks []string) (*provider.Response, error) {
	resp, stop := c.tryModel(g, t)
	if resp != nil {
		return resp, nil
	}
	if stop {
		return nil, c.finalErr()
	}
	from := t.String()
	seen := []string{from}
	for _, list := range [2][]string{g.fallbacks, fallbacks} {
		for _, name := range list {
			ft, err := c.r.Resolve(name)
			if err != nil {
				continue // the gateway validates request fallbacks; config ones were checked by New
			}
			key := ft.String()
			if slices.Contains(seen, key) {
				continue
			}
			seen = append(seen, key)
			fg, err := c.r.group(ft)
			if err != nil {
				continue
			}
			if c.r.cfg.OnFallback != nil {
				c.r.cfg.OnFallback(from, key)
			}
			if resp, stop = c.tryModel(fg, ft); resp != nil {
				return resp, nil
			}
			if stop {
				return nil, c.finalErr()
			}
		}
	}
	return nil, c.finalErr()
}

func (c *call) finalErr() *api.Error {
	switch {
	case c.lastErr != nil:
		return c.lastErr
	case c.unavail != nil:
		return c.unavail
	}
	return &api.Error{Status: http.StatusServiceUnavailable, Type: api.TypeOverloaded, Code: "no_healthy_deployment",
		Message: "no deployment could take the request", RetryAfter: time.Second}
}

// tryModel makes up to 1+MaxRetries attempts on g. stop means the request
// must end (success aside): a non-retryable error, the client gone or the
// total deadline reached.
func (c *call) tryModel(g *group, t Target) (resp *provider.Response, stop bool) {
	maxAttempts := 1 + c.r.cfg.Retry.MaxRetries
	var tried, banned uint64
	all := uint64(1)<<len(g.deps) - 1 // len <= 64; a shift by 64 gives 0, and 0-1 is all ones
	for n := range maxAttempts {
		if banned == all {
			return nil, false
		}
		if n > 0 && !c.untriedAvailable(g, tried|banned) {
			if stop := c.backoff(n); stop {
				return nil, true
			}
		}
		d, idx, probe, err := c.acquire(g, tried, banned)
		if err != nil {
			c.lastErr = err
			return nil, true
		}
		if d == nil {
			c.noteUnavailable(g, t)
			return nil, false
		}
		if n > 0 && c.r.cfg.OnRetry != nil {
			c.r.cfg.OnRetry(t.String(), d.name)
		}
		tried |= 1 << idx
		resp, err = c.attempt(d, probe, t)
		if err == nil {
			return resp, true
		}
		c.lastErr = err
		if provider.IsAuthFailure(err) && c.ctx.Err() == nil && c.r.cfg.Now().Before(c.deadline) {
			// The deployment's credential was refused: asking it again
			// cannot help, another deployment or model has its own.
			banned |= 1 << idx
			continue
		}
		if c.ctx.Err() != nil || !retryable(err) || !c.r.cfg.Now().Before(c.deadline) {
			return nil, true
		}
		if err.RetryAfter > c.r.cfg.Retry.MaxRetryAfter {
			// Waiting that long is the client's decision, not ours.
			banned |= 1 << idx
		}
	}
	return nil, false
}

// untriedAvailable says whether a retry can move to a fresh deployment
// without waiting.
func (c *call) untriedAvailable(g *group, excl uint64) bool {
	now := c.r.cfg.Now()
	for i, d := range g.deps {
		if excl&(1<<i) == 0 && !d.sem.full() && d.available(now) {
			return true
		}
	}
	return false
}

// backoff waits before retry n (1-based): the upstream's Retry-After when
// it gave one, else full jitter over an exponential ceiling. It reports
// stop when the context ended or the wait would pass the total deadline.
func (c *call) backoff(n int) (stop bool) {
	rc := &c.r.cfg.Retry
	ceiling := rc.BaseBackoff << min(n-1, 30)
	if ceiling > rc.MaxBackoff || ceiling <= 0 {
		ceiling = rc.MaxBackoff
	}
	wait := time.Duration(c.r.cfg.Rand() * float64(ceiling))
	if c.lastErr != nil && c.lastErr.RetryAfter > 0 && c.lastErr.RetryAfter <= rc.MaxRetryAfter {
		wait = c.lastErr.RetryAfter
	}
	if wait <= 0 {
		return false
	}
	if c.r.cfg.Now().Add(wait).After(c.deadline) {
		return true
	}
	tm := time.NewTimer(wait)
	defer tm.Stop()
	select {
	case <-tm.C:
		return false
	case <-c.ctx.Done():
		c.lastErr = api.FromError(c.ctx.Err())
		return true
	}
}

// acquire picks a deployment by strategy and claims a slot, its breaker and
// its caps. Untried deployments come first. When every candidate is at
// MaxInflight it waits up to QueueWait for one. A nil deployment means none
// can take the call; an error means the context ended.
func (c *call) acquire(g *group, tried, banned uint64) (d *deployment, idx int, probe bool, err *api.Error) {
	now := c.r.cfg.Now()
	excl := banned
	saturated := -1
	var buf [8]int
	for {
		cands := buf[:0]
		for pass := 0; pass < 2 && len(cands) == 0; pass++ {
			for i, d := range g.deps {
				if excl&(1<<i) != 0 || pass == 0 && tried&(1<<i) != 0 {
					continue
				}
				if d.sem.full() {
					if saturated < 0 && d.available(now) {
						saturated = i
					}
					excl |= 1 << i
					continue
				}
				if len(g.deps) == 1 || d.available(now) {
					cands = append(cands, i)
				}
			}
		}
		if len(cands) == 0 {
			break
		}
		i := g.pick(cands)
		d := g.deps[i]
		excl |= 1 << i
		if !d.sem.tryAcquire() {
			if saturated < 0 {
				saturated = i
			}
			continue
		}
		if ok, probe := d.admit(now, c.r.cfg.OnBreakerChange); ok {
			return d, i, probe, nil
		}
		d.sem.release()
	}
	if saturated < 0 {
		return nil, 0, false, nil
	}
	d = g.deps[saturated]
	ok, cerr := d.sem.acquire(c.ctx, c.r.cfg.QueueWait)
	if cerr != nil {
		return nil, 0, false, api.FromError(cerr)
	}
	if !ok {
		c.r.depRejected.Add(1)
		return nil, 0, false, nil
	}
	if ok, probe := d.admit(c.r.cfg.Now(), c.r.cfg.OnBreakerChange); ok {
		return d, saturated, probe, nil
	}
	d.sem.release()
	return nil, 0, false, nil
}

func (c *call) noteUnavailable(g *group, t Target) {
	now := c.r.cfg.Now()
	c.countBreakerOpen(g, now)
	wait := time.Duration(-1)
	for _, d := range g.deps {
		if w := d.retryIn(now); wait < 0 || w < wait {
			wait = w
		}
	}
	wait = max(wait, time.Second)
	c.unavail = &api.Error{Status: http.StatusServiceUnavailable, Type: api.TypeOverloaded, Code: "no_healthy_deployment",
		Message:    fmt.Sprintf("no deployment of model %q can take the request now (circuit breakers open, rate caps reached or at capacity); retry later", t.String()),
		RetryAfter: wait.Round(time.Second)}
}

// attempt makes one upstream call on d, which acquire claimed.
func (c *call) attempt(d *deployment, probe bool, t Target) (*provider.Response, *api.Error) {
	model := d.model
	if model == "" {
		model = t.Model
	}
	if c.req.Surface != provider.SurfaceChat && !provider.Speaks(d.prov, c.req.Surface) {
		// A passed-through body is in the client's API; a fallback that
		// does not speak it would receive a request it cannot read.
		d.sem.release()
		d.record(c.r.cfg.Now(), outcomeNeutral, probe, 0, nil)
		return nil, &api.Error{Status: http.StatusBadRequest, Type: api.TypeInvalidRequest, Code: "surface_not_supported",
			Message: fmt.Sprintf("deployment %s does not speak the %s API natively; a passed-through request cannot fall back to it", d.name, c.req.Surface)}
	}
	body, err := c.bodyFor(model)
	if err != nil {
		d.sem.release()
		d.record(c.r.cfg.Now(), outcomeNeutral, probe, 0, nil)
		return nil, api.InvalidRequest("", "cannot rewrite the request for model %q: %v", model, err)
	}
	c.preq = *c.req
	c.preq.Body, c.preq.Model = body, model
	c.attempts++
	timeout := c.r.cfg.Timeouts.FirstByte
	if d.timeout > 0 {
		timeout = d.timeout
	}
	ctx, endSpan := c.ctx, endNoSpan
	if f := c.r.cfg.TraceAttempt; f != nil {
		c.preq.Header = c.req.Header.Clone()
		if c.preq.Header == nil {
			c.preq.Header = http.Header{}
		}
		ctx, endSpan = f(c.ctx, c.preq.Header, d.name, d.prov.Type(), model, c.preq.Surface)
	}
	start := c.r.cfg.Now()
	if c.req.Stream {
		return c.attemptStream(ctx, d, probe, start, timeout, endSpan)
	}
	timeout = min(timeout, c.deadline.Sub(start))
	actx, cancel := context.WithTimeout(ctx, timeout)
	resp, err := d.prov.ChatCompletion(actx, &c.preq)
	timedOut := actx.Err() == context.DeadlineExceeded
	cancel()
	end := c.r.cfg.Now()
	d.sem.release()
	if err == nil && (resp == nil || resp.Body == nil) {
		err = errNoAnswer(d)
	}
	if err != nil {
		e := c.normalize(err, d, timedOut)
		d.record(end, c.outcomeOf(e), probe, 0, c.r.cfg.OnBreakerChange)
		o := classify(e, c.ctx.Err() != nil)
		c.r.onAttempt(d, o)
		endSpan(o)
		return nil, e
	}
	d.record(end, outcomeSuccess, probe, end.Sub(start), c.r.cfg.OnBreakerChange)
	c.r.onAttempt(d, AttemptOK)
	endSpan(AttemptOK)
	if d.tpm.enabled() {
		d.chargeTokens(end, gjson.GetBytes(resp.Body, "usage.total_tokens").Int())
	}
	resp.Provider, resp.Attempts = d.name, c.attempts
	return resp, nil
}

var fallbacksKey = []byte(`"fallbacks"`)

// bodyFor returns the client's body with "model" set to the deployment's
// model and the gateway-only "fallbacks" field removed: the client's bytes
// when nothing changes, else a copy.
func (c *call) bodyFor(model string) ([]byte, error) {
	if c.body != nil && c.bodyModel == model {
		return c.body, nil
	}
	src := c.req.Body
	// A string view of the body spares GetBytes' copy of the result; nothing
	// read from it outlives this call.
	cur := gjson.Get(api.View(src), "model")
	hasFB := bytes.Contains(src, fallbacksKey) && gjson.GetBytes(src, "fallbacks").Exists()
	b := src
	if hasFB || cur.Type != gjson.String || cur.Str != model {
		var err error
		if hasFB {
			if b, err = sjson.DeleteBytes(b, "fallbacks"); err != nil {
				return nil, fmt.Errorf("remove fallbacks: %w", err)
			}
		}
		if b, err = sjson.SetBytes(b, "model", model); err != nil {
			return nil, fmt.Errorf("set model: %w", err)
		}
	}
	c.body, c.bodyModel = b, model
	return b, nil
}

// normalize turns whatever a provider returned into the *api.Error the
// retry logic and the client see.
func (c *call) normalize(err error, d *deployment, timedOut bool) *api.Error {
	if cerr := c.ctx.Err(); cerr != nil {
		return api.FromError(cerr)
	}
	if timedOut {
		return &api.Error{Status: http.StatusGatewayTimeout, Type: api.TypeTimeout, Code: "upstream_timeout",
			Message: fmt.Sprintf("deployment %s did not answer in time", d.name), Err: err}
	}
	var e *api.Error
	if errors.As(err, &e) {
		return e
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) {
		return provider.TransportError(c.ctx, d.name, err)
	}
	return api.FromError(err)
}

// outcomeOf says what an error tells about the deployment's health.
func (c *call) outcomeOf(e *api.Error) outcome {
	if c.ctx.Err() != nil || e.Code == provider.CodeOutOfDescriptors { // not the deployment's doing
		return outcomeNeutral
	}
	switch {
	case e.UpstreamStatus >= 500:
		return outcomeFailure
	case e.UpstreamStatus != 0:
		return outcomeNeutral // 4xx including 429: the deployment is alive
	case e.Status == http.StatusBadGateway, e.Status == http.StatusServiceUnavailable, e.Status == http.StatusGatewayTimeout:
		return outcomeFailure // transport failures and timeouts
	}
	return outcomeNeutral
}

// retryable says whether another attempt may succeed where this one failed.
func retryable(e *api.Error) bool {
	if e.Code == provider.CodeOutOfDescriptors {
		return false // another attempt would need a descriptor too
	}
	switch s := e.UpstreamStatus; {
	case s == http.StatusTooManyRequests, s == http.StatusRequestTimeout, s >= 500:
		return true
	case s != 0:
		return false
	}
	switch e.Status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

func errNoAnswer(d *deployment) *api.Error {
	return &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_invalid_response",
		Message: fmt.Sprintf("deployment %s returned no answer", d.name)}
}
