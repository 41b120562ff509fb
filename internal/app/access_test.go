package app_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/config"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
	"github.com/edge-agent/edge-agent/internal/testutil/redistest"
)

const accessAdminKey = "admin-key-0123456789"

// accessConfig is simConfig with client keys and the admin key.
func accessConfig(s *sim, keys ...config.APIKey) config.Config {
	cfg := simConfig(s)
	cfg.Auth.AdminKey = accessAdminKey
	cfg.Auth.Keys = keys
	return cfg
}

// call sends method url with headers ("Name: value") and returns the
// status, headers and body.
func call(t *testing.T, method, url string, headers ...string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// envelope checks an OpenAI error envelope and returns its code.
func envelope(t *testing.T, status int, body []byte) string {
	t.Helper()
	if !gjson.ValidBytes(body) || gjson.GetBytes(body, "error.message").Str == "" || gjson.GetBytes(body, "error.type").Str == "" {
		t.Fatalf("%d without an error envelope: %s", status, body)
	}
	return gjson.GetBytes(body, "error.code").Str
}

func TestKeysAdmitClientsAndTheAdminKeyGuardsMetricsAndAdmin(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, accessConfig(s, config.APIKey{Name: "team-a", Key: "sk-team-a-123456"}))
	body := chat("gpt-4o-mini", "who may ask")
	for _, tt := range []struct {
		name    string
		headers []string
		status  int
		code    string
	}{
		{"no key", nil, 401, ""},
		{"wrong bearer", []string{"Authorization: Bearer sk-team-a-654321"}, 401, "invalid_api_key"},
		{"wrong x-api-key", []string{"x-api-key: nope"}, 401, "invalid_api_key"},
		{"empty bearer", []string{"Authorization: Bearer "}, 401, ""},
		{"basic scheme", []string{"Authorization: Basic c2stdGVhbS1hLTEyMzQ1Ng=="}, 401, ""},
		{"good bearer", []string{"Authorization: Bearer sk-team-a-123456"}, 200, ""},
		{"good bearer lower-case scheme", []string{"Authorization: bearer sk-team-a-123456"}, 200, ""},
		{"good x-api-key", []string{"x-api-key: sk-team-a-123456"}, 200, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, out := post(t, g.URL, body, tt.headers...)
			if resp.StatusCode != tt.status {
				t.Fatalf("%d, want %d: %s", resp.StatusCode, tt.status, out)
			}
			if tt.status == 200 {
				return
			}
			if code := envelope(t, resp.StatusCode, out); code != tt.code {
				t.Fatalf("code %q, want %q", code, tt.code)
			}
			if bytes.Contains(out, []byte("654321")) || bytes.Contains(out, []byte("nope")) {
				t.Fatalf("the presented key was echoed: %s", out)
			}
		})
	}
	for _, path := range []string{"/metrics", "/admin/stats", "/admin/budgets/team-a"} {
		for _, tt := range []struct {
			name   string
			header string
			status int
		}{
			{"no key", "", 401},
			{"wrong key", "Authorization: Bearer wrong", 401},
			{"client key", "Authorization: Bearer sk-team-a-123456", 403},
			{"admin key", "Authorization: Bearer " + accessAdminKey, 200},
			{"admin x-api-key", "x-api-key: " + accessAdminKey, 200},
		} {
			t.Run(path+" "+tt.name, func(t *testing.T) {
				var h []string
				if tt.header != "" {
					h = append(h, tt.header)
				}
				if code, _, out := call(t, http.MethodGet, g.URL+path, h...); code != tt.status {
					t.Fatalf("%d, want %d: %s", code, tt.status, out)
				}
			})
		}
	}
	if code, _, out := call(t, http.MethodGet, g.URL+"/health"); code != 200 {
		t.Fatalf("/health must stay open: %d %s", code, out)
	}
}

// burst sends n requests for key through urls (round robin) with a few
// workers, and returns how many were limited. Every answer must carry the
// rate-limit headers; every 429 a Retry-After.
func burst(t *testing.T, urls []string, key string, n, wantLimit int) (limited, failed int) {
	t.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan int)
	for range 6 {
		wg.Go(func() {
			for i := range next {
				resp, out := post(t, urls[i%len(urls)], chat("gpt-4o-mini", "burst"), "Authorization: Bearer "+key)
				h := resp.Header
				if h.Get("x-ratelimit-limit-requests") != strconv.Itoa(wantLimit) || h.Get("x-ratelimit-remaining-requests") == "" ||
					h.Get("x-ratelimit-reset-requests") == "" {
					t.Errorf("%d answer without rate-limit headers: %v", resp.StatusCode, h)
				}
				mu.Lock()
				switch resp.StatusCode {
				case 200:
				case 429:
					limited++
					if ra, err := strconv.Atoi(h.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
						t.Errorf("429 with Retry-After %q", h.Get("Retry-After"))
					}
					if code := gjson.GetBytes(out, "error.code").Str; code != "rate_limit_exceeded" {
						t.Errorf("429 code %q: %s", code, out)
					}
				default:
					failed++
					t.Errorf("unexpected %d: %s", resp.StatusCode, out)
				}
				mu.Unlock()
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return limited, failed
}

func TestRequestsPerMinuteLimitEachKeyOnItsOwn(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, accessConfig(s,
		config.APIKey{Name: "a", Key: "key-a", RPM: 100, Burst: 100},
		config.APIKey{Name: "b", Key: "key-b", RPM: 100, Burst: 100}))
	// 150 requests in well under a second: the burst of 100 passes, and
	// at 100/min barely one more token refills.
	if limited, _ := burst(t, []string{g.URL}, "key-a", 150, 100); limited < 47 || limited > 50 {
		t.Fatalf("%d of 150 limited, want about 50", limited)
	}
	if limited, _ := burst(t, []string{g.URL}, "key-b", 100, 100); limited != 0 {
		t.Fatalf("key b limited %d times by key a's traffic", limited)
	}
}

func TestInstancesOnOneRedisShareOneLimitAndFallBackToLocalLimits(t *testing.T) {
	s := startSim(t, simulated.Options{})
	r := redistest.Start(t)
	cfg := accessConfig(s,
		config.APIKey{Name: "a", Key: "key-a", RPM: 100, Burst: 100},
		config.APIKey{Name: "b", Key: "key-b", RPM: 100, Burst: 100})
	cfg.Cache.RedisURL = r.URL()
	one, two := startGateway(t, cfg), startGateway(t, cfg)
	if limited, _ := burst(t, []string{one.URL, two.URL}, "key-a", 150, 100); limited < 47 || limited > 50 {
		t.Fatalf("%d of 150 limited across two instances, want about 50 (one combined limit)", limited)
	}
	r.Stop()
	// Redis down: each instance limits on its own, and still limits.
	limited, failed := burst(t, []string{one.URL}, "key-b", 150, 100)
	if failed != 0 || limited < 47 || limited > 50 {
		t.Fatalf("Redis down: %d of 150 limited (%d failed), want about 50 from local limits", limited, failed)
	}
}

func TestBudgetStopsSpendingAndAdminResetsIt(t *testing.T) {
	s := startSim(t, simulated.Options{Words: 200})
	g := startGateway(t, accessConfig(s,
		config.APIKey{Name: "spender", Key: "key-s", BudgetDailyUSD: 0.002},
		config.APIKey{Name: "other", Key: "key-o", BudgetDailyUSD: 0.002}))
	admin := "Authorization: Bearer " + accessAdminKey
	spend := func(name string) float64 {
		t.Helper()
		code, _, out := call(t, http.MethodGet, g.URL+"/admin/budgets/"+name, admin)
		if code != 200 {
			t.Fatalf("GET budget %s: %d %s", name, code, out)
		}
		return gjson.GetBytes(out, "daily_usd").Float()
	}
	// Each answer may cost about $0.0005 (50 tokens at $10/M): four fit,
	// then the budget cannot cover the next one.
	var costs float64
	ok := 0
	for i := range 10 {
		resp, out := post(t, g.URL, chat("gpt-4o", "spend "+strconv.Itoa(i), `"max_tokens":50`), "Authorization: Bearer key-s")
		if resp.StatusCode == 429 {
			if envelope(t, resp.StatusCode, out) != "budget_exceeded" {
				t.Fatalf("refusal: %s", out)
			}
			break
		}
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, out)
		}
		costs += gjson.GetBytes(out, "metadata.cost_usd").Float()
		ok++
	}
	if ok < 3 || ok > 4 {
		t.Fatalf("%d requests ran against a budget that fits 3 to 4", ok)
	}
	// Spend is booked as the request finishes, just after the answer.
	deadline := time.Now().Add(5 * time.Second)
	for spend("spender") < costs-1e-12 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := spend("spender"); got < costs-1e-12 || got > costs+1e-12 || got > 0.002 {
		t.Fatalf("booked %v, want the answers' cost %v, within the budget", got, costs)
	}
	// A hit of an earlier answer is refused too: its hold does not fit.
	if resp, out := post(t, g.URL, chat("gpt-4o", "spend 0", `"max_tokens":50`), "Authorization: Bearer key-s"); resp.StatusCode != 429 {
		t.Fatalf("over budget, a hit: %d %s", resp.StatusCode, out)
	}
	if resp, out := post(t, g.URL, chat("gpt-4o", "spend two", `"max_tokens":50`), "Authorization: Bearer key-o"); resp.StatusCode != 200 {
		t.Fatalf("another key's budget was touched: %d %s", resp.StatusCode, out)
	}
	if code, _, _ := call(t, http.MethodDelete, g.URL+"/admin/budgets/spender", "Authorization: Bearer key-s"); code != 403 {
		t.Fatalf("a client key reset a budget: %d", code)
	}
	if code, _, out := call(t, http.MethodDelete, g.URL+"/admin/budgets/spender", admin); code != 200 {
		t.Fatalf("reset: %d %s", code, out)
	}
	if got := spend("spender"); got != 0 {
		t.Fatalf("spend after reset %v", got)
	}
	if resp, out := post(t, g.URL, chat("gpt-4o", "spend three", `"max_tokens":50`), "Authorization: Bearer key-s"); resp.StatusCode != 200 {
		t.Fatalf("after reset: %d %s", resp.StatusCode, out)
	}
}

func TestEachKeyHasItsOwnCacheUnlessTheOperatorSharesIt(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, accessConfig(s,
		config.APIKey{Name: "a", Key: "key-a", CacheScope: "isolated"},
		config.APIKey{Name: "b", Key: "key-b"}, // isolated by default
		config.APIKey{Name: "c", Key: "key-c", CacheScope: "shared"},
		config.APIKey{Name: "d", Key: "key-d", CacheScope: "shared"},
		config.APIKey{Name: "e", Key: "key-e", Team: "red"},
		config.APIKey{Name: "f", Key: "key-f", Team: "red"}))
	body := chat("gpt-4o-mini", "a tenant's question")
	for i, step := range []struct{ key, want string }{
		{"key-a", "MISS"},
		{"key-a", "HIT"},  // a's own answer
		{"key-b", "MISS"}, // never a's
		{"key-b", "HIT"},
		{"key-c", "MISS"}, // the shared cache holds neither
		{"key-d", "HIT"},  // shared keys share
		{"key-e", "MISS"}, // a team is a scope of its own
		{"key-f", "HIT"},  // its members share
		{"key-a", "HIT"},
	} {
		resp, out := post(t, g.URL, body, "Authorization: Bearer "+step.key)
		if resp.StatusCode != 200 || resp.Header.Get("X-Cache-Status") != step.want {
			t.Fatalf("step %d (%s): %d %s, want %s: %s", i, step.key, resp.StatusCode, resp.Header.Get("X-Cache-Status"), step.want, out)
		}
	}
	if s.Calls() != 4 {
		t.Fatalf("provider called %d times, want 4 (a, b, shared, team red)", s.Calls())
	}
	// A client namespace cannot reach into another tenant's scope.
	resp, _ := post(t, g.URL, body, "Authorization: Bearer key-b", "X-Cache-Namespace: key:a")
	if resp.Header.Get("X-Cache-Status") != "MISS" {
		t.Fatalf("a client namespace reached another tenant: %s", resp.Header.Get("X-Cache-Status"))
	}
}

func TestModelAllowListRefusesOtherModels(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, accessConfig(s, config.APIKey{Name: "narrow", Key: "key-n", Models: []string{"gpt-4o-mini"}}))
	for _, tt := range []struct {
		model  string
		status int
	}{
		{"gpt-4o-mini", 200},
		{"gpt-4o", 403},
		{"claude-3-5-sonnet-20241022", 403},
		{"anthropic/claude-3-5-haiku-20241022", 403},
		{"sim/sim-small", 403},
	} {
		t.Run(tt.model, func(t *testing.T) {
			resp, out := post(t, g.URL, chat(tt.model, "allowed?"), "Authorization: Bearer key-n")
			if resp.StatusCode != tt.status {
				t.Fatalf("%d, want %d: %s", resp.StatusCode, tt.status, out)
			}
			if tt.status == 403 && envelope(t, resp.StatusCode, out) != "model_not_allowed" {
				t.Fatalf("403 envelope %s", out)
			}
		})
	}
	if s.Calls() != 1 {
		t.Fatalf("refused models reached the provider: %d calls", s.Calls())
	}
}

func TestRedactionRewritesPIIBeforeProviderAndCacheKey(t *testing.T) {
	s := startSim(t, simulated.Options{})
	cfg := simConfig(s)
	cfg.Redact.Enabled = true
	g := startGateway(t, cfg)
	for _, tt := range []struct {
		name, prompt string
		gone, kept   []string
	}{
		{"email", "mail jane.doe@example.com today", []string{"jane.doe@example.com"}, []string{"[EMAIL]", "today"}},
		{"card passing Luhn", "card 4111 1111 1111 1111 ok", []string{"4111 1111 1111 1111"}, []string{"[CARD]"}},
		{"ssn", "ssn 123-45-6789 ok", []string{"123-45-6789"}, []string{"[SSN]"}},
		{"ipv4", "host 10.12.0.7 ok", []string{"10.12.0.7"}, []string{"[IP]"}},
		{"secret", "use sk-proj-abcdefghijklmnopqrstuvwx now", []string{"sk-proj-abcdefghijklmnopqrstuvwx"}, []string{"[SECRET]"}},
		{"16 digits failing Luhn stay", "order 4111111111111112 ok", nil, []string{"4111111111111112"}},
		{"999.1.1.1 stays", "value 999.1.1.1 ok", nil, []string{"999.1.1.1"}},
		{"version string stays", "upgrade to 1.2.3 ok", nil, []string{"1.2.3"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, out := post(t, g.URL, chat("gpt-4o-mini", tt.prompt), "Cache-Control: no-store")
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, out)
			}
			_, _, sent := s.LastRequest()
			content := gjson.GetBytes(sent, "messages.0.content").Str
			for _, g := range tt.gone {
				if strings.Contains(content, g) {
					t.Errorf("%q reached the provider: %q", g, content)
				}
			}
			for _, k := range tt.kept {
				if !strings.Contains(content, k) {
					t.Errorf("%q missing from what the provider got: %q", k, content)
				}
			}
		})
	}
	// The cache key is computed after redaction: prompts that differ only
	// in the redacted address share an answer.
	calls := s.Calls()
	r1, _ := post(t, g.URL, chat("gpt-4o-mini", "write to alice@example.com"))
	r2, _ := post(t, g.URL, chat("gpt-4o-mini", "write to bob@example.org"))
	if r1.Header.Get("X-Cache-Status") != "MISS" || r2.Header.Get("X-Cache-Status") != "HIT" || s.Calls() != calls+1 {
		t.Fatalf("redacted prompts: %s then %s, %d calls", r1.Header.Get("X-Cache-Status"), r2.Header.Get("X-Cache-Status"), s.Calls()-calls)
	}
	f := scrapeFamilies(t, g.URL)
	if got := f.value("llm_edge_pii_redactions_total", "type=email"); got != 3 {
		t.Errorf(`llm_edge_pii_redactions_total{type="email"} = %v, want 3`, got)
	}
}

// hostileInputs are requests a gateway must refuse with a 4xx envelope,
// without calling a provider.
var hostileInputs = []struct {
	name, body string
	status     int
	param      string
}{
	{"shell in model", `{"model":"\"; rm -rf /","messages":[{"role":"user","content":"x"}]}`, 404, ""},
	{"path traversal model", `{"model":"../../etc/passwd","messages":[{"role":"user","content":"x"}]}`, 404, ""},
	{"malformed JSON", `{"model":"gpt-4o","messages":[`, 400, ""},
	{"trailing garbage", `{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]} xyz`, 400, ""},
	{"not an object", `["gpt-4o"]`, 400, ""},
	{"empty body", ``, 400, ""},
	{"temperature 5", `{"model":"gpt-4o","temperature":5,"messages":[{"role":"user","content":"x"}]}`, 400, "temperature"},
	{"top_p 2", `{"model":"gpt-4o","top_p":2,"messages":[{"role":"user","content":"x"}]}`, 400, "top_p"},
	{"n 1000", `{"model":"gpt-4o","n":1000,"messages":[{"role":"user","content":"x"}]}`, 400, "n"},
	{"invalid UTF-8", "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}", 400, ""},
	{"role hacker", `{"model":"gpt-4o","messages":[{"role":"hacker","content":"x"}]}`, 400, "messages[0].role"},
	{"content number", `{"model":"gpt-4o","messages":[{"role":"user","content":42}]}`, 400, "messages[0].content"},
	{"no messages", `{"model":"gpt-4o","messages":[]}`, 400, "messages"},
	{"model missing", `{"messages":[{"role":"user","content":"x"}]}`, 400, "model"},
	{"stream not bool", `{"model":"gpt-4o","stream":"yes","messages":[{"role":"user","content":"x"}]}`, 400, "stream"},
}

func TestHostileAndMalformedInputsGetTheRight4xx(t *testing.T) {
	s := startSim(t, simulated.Options{})
	cfg := simConfig(s)
	cfg.MaxRequestSize = 1 << 20
	g := startGateway(t, cfg)
	cases := append([]struct {
		name, body string
		status     int
		param      string
	}{}, hostileInputs...)
	cases = append(cases, struct {
		name, body string
		status     int
		param      string
	}{"body over 1 MB", chat("gpt-4o", strings.Repeat("A", 1<<20+1)), 413, ""})
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			resp, out := post(t, g.URL, tt.body)
			if resp.StatusCode != tt.status {
				t.Fatalf("%d, want %d: %s", resp.StatusCode, tt.status, out)
			}
			envelope(t, resp.StatusCode, out)
			if p := gjson.GetBytes(out, "error.param").Str; p != tt.param {
				t.Fatalf("param %q, want %q: %s", p, tt.param, out)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("Content-Type %q", ct)
			}
		})
	}
	if s.Calls() != 0 {
		t.Fatalf("hostile inputs reached the provider %d times", s.Calls())
	}
}

// FuzzGatewayRejectsGarbage drives the handler of a keyed, redacting
// gateway in process: nothing panics or answers 5xx (the simulated
// provider never fails), invalid JSON is never answered 200, and every
// refusal is an envelope. The seeds run in the normal test suite.
func FuzzGatewayRejectsGarbage(f *testing.F) {
	for _, h := range hostileInputs {
		f.Add([]byte(h.body), true)
	}
	for _, seed := range []string{
		`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi jane@example.com"}]}`,
		`{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"card 4111 1111 1111 1111"}]}`,
		`{"model":"claude-3-5-haiku-20241022","messages":[{"role":"user","content":[{"type":"text","text":"10.0.0.1"}]}]}`,
		`{"model":"gpt-4o-mini","fallbacks":["claude-3-5-haiku-20241022"],"messages":[{"role":"user","content":"x"}]}`,
		`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"\u0000\ud800"}]}`,
	} {
		f.Add([]byte(seed), true)
		f.Add([]byte(seed), false)
	}
	s := startSim(f, simulated.Options{})
	cfg := accessConfig(s, config.APIKey{Name: "fuzz", Key: "key-fuzz", Models: []string{"gpt-4o-mini", "claude-3-5-haiku-20241022"}})
	cfg.Redact.Enabled = true
	cfg.MaxRequestSize = 64 << 10
	h := startGateway(f, cfg).App.Handler()
	f.Fuzz(func(t *testing.T, body []byte, withKey bool) {
		req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if withKey {
			req.Header.Set("Authorization", "Bearer key-fuzz")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch {
		case rec.Code >= 500:
			t.Fatalf("%d for %q: %s", rec.Code, body, rec.Body)
		case !withKey && rec.Code != http.StatusUnauthorized:
			t.Fatalf("%d without a key for %q", rec.Code, body)
		case rec.Code == http.StatusOK && !json.Valid(body):
			t.Fatalf("accepted invalid JSON %q", body)
		case rec.Code != http.StatusOK && !gjson.GetBytes(rec.Body.Bytes(), "error.message").Exists():
			t.Fatalf("%d without an envelope for %q: %s", rec.Code, body, rec.Body)
		case rec.Code != http.StatusOK && (rec.Code < 400 || rec.Code > 499):
			t.Fatalf("refusal %d for %q", rec.Code, body)
		}
	})
}
