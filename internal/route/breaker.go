package route

import "time"

// State is a circuit breaker state. Its numeric value is what the
// llm_edge_circuit_breaker_state gauge reports.
type State int

// Breaker states.
const (
	StateClosed   State = 0
	StateHalfOpen State = 1
	StateOpen     State = 2
)

func (s State) String() string {
	switch s {
	case StateClosed:
		return "closed"
	case StateHalfOpen:
		return "half-open"
	case StateOpen:
		return "open"
	}
	return "unknown"
}

// MarshalText makes State read as its name in /health JSON.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// outcome is what one upstream call tells the breaker.
type outcome int

const (
	outcomeNeutral outcome = iota // says nothing about the deployment: 4xx, 429, client gone
	outcomeSuccess
	outcomeFailure // 5xx, connection error, timeout
)

const breakerBuckets = 10

// breaker is one deployment's circuit breaker. Its owner's mutex guards it.
type breaker struct {
	cfg      *BreakerConfig
	state    State
	consec   int
	openedAt time.Time
	probes   int // admitted half-open probes without an outcome yet
	width    int64
	buckets  [breakerBuckets]struct{ idx, total, fail int64 }
}

func newBreaker(cfg *BreakerConfig) breaker {
	w := int64(cfg.Window) / breakerBuckets
	if w <= 0 {
		w = 1
	}
	return breaker{cfg: cfg, width: w}
}

// current is the state at now: an open breaker whose OpenFor passed is
// half-open, even before a probe moved it there.
func (b *breaker) current(now time.Time) State {
	if b.state == StateOpen && now.Sub(b.openedAt) >= b.cfg.OpenFor {
		return StateHalfOpen
	}
	return b.state
}

// available says whether admit would let a call through, without side effects.
func (b *breaker) available(now time.Time) bool {
	switch b.current(now) {
	case StateClosed:
		return true
	case StateHalfOpen:
		return b.state == StateOpen || b.probes < b.cfg.HalfOpenProbes
	}
	return false
}

// admit lets a call through, claiming a probe slot when half-open. changed
// reports a state transition.
func (b *breaker) admit(now time.Time) (ok, probe, changed bool) {
	if b.cfg.Disabled {
		return true, false, false
	}
	switch b.current(now) {
	case StateClosed:
		return true, false, false
	case StateHalfOpen:
		if b.state == StateOpen {
			b.state, b.probes, changed = StateHalfOpen, 0, true
		}
		if b.probes >= b.cfg.HalfOpenProbes {
			return false, false, changed
		}
		b.probes++
		return true, true, changed
	}
	return false, false, false
}

// retryIn is how long until an open breaker admits a probe.
func (b *breaker) retryIn(now time.Time) time.Duration {
	if b.state != StateOpen {
		return 0
	}
	return b.cfg.OpenFor - now.Sub(b.openedAt)
}

// record applies an outcome; probe says whether admit claimed a probe slot
// for this call.
func (b *breaker) record(now time.Time, o outcome, probe bool) (changed bool) {
	if b.cfg.Disabled {
		return false
	}
	if probe {
		b.probes--
	}
	if o == outcomeNeutral {
		return false
	}
	if b.state == StateHalfOpen {
		// Outcomes of calls admitted before the breaker opened do not decide
		// the probe; only probes do.
		if !probe {
			return false
		}
		if o == outcomeSuccess {
			b.reset()
			b.state = StateClosed
		} else {
			b.state, b.openedAt = StateOpen, now
		}
		return true
	}
	if b.state == StateOpen {
		return false
	}
	bk := b.bucket(now)
	bk.total++
	if o == outcomeSuccess {
		b.consec = 0
		return false
	}
	bk.fail++
	b.consec++
	if b.cfg.ConsecutiveFailures > 0 && b.consec >= b.cfg.ConsecutiveFailures || b.rateTripped(now) {
		b.state, b.openedAt = StateOpen, now
		return true
	}
	return false
}

func (b *breaker) reset() {
	b.consec = 0
	b.buckets = [breakerBuckets]struct{ idx, total, fail int64 }{}
}

func (b *breaker) bucket(now time.Time) *struct{ idx, total, fail int64 } {
	idx := now.UnixNano() / b.width
	bk := &b.buckets[idx%breakerBuckets]
	if bk.idx != idx {
		bk.idx, bk.total, bk.fail = idx, 0, 0
	}
	return bk
}

func (b *breaker) rateTripped(now time.Time) bool {
	if b.cfg.FailureRate <= 0 {
		return false
	}
	idx := now.UnixNano() / b.width
	var total, fail int64
	for i := range b.buckets {
		if bk := &b.buckets[i]; bk.idx > idx-breakerBuckets {
			total += bk.total
			fail += bk.fail
		}
	}
	return total >= int64(b.cfg.MinRequests) && float64(fail) >= b.cfg.FailureRate*float64(total)
}
