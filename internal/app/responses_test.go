package app_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/config"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
	"github.com/edge-agent/edge-agent/internal/testutil/redistest"
)

// The official OpenAI Go SDK's Responses client, pointed at the gateway:
// gpt-4o goes to an upstream that serves the Responses API (the simulated
// one, configured with surfaces: [responses]) and is passed through;
// claude-sonnet-4-5 goes to Anthropic, reached by translation through chat,
// and sim-small to an OpenAI-compatible server that serves chat only.

var responsesUpstreams = []struct{ name, model, provider, upstreamPath string }{
	{"passthrough", "gpt-4o", "openai", "/v1/responses"},
	{"translated", "claude-sonnet-4-5", "anthropic", "/v1/messages"},
	{"chat-only", "sim-small", "sim", "/v1/chat/completions"},
}

// responsesConfig serves the simulated provider with the openai provider
// speaking the Responses API and two client keys, alice and bob.
func responsesConfig(s *sim) config.Config {
	cfg := simConfig(s)
	for i := range cfg.Providers {
		if cfg.Providers[i].Name == "openai" {
			cfg.Providers[i].Surfaces = []string{"responses"}
		}
	}
	cfg.Auth.Keys = []config.APIKey{{Name: "alice", Key: "sk-alice"}, {Name: "bob", Key: "sk-bob"}}
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	return cfg
}

func responsesClient(g *gw, key string) openai.Client {
	return openai.NewClient(option.WithBaseURL(g.URL+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
}

func responsesWeatherTool() responses.ToolUnionParam {
	return responses.ToolParamOfFunction("get_weather", map[string]any{
		"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}, "required": []string{"city"},
	}, true)
}

func textInput(s string) responses.ResponseNewParamsInputUnion {
	return responses.ResponseNewParamsInputUnion{OfString: openai.String(s)}
}

func TestOpenAISDKResponsesNewAndStreamingThroughTheGateway(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, responsesConfig(s))
	client := responsesClient(g, "sk-alice")
	for _, up := range responsesUpstreams {
		t.Run(up.name+"/new", func(t *testing.T) {
			var raw *http.Response
			r, err := client.Responses.New(t.Context(), responses.ResponseNewParams{Model: up.model,
				Instructions: openai.String("be brief"), Input: textInput("sdk responses new " + up.name)}, option.WithResponseInto(&raw))
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != "completed" || !strings.Contains(r.OutputText(), "sdk responses new "+up.name) || r.Usage.OutputTokens == 0 || !strings.HasPrefix(r.ID, "resp_") {
				t.Fatalf("%s", r.RawJSON())
			}
			if raw.Header.Get("X-Edge-Provider") != up.provider {
				t.Errorf("X-Edge-Provider = %q", raw.Header.Get("X-Edge-Provider"))
			}
			if path, _, _ := s.LastRequest(); path != up.upstreamPath {
				t.Errorf("upstream path %s, want %s", path, up.upstreamPath)
			}
		})
		t.Run(up.name+"/stream", func(t *testing.T) {
			stream := client.Responses.NewStreaming(t.Context(), responses.ResponseNewParams{Model: up.model, Input: textInput("sdk responses stream " + up.name)})
			var text strings.Builder
			var done *responses.Response
			seq := int64(0)
			for stream.Next() {
				ev := stream.Current()
				if ev.SequenceNumber != seq {
					t.Errorf("sequence_number %d, want %d", ev.SequenceNumber, seq)
				}
				seq++
				switch ev.Type {
				case "response.output_text.delta":
					text.WriteString(ev.Delta)
				case "response.completed":
					c := ev.AsResponseCompleted()
					done = &c.Response
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if done == nil || !strings.Contains(text.String(), "sdk responses stream "+up.name) || done.OutputText() != text.String() || done.Usage.OutputTokens == 0 {
				t.Fatalf("streamed %q, completed %v", text.String(), done)
			}
			// The streamed response was stored: it can be read back.
			got, err := client.Responses.Get(t.Context(), done.ID, responses.ResponseGetParams{})
			if err != nil || got.OutputText() != text.String() {
				t.Fatalf("Get(%s) = %v, %v", done.ID, got, err)
			}
		})
	}
}

// functionRoundTrip asks for the weather on first, and answers the call on
// second with previous_response_id; it returns both responses.
func functionRoundTrip(t *testing.T, first, second openai.Client, model string) (*responses.Response, *responses.Response) {
	t.Helper()
	r1, err := first.Responses.New(t.Context(), responses.ResponseNewParams{Model: model,
		Input: textInput("what is the weather in Paris?"), Tools: []responses.ToolUnionParam{responsesWeatherTool()}})
	if err != nil {
		t.Fatal(err)
	}
	var call *responses.ResponseFunctionToolCall
	for _, it := range r1.Output {
		if it.Type == "function_call" {
			c := it.AsFunctionCall()
			call = &c
		}
	}
	if call == nil || call.Name != "get_weather" || !gjson.Valid(call.Arguments) || r1.Status != "completed" {
		t.Fatalf("no function call: %s", r1.RawJSON())
	}
	out := responses.ResponseInputItemParamOfFunctionCallOutput("18C and sunny")
	out.OfFunctionCallOutput.CallID = openai.String(call.CallID)
	r2, err := second.Responses.New(t.Context(), responses.ResponseNewParams{Model: model,
		PreviousResponseID: openai.String(r1.ID), Tools: []responses.ToolUnionParam{responsesWeatherTool()},
		Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{out}}})
	if err != nil {
		t.Fatal(err)
	}
	if r2.Status != "completed" || r2.OutputText() == "" || r2.PreviousResponseID != r1.ID {
		t.Fatalf("the continuation: %s", r2.RawJSON())
	}
	return r1, r2
}

func TestOpenAISDKFunctionCallRoundTripContinuesWithPreviousResponseID(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, responsesConfig(s))
	alice, bob := responsesClient(g, "sk-alice"), responsesClient(g, "sk-bob")
	for _, up := range responsesUpstreams {
		t.Run(up.name, func(t *testing.T) {
			r1, r2 := functionRoundTrip(t, alice, alice, up.model)
			// The upstream read the whole conversation: the call and its
			// output (the simulated upstream keeps nothing, and refuses a
			// previous_response_id, as OpenAI does an id it never gave).
			_, _, body := s.LastRequest()
			if !strings.Contains(string(body), "get_weather") || !strings.Contains(string(body), "18C and sunny") || strings.Contains(string(body), r1.ID) {
				t.Errorf("the upstream got %s", body)
			}
			items, err := alice.Responses.InputItems.List(t.Context(), r2.ID, responses.InputItemListParams{Order: responses.InputItemListParamsOrderAsc})
			if err != nil {
				t.Fatal(err)
			}
			var types []string
			for _, it := range items.Data {
				types = append(types, it.Type)
			}
			if got := strings.Join(types, ","); got != "message,function_call,function_call_output" {
				t.Errorf("input items %s", got)
			}

			// Another key's response is a 404, to read, list, delete or continue.
			var apiErr *openai.Error
			if _, err := bob.Responses.Get(t.Context(), r2.ID, responses.ResponseGetParams{}); !errors.As(err, &apiErr) || apiErr.StatusCode != 404 {
				t.Errorf("bob reads alice's response: %v", err)
			}
			if err := bob.Responses.Delete(t.Context(), r2.ID); !errors.As(err, &apiErr) || apiErr.StatusCode != 404 {
				t.Errorf("bob deletes alice's response: %v", err)
			}
			_, err = bob.Responses.New(t.Context(), responses.ResponseNewParams{Model: up.model, PreviousResponseID: openai.String(r2.ID), Input: textInput("and tomorrow?")})
			if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Param != "previous_response_id" {
				t.Errorf("bob continues alice's response: %v", err)
			}
			if err := alice.Responses.Delete(t.Context(), r2.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := alice.Responses.Get(t.Context(), r2.ID, responses.ResponseGetParams{}); !errors.As(err, &apiErr) || apiErr.StatusCode != 404 {
				t.Errorf("a deleted response: %v", err)
			}
		})
	}
}

func TestResponsesContinueAcrossTwoGatewaysSharingRedis(t *testing.T) {
	rd := redistest.Start(t)
	s := startSim(t, simulated.Options{})
	cfg := responsesConfig(s)
	cfg.Cache.RedisURL = rd.URL()
	g1, g2 := startGateway(t, cfg), startGateway(t, cfg)
	for _, up := range responsesUpstreams {
		t.Run(up.name, func(t *testing.T) {
			_, r2 := functionRoundTrip(t, responsesClient(g1, "sk-alice"), responsesClient(g2, "sk-alice"), up.model)
			c1 := responsesClient(g1, "sk-alice")
			got, err := c1.Responses.Get(t.Context(), r2.ID, responses.ResponseGetParams{})
			if err != nil || got.OutputText() != r2.OutputText() {
				t.Fatalf("the first gateway reads the second's response: %v %v", got, err)
			}
		})
	}
}

func TestCachedResponseGetsItsOwnIDAndIsStoredUnderIt(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, responsesConfig(s))
	client := responsesClient(g, "sk-alice")
	for _, up := range responsesUpstreams {
		t.Run(up.name, func(t *testing.T) {
			params := responses.ResponseNewParams{Model: up.model, Input: textInput("cache me " + up.name)}
			var raw1, raw2 *http.Response
			r1, err := client.Responses.New(t.Context(), params, option.WithResponseInto(&raw1))
			if err != nil {
				t.Fatal(err)
			}
			calls := s.Calls()
			r2, err := client.Responses.New(t.Context(), params, option.WithResponseInto(&raw2))
			if err != nil {
				t.Fatal(err)
			}
			if raw2.Header.Get("X-Cache-Status") != "HIT" || s.Calls() != calls {
				t.Fatalf("the repeat was not a hit: %s", raw2.Header.Get("X-Cache-Status"))
			}
			if r1.ID == r2.ID || r1.OutputText() != r2.OutputText() {
				t.Errorf("hit %s (%q), miss %s (%q)", r2.ID, r2.OutputText(), r1.ID, r1.OutputText())
			}
			if got, err := client.Responses.Get(t.Context(), r2.ID, responses.ResponseGetParams{}); err != nil || got.ID != r2.ID {
				t.Errorf("the hit was not stored under its id: %v", err)
			}
			stream := client.Responses.NewStreaming(t.Context(), params)
			var completed string
			for stream.Next() {
				if ev := stream.Current(); ev.Type == "response.completed" {
					completed = ev.AsResponseCompleted().Response.ID
				}
			}
			if err := stream.Err(); err != nil || completed == "" || completed == r1.ID || completed == r2.ID {
				t.Errorf("the replayed hit: id %q, %v", completed, err)
			}
		})
	}
}

func TestPreviousResponseIDWithTheStoreOffIsA400OnTranslatedRoutes(t *testing.T) {
	s := startSim(t, simulated.Options{})
	cfg := responsesConfig(s)
	cfg.Responses.Store = false
	g := startGateway(t, cfg)
	client := responsesClient(g, "sk-alice")
	_, err := client.Responses.New(t.Context(), responses.ResponseNewParams{Model: "claude-sonnet-4-5",
		PreviousResponseID: openai.String("resp_abc"), Input: textInput("hi")})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Param != "previous_response_id" || !strings.Contains(apiErr.Message, "store is off") {
		t.Fatalf("%v", err)
	}
	if _, err := client.Responses.Get(t.Context(), "resp_abc", responses.ResponseGetParams{}); !errors.As(err, &apiErr) || apiErr.StatusCode != 404 {
		t.Errorf("GET with the store off: %v", err)
	}
}

func TestResponsesBadInputGetsOpenAIsEnvelope(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, responsesConfig(s))
	for _, tc := range []struct{ body, param string }{
		{`{"model":"gpt-4o"}`, "input"},
		{`{"model":"gpt-4o","input":"x","temperature":9}`, "temperature"},
		{`{"model":"claude-sonnet-4-5","input":"x","tools":[{"type":"web_search"}]}`, "tools[0].type"},
	} {
		req, _ := http.NewRequest(http.MethodPost, g.URL+"/v1/responses", strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer sk-alice")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || gjson.GetBytes(b, "error.param").Str != tc.param || gjson.GetBytes(b, "error.type").Str != "invalid_request_error" {
			t.Errorf("%s: %d %s", tc.body, resp.StatusCode, b)
		}
	}
}

func TestStoredResponseRoutesAnswerOtherMethodsWith405(t *testing.T) {
	s := startSim(t, simulated.Options{})
	g := startGateway(t, responsesConfig(s))
	req, _ := http.NewRequest(http.MethodPut, g.URL+"/v1/responses/resp_1", nil)
	req.Header.Set("Authorization", "Bearer sk-alice")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "DELETE, GET" || gjson.GetBytes(b, "error.code").Str != "method_not_allowed" {
		t.Errorf("%d %q %s", resp.StatusCode, resp.Header.Get("Allow"), b)
	}
}

// responsesSchemas compiles the Responses schema subset the surface keeps.
func responsesSchemas(t *testing.T) map[string]*jsonschema.Schema {
	t.Helper()
	const url = "https://edge-agent.invalid/responses.json"
	f, err := os.Open("../surface/responses/testdata/openai-schema/responses.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(url, doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]*jsonschema.Schema{}
	for _, name := range []string{"Response", "ResponseStreamEvent", "ErrorResponse", "ResponseItemList"} {
		if out[name], err = c.Compile(url + "#/$defs/" + name); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// callResponses sends one request to the gateway as alice.
func callResponses(t *testing.T, method, url, body string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer sk-alice")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, b
}

// conformEvents validates every event of a Responses stream, its name
// against its type and its sequence numbers from 0, and returns the
// terminal event's response.
func conformEvents(t *testing.T, schemas map[string]*jsonschema.Schema, what string, stream []byte) []byte {
	t.Helper()
	var final []byte
	seq := int64(0)
	for block := range strings.SplitSeq(strings.TrimSpace(string(stream)), "\n\n") {
		name, data, ok := strings.Cut(block, "\ndata: ")
		if !ok || !strings.HasPrefix(name, "event: ") {
			t.Fatalf("%s: not an event: %q", what, block)
		}
		name = strings.TrimPrefix(name, "event: ")
		conform(t, schemas, "ResponseStreamEvent", what+" "+name, []byte(data))
		if gjson.Get(data, "type").Str != name || gjson.Get(data, "sequence_number").Int() != seq {
			t.Errorf("%s: event %d is %s: %s", what, seq, name, data)
		}
		seq++
		if r := gjson.Get(data, "response"); r.Exists() && name != "response.created" && name != "response.in_progress" {
			final = []byte(r.Raw)
		}
	}
	return final
}

func TestEveryResponsesAnswerMatchesOpenAISchema(t *testing.T) {
	schemas := responsesSchemas(t)
	s := startSim(t, simulated.Options{})
	g := startGateway(t, responsesConfig(s))
	for _, up := range responsesUpstreams {
		t.Run(up.name, func(t *testing.T) {
			for _, body := range []string{
				`{"model":"` + up.model + `","input":"schema ` + up.name + `","instructions":"be brief","metadata":{"k":"v"}}`,
				`{"model":"` + up.model + `","input":[{"role":"user","content":[{"type":"input_text","text":"weather?"}]}],"tools":[{"type":"function","name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}]}`,
				`{"model":"` + up.model + `","input":"SIM_WORDS_40 cut ` + up.name + `","max_output_tokens":16}`,
			} {
				for _, tier := range []string{"MISS", "HIT"} {
					resp, b := callResponses(t, http.MethodPost, g.URL+"/v1/responses", body)
					if resp.StatusCode != 200 || resp.Header.Get("X-Cache-Status") != tier {
						t.Fatalf("%s %s: %d %s %s", tier, body, resp.StatusCode, resp.Header.Get("X-Cache-Status"), b)
					}
					conform(t, schemas, "Response", tier+" JSON", b)
					stream := strings.Replace(body, `{"model"`, `{"stream":true,"model"`, 1)
					resp, b = callResponses(t, http.MethodPost, g.URL+"/v1/responses", stream)
					if resp.StatusCode != 200 || resp.Header.Get("X-Cache-Status") != "HIT" {
						t.Fatalf("stream: %d %s %s", resp.StatusCode, resp.Header.Get("X-Cache-Status"), b)
					}
					final := conformEvents(t, schemas, tier+" replay", b)
					id := gjson.GetBytes(final, "id").Str
					resp, b = callResponses(t, http.MethodGet, g.URL+"/v1/responses/"+id, "")
					if resp.StatusCode != 200 || string(bytes.TrimSpace(b)) != string(final) {
						t.Errorf("GET %s: %d %s\nwant %s", id, resp.StatusCode, b, final)
					}
					_, b = callResponses(t, http.MethodGet, g.URL+"/v1/responses/"+id+"/input_items", "")
					conform(t, schemas, "ResponseItemList", "input_items", b)
				}
			}
			// A fresh stream (a new question), not a replay.
			resp, b := callResponses(t, http.MethodPost, g.URL+"/v1/responses", `{"stream":true,"model":"`+up.model+`","input":"fresh stream `+up.name+`"}`)
			if resp.StatusCode != 200 || resp.Header.Get("X-Cache-Status") != "MISS" {
				t.Fatalf("fresh stream: %d %s", resp.StatusCode, resp.Header.Get("X-Cache-Status"))
			}
			conformEvents(t, schemas, "fresh stream", b)
			_, b = callResponses(t, http.MethodGet, g.URL+"/v1/responses/resp_unknown", "")
			conform(t, schemas, "ErrorResponse", "404", b)
		})
	}
}
