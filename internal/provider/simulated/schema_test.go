package simulated

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/tidwall/gjson"
)

// validate checks value against schema with a real JSON Schema validator
// (draft 2020-12, formats asserted).
func validate(t *testing.T, schema, value string) {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(schema))
	if err != nil {
		t.Fatalf("schema: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("schema.json")
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(value))
	if err != nil {
		t.Fatalf("generated value is not JSON: %v\n%s", err, value)
	}
	if err := sch.Validate(v); err != nil {
		t.Fatalf("generated value does not satisfy the schema: %v\nvalue %s", err, value)
	}
}

var schemaCases = []struct{ name, schema string }{
	{"object with every scalar type", `{"type":"object","properties":{"s":{"type":"string"},"n":{"type":"number"},"i":{"type":"integer"},"b":{"type":"boolean"},"z":{"type":"null"}},"required":["s","n","i","b","z"],"additionalProperties":false}`},
	{"enum and const", `{"type":"object","properties":{"unit":{"enum":["celsius","fahrenheit"]},"v":{"const":3}},"required":["unit","v"]}`},
	{"array with minItems and unique enum items", `{"type":"array","items":{"enum":["a","b","c"]},"minItems":2,"uniqueItems":true}`},
	{"array of objects", `{"type":"array","items":{"type":"object","properties":{"x":{"type":"integer","minimum":10,"maximum":12}},"required":["x"]},"minItems":3,"maxItems":3}`},
	{"anyOf with null first", `{"anyOf":[{"type":"null"},{"type":"string","minLength":80}]}`},
	{"oneOf", `{"oneOf":[{"type":"integer","multipleOf":7,"exclusiveMinimum":7},{"type":"string"}]}`},
	{"type list", `{"type":["null","integer"],"exclusiveMaximum":0}`},
	{"refs to $defs", `{"$defs":{"Step":{"type":"object","properties":{"explanation":{"type":"string"},"output":{"type":"string"}},"required":["explanation","output"],"additionalProperties":false}},` +
		`"type":"object","properties":{"steps":{"type":"array","items":{"$ref":"#/$defs/Step"}},"final_answer":{"type":"string"}},"required":["steps","final_answer"],"additionalProperties":false}`},
	{"refs to definitions", `{"definitions":{"a b":{"type":"integer"}},"type":"object","properties":{"n":{"$ref":"#/definitions/a b"}},"required":["n"]}`},
	{"recursive tree", `{"$defs":{"node":{"type":"object","properties":{"name":{"type":"string"},"children":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["name","children"]}},"$ref":"#/$defs/node"}`},
	{"allOf merges objects", `{"allOf":[{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]},{"properties":{"b":{"type":"boolean"}},"required":["b"]}]}`},
	{"formats", `{"type":"object","properties":{"d":{"type":"string","format":"date"},"dt":{"type":"string","format":"date-time"},"e":{"type":"string","format":"email"},` +
		`"u":{"type":"string","format":"uri"},"id":{"type":"string","format":"uuid"},"ip":{"type":"string","format":"ipv4"},"t":{"type":"string","format":"time"}},"required":["d","dt","e","u","id","ip","t"]}`},
	{"string bounds", `{"type":"string","minLength":3,"maxLength":5}`},
	{"number bounds", `{"type":"number","minimum":0.5,"maximum":0.75}`},
	{"required name not declared", `{"type":"object","required":["k"],"additionalProperties":{"type":"integer"}}`},
	{"tuple", `{"type":"array","prefixItems":[{"type":"string"},{"type":"integer"}],"items":false}`},
	{"empty schema", `{}`},
}

func TestSchemaValuesSatisfyTheirSchemas(t *testing.T) {
	for _, tc := range schemaCases {
		t.Run(tc.name, func(t *testing.T) {
			root := gjson.Parse(tc.schema)
			g := schemaGen{root: root, text: "What is the weather in Paris?"}
			v := string(g.appendValue(nil, root, 0, 0))
			validate(t, tc.schema, v)
			if again := string(g.appendValue(nil, root, 0, 0)); again != v {
				t.Fatalf("not deterministic: %s then %s", v, again)
			}
		})
	}
}

func TestToolArgumentsAreAnObjectOfTheParametersSchema(t *testing.T) {
	for _, tc := range []struct{ name, schema, want string }{
		{"declared properties", `{"type":"object","properties":{"city":{"type":"string"},"unit":{"enum":["c","f"]}},"required":["city","unit"]}`, `{"city":"Paris","unit":"c"}`},
		{"no properties", `{"type":"object"}`, `{"query":"Paris"}`},
		{"closed empty object", `{"type":"object","properties":{},"additionalProperties":false}`, `{}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := gjson.Parse(tc.schema)
			g := schemaGen{root: root, text: "Paris"}
			got := string(g.appendArgs(nil, root))
			if got != tc.want {
				t.Fatalf("arguments %s, want %s", got, tc.want)
			}
			validate(t, tc.schema, got)
		})
	}
}

const weatherSchema = `{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer","minimum":1,"maximum":7},"when":{"type":"string","format":"date"}},"required":["city","days","when"],"additionalProperties":false}`

// TestOpenAIResponseFormatAnswersSatisfyTheSchema covers json_schema and
// json_object answers, JSON and streamed (the stream's pieces concatenate to
// the same value).
func TestOpenAIResponseFormatAnswersSatisfyTheSchema(t *testing.T) {
	_, ts := start(t, Options{})
	for _, tc := range []struct{ name, format, schema string }{
		{"json_schema", `{"type":"json_schema","json_schema":{"name":"weather","strict":true,"schema":` + weatherSchema + `}}`, weatherSchema},
		{"json_object", `{"type":"json_object"}`, `{"type":"object"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := openAIReq("weather in Paris as JSON", `,"response_format":`+tc.format)
			root := mustJSON(t, post(t, ts, "/v1/chat/completions", req), 200)
			content := root.Get("choices.0.message.content").Str
			if root.Get("choices.0.finish_reason").Str != "stop" {
				t.Fatalf("answer %s", root.Raw)
			}
			validate(t, tc.schema, content)
			evs := mustEvents(t, post(t, ts, "/v1/chat/completions", strings.TrimSuffix(req, "}")+`,"stream":true}`))
			var streamed strings.Builder
			for _, ev := range evs {
				streamed.WriteString(gjson.Get(ev.data, "choices.0.delta.content").Str)
			}
			if streamed.String() != content {
				t.Fatalf("stream %q, JSON answer %q", streamed.String(), content)
			}
		})
	}
}

// TestToolsOfferedAreCalledUnlessToolChoiceIsNone: with tools and tool_choice
// auto (or absent) the answer is a call whose arguments satisfy the tool's
// parameters, in both wire formats.
func TestToolsOfferedAreCalledUnlessToolChoiceIsNone(t *testing.T) {
	_, ts := start(t, Options{})
	openAITools := `,"tools":[{"type":"function","function":{"name":"get_weather","parameters":` + weatherSchema + `}}]`
	anthropicTools := `,"tools":[{"name":"get_weather","input_schema":` + weatherSchema + `}]`
	for _, choice := range []string{"", `,"tool_choice":"auto"`} {
		root := mustJSON(t, post(t, ts, "/v1/chat/completions", openAIReq("weather in Paris", openAITools+choice)), 200)
		call := root.Get("choices.0.message.tool_calls.0.function")
		if root.Get("choices.0.finish_reason").Str != "tool_calls" || call.Get("name").Str != "get_weather" {
			t.Fatalf("tool_choice %q: %s", choice, root.Raw)
		}
		validate(t, weatherSchema, call.Get("arguments").Str)
	}
	root := mustJSON(t, post(t, ts, "/v1/messages", anthropicReq("weather in Paris", anthropicTools+`,"tool_choice":{"type":"auto"}`)), 200)
	if root.Get("stop_reason").Str != "tool_use" || root.Get("content.0.name").Str != "get_weather" {
		t.Fatalf("anthropic: %s", root.Raw)
	}
	validate(t, weatherSchema, root.Get("content.0.input").Raw)
	// Streamed, the input pieces concatenate to the same arguments.
	evs := mustEvents(t, post(t, ts, "/v1/messages", anthropicReq("weather in Paris", anthropicTools+`,"stream":true`)))
	var input bytes.Buffer
	for _, ev := range evs {
		input.WriteString(gjson.Get(ev.data, "delta.partial_json").Str)
	}
	if !json.Valid(input.Bytes()) {
		t.Fatalf("streamed input %q", input.String())
	}
	validate(t, weatherSchema, input.String())

	none := mustJSON(t, post(t, ts, "/v1/chat/completions", openAIReq("weather in Paris", openAITools+`,"tool_choice":"none"`)), 200)
	if none.Get("choices.0.message.tool_calls").Exists() || none.Get("choices.0.finish_reason").Str != "stop" {
		t.Fatalf("tool_choice none: %s", none.Raw)
	}
}
