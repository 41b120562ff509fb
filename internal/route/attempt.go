package route

import (
	"net/http"
	"time"

	"github.com/edge-agent/edge-agent/internal/api"
)

// AttemptOutcome is how one upstream attempt ended, as OnAttempt reports
// it: by status class for an answer, by kind for a failure without one,
// with the client's own errors (4xx) apart from the provider's.
type AttemptOutcome uint8

// The outcomes of an attempt.
const (
	AttemptOK              AttemptOutcome = iota // 2xx (a stream: it ended well)
	AttemptClientError                           // 4xx other than 401, 403, 408, 429: the request's own fault
	AttemptAuthError                             // 401, 403: the deployment's credential refused
	AttemptRateLimited                           // 429
	AttemptServerError                           // 5xx
	AttemptTimeout                               // no answer (or no next chunk) in time, 408 included
	AttemptConnectionError                       // refused, reset, unreachable
	AttemptBreakerOpen                           // not sent: the deployment's circuit breaker is open
	AttemptStreamError                           // a stream that failed after its first chunk
	AttemptCanceled                              // the client went away first
	AttemptOther                                 // anything else (an answer that could not be read)
	numAttemptOutcomes
)

var attemptOutcomeNames = [numAttemptOutcomes]string{
	"2xx", "4xx", "auth", "429", "5xx", "timeout", "connection_error", "breaker_open", "stream_error", "canceled", "other",
}

// String is the outcome's metric label.
func (o AttemptOutcome) String() string {
	if o < numAttemptOutcomes {
		return attemptOutcomeNames[o]
	}
	return "other"
}

// AttemptOutcomes lists every outcome, for exporting each series from the
// start.
func AttemptOutcomes() []AttemptOutcome {
	out := make([]AttemptOutcome, numAttemptOutcomes)
	for i := range out {
		out[i] = AttemptOutcome(i)
	}
	return out
}

// ProviderFailure reports whether the outcome says the provider (not the
// client, not its credentials, not its quota) failed.
func (o AttemptOutcome) ProviderFailure() bool {
	switch o {
	case AttemptServerError, AttemptTimeout, AttemptConnectionError, AttemptBreakerOpen, AttemptStreamError:
		return true
	}
	return false
}

// classify maps an attempt's error to its outcome. canceled is set when the
// client's context has ended.
func classify(e *api.Error, canceled bool) AttemptOutcome {
	if canceled {
		return AttemptCanceled
	}
	switch s := e.UpstreamStatus; {
	case s == http.StatusUnauthorized, s == http.StatusForbidden:
		return AttemptAuthError
	case s == http.StatusTooManyRequests:
		return AttemptRateLimited
	case s == http.StatusRequestTimeout:
		return AttemptTimeout
	case s >= 500:
		return AttemptServerError
	case s >= 400:
		return AttemptClientError
	}
	switch {
	case e.Type == api.TypeTimeout || e.Status == http.StatusGatewayTimeout:
		return AttemptTimeout
	case e.Code == "upstream_unavailable" || e.Code == "upstream_connection_refused":
		return AttemptConnectionError
	case e.Status == 499:
		return AttemptCanceled
	}
	return AttemptOther
}

func endNoSpan(AttemptOutcome) {}

func (r *Router) onAttempt(d *deployment, o AttemptOutcome) {
	if f := r.cfg.OnAttempt; f != nil {
		f(d.name, d.provName, o)
	}
}

// countBreakerOpen reports a breaker_open attempt for each deployment of g
// whose breaker kept the request from it, when no deployment could take it.
func (c *call) countBreakerOpen(g *group, now time.Time) {
	if c.r.cfg.OnAttempt == nil {
		return
	}
	for _, d := range g.deps {
		if d.health(now).State == StateOpen {
			c.r.onAttempt(d, AttemptBreakerOpen)
		}
	}
}
