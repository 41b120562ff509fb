package app_test

import (
	"bytes"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/config"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
	"github.com/edge-agent/edge-agent/internal/testutil/redistest"
)

// This file checks that every kind of answer the gateway sends is valid
// against OpenAI's published schema (the subset in
// testdata/openai-schema/openai.json): strictly typed clients generated from
// that schema must be able to read all of them.

const schemaURL = "https://edge-agent.invalid/openai.json"

// openAISchemas compiles the schema subset's entry points by component name.
func openAISchemas(t *testing.T) map[string]*jsonschema.Schema {
	t.Helper()
	f, err := os.Open("testdata/openai-schema/openai.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("openai.json: %v", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(schemaURL, doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]*jsonschema.Schema{}
	for _, name := range []string{"CreateChatCompletionResponse", "CreateChatCompletionStreamResponse", "ErrorResponse", "ListModelsResponse"} {
		s, err := c.Compile(schemaURL + "#/$defs/" + name)
		if err != nil {
			t.Fatalf("compile %s: %v", name, err)
		}
		out[name] = s
	}
	return out
}

// conform validates body against the named schema.
func conform(t *testing.T, schemas map[string]*jsonschema.Schema, name, what string, body []byte) {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s is not JSON: %v: %s", what, err, body)
	}
	if err := schemas[name].Validate(inst); err != nil {
		t.Errorf("%s is not a valid %s: %#v\n%s", what, name, err, body)
	}
}

// conformStream validates every chunk of an SSE answer and returns the
// chunks (without [DONE]). Error events inside a stream are OpenAI error
// envelopes.
func conformStream(t *testing.T, schemas map[string]*jsonschema.Schema, what string, body []byte) []string {
	t.Helper()
	ev := sseEvents(t, body)
	if len(ev) < 2 {
		t.Fatalf("%s: a stream of %d events: %s", what, len(ev), body)
	}
	var chunks []string
	for i, e := range ev {
		if e == "[DONE]" {
			if i != len(ev)-1 {
				t.Fatalf("%s: [DONE] before the end", what)
			}
			continue
		}
		if gjson.Get(e, "error").Exists() {
			conform(t, schemas, "ErrorResponse", what+" error event", []byte(e))
			continue
		}
		conform(t, schemas, "CreateChatCompletionStreamResponse", what+" chunk "+itoa(int64(i)), []byte(e))
		chunks = append(chunks, e)
	}
	return chunks
}

func TestEveryAnswerKindMatchesOpenAISchema(t *testing.T) {
	schemas := openAISchemas(t)
	s := startSim(t, simulated.Options{})
	r := redistest.Start(t)
	cfg := redisConfig(s, r)
	g := startGateway(t, cfg)
	other := startGateway(t, cfg) // shares L2 with g: its first answer is an L2 hit

	providers := []struct{ provider, model string }{
		{"openai", "gpt-4o-mini"},
		{"anthropic", "claude-3-5-sonnet-20241022"},
	}
	kinds := []struct {
		name   string
		extra  []string
		stream bool
		usage  bool
	}{
		{"json", nil, false, false},
		{"stream", []string{`"stream":true`}, true, false},
		{"stream+usage", []string{`"stream":true`, `"stream_options":{"include_usage":true}`}, true, true},
		{"tools/json", []string{weatherTool, `"tool_choice":"required"`}, false, false},
		{"tools/stream+usage", []string{weatherTool, `"tool_choice":"required"`, `"stream":true`, `"stream_options":{"include_usage":true}`}, true, true},
	}
	for _, p := range providers {
		for _, k := range kinds {
			t.Run(p.provider+"/"+k.name, func(t *testing.T) {
				body := chat(p.model, "conformance "+p.provider+" "+k.name, k.extra...)
				var key string
				for _, step := range []struct{ name, url, want string }{
					{"miss", g.URL, "MISS/"},
					{"l1 hit", g.URL, "HIT/L1"},
					{"l2 hit", other.URL, "HIT/L2"},
				} {
					if step.name == "l2 hit" {
						waitInL2(t, r, key)
					}
					resp, out := post(t, step.url, body)
					if resp.StatusCode != http.StatusOK || layer(resp) != step.want {
						t.Fatalf("%s: %d %s, want 200 %s: %s", step.name, resp.StatusCode, layer(resp), step.want, out)
					}
					key = resp.Header.Get("X-Cache-Key")
					what := p.provider + " " + k.name + " " + step.name
					if !k.stream {
						conform(t, schemas, "CreateChatCompletionResponse", what, out)
						if strings.HasPrefix(k.name, "tools") && gjson.GetBytes(out, "choices.0.message.tool_calls.0.function.name").Str != "get_weather" {
							t.Fatalf("%s: no tool call: %s", what, out)
						}
						continue
					}
					chunks := conformStream(t, schemas, what, out)
					last := gjson.Parse(chunks[len(chunks)-1])
					if k.usage != (last.Get("choices.#").Int() == 0 && last.Get("usage").IsObject()) {
						t.Fatalf("%s: usage chunk present=%v, asked %v: %s", what, !k.usage, k.usage, last.Raw)
					}
				}
				if k.stream {
					// The stored stream, asked for as JSON: the accumulated answer.
					var extra []string
					for _, e := range k.extra {
						if !strings.HasPrefix(e, `"stream`) {
							extra = append(extra, e)
						}
					}
					resp, out := post(t, g.URL, chat(p.model, "conformance "+p.provider+" "+k.name, extra...))
					if resp.StatusCode != http.StatusOK || layer(resp) != "HIT/L1" {
						t.Fatalf("json from a stored stream: %d %s: %s", resp.StatusCode, layer(resp), out)
					}
					conform(t, schemas, "CreateChatCompletionResponse", p.provider+" "+k.name+" as json", out)
				}
			})
		}
	}

	t.Run("upstream error", func(t *testing.T) {
		resp, out := post(t, g.URL, chat("gpt-4o-mini", "SIM_ERROR_500"))
		if resp.StatusCode < 500 {
			t.Fatalf("%d %s", resp.StatusCode, out)
		}
		conform(t, schemas, "ErrorResponse", "upstream 5xx", out)
	})
	for _, p := range providers {
		t.Run(p.provider+"/error inside a stream", func(t *testing.T) {
			resp, out := post(t, g.URL, chat(p.model, "SIM_STREAM_ERROR", `"stream":true`))
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(out), `"error"`) {
				t.Fatalf("%d %s", resp.StatusCode, out)
			}
			conformStream(t, schemas, p.provider+" stream error", out)
		})
	}
	for _, c := range []struct{ name, body string }{
		{"400 bad JSON", `{"model":`},
		{"400 no messages", `{"model":"gpt-4o-mini"}`},
		{"404 unknown model", chat("no-such-model", "hi")},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, out := post(t, g.URL, c.body)
			if resp.StatusCode < 400 || resp.StatusCode >= 500 {
				t.Fatalf("%d %s", resp.StatusCode, out)
			}
			conform(t, schemas, "ErrorResponse", c.name, out)
		})
	}
	t.Run("models list", func(t *testing.T) {
		status, _, out := call(t, http.MethodGet, g.URL+"/v1/models")
		if status != http.StatusOK || gjson.GetBytes(out, "data.#").Int() == 0 {
			t.Fatalf("%d %s", status, out)
		}
		conform(t, schemas, "ListModelsResponse", "GET /v1/models", out)
	})

	keyed := startGateway(t, accessConfig(s, config.APIKey{Name: "team-a", Key: "sk-team-a-0123456789"}))
	for _, c := range []struct{ name, header string }{
		{"401 without a key", ""},
		{"401 with a wrong key", "Authorization: Bearer sk-wrong-0123456789"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var headers []string
			if c.header != "" {
				headers = append(headers, c.header)
			}
			resp, out := post(t, keyed.URL, chat("gpt-4o-mini", "hi"), headers...)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("%d %s", resp.StatusCode, out)
			}
			conform(t, schemas, "ErrorResponse", c.name, out)
			status, _, models := call(t, http.MethodGet, keyed.URL+"/v1/models", headers...)
			if status != http.StatusUnauthorized {
				t.Fatalf("models: %d %s", status, models)
			}
			conform(t, schemas, "ErrorResponse", c.name+" on /v1/models", models)
		})
	}
}
