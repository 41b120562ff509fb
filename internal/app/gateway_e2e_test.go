package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/app"
	"github.com/edge-agent/edge-agent/internal/config"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
	"github.com/edge-agent/edge-agent/internal/telemetry"
)

// sseEvents reads an SSE body into its data payloads.
func sseEvents(t testing.TB, body []byte) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}

// streamText joins the content of the chunks and returns the finish
// reason and whether a usage chunk was seen.
func streamText(t testing.TB, events []string) (text, finish string, usage bool) {
	t.Helper()
	for _, e := range events {
		if e == "[DONE]" {
			continue
		}
		if !gjson.Valid(e) {
			t.Fatalf("chunk is not JSON: %s", e)
		}
		c := gjson.Parse(e)
		if c.Get("error").Exists() {
			t.Fatalf("error chunk: %s", e)
		}
		text += c.Get("choices.0.delta.content").Str
		if f := c.Get("choices.0.finish_reason").Str; f != "" {
			finish = f
		}
		if c.Get("usage.total_tokens").Int() > 0 && len(c.Get("choices").Array()) == 0 {
			usage = true
		}
	}
	return
}

func TestRoundTripsThroughEveryProviderFormat(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, simConfig(s))
	models := []struct{ model, provider string }{
		{"gpt-4o-mini", "openai"},
		{"claude-3-5-sonnet-20241022", "anthropic"},
		{"anthropic/claude-3-5-haiku-20241022", "anthropic"},
		{"sim/sim-small", "sim"},
	}
	for _, m := range models {
		t.Run(m.model+"/json", func(t *testing.T) {
			resp, body := post(t, g.URL, chat(m.model, "json round trip "+m.model), "X-Request-Id: client-id-1")
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			r := gjson.ParseBytes(body)
			if !strings.HasPrefix(r.Get("choices.0.message.content").Str, "Simulated answer to: json round trip") ||
				r.Get("choices.0.finish_reason").Str != "stop" || r.Get("object").Str != "chat.completion" {
				t.Fatalf("answer %s", body)
			}
			md := r.Get("metadata")
			if md.Get("provider").Str != m.provider || md.Get("cached").Str != "false" || md.Get("cache_tier").Exists() ||
				md.Get("latency_ms").Float() <= 0 || md.Get("provider_latency_ms").Float() <= 0 ||
				md.Get("request_id").Str != "client-id-1" || md.Get("cost_usd").Exists() != (m.provider != "sim") { // sim-small has no price
				t.Fatalf("metadata %s", md.Raw)
			}
			h := resp.Header
			if h.Get("X-Request-Id") != "client-id-1" || h.Get("X-Cache-Status") != "MISS" || h.Get("X-Edge-Provider") != m.provider ||
				h.Get("X-Edge-Overhead-Ms") == "" || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" ||
				len(h.Get("X-Cache-Key")) != 32 {
				t.Fatalf("headers %v", h)
			}
		})
		for _, incl := range []bool{false, true} {
			name := m.model + "/stream"
			extra := []string{`"stream":true`}
			if incl {
				name += "+usage"
				extra = append(extra, `"stream_options":{"include_usage":true}`)
			}
			t.Run(name, func(t *testing.T) {
				resp, body := post(t, g.URL, chat(m.model, name, extra...))
				if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
					t.Fatalf("%d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
				}
				ev := sseEvents(t, body)
				if len(ev) < 3 || ev[len(ev)-1] != "[DONE]" {
					t.Fatalf("stream must end with [DONE]: %q", ev)
				}
				text, finish, usage := streamText(t, ev)
				if !strings.HasPrefix(text, "Simulated answer to: "+name) || finish != "stop" {
					t.Fatalf("text %q finish %q", text, finish)
				}
				if usage != incl {
					t.Fatalf("usage chunk present=%v, client asked %v", usage, incl)
				}
				if resp.Header.Get("X-Edge-Provider") != m.provider || resp.Header.Get("X-Request-Id") == "" {
					t.Fatalf("headers %v", resp.Header)
				}
			})
		}
	}
}

func TestOfficialOpenAISDKWorksUnchanged(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, simConfig(s))
	client := openai.NewClient(option.WithBaseURL(g.URL+"/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
	for _, model := range []string{"gpt-4o-mini", "claude-3-5-sonnet-20241022"} {
		params := openai.ChatCompletionNewParams{Model: model,
			Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("be brief"), openai.UserMessage("sdk " + model)}}
		t.Run(model+"/chat", func(t *testing.T) {
			cc, err := client.Chat.Completions.New(t.Context(), params)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(cc.Choices[0].Message.Content, "sdk "+model) || cc.Usage.TotalTokens == 0 {
				t.Fatalf("%+v", cc)
			}
		})
		t.Run(model+"/stream", func(t *testing.T) {
			p := params
			p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			p.Messages = []openai.ChatCompletionMessageParamUnion{openai.UserMessage("sdk stream " + model)}
			stream := client.Chat.Completions.NewStreaming(t.Context(), p)
			var acc openai.ChatCompletionAccumulator
			for stream.Next() {
				if !acc.AddChunk(stream.Current()) {
					t.Fatalf("accumulator rejected %s", stream.Current().RawJSON())
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(acc.Choices[0].Message.Content, "sdk stream "+model) || acc.Choices[0].FinishReason != "stop" || acc.Usage.TotalTokens == 0 {
				t.Fatalf("%+v", acc.ChatCompletion)
			}
		})
		t.Run(model+"/tools", func(t *testing.T) {
			p := params
			p.Messages = []openai.ChatCompletionMessageParamUnion{openai.UserMessage("weather in Paris SIM_TOOL_CALL " + model)}
			p.Tools = []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
				Name: "get_weather", Parameters: shared.FunctionParameters{"type": "object", "properties": map[string]any{"query": map[string]any{"type": "string"}}}})}
			cc, err := client.Chat.Completions.New(t.Context(), p)
			if err != nil {
				t.Fatal(err)
			}
			tc := cc.Choices[0].Message.ToolCalls
			if cc.Choices[0].FinishReason != "tool_calls" || len(tc) != 1 || tc[0].Function.Name != "get_weather" || !gjson.Valid(tc[0].Function.Arguments) {
				t.Fatalf("%+v", cc.Choices[0])
			}
			// Send the tool result back: the conversation continues.
			p.Messages = append(p.Messages, cc.Choices[0].Message.ToParam(), openai.ToolMessage(`{"temp":21}`, tc[0].ID))
			stream := client.Chat.Completions.NewStreaming(t.Context(), p)
			var acc openai.ChatCompletionAccumulator
			for stream.Next() {
				acc.AddChunk(stream.Current())
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if acc.Choices[0].FinishReason != "stop" || acc.Choices[0].Message.Content == "" {
				t.Fatalf("after tool result: %+v", acc.Choices[0])
			}
		})
	}
	t.Run("bad request error type", func(t *testing.T) {
		_, err := client.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{Model: "gpt-4o-mini",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")}, Temperature: openai.Float(7)})
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Param != "temperature" || !strings.Contains(apiErr.Message, "temperature") {
			t.Fatalf("got %v", err)
		}
	})
}

func TestBadInputsGetTheRightStatusAndEnvelope(t *testing.T) {
	s := startSim(t, simulated.Options{})
	cfg := simConfig(s)
	cfg.MaxRequestSize = 64 << 10
	cfg.Routing.MaxRetries = 0
	cfg.Routing.FirstByteTimeout = config.Duration(300 * time.Millisecond)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close()
	cfg.Providers = append(cfg.Providers, config.Provider{Name: "dead", Type: "openai", BaseURL: "http://" + dead + "/v1"})
	g := startGateway(t, cfg)
	big := chat("gpt-4o-mini", strings.Repeat("x", 1<<20+10))
	tests := []struct {
		name, method, path, body string
		status                   int
		typ, param, code         string
	}{
		{"malformed JSON", "POST", "/v1/chat/completions", `{"model":`, 400, "invalid_request_error", "", ""},
		{"missing model", "POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}]}`, 400, "invalid_request_error", "model", ""},
		{"empty messages", "POST", "/v1/chat/completions", `{"model":"gpt-4o","messages":[]}`, 400, "invalid_request_error", "messages", ""},
		{"hostile model name", "POST", "/v1/chat/completions", chat(`\"; rm -rf /`, "x"), 404, "not_found_error", "", "model_not_found"},
		{"unknown model", "POST", "/v1/chat/completions", chat("llama-9000", "x"), 404, "not_found_error", "", "model_not_found"},
		{"1 MB+ body", "POST", "/v1/chat/completions", big, 413, "invalid_request_error", "", "request_too_large"},
		{"unknown route", "GET", "/v2/everything", "", 404, "not_found_error", "", "unknown_url"},
		{"wrong method", "GET", "/v1/chat/completions", "", 405, "invalid_request_error", "", "method_not_allowed"},
		{"upstream 4xx passes through", "POST", "/v1/chat/completions", chat("gpt-4o-mini", "SIM_ERROR_400"), 400, "invalid_request_error", "", ""},
		{"upstream 5xx", "POST", "/v1/chat/completions", chat("gpt-4o-mini", "SIM_ERROR_500"), 502, "upstream_error", "", "upstream_error"},
		{"upstream timeout", "POST", "/v1/chat/completions", chat("gpt-4o-mini", "SIM_SLOW_3000"), 504, "", "", ""},
		{"dead provider", "POST", "/v1/chat/completions", chat("dead/some-model", "x"), 502, "upstream_error", "", "upstream_connection_refused"},
		{"bad cache header", "POST", "/v1/chat/completions", chat("gpt-4o-mini", "x"), 400, "invalid_request_error", "X-Cache-TTL", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, g.URL+tt.path, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/json")
			if tt.name == "bad cache header" {
				req.Header.Set("X-Cache-TTL", "forever")
			}
			start := time.Now()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if time.Since(start) > 5*time.Second {
				t.Fatalf("took %v", time.Since(start))
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			e := gjson.GetBytes(body, "error")
			if !e.IsObject() || e.Get("message").Str == "" || !e.Get("param").Exists() || !e.Get("code").Exists() {
				t.Fatalf("not an OpenAI envelope: %s", body)
			}
			if (tt.typ != "" && e.Get("type").Str != tt.typ) || e.Get("param").Str != tt.param || (tt.code != "" && e.Get("code").Str != tt.code) {
				t.Fatalf("envelope %s", body)
			}
		})
	}
	if n := s.Calls(); n != 3 {
		t.Fatalf("provider called %d times; only the three upstream cases may reach it", n)
	}
}

// slowUpstream streams one chunk, then waits; it records when the gateway
// cancels its request.
func slowUpstream(t *testing.T, cancelled chan<- struct{}) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, `data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"first"},"finish_reason":null}]}`+"\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			close(cancelled)
		case <-time.After(10 * time.Second):
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestClientDisconnectCancelsTheUpstreamCall(t *testing.T) {
	cancelled := make(chan struct{})
	up := slowUpstream(t, cancelled)
	cfg := config.Default()
	cfg.MetricsPort = 0
	cfg.Providers = []config.Provider{{Name: "local", Type: "openai", BaseURL: up.URL + "/v1"}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", g.URL+"/v1/chat/completions", strings.NewReader(chat("local/m", "hang", `"stream":true`)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	if !strings.Contains(line, "first") {
		t.Fatalf("first chunk not flushed: %q", line)
	}
	cancel()
	resp.Body.Close()
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream request was not cancelled when the client left")
	}
}

func TestGracefulShutdownFinishesAnInFlightStream(t *testing.T) {
	s := startSim(t, simulated.Options{ChunkDelay: 40 * time.Millisecond})
	cfg := simConfig(s)
	logger, _ := telemetry.NewLogger(io.Discard, "json", "info")
	a, err := app.New(context.Background(), cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	url := "http://" + ln.Addr().String()
	resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(chat("gpt-4o-mini", "long stream SIM_WORDS_40", `"stream":true`)))
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	cancel() // SIGTERM arrives mid-stream
	rest, err := io.ReadAll(br)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("stream cut during shutdown: %v", err)
	}
	if !strings.HasSuffix(strings.TrimSpace(string(rest)), "data: [DONE]") {
		t.Fatalf("stream did not complete: %q", rest)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server did not stop")
	}
	if _, err := http.Get(url + "/health/live"); err == nil {
		t.Fatal("server still accepts connections after shutdown")
	}
}

func TestProviderKeysNeverAppearInLogs(t *testing.T) {
	s := startSim(t, simulated.Options{APIKey: "sk-sim-secret-123456"})
	cfg := simConfig(s)
	for i := range cfg.Providers {
		cfg.Providers[i].APIKey = "sk-sim-secret-123456"
	}
	cfg.LogLevel = "debug"
	g := startGateway(t, cfg)
	for _, body := range []string{chat("gpt-4o-mini", "hello"), chat("claude-3-5-sonnet-20241022", "hello"), chat("gpt-4o-mini", "SIM_ERROR_500"),
		chat("gpt-4o-mini", "SIM_ERROR_400"), `{"model":`} {
		post(t, g.URL, body, "Authorization: Bearer sk-client-secret-999")
	}
	logs := g.Logs.String()
	if !strings.Contains(logs, "Request completed") {
		t.Fatalf("no request lines logged: %s", logs)
	}
	for _, secret := range []string{"sk-sim-secret-123456", "sk-client-secret-999"} {
		if strings.Contains(logs, secret) {
			t.Fatalf("key %s leaked into logs", secret)
		}
	}
}

func TestHealthModelsAndReadiness(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, simConfig(s))
	get := func(path string) (int, gjson.Result) {
		resp, err := http.Get(g.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, gjson.ParseBytes(b)
	}
	if code, h := get("/health"); code != 200 || h.Get("status").Str != "healthy" || h.Get("version").Str == "" || !h.Get("components.providers").Exists() {
		t.Fatalf("/health %d %s", code, h.Raw)
	}
	if code, _ := get("/health/live"); code != 200 {
		t.Fatal("/health/live")
	}
	if code, _ := get("/health/ready"); code != 200 {
		t.Fatal("/health/ready")
	}
	code, m := get("/v1/models")
	if code != 200 || m.Get("object").Str != "list" || !strings.Contains(m.Get("data.#.id").Raw, "sim-small") {
		t.Fatalf("/v1/models %d %s", code, m.Raw)
	}

	empty := config.Default()
	empty.MetricsPort = 0
	g2 := startGateway(t, empty)
	resp, err := http.Get(g2.URL + "/health/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Fatalf("ready without providers: %d", resp.StatusCode)
	}
	var h struct{ Status string }
	r2, _ := http.Get(g2.URL + "/health")
	json.NewDecoder(r2.Body).Decode(&h)
	r2.Body.Close()
	if r2.StatusCode != 503 || h.Status != "unhealthy" {
		t.Fatalf("/health without providers: %d %s", r2.StatusCode, h.Status)
	}
}
