package app_test

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/rueidis"
	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/app"
	"github.com/edge-agent/edge-agent/internal/config"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
	"github.com/edge-agent/edge-agent/internal/telemetry"
	"github.com/edge-agent/edge-agent/internal/testutil/redistest"
)

// The bypass: the redactor read the first content, the provider the
// last one.
const duplicateContentBody = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"harmless","content":"alice@example.com 123-45-6789"}]}`

func TestDuplicateKeysAreRefusedBeforeRedactionAndNeverReachTheProvider(t *testing.T) {
	s := startSim(t, simulated.Options{})
	cfg := simConfig(s)
	cfg.Redact.Enabled = true
	g := startGateway(t, cfg)
	for _, tt := range []struct{ name, body, param string }{
		{"repeated content", duplicateContentBody, "messages[0].content"},
		{"repeated model, one escaped", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"\u006dodel":"gpt-4o"}`, "model"},
		{"repeated key deep in a tool schema", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","type":"string"}}}]}`, "tools[0].function.parameters.type"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, out := post(t, g.URL, tt.body, "Cache-Control: no-store")
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("%d, want 400: %s", resp.StatusCode, out)
			}
			envelope(t, resp.StatusCode, out)
			if p := gjson.GetBytes(out, "error.param").Str; p != tt.param {
				t.Fatalf("param %q, want %q: %s", p, tt.param, out)
			}
			if !strings.Contains(gjson.GetBytes(out, "error.message").Str, tt.param) {
				t.Fatalf("message does not name %s: %s", tt.param, out)
			}
		})
	}
	if n := s.Calls(); n != 0 {
		t.Fatalf("bodies with repeated keys reached the provider %d times", n)
	}
}

func TestToolCallArgumentsAndToolResultsAreRedactedBeforeTheProvider(t *testing.T) {
	s := startSim(t, simulated.Options{})
	cfg := simConfig(s)
	cfg.Redact.Enabled = true
	g := startGateway(t, cfg)
	const user = `{"role":"user","content":"look them up"}`
	for _, tt := range []struct{ name, messages string }{
		{"tool call arguments", user + `,{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"lookup","arguments":"{\"email\":\"alice@example.com\",\"ssn\":\"123-45-6789\"}"}}]},{"role":"tool","tool_call_id":"c1","content":"found"}`},
		{"tool result string", user + `,{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"lookup","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","content":"{\"email\":\"alice@example.com\",\"ssn\":\"123-45-6789\"}"}`},
		{"tool result parts", user + `,{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"lookup","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","content":[{"type":"text","text":"alice@example.com 123-45-6789"}]}`},
		{"legacy function_call", user + `,{"role":"assistant","content":null,"function_call":{"name":"lookup","arguments":"{\"who\":\"alice@example.com 123-45-6789\"}"}},{"role":"function","name":"lookup","content":"ok"}`},
		{"legacy function result", user + `,{"role":"assistant","content":null,"function_call":{"name":"lookup","arguments":"{}"}},{"role":"function","name":"lookup","content":"alice@example.com 123-45-6789"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, out := post(t, g.URL, `{"model":"gpt-4o-mini","messages":[`+tt.messages+`]}`, "Cache-Control: no-store")
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, out)
			}
			_, _, sent := s.LastRequest()
			if !gjson.ValidBytes(sent) {
				t.Fatalf("the provider got invalid JSON: %s", sent)
			}
			for _, pii := range []string{"alice@example.com", "123-45-6789"} {
				if strings.Contains(string(sent), pii) {
					t.Fatalf("%s reached the provider: %s", pii, sent)
				}
			}
			if !strings.Contains(string(sent), "[EMAIL]") || !strings.Contains(string(sent), "[SSN]") {
				t.Fatalf("placeholders missing from what the provider got: %s", sent)
			}
		})
	}
}

func TestModelNamesWithControlCharactersAreRefused(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, simConfig(s))
	for _, tt := range []struct{ name, body, header, param string }{
		{"NUL after a routable prefix", `{"model":"gpt-4o\u0000x","messages":[{"role":"user","content":"x"}]}`, "", "model"},
		{"escape sequence", `{"model":"gpt-4o\u001b[2J","messages":[{"role":"user","content":"x"}]}`, "", "model"},
		{"zero-width space", `{"model":"gpt-4o\u200b","messages":[{"role":"user","content":"x"}]}`, "", "model"},
		{"whitespace only", `{"model":"   ","messages":[{"role":"user","content":"x"}]}`, "", "model"},
		{"overlong", `{"model":"gpt-4o` + strings.Repeat("x", 300) + `","messages":[{"role":"user","content":"x"}]}`, "", "model"},
		{"fallback in the body", `{"model":"gpt-4o","fallbacks":["gpt-4o-mini\u0000"],"messages":[{"role":"user","content":"x"}]}`, "", "fallbacks[0]"},
		{"fallback in the header", `{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}`, "X-Fallback-Models: gpt-4o-mini, gpt\t4o", "X-Fallback-Models"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var h []string
			if tt.header != "" {
				h = append(h, tt.header)
			}
			resp, out := post(t, g.URL, tt.body, h...)
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("%d, want 400: %s", resp.StatusCode, out)
			}
			envelope(t, resp.StatusCode, out)
			if p := gjson.GetBytes(out, "error.param").Str; p != tt.param {
				t.Fatalf("param %q, want %q: %s", p, tt.param, out)
			}
		})
	}
	if n := s.Calls(); n != 0 {
		t.Fatalf("refused model names reached the provider %d times", n)
	}
}

func TestMetricsListenerBindsLoopbackAndAsksForTheAdminKey(t *testing.T) {
	if h := config.Default().MetricsHost; h != "127.0.0.1" {
		t.Fatalf("default metrics_host %q, want 127.0.0.1", h)
	}
	s := startSim(t, simulated.Options{})
	cfg := accessConfig(s, config.APIKey{Name: "team-a", Key: "sk-team-a-123456"})
	cfg.MetricsPort = redistest.FreePort(t)
	logs := &syncBuffer{}
	logger, err := telemetry.NewLogger(logs, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	addr := "127.0.0.1:" + strconv.Itoa(cfg.MetricsPort)
	waitFor(t, "the listening log line", func() bool { return strings.Contains(logs.String(), `"edge-agent listening"`) })
	if want := `"metrics_addr":"` + addr + `"`; !strings.Contains(logs.String(), want) {
		t.Fatalf("metrics listener not bound to loopback by default: want %s in %s", want, logs.String())
	}
	for _, tt := range []struct {
		name, header string
		status       int
	}{
		{"no key", "", 401},
		{"client key", "Authorization: Bearer sk-team-a-123456", 403},
		{"admin key", "Authorization: Bearer " + accessAdminKey, 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var h []string
			if tt.header != "" {
				h = append(h, tt.header)
			}
			code, hdr, out := call(t, http.MethodGet, "http://"+addr+"/metrics", h...)
			if code != tt.status {
				t.Fatalf("%d, want %d: %.200s", code, tt.status, out)
			}
			if code != 200 {
				envelope(t, code, out)
				if strings.Contains(string(out), "llm_edge_") {
					t.Fatalf("metrics served without the admin key: %.200s", out)
				}
			} else if !strings.Contains(string(out), "llm_edge_") {
				t.Fatalf("no metrics with the admin key: %.200s", out)
			}
			if hdr.Get("X-Content-Type-Options") != "nosniff" {
				t.Fatal("security headers missing on the metrics listener")
			}
		})
	}
}

func TestWrongTypeRateLimitKeyInRedisIsRepairedAndCounted(t *testing.T) {
	s := startSim(t, simulated.Options{})
	r := redistest.Start(t)
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{r.Addr}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Another tool wrote a list where key a's request bucket lives.
	if err := c.Do(t.Context(), c.B().Lpush().Key("llm-edge:rl:k:a:r").Element("junk").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	cfg := accessConfig(s, config.APIKey{Name: "a", Key: "key-a", RPM: 100, Burst: 100})
	cfg.Cache.RedisURL = r.URL()
	one, two := startGateway(t, cfg), startGateway(t, cfg)
	if limited, _ := burst(t, []string{one.URL, two.URL}, "key-a", 150, 100); limited < 47 || limited > 50 {
		t.Fatalf("%d of 150 limited across two instances, want about 50 (one shared limit, not two local ones)", limited)
	}
	var repairs float64
	for _, g := range []*gw{one, two} {
		f := scrapeFamilies(t, g.URL, "Authorization: Bearer "+accessAdminKey)
		repairs += f.value("llm_edge_limit_repairs_total", "store=rate_limit")
	}
	if repairs != 1 {
		t.Fatalf(`llm_edge_limit_repairs_total{store="rate_limit"} = %v across instances, want 1`, repairs)
	}
	if strings.Contains(one.Logs.String()+two.Logs.String(), "using local limits") {
		t.Fatal("an instance fell back to local limits over the wrong-type key")
	}
}
