package app_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/internal/config"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
)

// TestEveryAnswerOfEveryRouteCarriesTheRequestID walks every route, the
// catch-all 404, the 405s and the authentication failures in front of
// them: each answer echoes the client's X-Request-Id, and makes one up when
// the client sent none or one that is not printable ASCII.
func TestEveryAnswerOfEveryRouteCarriesTheRequestID(t *testing.T) {
	s := startSim(t, simulated.Options{})
	const clientKey = "sk-request-id-123456"
	g := startGateway(t, accessConfig(s, config.APIKey{Name: "team", Key: clientKey}))
	client, admin := "Authorization: Bearer "+clientKey, "Authorization: Bearer "+accessAdminKey
	body := chat("gpt-4o-mini", "request id check")
	routes := []struct {
		name, method, path, body, auth string
		status                         int
	}{
		{"chat", "POST", "/v1/chat/completions", body, client, 200},
		{"chat without /v1", "POST", "/chat/completions", body, client, 200},
		{"chat bad JSON", "POST", "/v1/chat/completions", `{"model":`, client, 400},
		{"chat without a key", "POST", "/v1/chat/completions", body, "", 401},
		{"chat without /v1 without a key", "POST", "/chat/completions", body, "", 401},
		{"chat wrong method", "GET", "/v1/chat/completions", "", client, 405},
		{"chat without /v1 wrong method", "PUT", "/chat/completions", "", client, 405},
		{"models", "GET", "/v1/models", "", client, 200},
		{"models without a key", "GET", "/v1/models", "", "", 401},
		{"models wrong method", "POST", "/v1/models", "{}", client, 405},
		{"health", "GET", "/health", "", "", 200},
		{"health head", "HEAD", "/health", "", "", 200},
		{"health wrong method", "DELETE", "/health", "", "", 405},
		{"live", "GET", "/health/live", "", "", 200},
		{"ready", "GET", "/health/ready", "", "", 200},
		{"metrics", "GET", "/metrics", "", admin, 200},
		{"metrics with a client key", "GET", "/metrics", "", client, 403},
		{"stats", "GET", "/admin/stats", "", admin, 200},
		{"stats wrong method", "POST", "/admin/stats", "", admin, 405},
		{"clear cache", "DELETE", "/admin/cache", "", admin, 200},
		{"delete a malformed cache key", "DELETE", "/admin/cache/nope", "", admin, 400},
		{"budget", "GET", "/admin/budgets/team", "", admin, 200},
		{"budget without the admin key", "GET", "/admin/budgets/team", "", "", 401},
		{"unknown route", "GET", "/v2/nowhere", "", "", 404},
		{"unknown route with a body", "POST", "/v1/audio/speech", "{}", client, 404},
	}
	for _, rt := range routes {
		for _, id := range []struct{ name, sent, want string }{
			{"echoed", "client-id-42", "client-id-42"},
			{"made up", "", ""},
			{"invalid replaced", "has space", ""},
		} {
			t.Run(rt.name+"/"+id.name, func(t *testing.T) {
				req, err := http.NewRequest(rt.method, g.URL+rt.path, strings.NewReader(rt.body))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/json")
				if rt.auth != "" {
					k, v, _ := strings.Cut(rt.auth, ":")
					req.Header.Set(k, strings.TrimSpace(v))
				}
				if id.sent != "" {
					req.Header.Set("X-Request-Id", id.sent)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != rt.status {
					t.Fatalf("status %d, want %d", resp.StatusCode, rt.status)
				}
				got := resp.Header.Values("X-Request-Id")
				if len(got) != 1 {
					t.Fatalf("X-Request-Id %q, want exactly one", got)
				}
				switch {
				case id.want != "" && got[0] != id.want:
					t.Fatalf("X-Request-Id %q, want the client's %q", got[0], id.want)
				case id.want == "" && !strings.HasPrefix(got[0], "req_"):
					t.Fatalf("X-Request-Id %q, want a generated req_ id", got[0])
				}
			})
		}
	}
}
