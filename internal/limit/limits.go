package limit

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/edge-agent/edge-agent/internal/api"
)

// Options are the gateway-wide rate limits. Every value is per minute and
// 0 means unlimited.
type Options struct {
	KeyRPM   int // per-key default requests per minute (RATE_LIMIT_RPM)
	KeyBurst int // per-key default request burst (RATE_LIMIT_BURST; 0: KeyRPM)
	KeyTPM   int // per-key default tokens per minute

	GlobalRPM   int // all keys together
	GlobalBurst int // 0: GlobalRPM
	GlobalTPM   int
}

// Limits applies per-key and global request and token limits.
type Limits struct {
	lim Limiter
	o   Options
}

// NewLimits returns Limits that keep their buckets in lim (a LocalLimiter,
// or a RedisLimiter to share them between instances).
func NewLimits(lim Limiter, o Options) *Limits { return &Limits{lim: lim, o: o} }

const (
	globalRequests = "g:r"
	globalTokens   = "g:t"
)

func bucketKeys(p *Principal) (req, tok string) {
	if p.bucketReq != "" {
		return p.bucketReq, p.bucketTok
	}
	return "k:" + p.Name + ":r", "k:" + p.Name + ":t"
}

// keyLimits resolves the principal's own values against the defaults.
func (l *Limits) keyLimits(p *Principal) (req, tok Limit) {
	req = Limit{Rate: pick(p.RPM, l.o.KeyRPM), Burst: l.o.KeyBurst}
	if p.Burst > 0 {
		req.Burst = p.Burst
	}
	tok = Limit{Rate: pick(p.TPM, l.o.KeyTPM)}
	return req, tok
}

func pick(own, def int) int {
	switch {
	case own > 0:
		return own
	case own < 0:
		return 0
	}
	return def
}

type dimension int

const (
	requests dimension = iota
	tokens
)

type step struct {
	key    string
	limit  Limit
	n      int
	dim    dimension
	global bool
}

// Check spends one request and estimatedTokens tokens from the principal's
// buckets and the global ones. It is all or nothing: when any bucket is
// short, what was already spent is given back and the error is a 429 with
// RetryAfter set. The decisions returned describe the tighter of the key
// and global limits (or the one that refused), for SetHeaders.
func (l *Limits) Check(ctx context.Context, p *Principal, estimatedTokens int) (req, tok Decision, err error) {
	keyReq, keyTok := l.keyLimits(p)
	globalReq, globalTok := Limit{Rate: l.o.GlobalRPM, Burst: l.o.GlobalBurst}, Limit{Rate: l.o.GlobalTPM}
	if keyReq.Unlimited() && keyTok.Unlimited() && globalReq.Unlimited() && globalTok.Unlimited() {
		return unlimited(), unlimited(), nil // nothing to spend: the common open gateway
	}
	bReq, bTok := bucketKeys(p)
	steps := [4]step{
		{bReq, keyReq, 1, requests, false},
		{bTok, keyTok, estimatedTokens, tokens, false},
		{globalRequests, globalReq, 1, requests, true},
		{globalTokens, globalTok, estimatedTokens, tokens, true},
	}
	var got [len(steps)]Decision
	for i, s := range steps {
		got[i] = unlimited()
		if s.limit.Unlimited() {
			continue
		}
		d, err := l.lim.Allow(ctx, s.key, s.limit, s.n)
		if err == nil && !d.Allowed {
			err = rateLimited(p, s, d)
		}
		if err != nil {
			l.refund(ctx, steps[:i])
			for j := range i {
				// Report what is left after the refund.
				got[j].Remaining = min(got[j].Remaining+steps[j].n, got[j].Limit)
			}
			req, tok = merge(steps[:i], got[:i])
			if s.dim == requests {
				req = d
			} else {
				tok = d
			}
			return req, tok, api.FromError(err)
		}
		got[i] = d
	}
	req, tok = merge(steps[:], got[:])
	return req, tok, nil
}

// merge picks per dimension the tighter of the key and global decisions.
func merge(steps []step, got []Decision) (req, tok Decision) {
	req, tok = unlimited(), unlimited()
	for i, d := range got {
		if steps[i].dim == requests {
			req = tighter(req, d)
		} else {
			tok = tighter(tok, d)
		}
	}
	return req, tok
}

func tighter(cur, d Decision) Decision {
	if d.Limit == 0 {
		return cur
	}
	if cur.Limit == 0 || d.Remaining < cur.Remaining {
		return d
	}
	return cur
}

func (l *Limits) refund(ctx context.Context, spent []step) {
	ctx = context.WithoutCancel(ctx)
	for _, s := range spent {
		if !s.limit.Unlimited() && s.n > 0 {
			_ = l.lim.Adjust(ctx, s.key, s.limit, -s.n)
		}
	}
}

// CountsTokens reports whether a token limit applies to p: only then does
// Correct have anything to do.
func (l *Limits) CountsTokens(p *Principal) bool {
	_, keyTok := l.keyLimits(p)
	return !keyTok.Unlimited() || !(Limit{Rate: l.o.GlobalTPM}).Unlimited()
}

// Correct charges the difference between the real token usage and the
// estimate Check spent (a refund when the estimate was high). It runs after
// the answer, so it ignores the cancellation of ctx.
func (l *Limits) Correct(ctx context.Context, p *Principal, estimated, actual int) {
	diff := actual - estimated
	if diff == 0 {
		return
	}
	ctx = context.WithoutCancel(ctx)
	_, keyTok := l.keyLimits(p)
	_, bTok := bucketKeys(p)
	if !keyTok.Unlimited() {
		_ = l.lim.Adjust(ctx, bTok, keyTok, diff)
	}
	if g := (Limit{Rate: l.o.GlobalTPM}); !g.Unlimited() {
		_ = l.lim.Adjust(ctx, globalTokens, g, diff)
	}
}

func rateLimited(p *Principal, s step, d Decision) *api.Error {
	what := "requests per minute (RPM)"
	if s.dim == tokens {
		what = "tokens per minute (TPM)"
	}
	who := fmt.Sprintf("on API key %q", p.Name)
	if s.global {
		who = "on the gateway (all keys)"
	}
	msg := fmt.Sprintf("Rate limit reached for %s %s: limit %d per minute, burst %d. Please try again in %s.",
		what, who, s.limit.Rate, d.Limit, FormatReset(d.RetryAfter))
	return &api.Error{Status: http.StatusTooManyRequests, Type: api.TypeRateLimit, Code: "rate_limit_exceeded",
		Message: msg, RetryAfter: d.RetryAfter}
}

// SetHeaders sets OpenAI's x-ratelimit-* headers for the request and token
// limits (left out for a dimension without limit) and Retry-After when one
// of them refused.
func SetHeaders(h http.Header, req, tok Decision) {
	setDimension(h, req, "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests")
	setDimension(h, tok, "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens")
	var retry time.Duration
	for _, d := range [2]Decision{req, tok} {
		if !d.Allowed && d.RetryAfter > retry {
			retry = d.RetryAfter
		}
	}
	if retry > 0 {
		h.Set("Retry-After", strconv.FormatInt(int64((retry+time.Second-1)/time.Second), 10))
	}
}

func setDimension(h http.Header, d Decision, limit, remaining, reset string) {
	if d.Limit == 0 {
		return
	}
	h.Set(limit, strconv.Itoa(d.Limit))
	h.Set(remaining, strconv.Itoa(d.Remaining))
	h.Set(reset, FormatReset(d.Reset))
}

// FormatReset formats a duration as OpenAI does in x-ratelimit-reset-*:
// Go duration syntax to the millisecond ("12ms", "1.5s", "6m0s"), with
// anything under a millisecond rounded up so only an exact 0 says "0s".
func FormatReset(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	if d < time.Millisecond {
		d = time.Millisecond
	}
	return d.Round(time.Millisecond).String()
}
