package azure

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/provider"
)

// tokenSource puts a Microsoft Entra ID bearer token on requests. The token
// is fetched once and reused until it is due for refresh; one request at a
// time refreshes it while the others go on with the current token as long
// as it has not expired, so the chat path never waits on Entra ID but for
// the first token and for an expired one.
type tokenSource struct {
	name    string
	cred    azcore.TokenCredential
	credErr error // DefaultAzureCredential could not be built
	opts    policy.TokenRequestOptions
	cur     atomic.Pointer[token]
	sem     chan struct{} // held by the request refreshing the token
	now     func() time.Time
}

type token struct {
	header             []string // {"Bearer ..."}, shared by every request
	expires, refreshAt time.Time
}

// newTokenSource reads tokens from cred (nil: DefaultAzureCredential).
func newTokenSource(name string, cred azcore.TokenCredential) *tokenSource {
	t := &tokenSource{name: name, cred: cred, opts: policy.TokenRequestOptions{Scopes: []string{Scope}},
		sem: make(chan struct{}, 1), now: time.Now}
	if t.cred == nil {
		t.cred, t.credErr = defaultCredential(name)
	}
	return t
}

func (t *tokenSource) authorize(ctx context.Context, h http.Header) error {
	tok := t.cur.Load()
	if tok == nil || !t.now().Before(tok.refreshAt) {
		var err error
		if tok, err = t.refresh(ctx, tok); err != nil {
			return err
		}
	}
	h["Authorization"] = tok.header
	return nil
}

// refresh returns a fresh token, or old while another request refreshes
// it or Entra ID fails, as long as old has not expired.
func (t *tokenSource) refresh(ctx context.Context, old *token) (*token, error) {
	usable := old != nil && t.now().Before(old.expires)
	select {
	case t.sem <- struct{}{}:
	default:
		if usable {
			return old, nil
		}
		select {
		case t.sem <- struct{}{}:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
	defer func() { <-t.sem }()
	if cur := t.cur.Load(); cur != nil && cur != old && t.now().Before(cur.refreshAt) {
		return cur, nil // refreshed while this request waited
	}
	if t.credErr != nil {
		return nil, t.failed(t.credErr)
	}
	at, err := t.cred.GetToken(ctx, t.opts)
	if err != nil {
		if usable {
			return old, nil
		}
		return nil, t.failed(err)
	}
	tok := &token{header: []string{"Bearer " + at.Token}, expires: at.ExpiresOn, refreshAt: at.RefreshOn}
	if tok.refreshAt.IsZero() || !tok.refreshAt.Before(tok.expires) {
		// Five minutes before expiry, or halfway for a short-lived token.
		tok.refreshAt = tok.expires.Add(-min(5*time.Minute, tok.expires.Sub(t.now())/2))
	}
	t.cur.Store(tok)
	return tok, nil
}

// failed is the error of a request that got no token: the gateway's
// credential for the provider, not the client's request, is at fault.
func (t *tokenSource) failed(err error) *api.Error {
	msg := err.Error()
	if len(msg) > 1024 {
		msg = msg[:1024] + "..."
	}
	return provider.ScrubSecret(&api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: provider.CodeAuthFailed,
		Message: fmt.Sprintf("the gateway could not get a Microsoft Entra ID token for provider %s: %s", t.name, msg), Err: err}, "")
}
