package limit

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edge-agent/edge-agent/internal/api"
)

func principal(name string) *Principal { return newPrincipal(Principal{Name: name}) }

func TestLimitsCheckRefusesOverRPMWith429AndRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ls := NewLimits(NewLocalLimiter(nil), Options{KeyRPM: 100, KeyBurst: 100})
		p := principal("alpha")
		var denied int
		for range 150 {
			_, _, err := ls.Check(t.Context(), p, 0)
			if err == nil {
				continue
			}
			denied++
			wantAPIError(t, err, http.StatusTooManyRequests, "rate_limit_exceeded")
			e := api.FromError(err)
			if e.RetryAfter <= 0 || e.Type != api.TypeRateLimit || !strings.Contains(e.Message, `"alpha"`) {
				t.Fatalf("429 = %+v", e)
			}
		}
		if denied != 50 {
			t.Fatalf("denied %d of 150, want 50", denied)
		}
		if _, _, err := ls.Check(t.Context(), principal("bravo"), 0); err != nil {
			t.Fatalf("another key is limited by alpha's traffic: %v", err)
		}
	})
}

func TestLimitsPerKeyValuesOverrideDefaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ls := NewLimits(NewLocalLimiter(nil), Options{KeyRPM: 5})
		count := func(p *Principal) (allowed int) {
			for range 30 {
				if _, _, err := ls.Check(t.Context(), p, 0); err == nil {
					allowed++
				}
			}
			return allowed
		}
		if n := count(principal("default")); n != 5 {
			t.Errorf("default key allowed %d, want 5", n)
		}
		if n := count(newPrincipal(Principal{Name: "own", RPM: 10, Burst: 2})); n != 2 {
			t.Errorf("key with RPM 10 burst 2 allowed %d, want 2", n)
		}
		if n := count(newPrincipal(Principal{Name: "free", RPM: -1})); n != 30 {
			t.Errorf("key with RPM -1 (unlimited) allowed %d, want 30", n)
		}
	})
}

func TestLimitsGlobalLimitSpansKeysAndRefundsOnRefusal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lim := NewLocalLimiter(nil)
		ls := NewLimits(lim, Options{KeyTPM: 1000, GlobalRPM: 3})
		a, b := principal("a"), principal("b")
		for _, p := range []*Principal{a, b, a} {
			if _, _, err := ls.Check(t.Context(), p, 100); err != nil {
				t.Fatalf("Check: %v", err)
			}
		}
		req, tok, err := ls.Check(t.Context(), b, 100)
		wantAPIError(t, err, http.StatusTooManyRequests, "rate_limit_exceeded")
		if !strings.Contains(err.Error(), "all keys") || req.Allowed || req.Limit != 3 {
			t.Fatalf("refusal = %v, req %+v", err, req)
		}
		if tok.Remaining != 900 {
			t.Fatalf("tokens reported remaining %d, want 900", tok.Remaining)
		}
		// The refused request's 100 tokens were given back to b.
		d, _ := lim.Allow(t.Context(), "k:b:t", Limit{Rate: 1000}, 0)
		if d.Remaining != 900 {
			t.Fatalf("b has %d tokens left after a refused request, want 900", d.Remaining)
		}
	})
}

func TestLimitsTokensAreEstimatedThenCorrected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ls := NewLimits(NewLocalLimiter(nil), Options{KeyTPM: 1000, GlobalTPM: 5000})
		p := principal("a")
		ctx := t.Context()
		_, tok, err := ls.Check(ctx, p, 500)
		if err != nil || tok.Remaining != 500 || tok.Limit != 1000 {
			t.Fatalf("Check = %+v, %v; want 500 of 1000 tokens left", tok, err)
		}
		ls.Correct(ctx, p, 500, 900) // the answer was longer than estimated
		if _, tok, _ = ls.Check(ctx, p, 0); tok.Remaining != 100 {
			t.Fatalf("after charging 400 more: %d left, want 100", tok.Remaining)
		}
		if _, _, err := ls.Check(ctx, p, 200); err == nil {
			t.Fatal("200 tokens with 100 left must be refused")
		}
		ls.Correct(ctx, p, 900, 300) // refund 600
		if _, tok, _ = ls.Check(ctx, p, 0); tok.Remaining != 700 {
			t.Fatalf("after a refund of 600: %d left, want 700", tok.Remaining)
		}
	})
}

func TestSetHeadersWritesOpenAIRateLimitHeaders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ls := NewLimits(NewLocalLimiter(nil), Options{KeyRPM: 60, KeyTPM: 6000})
		p := principal("a")
		req, tok, err := ls.Check(t.Context(), p, 1000)
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		SetHeaders(rec.Header(), req, tok)
		want := map[string]string{
			"x-ratelimit-limit-requests":     "60",
			"x-ratelimit-remaining-requests": "59",
			"x-ratelimit-reset-requests":     "1s",
			"x-ratelimit-limit-tokens":       "6000",
			"x-ratelimit-remaining-tokens":   "5000",
			"x-ratelimit-reset-tokens":       "10s",
			"Retry-After":                    "",
		}
		for k, v := range want {
			if got := rec.Header().Get(k); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}

		for range 60 {
			req, tok, err = ls.Check(t.Context(), p, 0)
		}
		if err == nil {
			t.Fatal("61st request in the same instant was allowed")
		}
		rec = httptest.NewRecorder()
		SetHeaders(rec.Header(), req, tok)
		if got := rec.Header().Get("x-ratelimit-remaining-requests"); got != "0" {
			t.Errorf("remaining on refusal = %q, want 0", got)
		}
		if got := rec.Header().Get("Retry-After"); got != "1" {
			t.Errorf("Retry-After = %q, want 1", got)
		}
		if got := rec.Header().Get("x-ratelimit-reset-requests"); got != "1m0s" {
			t.Errorf("reset on refusal = %q, want 1m0s", got)
		}
		// api.WriteError agrees on Retry-After.
		api.WriteError(rec, err)
		if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "1" {
			t.Errorf("WriteError: %d Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
		}
	})
}

func TestSetHeadersOmitsUnlimitedDimensions(t *testing.T) {
	h := http.Header{}
	SetHeaders(h, unlimited(), unlimited())
	if len(h) != 0 {
		t.Fatalf("headers for unlimited decisions: %v", h)
	}
	_ = time.Second
}

func TestLimitsCountsTokens(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		tpm  int
		want bool
	}{
		{"no token limit", Options{KeyRPM: 60}, 0, false},
		{"default key TPM", Options{KeyTPM: 1000}, 0, true},
		{"key's own TPM", Options{}, 500, true},
		{"key unlimited despite a default", Options{KeyTPM: 1000}, -1, false},
		{"global TPM", Options{GlobalTPM: 10000}, -1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ls := NewLimits(NewLocalLimiter(nil), tc.o)
			if got := ls.CountsTokens(newPrincipal(Principal{Name: "k", TPM: tc.tpm})); got != tc.want {
				t.Fatalf("CountsTokens = %v, want %v", got, tc.want)
			}
		})
	}
}
