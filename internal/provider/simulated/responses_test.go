package simulated

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/sse"
)

// responsesSchemas compiles the Responses schema subset the surface keeps.
func responsesSchemas(t *testing.T) map[string]*jsonschema.Schema {
	t.Helper()
	const url = "https://edge-agent.invalid/responses.json"
	f, err := os.Open("../../surface/responses/testdata/openai-schema/responses.json")
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
	for _, name := range []string{"Response", "ResponseStreamEvent", "ErrorResponse"} {
		if out[name], err = c.Compile(url + "#/$defs/" + name); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func validateSchema(t *testing.T, s *jsonschema.Schema, what string, b []byte) {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v: %s", what, err, b)
	}
	if err := s.Validate(inst); err != nil {
		t.Errorf("%s: %v\n%s", what, err, b)
	}
}

func TestResponsesAnswersMatchOpenAISchema(t *testing.T) {
	schemas := responsesSchemas(t)
	_, ts := start(t, Options{})
	for _, body := range []string{
		`{"model":"gpt-4o","input":"hello there","instructions":"be brief"}`,
		`{"model":"gpt-4o","input":[{"role":"user","content":[{"type":"input_text","text":"weather?"}]}],"tools":[{"type":"function","name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}]}`,
		`{"model":"gpt-4o","input":"SIM_WORDS_40 long","max_output_tokens":16}`,
	} {
		resp := post(t, ts, "/v1/responses", body)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", body, resp.StatusCode, b)
		}
		validateSchema(t, schemas["Response"], body, b)

		resp = post(t, ts, "/v1/responses", strings.Replace(body, `{"model"`, `{"stream":true,"model"`, 1))
		r := sse.NewReader(resp.Body)
		seq := int64(0)
		var last string
		for {
			ev, err := r.Next()
			if err != nil {
				break
			}
			validateSchema(t, schemas["ResponseStreamEvent"], string(ev.Event), ev.Data)
			if got := gjson.GetBytes(ev.Data, "sequence_number").Int(); got != seq {
				t.Errorf("sequence_number %d, want %d", got, seq)
			}
			if typ := gjson.GetBytes(ev.Data, "type").Str; typ != string(ev.Event) {
				t.Errorf("event %s carries type %s", ev.Event, typ)
			}
			seq++
			last = string(ev.Event)
		}
		resp.Body.Close()
		if last != "response.completed" && last != "response.incomplete" {
			t.Errorf("%s: the stream ended with %s", body, last)
		}
	}
}

func TestResponsesRefusesAPreviousResponseIDItNeverGave(t *testing.T) {
	_, ts := start(t, Options{})
	resp := post(t, ts, "/v1/responses", `{"model":"gpt-4o","input":"x","previous_response_id":"resp_abc"}`)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || gjson.GetBytes(b, "error.code").Str != "previous_response_not_found" {
		t.Errorf("%d %s", resp.StatusCode, b)
	}
}

func TestOfficialSDKReadsTheResponsesAPI(t *testing.T) {
	_, ts := start(t, Options{APIKey: "x"})
	client := openai.NewClient(option.WithBaseURL(ts.URL+"/v1/"), option.WithAPIKey("x"),
		option.WithHTTPClient(ts.Client()), option.WithMaxRetries(0))
	params := responses.ResponseNewParams{
		Model: "gpt-4o-mini",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("what does the gateway do?")},
	}
	r, err := client.Responses.New(t.Context(), params)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(r.OutputText(), "Simulated answer to: what does the gateway do?") || r.Status != "completed" || r.Usage.OutputTokens != DefaultWords {
		t.Errorf("response %s", r.RawJSON())
	}

	stream := client.Responses.NewStreaming(t.Context(), params)
	var text strings.Builder
	var done *responses.Response
	for stream.Next() {
		ev := stream.Current()
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
	if text.String() != r.OutputText() || done == nil || done.OutputText() != r.OutputText() {
		t.Errorf("streamed %q (final %v), want %q", text.String(), done, r.OutputText())
	}
}
