package azure

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/provider"
)

const testTenant = "00000000-0000-0000-0000-0000000000aa"

// fakeEntra is a Microsoft Entra ID authority over TLS: the tenant's
// OpenID configuration and a token endpoint for the client credentials
// grant, issuing token for the scope it was asked.
type fakeEntra struct {
	*httptest.Server
	token    string
	requests atomic.Int32
	mu       sync.Mutex
	scope    string
}

func newFakeEntra(t *testing.T, token string) *fakeEntra {
	t.Helper()
	f := &fakeEntra{token: token}
	f.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		base := "https://" + r.Host + "/" + testTenant
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/" + testTenant + "/v2.0/.well-known/openid-configuration":
			fmt.Fprintf(w, `{"token_endpoint":"%[1]s/oauth2/v2.0/token","issuer":"%[1]s/v2.0","authorization_endpoint":"%[1]s/oauth2/v2.0/authorize"}`, base)
		case "/" + testTenant + "/oauth2/v2.0/token":
			_ = r.ParseForm()
			f.requests.Add(1)
			f.mu.Lock()
			f.scope = r.PostForm.Get("scope")
			f.mu.Unlock()
			if r.PostForm.Get("client_secret") != "client-secret" || r.PostForm.Get("grant_type") != "client_credentials" {
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprint(w, `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}`)
				return
			}
			fmt.Fprintf(w, `{"token_type":"Bearer","expires_in":3600,"ext_expires_in":3600,"access_token":%q}`, f.token)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.Close)
	t.Cleanup(f.Client().CloseIdleConnections)
	return f
}

func (f *fakeEntra) lastScope() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.scope
}

// The DefaultAzureCredential chain as the gateway builds it, configured by
// the environment (a service principal), against the fake authority.
func TestEntraTokenFromTheDefaultAzureCredentialIsSentAsBearer(t *testing.T) {
	const token = "entra-access-token-for-cognitive-services"
	entra := newFakeEntra(t, token)
	t.Setenv("AZURE_TOKEN_CREDENTIALS", "EnvironmentCredential")
	t.Setenv("AZURE_TENANT_ID", testTenant)
	t.Setenv("AZURE_CLIENT_ID", "11111111-1111-1111-1111-111111111111")
	t.Setenv("AZURE_CLIENT_SECRET", "client-secret")
	t.Setenv("AZURE_AUTHORITY_HOST", entra.URL)
	cred, err := azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{
		ClientOptions: azcore.ClientOptions{Transport: entra.Client()}, DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}

	r := newResource(t, token) // the resource accepts this token only
	p := newTestProvider(t, r, Config{Credential: cred})
	for range 3 {
		if _, err := p.ChatCompletion(context.Background(), &provider.Request{Body: chatBody("my-gpt4o", "hi", false), Model: "my-gpt4o"}); err != nil {
			t.Fatal(err)
		}
	}
	_, h, _ := r.LastRequest()
	if h.Get("Authorization") != "Bearer "+token || h.Get("Api-Key") != "" {
		t.Fatalf("Authorization %q, api-key %q", h.Get("Authorization"), h.Get("Api-Key"))
	}
	if n := entra.requests.Load(); n != 1 {
		t.Fatalf("%d token requests for 3 calls, want 1 (the token is reused)", n)
	}
	if got := entra.lastScope(); !strings.Contains(got, Scope) {
		t.Fatalf("token requested for scope %q, want %s", got, Scope)
	}
}

func TestEntraFailureIsTheGatewaysAuthFailure(t *testing.T) {
	entra := newFakeEntra(t, "unused")
	cred, err := azidentity.NewClientSecretCredential(testTenant, "client", "wrong-secret", &azidentity.ClientSecretCredentialOptions{
		ClientOptions:            azcore.ClientOptions{Transport: entra.Client(), Cloud: cloudAt(entra.URL)},
		DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	r := newResource(t, "some-token")
	p := newTestProvider(t, r, Config{Credential: cred})
	_, err = p.ChatCompletion(context.Background(), &provider.Request{Body: chatBody("my-gpt4o", "hi", false), Model: "my-gpt4o"})
	e := api.FromError(err)
	if e.Status != http.StatusBadGateway || e.Code != provider.CodeAuthFailed || !strings.Contains(e.Message, "Entra ID") {
		t.Fatalf("error %+v", e)
	}
	if strings.Contains(e.Message, "wrong-secret") {
		t.Fatalf("message %q carries the secret", e.Message)
	}
	if r.Calls() != 0 {
		t.Fatal("the request went upstream without a token")
	}
}

// fakeCredential hands out numbered tokens valid for ttl, or fails.
type fakeCredential struct {
	mu    sync.Mutex
	calls int
	fail  error
	now   func() time.Time
	ttl   time.Duration
	gate  chan struct{} // when set, GetToken waits for it
}

func (c *fakeCredential) GetToken(ctx context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if c.gate != nil {
		select {
		case <-c.gate:
		case <-ctx.Done():
			return azcore.AccessToken{}, ctx.Err()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if c.fail != nil {
		return azcore.AccessToken{}, c.fail
	}
	return azcore.AccessToken{Token: fmt.Sprintf("token-%d", c.calls), ExpiresOn: c.now().Add(c.ttl)}, nil
}

func (c *fakeCredential) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

// clock is a settable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func bearer(t *testing.T, ts *tokenSource) string {
	t.Helper()
	h := http.Header{}
	if err := ts.authorize(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	return h.Get("Authorization")
}

func TestEntraTokenIsRefreshedFiveMinutesBeforeItExpires(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	cred := &fakeCredential{now: clk.now, ttl: time.Hour}
	ts := newTokenSource("azure", cred)
	ts.now = clk.now
	if got := bearer(t, ts); got != "Bearer token-1" {
		t.Fatalf("first %q", got)
	}
	clk.advance(54 * time.Minute)
	if got := bearer(t, ts); got != "Bearer token-1" {
		t.Fatalf("at 54 minutes %q, want the cached token", got)
	}
	clk.advance(2 * time.Minute)
	if got := bearer(t, ts); got != "Bearer token-2" {
		t.Fatalf("at 56 minutes %q, want a fresh token", got)
	}
}

func TestEntraOutageKeepsTheTokenUntilItExpires(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	cred := &fakeCredential{now: clk.now, ttl: time.Hour}
	ts := newTokenSource("azure", cred)
	ts.now = clk.now
	bearer(t, ts)
	cred.mu.Lock()
	cred.fail = errors.New("AADSTS90002: tenant unavailable")
	cred.mu.Unlock()
	clk.advance(58 * time.Minute)
	if got := bearer(t, ts); got != "Bearer token-1" {
		t.Fatalf("during the outage %q, want the still valid token", got)
	}
	clk.advance(3 * time.Minute)
	err := ts.authorize(context.Background(), http.Header{})
	if e := api.FromError(err); e.Code != provider.CodeAuthFailed || !strings.Contains(e.Message, "AADSTS90002") {
		t.Fatalf("after expiry: %v", err)
	}
}

func TestConcurrentFirstRequestsShareOneTokenRequest(t *testing.T) {
	cred := &fakeCredential{now: time.Now, ttl: time.Hour, gate: make(chan struct{})}
	ts := newTokenSource("azure", cred)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			h := http.Header{}
			if err := ts.authorize(context.Background(), h); err != nil {
				errs <- err
				return
			}
			if h.Get("Authorization") != "Bearer token-1" {
				errs <- fmt.Errorf("got %q", h.Get("Authorization"))
			}
		})
	}
	time.Sleep(20 * time.Millisecond) // let them all queue behind the first
	close(cred.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := cred.count(); n != 1 {
		t.Fatalf("%d token requests, want 1", n)
	}
}

func TestWaitingForATokenEndsWithTheRequest(t *testing.T) {
	cred := &fakeCredential{now: time.Now, ttl: time.Hour, gate: make(chan struct{})}
	defer close(cred.gate)
	ts := newTokenSource("azure", cred)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	done := make(chan error, 2)
	for range 2 { // one waits on Entra ID, the other on the first
		go func() { done <- ts.authorize(ctx, http.Header{}) }()
	}
	for range 2 {
		select {
		case err := <-done:
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err %v, want the deadline", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("authorize did not return when its context ended")
		}
	}
}

// cloudAt is a cloud whose Entra ID authority is host.
func cloudAt(host string) cloud.Configuration {
	return cloud.Configuration{ActiveDirectoryAuthorityHost: host}
}
