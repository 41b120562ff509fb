package app_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/app"
	"github.com/edge-agent/edge-agent/internal/config"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
	"github.com/edge-agent/edge-agent/internal/telemetry"
)

// This file covers issue 2's gateway core end to end: round trips with
// metadata and headers, tool calls through both wire formats, chunk-by-chunk
// flushing, bad inputs, disconnects, graceful shutdown, key hygiene, health.

const weatherTool = `"tools":[{"type":"function","function":{"name":"get_weather","description":"weather in a city","parameters":{"type":"object","properties":{"query":{"type":"string"}},"required":["query"]}}}]`

// checkEdgeHeaders asserts the headers every chat answer carries.
func checkEdgeHeaders(t *testing.T, h http.Header, wantProvider, wantCache string) {
	t.Helper()
	if h.Get("X-Request-Id") == "" || h.Get("X-Cache-Status") != wantCache || h.Get("X-Edge-Provider") != wantProvider ||
		h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("edge headers: %v", h)
	}
	over := h.Get("X-Edge-Overhead-Ms")
	if f := gjson.Parse(over); f.Type != gjson.Number || f.Float() < 0 {
		t.Fatalf("X-Edge-Overhead-Ms %q is not a non-negative number", over)
	}
}

// upstreamClients are the two HTTP clients a plain-http upstream can be
// called with (config upstream_http_client); the core tests run with both.
var upstreamClients = []string{"direct", "std"}

func TestCoreRoundTripsCarryMetadataAndEdgeHeaders(t *testing.T) {
	for _, client := range upstreamClients {
		t.Run(client, func(t *testing.T) { testCoreRoundTrips(t, client) })
	}
}

func testCoreRoundTrips(t *testing.T, client string) {
	s := startSim(t, simulated.Options{})
	cfg := simConfig(s)
	cfg.UpstreamHTTPClient = client
	g := startGateway(t, cfg)
	models := []struct{ model, provider, upstream string }{
		{"gpt-4o-mini", "openai", "gpt-4o-mini"},
		{"gpt-4", "openai", "gpt-4"},
		{"claude-3-5-sonnet-20241022", "anthropic", "claude-3-5-sonnet-20241022"},
		{"anthropic/claude-3-5-sonnet-20241022", "anthropic", "claude-3-5-sonnet-20241022"},
	}
	for _, m := range models {
		t.Run(m.model+"/json miss then hit", func(t *testing.T) {
			body := chat(m.model, "core metadata "+m.model)
			resp, b := post(t, g.URL, body, "X-Request-Id: core-"+m.provider+"-42")
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("%d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
			}
			checkEdgeHeaders(t, resp.Header, m.provider, "MISS")
			if resp.Header.Get("X-Request-Id") != "core-"+m.provider+"-42" {
				t.Fatalf("X-Request-Id %q does not echo the client's", resp.Header.Get("X-Request-Id"))
			}
			r := gjson.ParseBytes(b)
			if r.Get("choices.0.message.role").Str != "assistant" || r.Get("usage.total_tokens").Int() == 0 {
				t.Fatalf("answer %s", b)
			}
			md := r.Get("metadata")
			lat, plat := md.Get("latency_ms"), md.Get("provider_latency_ms")
			if md.Get("provider").Str != m.provider || md.Get("model").Str != m.upstream ||
				md.Get("cached").Str != "false" || md.Get("cache_tier").Exists() ||
				lat.Type != gjson.String || plat.Type != gjson.String || plat.Float() <= 0 || plat.Float() > lat.Float() ||
				md.Get("cost_usd").Type != gjson.String || md.Get("cost_usd").Float() <= 0 ||
				md.Get("request_id").Str != "core-"+m.provider+"-42" {
				t.Fatalf("miss metadata %s", md.Raw)
			}

			resp, b = post(t, g.URL, body)
			checkEdgeHeaders(t, resp.Header, m.provider, "HIT")
			md = gjson.GetBytes(b, "metadata")
			if resp.Header.Get("X-Cache-Layer") != "L1" || md.Get("cached").Str != "true" || md.Get("cache_tier").Str != "l1" ||
				md.Get("provider_latency_ms").Exists() || md.Get("cost_usd").Str != "0" ||
				md.Get("request_id").Str != resp.Header.Get("X-Request-Id") || md.Get("provider").Str != m.provider {
				t.Fatalf("hit metadata %s headers %v", md.Raw, resp.Header)
			}
			if strings.Count(string(b), `"metadata"`) != 1 {
				t.Fatalf("metadata appears more than once: %s", b)
			}
		})
		for _, incl := range []bool{false, true} {
			name := m.model + "/stream"
			extra := []string{`"stream":true`}
			if incl {
				name += " include_usage"
				extra = append(extra, `"stream_options":{"include_usage":true}`)
			} else {
				extra = append(extra, `"stream_options":{"include_usage":false}`)
			}
			t.Run(name, func(t *testing.T) {
				resp, b := post(t, g.URL, chat(m.model, "core "+name, extra...), "X-Request-Id: stream-id-7")
				if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
					t.Fatalf("%d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
				}
				checkEdgeHeaders(t, resp.Header, m.provider, "MISS")
				if resp.Header.Get("X-Request-Id") != "stream-id-7" {
					t.Fatalf("X-Request-Id %q", resp.Header.Get("X-Request-Id"))
				}
				ev := sseEvents(t, b)
				if len(ev) < 3 || ev[len(ev)-1] != "[DONE]" || strings.Count(string(b), "[DONE]") != 1 {
					t.Fatalf("stream must end with one data: [DONE]: %q", ev)
				}
				usageChunks := 0
				for _, e := range ev[:len(ev)-1] {
					c := gjson.Parse(e)
					if c.Get("object").Str != "chat.completion.chunk" {
						t.Fatalf("not a chunk: %s", e)
					}
					if c.Get("usage").IsObject() {
						usageChunks++
						if len(c.Get("choices").Array()) != 0 || c.Get("usage.total_tokens").Int() == 0 {
							t.Fatalf("usage chunk %s", e)
						}
					}
				}
				want := 0
				if incl {
					want = 1
				}
				if usageChunks != want {
					t.Fatalf("%d usage chunks, want %d (include_usage=%v)", usageChunks, want, incl)
				}
				text, finish, _ := streamText(t, ev)
				quoted := "core " + name
				if len(quoted) > 60 {
					quoted = quoted[:60] // the simulated answer quotes 60 characters
				}
				if !strings.HasPrefix(text, "Simulated answer to: "+quoted) || finish != "stop" {
					t.Fatalf("text %q finish %q", text, finish)
				}
			})
		}
	}
}

// toolCall is one accumulated tool call.
type toolCall struct{ id, name, args string }

// streamToolCalls accumulates the tool call deltas of a stream.
func streamToolCalls(t *testing.T, events []string) (calls []toolCall, finish string) {
	t.Helper()
	for _, e := range events {
		if e == "[DONE]" {
			continue
		}
		c := gjson.Parse(e)
		if f := c.Get("choices.0.finish_reason").Str; f != "" {
			finish = f
		}
		for _, d := range c.Get("choices.0.delta.tool_calls").Array() {
			i := int(d.Get("index").Int())
			for len(calls) <= i {
				calls = append(calls, toolCall{})
			}
			if id := d.Get("id").Str; id != "" {
				calls[i].id = id
			}
			if n := d.Get("function.name").Str; n != "" {
				calls[i].name = n
			}
			calls[i].args += d.Get("function.arguments").Str
		}
	}
	return calls, finish
}

func TestCoreToolCallRoundTripsThroughBothWireFormats(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, simConfig(s))
	for _, model := range []string{"gpt-4o-mini", "claude-3-5-sonnet-20241022"} {
		for _, stream := range []bool{false, true} {
			name := model + "/json"
			if stream {
				name = model + "/stream"
			}
			t.Run(name, func(t *testing.T) {
				prompt := "weather in Paris SIM_TOOL_CALL " + name
				extra := []string{weatherTool}
				if stream {
					extra = append(extra, `"stream":true`)
				}
				resp, b := post(t, g.URL, chat(model, prompt, extra...))
				if resp.StatusCode != 200 {
					t.Fatalf("%d %s", resp.StatusCode, b)
				}
				var calls []toolCall
				var finish string
				if stream {
					ev := sseEvents(t, b)
					if ev[len(ev)-1] != "[DONE]" {
						t.Fatalf("no [DONE]: %q", ev)
					}
					calls, finish = streamToolCalls(t, ev)
				} else {
					r := gjson.ParseBytes(b)
					finish = r.Get("choices.0.finish_reason").Str
					for _, c := range r.Get("choices.0.message.tool_calls").Array() {
						if c.Get("type").Str != "function" {
							t.Fatalf("tool call type: %s", c.Raw)
						}
						calls = append(calls, toolCall{c.Get("id").Str, c.Get("function.name").Str, c.Get("function.arguments").Str})
					}
				}
				if finish != "tool_calls" || len(calls) != 1 || calls[0].id == "" || calls[0].name != "get_weather" {
					t.Fatalf("finish %q calls %+v\n%s", finish, calls, b)
				}
				if got := gjson.Get(calls[0].args, "query").Str; !gjson.Valid(calls[0].args) || !strings.HasPrefix(prompt, got) || got == "" {
					t.Fatalf("arguments %q", calls[0].args)
				}

				// Round two: the tool result goes back, the model answers in text.
				messages := `"messages":[{"role":"user","content":` + quote(prompt) + `},` +
					`{"role":"assistant","content":null,"tool_calls":[{"id":` + quote(calls[0].id) + `,"type":"function","function":{"name":"get_weather","arguments":` + quote(calls[0].args) + `}}]},` +
					`{"role":"tool","tool_call_id":` + quote(calls[0].id) + `,"content":"21 C and sunny"}]`
				body := `{"model":"` + model + `",` + messages + `,` + strings.Join(extra, ",") + `}`
				resp, b = post(t, g.URL, body)
				if resp.StatusCode != 200 {
					t.Fatalf("round two: %d %s", resp.StatusCode, b)
				}
				var text string
				if stream {
					text, finish, _ = streamText(t, sseEvents(t, b))
				} else {
					text, finish = gjson.GetBytes(b, "choices.0.message.content").Str, gjson.GetBytes(b, "choices.0.finish_reason").Str
				}
				if finish != "stop" || text == "" {
					t.Fatalf("round two: finish %q text %q", finish, text)
				}
				// The tool result reached the provider in its own format.
				path, _, up := s.LastRequest()
				if strings.HasPrefix(model, "claude") {
					last := gjson.GetBytes(up, "messages.@reverse.0")
					if path != "/v1/messages" || last.Get("role").Str != "user" || last.Get(`content.#(type=="tool_result").tool_use_id`).Str != calls[0].id ||
						gjson.GetBytes(up, `messages.1.content.#(type=="tool_use").id`).Str != calls[0].id {
						t.Fatalf("anthropic request %s %s", path, up)
					}
				} else if path != "/v1/chat/completions" || gjson.GetBytes(up, "messages.2.tool_call_id").Str != calls[0].id {
					t.Fatalf("openai request %s %s", path, up)
				}
			})
		}
	}
}

// lockstepUpstream streams the events of script one step at a time: step
// i is written and flushed, then it waits on next before step i+1. It
// serves both /v1/chat/completions and /v1/messages.
func lockstepUpstream(t *testing.T, script [][]string, next <-chan struct{}) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		for i, step := range script {
			if i > 0 {
				select {
				case <-next:
				case <-r.Context().Done():
					return
				}
			}
			for _, e := range step {
				_, _ = io.WriteString(w, e+"\n\n")
			}
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func openAIChunk(delta, finish string) string {
	f := "null"
	if finish != "" {
		f = `"` + finish + `"`
	}
	return `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":` + delta + `,"finish_reason":` + f + `}]}`
}

func anthropicEvent(typ, data string) string { return "event: " + typ + "\ndata: " + data }

// readUntil reads SSE data lines from br until one contains want.
func readUntil(t *testing.T, br *bufio.Reader, want string) {
	t.Helper()
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended before %q: %v", want, err)
		}
		if strings.HasPrefix(line, "data: ") && strings.Contains(line, want) {
			return
		}
	}
}

func TestCoreStreamChunksAreFlushedOneByOne(t *testing.T) {
	words := []string{"alpha", "bravo", "charlie", "delta"}
	openaiScript := [][]string{{openAIChunk(`{"role":"assistant","content":""}`, "")}}
	anthropicScript := [][]string{{
		anthropicEvent("message_start", `{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-3-5-sonnet-20241022","content":[],"stop_reason":null,"usage":{"input_tokens":5,"output_tokens":1}}}`),
		anthropicEvent("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`),
	}}
	for _, w := range words {
		openaiScript = append(openaiScript, []string{openAIChunk(`{"content":"`+w+` "}`, "")})
		anthropicScript = append(anthropicScript, []string{anthropicEvent("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"`+w+` "}}`)})
	}
	openaiScript = append(openaiScript, []string{openAIChunk(`{}`, "stop"),
		`data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":4,"total_tokens":9}}`,
		"data: [DONE]"})
	anthropicScript = append(anthropicScript, []string{
		anthropicEvent("content_block_stop", `{"type":"content_block_stop","index":0}`),
		anthropicEvent("message_delta", `{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":4}}`),
		anthropicEvent("message_stop", `{"type":"message_stop"}`)})

	for _, tc := range []struct {
		name, typ, model string
		script           [][]string
	}{
		{"openai", "openai", "up/gpt-4o-mini", openaiScript},
		{"anthropic", "anthropic", "up/claude-3-5-sonnet-20241022", anthropicScript},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := make(chan struct{})
			up := lockstepUpstream(t, tc.script, next)
			cfg := config.Default()
			cfg.MetricsPort = 0
			base := up.URL + "/v1"
			if tc.typ == "anthropic" {
				base = up.URL
			}
			cfg.Providers = []config.Provider{{Name: "up", Type: tc.typ, BaseURL: base, AnthropicVersion: "2023-06-01", DefaultMaxTokens: 1024}}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			g := startGateway(t, cfg)
			resp, err := http.Post(g.URL+"/v1/chat/completions", "application/json", strings.NewReader(chat(tc.model, "flush", `"stream":true`)))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			// Each word must reach the client while the upstream still holds
			// the next one back: a buffering gateway blocks here forever.
			deadline := time.AfterFunc(10*time.Second, func() { resp.Body.Close() })
			defer deadline.Stop()
			readUntil(t, br, `"role":"assistant"`)
			for _, w := range words {
				next <- struct{}{}
				readUntil(t, br, w)
			}
			next <- struct{}{}
			readUntil(t, br, `"finish_reason":"stop"`)
			readUntil(t, br, "[DONE]")
		})
	}
}

func TestCoreBadInputsNeverSucceedPanicOrHang(t *testing.T) {
	s := startSim(t, simulated.Options{})
	cfg := simConfig(s)
	cfg.MaxRequestSize = 2048
	cfg.Routing.MaxRetries = 0
	cfg.Routing.FirstByteTimeout = config.Duration(300 * time.Millisecond)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	cfg.Providers = append(cfg.Providers,
		config.Provider{Name: "dead", Type: "openai", BaseURL: "http://" + dead + "/v1"},
		config.Provider{Name: "deadclaude", Type: "anthropic", BaseURL: "http://" + dead, AnthropicVersion: "2023-06-01", DefaultMaxTokens: 64})
	g := startGateway(t, cfg)

	// Only sim and a gateway without openai/anthropic, for the
	// unconfigured-provider cases.
	only := simConfig(s)
	only.Providers = only.Providers[2:] // sim
	only.Aliases = nil                  // the demo's claude-* aliases name the anthropic provider
	if only.Providers[0].Name != "sim" {
		t.Fatalf("providers %+v", only.Providers)
	}
	g2 := startGateway(t, only)

	overLimit := chat("gpt-4o-mini", strings.Repeat("y", 4096))
	tests := []struct {
		name       string
		url        string // gateway; g.URL when empty
		method     string
		path       string
		body       string
		chunked    bool // send without Content-Length
		status     int
		typ, param string
		code       string
		msg        string // the message contains this
		upstream   bool   // the provider is called
		retryAfter bool   // the answer carries Retry-After
	}{
		{name: "malformed JSON", body: `{"model":"gpt-4o-mini","messages":[`, status: 400, typ: "invalid_request_error"},
		{name: "trailing garbage", body: chat("gpt-4o-mini", "x") + `}`, status: 400, typ: "invalid_request_error"},
		{name: "JSON array", body: `[]`, status: 400, typ: "invalid_request_error"},
		{name: "empty body", body: ``, status: 400, typ: "invalid_request_error"},
		{name: "missing model", body: `{"messages":[{"role":"user","content":"x"}]}`, status: 400, typ: "invalid_request_error", param: "model"},
		{name: "model is a number", body: `{"model":4,"messages":[{"role":"user","content":"x"}]}`, status: 400, typ: "invalid_request_error", param: "model"},
		{name: "empty messages", body: `{"model":"gpt-4o-mini","messages":[]}`, status: 400, typ: "invalid_request_error", param: "messages"},
		{name: "messages not an array", body: `{"model":"gpt-4o-mini","messages":"hi"}`, status: 400, typ: "invalid_request_error", param: "messages"},
		{name: "shell in model name", body: chat(`\"; rm -rf /`, "x"), status: 404, typ: "not_found_error", code: "model_not_found", msg: `\"; rm -rf /`},
		{name: "unknown provider prefix", body: chat("mistral/large", "x"), status: 404, typ: "not_found_error", code: "model_not_found", msg: "mistral/large"},
		{name: "unconfigured openai prefix", url: "g2", body: chat("openai/gpt-4o", "x"), status: 400, typ: "invalid_request_error", param: "model", code: "provider_not_configured", msg: "OPENAI_API_KEY"},
		{name: "unconfigured anthropic by name", url: "g2", body: chat("claude-3-5-sonnet-20241022", "x"), status: 400, typ: "invalid_request_error", param: "model", code: "provider_not_configured", msg: "ANTHROPIC_API_KEY"},
		{name: "unconfigured anthropic prefix", url: "g2", body: chat("anthropic/claude-3-5-sonnet-20241022", "x"), status: 400, typ: "invalid_request_error", param: "model", code: "provider_not_configured"},
		{name: "over MAX_REQUEST_SIZE", body: overLimit, status: 413, typ: "invalid_request_error", code: "request_too_large"},
		{name: "over MAX_REQUEST_SIZE chunked", body: overLimit, chunked: true, status: 413, typ: "invalid_request_error", code: "request_too_large"},
		{name: "1 MB+ body", body: chat("gpt-4o-mini", strings.Repeat("z", 1<<20+1)), status: 413, typ: "invalid_request_error", code: "request_too_large"},
		{name: "unknown route", method: "POST", path: "/v1/audio/speech", body: `{}`, status: 404, typ: "not_found_error", code: "unknown_url"},
		{name: "wrong method", method: "GET", path: "/v1/chat/completions", status: 405, typ: "invalid_request_error", code: "method_not_allowed"},
		{name: "wrong method on models", method: "POST", path: "/v1/models", body: `{}`, status: 405, typ: "invalid_request_error", code: "method_not_allowed"},
		{name: "openai 400 passes through", body: chat("gpt-4o-mini", "SIM_ERROR_400"), status: 400, typ: "invalid_request_error", msg: "SIM_ERROR_400", upstream: true},
		{name: "anthropic 400 passes through", body: chat("claude-3-5-sonnet-20241022", "SIM_ERROR_400"), status: 400, typ: "invalid_request_error", msg: "SIM_ERROR_400", upstream: true},
		{name: "openai 429 passes through", body: chat("gpt-4o-mini", "SIM_ERROR_429"), status: 429, typ: "requests", code: "rate_limit_exceeded", upstream: true, retryAfter: true},
		{name: "anthropic 429 passes through", body: chat("claude-3-5-sonnet-20241022", "SIM_ERROR_429"), status: 429, typ: "rate_limit_error", upstream: true, retryAfter: true},
		{name: "openai 500 is 502", body: chat("gpt-4o-mini", "SIM_ERROR_500"), status: 502, typ: "upstream_error", code: "upstream_error", msg: "openai", upstream: true},
		{name: "anthropic 500 is 502", body: chat("claude-3-5-sonnet-20241022", "SIM_ERROR_500"), status: 502, typ: "upstream_error", msg: "anthropic", upstream: true},
		{name: "openai timeout is 504", body: chat("gpt-4o-mini", "SIM_SLOW_2000"), status: 504, typ: "timeout_error", upstream: true},
		{name: "anthropic timeout is 504", body: chat("claude-3-5-sonnet-20241022", "SIM_SLOW_2000"), status: 504, typ: "timeout_error", upstream: true},
		{name: "stream timeout is 504", body: chat("gpt-4o-mini", "SIM_SLOW_2000", `"stream":true`), status: 504, typ: "timeout_error", upstream: true},
		{name: "dead openai provider", body: chat("dead/m", "x"), status: 502, typ: "upstream_error", code: "upstream_connection_refused", msg: "dead"},
		{name: "dead anthropic provider", body: chat("deadclaude/claude-3-5-sonnet-20241022", "x", `"stream":true`), status: 502, typ: "upstream_error", code: "upstream_connection_refused"},
	}
	client := &http.Client{Timeout: 10 * time.Second}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := g.URL
			if tt.url == "g2" {
				url = g2.URL
			}
			method, path := tt.method, tt.path
			if method == "" {
				method, path = http.MethodPost, "/v1/chat/completions"
			}
			var body io.Reader = strings.NewReader(tt.body)
			if tt.chunked {
				body = io.MultiReader(body) // hides the length: chunked encoding
			}
			req, err := http.NewRequest(method, url+path, body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			before := s.Calls()
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, b)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
			if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Fatalf("no nosniff on an error: %v", resp.Header)
			}
			e := gjson.GetBytes(b, "error")
			if !gjson.ValidBytes(b) || !e.IsObject() || e.Get("message").Str == "" || !e.Get("param").Exists() || !e.Get("code").Exists() {
				t.Fatalf("not an OpenAI error envelope: %s", b)
			}
			if e.Get("type").Str != tt.typ || e.Get("param").Str != tt.param || (tt.code != "" && e.Get("code").Str != tt.code) {
				t.Fatalf("envelope %s, want type %q param %q code %q", b, tt.typ, tt.param, tt.code)
			}
			if tt.msg != "" && !strings.Contains(e.Get("message").Str, strings.ReplaceAll(tt.msg, `\"`, `"`)) {
				t.Fatalf("message %q does not mention %q", e.Get("message").Str, tt.msg)
			}
			if (resp.Header.Get("Retry-After") != "") != tt.retryAfter {
				t.Fatalf("Retry-After %q, want present=%v", resp.Header.Get("Retry-After"), tt.retryAfter)
			}
			if called := s.Calls() > before; called != tt.upstream {
				t.Fatalf("provider called: %v, want %v", called, tt.upstream)
			}
		})
	}
}

// cancelRecorder is an upstream that answers nothing (JSON) or one event
// (stream) and reports when the gateway gives up on the request.
func cancelRecorder(t *testing.T) (srv *httptest.Server, started, cancelled chan string) {
	started, cancelled = make(chan string, 4), make(chan string, 4)
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if gjson.GetBytes(b, "stream").Bool() {
			w.Header().Set("Content-Type", "text/event-stream")
			if r.URL.Path == "/v1/messages" {
				_, _ = io.WriteString(w, anthropicEvent("message_start", `{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-3-5-sonnet-20241022","content":[],"usage":{"input_tokens":5,"output_tokens":1}}}`)+"\n\n"+
					anthropicEvent("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)+"\n\n"+
					anthropicEvent("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"first"}}`)+"\n\n")
			} else {
				_, _ = io.WriteString(w, openAIChunk(`{"role":"assistant","content":"first"}`, "")+"\n\n")
			}
			w.(http.Flusher).Flush()
		}
		started <- r.URL.Path
		select {
		case <-r.Context().Done():
			cancelled <- r.URL.Path
		case <-time.After(15 * time.Second):
		}
	}))
	t.Cleanup(srv.Close)
	return srv, started, cancelled
}

func TestCoreClientDisconnectCancelsTheUpstreamCall(t *testing.T) {
	for _, client := range upstreamClients {
		t.Run(client, func(t *testing.T) { testCoreClientDisconnect(t, client) })
	}
}

func testCoreClientDisconnect(t *testing.T, client string) {
	up, started, cancelled := cancelRecorder(t)
	cfg := config.Default()
	cfg.MetricsPort = 0
	cfg.UpstreamHTTPClient = client
	cfg.Routing.FirstByteTimeout = config.Duration(30 * time.Second)
	cfg.Routing.StreamIdleTimeout = config.Duration(30 * time.Second)
	cfg.Providers = []config.Provider{
		{Name: "oa", Type: "openai", BaseURL: up.URL + "/v1"},
		{Name: "an", Type: "anthropic", BaseURL: up.URL, AnthropicVersion: "2023-06-01", DefaultMaxTokens: 64},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, cfg)
	for _, tc := range []struct {
		name, model string
		stream      bool
	}{
		{"openai stream", "oa/gpt-4o-mini", true},
		{"openai json", "oa/gpt-4o-mini", false},
		{"anthropic stream", "an/claude-3-5-sonnet-20241022", true},
		{"anthropic json", "an/claude-3-5-sonnet-20241022", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			extra := []string{}
			if tc.stream {
				extra = append(extra, `"stream":true`)
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, g.URL+"/v1/chat/completions", strings.NewReader(chat(tc.model, tc.name, extra...)))
			errc := make(chan error, 1)
			go func() {
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					errc <- err
					return
				}
				defer resp.Body.Close()
				br := bufio.NewReader(resp.Body)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						errc <- fmt.Errorf("first chunk not flushed: %w", err)
						return
					}
					if strings.Contains(line, "first") {
						errc <- nil
						return
					}
				}
			}()
			select {
			case <-started:
			case <-time.After(5 * time.Second):
				t.Fatal("the upstream was never called")
			}
			if tc.stream {
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
			}
			cancel() // the client goes away
			select {
			case <-cancelled:
			case <-time.After(5 * time.Second):
				t.Fatal("the upstream request was not cancelled when the client left")
			}
		})
	}
}

func TestCoreGracefulShutdownDrainsAnInFlightStream(t *testing.T) {
	next := make(chan struct{})
	script := [][]string{
		{openAIChunk(`{"role":"assistant","content":"before "}`, "")},
		{openAIChunk(`{"content":"after"}`, ""), openAIChunk(`{}`, "stop"), "data: [DONE]"},
	}
	up := lockstepUpstream(t, script, next)
	cfg := config.Default()
	cfg.MetricsPort = 0
	cfg.ShutdownTimeout = config.Duration(10 * time.Second)
	cfg.Providers = []config.Provider{{Name: "up", Type: "openai", BaseURL: up.URL + "/v1"}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logger, err := telemetry.NewLogger(io.Discard, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	url := "http://" + ln.Addr().String()

	ready := func() int {
		rec := httptest.NewRecorder()
		a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health/ready", nil))
		return rec.Code
	}
	r0, err := http.Get(url + "/health/ready")
	if err != nil {
		t.Fatal(err)
	}
	r0.Body.Close()
	if r0.StatusCode != 200 {
		t.Fatalf("ready before shutdown: %d", r0.StatusCode)
	}

	resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(chat("up/gpt-4o-mini", "drain me", `"stream":true`)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	readUntil(t, br, "before")

	cancel() // SIGTERM while the stream is in flight
	waitFor(t, "readiness to turn 503 while draining", func() bool { return ready() == http.StatusServiceUnavailable })
	waitFor(t, "new connections to be refused", func() bool {
		r, err := http.Get(url + "/health/live")
		if err == nil {
			r.Body.Close()
		}
		return err != nil
	})
	select {
	case err := <-done:
		t.Fatalf("Serve returned %v with a stream in flight", err)
	default:
	}

	next <- struct{}{} // the upstream finishes
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("stream cut during shutdown: %v", err)
	}
	if !strings.Contains(string(rest), "after") || !strings.HasSuffix(strings.TrimSpace(string(rest)), "data: [DONE]") {
		t.Fatalf("stream did not complete: %q", rest)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the last stream ended")
	}
}

func TestCoreShutdownDeadlineEndsOpenStreamsWithAnErrorEvent(t *testing.T) {
	s := startSim(t, simulated.Options{})
	cfg := simConfig(s)
	cfg.ShutdownTimeout = config.Duration(200 * time.Millisecond)
	cfg.Routing.StreamIdleTimeout = config.Duration(time.Minute)
	logger, err := telemetry.NewLogger(io.Discard, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	resp, err := http.Post("http://"+ln.Addr().String()+"/v1/chat/completions", "application/json",
		strings.NewReader(chat("gpt-4o-mini", "SIM_STALL", `"stream":true`)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	readUntil(t, br, "chat.completion.chunk")
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "did not finish") {
			t.Fatalf("Serve: %v, want a shutdown deadline error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve hangs past its shutdown deadline")
	}
	// The stalled stream is told why it ends, then ends: an OpenAI error
	// event with the shutdown's code, and no [DONE] (it is not complete).
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("the stream was cut without its error event: %v (read %q)", err, rest)
	}
	last := strings.TrimSpace(string(rest))
	last = last[strings.LastIndex(last, "\n")+1:]
	ev := gjson.Get(strings.TrimPrefix(last, "data: "), "error")
	if !strings.HasPrefix(last, "data: ") || ev.Get("code").Str != "server_shutting_down" || ev.Get("type").Str != "server_error" ||
		strings.Contains(string(rest), "[DONE]") {
		t.Fatalf("stream ended with %q, want a server_shutting_down error event and no [DONE]", rest)
	}
}

// keyEchoUpstream rejects every request with a message that quotes the key
// it was sent, as some servers do.
func keyEchoUpstream(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if key == "" {
			key = r.Header.Get("X-Api-Key")
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":{"message":"Incorrect API key provided: `+key+`","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestCoreProviderKeysNeverReachLogsOrClients(t *testing.T) {
	const simKey = "sk-core-sim-secret-0123456789"
	const echoKey = "sk-core-echo-secret-9876543210"
	s := startSim(t, simulated.Options{APIKey: simKey})
	echo := keyEchoUpstream(t)
	cfg := simConfig(s)
	for i := range cfg.Providers {
		cfg.Providers[i].APIKey = simKey
	}
	cfg.Providers = append(cfg.Providers,
		config.Provider{Name: "echo", Type: "openai", BaseURL: echo.URL + "/v1", APIKey: echoKey},
		config.Provider{Name: "echoclaude", Type: "anthropic", BaseURL: echo.URL, APIKey: echoKey, AnthropicVersion: "2023-06-01", DefaultMaxTokens: 64})
	cfg.Routing.MaxRetries = 0
	cfg.Routing.FirstByteTimeout = config.Duration(300 * time.Millisecond)
	cfg.LogLevel = "debug"
	g := startGateway(t, cfg)
	var answers strings.Builder
	cases := []struct {
		body   string
		status int
	}{
		{chat("gpt-4o-mini", "hello keys"), 200},
		{chat("claude-3-5-sonnet-20241022", "hello keys"), 200},
		{chat("gpt-4o-mini", "hello keys stream", `"stream":true`), 200},
		{chat("claude-3-5-sonnet-20241022", "hello keys stream", `"stream":true`), 200},
		{chat("gpt-4o-mini", "SIM_ERROR_500"), 502},
		{chat("claude-3-5-sonnet-20241022", "SIM_ERROR_400"), 400},
		{chat("gpt-4o-mini", "SIM_SLOW_2000"), 504},
		{chat("echo/gpt-4o-mini", "x"), 502},
		{chat("echoclaude/claude-3-5-sonnet-20241022", "x"), 502},
		{chat("echo/gpt-4o-mini", "x", `"stream":true`), 502},
		{`{"model":`, 400},
	}
	for _, c := range cases {
		resp, b := post(t, g.URL, c.body, "Authorization: Bearer sk-client-secret-999")
		if resp.StatusCode != c.status {
			t.Fatalf("%s: status %d, want %d: %s", c.body, resp.StatusCode, c.status, b)
		}
		answers.Write(b)
		for k, v := range resp.Header {
			answers.WriteString(k + ": " + strings.Join(v, ",") + "\n")
		}
	}
	if _, h, _ := s.LastRequest(); !strings.Contains(h.Get("Authorization")+h.Get("X-Api-Key"), simKey) {
		t.Fatalf("the provider never got its key: %v", h)
	}
	logs := g.Logs.String()
	if strings.Count(logs, "Request completed") < len(cases) {
		t.Fatalf("request lines missing from logs: %s", logs)
	}
	for _, secret := range []string{simKey, echoKey, "sk-client-secret-999"} {
		if strings.Contains(logs, secret) {
			t.Errorf("key %s leaked into logs", secret)
		}
		if strings.Contains(answers.String(), secret) {
			t.Errorf("key %s leaked into an answer to the client", secret)
		}
	}
}

func TestCoreHealthAndModelsShapes(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, simConfig(s))
	get := func(method, path string) (*http.Response, gjson.Result) {
		t.Helper()
		req, _ := http.NewRequest(method, g.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if method == http.MethodGet && (!gjson.ValidBytes(b) || resp.Header.Get("Content-Type") != "application/json") {
			t.Fatalf("%s: %q %s", path, resp.Header.Get("Content-Type"), b)
		}
		return resp, gjson.ParseBytes(b)
	}
	resp, h := get("GET", "/health")
	if resp.StatusCode != 200 || h.Get("status").Str != "healthy" || h.Get("version").Str != app.Version ||
		h.Get("uptime_seconds").Type != gjson.Number || !h.Get("components").IsObject() {
		t.Fatalf("/health %d %s", resp.StatusCode, h.Raw)
	}
	h.Get("components").ForEach(func(k, v gjson.Result) bool {
		if st := v.Get("status").Str; st != "healthy" && st != "degraded" && st != "unhealthy" {
			t.Errorf("component %s status %q", k.Str, st)
		}
		return true
	})
	if h.Get("components.providers.status").Str != "healthy" || !h.Get("components.cache_l1").Exists() {
		t.Fatalf("/health components %s", h.Get("components").Raw)
	}
	if resp, l := get("GET", "/health/live"); resp.StatusCode != 200 || l.Get("status").Str != "alive" {
		t.Fatalf("/health/live %d %s", resp.StatusCode, l.Raw)
	}
	if resp, r := get("GET", "/health/ready"); resp.StatusCode != 200 || r.Get("status").Str != "ready" {
		t.Fatalf("/health/ready %d %s", resp.StatusCode, r.Raw)
	}
	if resp, _ := get("HEAD", "/health/live"); resp.StatusCode != 200 {
		t.Fatalf("HEAD /health/live %d", resp.StatusCode)
	}
	resp, m := get("GET", "/v1/models")
	if resp.StatusCode != 200 || m.Get("object").Str != "list" || len(m.Get("data").Array()) == 0 {
		t.Fatalf("/v1/models %d %s", resp.StatusCode, m.Raw)
	}
	ids := map[string]bool{}
	for _, d := range m.Get("data").Array() {
		if d.Get("id").Str == "" || d.Get("object").Str != "model" || d.Get("owned_by").Str == "" || d.Get("created").Type != gjson.Number {
			t.Fatalf("model entry %s", d.Raw)
		}
		if ids[d.Get("id").Str] {
			t.Fatalf("model %s listed twice", d.Get("id").Str)
		}
		ids[d.Get("id").Str] = true
	}
	if !ids["sim-small"] && !ids["sim/sim-small"] {
		t.Fatalf("configured models missing from /v1/models: %v", ids)
	}
	// Every listed model can be asked for by the id the list gives.
	for id := range ids {
		resp, b := post(t, g.URL, chat(id, "listed model "+id))
		if resp.StatusCode != 200 {
			t.Fatalf("model %q from /v1/models: %d %s", id, resp.StatusCode, b)
		}
	}
}
