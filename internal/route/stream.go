package route

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/cost"
	"github.com/edge-agent/edge-agent/internal/provider"
)

// attemptStream starts a stream on d and reads its first chunk, so that a
// failure before anything reached the client can still be retried.
func (c *call) attemptStream(ctx context.Context, d *deployment, probe bool, start time.Time, firstByte time.Duration,
	endSpan func(AttemptOutcome)) (*provider.Response, *api.Error) {
	sctx, cancel := context.WithDeadline(ctx, c.deadline)
	s := &stream{r: c.r, d: d, parent: c.ctx, ctx: sctx, cancel: cancel, idle: c.r.cfg.Timeouts.StreamIdle, endSpan: endSpan,
		base: time.Now()}
	// One timer serves the first-byte bound and then the idle bound; it
	// cancels the upstream call so a stalled read returns.
	s.timer = time.AfterFunc(firstByte, s.expire)
	resp, err := d.prov.ChatCompletion(sctx, &c.preq)
	var first []byte
	if err == nil {
		if resp == nil || resp.Stream == nil {
			err = errNoAnswer(d)
		} else {
			first, err = resp.Stream.Next()
		}
	}
	fired := !s.timer.Stop()
	end := c.r.cfg.Now()
	if fired && err == nil {
		err = context.DeadlineExceeded // the chunk came as the timer fired; the context is gone
	}
	if err != nil && err != io.EOF {
		if resp != nil && resp.Stream != nil {
			_ = resp.Stream.Close()
		}
		cancel()
		d.sem.release()
		e := c.normalize(err, d, fired || sctx.Err() == context.DeadlineExceeded)
		d.record(end, c.outcomeOf(e), probe, 0, c.r.cfg.OnBreakerChange)
		o := classify(e, c.ctx.Err() != nil)
		c.r.onAttempt(d, o)
		endSpan(o)
		return nil, e
	}
	d.record(end, outcomeSuccess, probe, end.Sub(start), c.r.cfg.OnBreakerChange)
	s.up, s.first, s.hasFirst, s.outcome = resp.Stream, first, err == nil, AttemptCanceled
	if err == io.EOF {
		s.err, s.outcome = io.EOF, AttemptOK
		s.finish()
	} else {
		s.chargeUsage(first)
		// From here the timer bounds idleness (see expire).
		s.watching.Store(true)
		s.timer.Reset(s.idle)
	}
	resp.Stream, resp.Provider, resp.Attempts = s, d.name, c.attempts
	return resp, nil
}

var errStreamClosed = errors.New("route: stream closed")

// stream replays the pre-read first chunk, bounds the wait for every later
// one, and gives the deployment's and the router's capacity back when it
// ends. Next must not be called concurrently with itself; Close may be
// called from any goroutine, any number of times.
type stream struct {
	r      *Router
	d      *deployment
	up     provider.Stream
	parent context.Context // the caller's: its end is the client's doing
	ctx    context.Context // the upstream call's: parent plus the total deadline
	cancel context.CancelFunc
	timer  *time.Timer
	idle   time.Duration

	// The idle bound is kept without touching the timer per chunk (a
	// Reset and a Stop per chunk cost 2 % of the CPU of 5000 streams, most
	// of it on the timers' locks): Next records when it started waiting,
	// and the timer, armed for idle, re-arms itself for what is left of
	// the bound until a wait reaches it.
	base     time.Time    // the monotonic origin of waiting
	waiting  atomic.Int64 // nanoseconds since base when the current wait began, plus 1; 0 between waits
	watching atomic.Bool  // the first chunk came: the timer bounds idleness, not the first byte
	expired  atomic.Bool  // the timer canceled the call

	first    []byte
	hasFirst bool
	err      error
	done     atomic.Bool
	// outcome is reported by finish: set where the stream ends; a stream
	// closed before its end was left by the client (canceled).
	outcome AttemptOutcome
	endSpan func(AttemptOutcome) // the attempt's span covers the whole stream
}

// Usage passes on the upstream stream's usage by token kind, when it
// reports one (provider.UsageReporter).
func (s *stream) Usage() (cost.Usage, bool) {
	if ur, ok := s.up.(provider.UsageReporter); ok {
		return ur.Usage()
	}
	return cost.Usage{}, false
}

// NextBuffered passes on the upstream stream's answer (provider.Buffered):
// true while the pre-read first chunk waits, false when the upstream cannot
// tell.
func (s *stream) NextBuffered() bool {
	if s.hasFirst || s.err != nil {
		return true
	}
	b, ok := s.up.(provider.Buffered)
	return ok && !s.done.Load() && b.NextBuffered()
}

func (s *stream) Next() ([]byte, error) {
	if s.err != nil {
		return nil, s.err
	}
	if s.done.Load() {
		return nil, errStreamClosed
	}
	if s.hasFirst {
		s.hasFirst = false
		b := s.first
		s.first = nil
		return b, nil
	}
	s.waiting.Store(int64(time.Since(s.base)) + 1)
	b, err := s.up.Next()
	s.waiting.Store(0)
	if s.done.Load() { // closed by another goroutine
		return nil, errStreamClosed
	}
	if s.expired.Load() {
		s.outcome = AttemptTimeout
		return nil, s.fail(&api.Error{Status: http.StatusGatewayTimeout, Type: api.TypeTimeout, Code: "stream_idle_timeout",
			Message: fmt.Sprintf("deployment %s sent nothing for %s; the stream was closed", s.d.name, s.idle)}, outcomeFailure)
	}
	if err == nil {
		s.chargeUsage(b)
		return b, nil
	}
	if err == io.EOF {
		s.err, s.outcome = io.EOF, AttemptOK
		s.finish()
		return nil, io.EOF
	}
	switch {
	case s.parent.Err() != nil:
		return nil, s.fail(api.FromError(s.parent.Err()), outcomeNeutral)
	case s.ctx.Err() == context.DeadlineExceeded:
		s.outcome = AttemptTimeout
		return nil, s.fail(&api.Error{Status: http.StatusGatewayTimeout, Type: api.TypeTimeout, Code: "request_timeout",
			Message: fmt.Sprintf("the request exceeded the total timeout of %s", s.r.cfg.Timeouts.Total)}, outcomeNeutral)
	}
	var e *api.Error
	if !errors.As(err, &e) {
		e = &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_stream_error",
			Message: fmt.Sprintf("deployment %s failed mid-stream", s.d.name), Err: err}
	}
	s.outcome = AttemptStreamError
	return nil, s.fail(e, outcomeFailure)
}

// expire is the timer's function. Before the first chunk it ends the
// call (the first-byte bound); after it, it ends the call only when the
// current wait has lasted idle, and otherwise re-arms itself for the rest.
func (s *stream) expire() {
	if s.watching.Load() {
		if s.done.Load() {
			return
		}
		left := s.idle
		if w := s.waiting.Load(); w != 0 {
			left -= time.Since(s.base) - time.Duration(w-1)
		}
		if left > 0 {
			s.timer.Reset(left)
			return
		}
	}
	s.expired.Store(true)
	s.cancel()
}

// fail ends the stream with err; a failure counts against the deployment.
func (s *stream) fail(err *api.Error, o outcome) error {
	if o == outcomeFailure {
		s.d.record(s.r.cfg.Now(), o, false, 0, s.r.cfg.OnBreakerChange)
	}
	s.err = err
	s.finish()
	return err
}

func (s *stream) chargeUsage(chunk []byte) {
	if !s.d.tpm.enabled() {
		return
	}
	if u := gjson.GetBytes(chunk, "usage.total_tokens"); u.Exists() {
		s.d.chargeTokens(s.r.cfg.Now(), u.Int())
	}
}

// Close ends the upstream call and frees capacity. It is idempotent.
func (s *stream) Close() error {
	s.finish()
	return nil
}

func (s *stream) finish() {
	if !s.done.CompareAndSwap(false, true) {
		return
	}
	s.timer.Stop()
	if s.up != nil {
		_ = s.up.Close()
	}
	s.cancel()
	s.d.sem.release()
	s.r.global.release()
	s.r.onAttempt(s.d, s.outcome)
	s.endSpan(s.outcome)
}
