package embeddings

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/internal/api"
)

func TestParseSplitsEveryInputShape(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		inputs []string
		tokens bool
		single bool
		enc    string
	}{
		{"a string", `{"model":"m","input":"hello"}`, []string{`"hello"`}, false, true, EncodingFloat},
		{"strings", `{"model":"m","input":["a","b c"]}`, []string{`"a"`, `"b c"`}, false, false, EncodingFloat},
		{"a token array", `{"model":"m","input":[1,2,3]}`, []string{`[1,2,3]`}, true, true, EncodingFloat},
		{"token arrays", `{"model":"m","input":[[1,2],[3]]}`, []string{`[1,2]`, `[3]`}, true, false, EncodingFloat},
		{"base64", `{"model":"m","input":"x","encoding_format":"base64"}`, []string{`"x"`}, false, true, EncodingBase64},
		{"float named", `{"model":"m","input":"x","encoding_format":"float","dimensions":256,"user":"u"}`, []string{`"x"`}, false, true, EncodingFloat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := Parse([]byte(tt.body), api.DefaultLimits)
			if err != nil {
				t.Fatal(err)
			}
			if req.Model != "m" || !slices.Equal(req.Inputs, tt.inputs) || req.Tokens != tt.tokens || req.Single != tt.single || req.Encoding != tt.enc {
				t.Errorf("got model %q inputs %q tokens %v single %v encoding %q", req.Model, req.Inputs, req.Tokens, req.Single, req.Encoding)
			}
		})
	}
}

func TestParseRejectsBadInputNamingTheField(t *testing.T) {
	tests := []struct {
		name, body, param string
	}{
		{"empty body", ``, ""},
		{"not an object", `[1]`, ""},
		{"not JSON", `{"model":`, ""},
		{"duplicate key", `{"model":"m","input":"a","input":"b"}`, "input"},
		{"no model", `{"input":"a"}`, "model"},
		{"model not a string", `{"model":3,"input":"a"}`, "model"},
		{"no input", `{"model":"m"}`, "input"},
		{"empty string", `{"model":"m","input":""}`, "input"},
		{"empty array", `{"model":"m","input":[]}`, "input"},
		{"an object", `{"model":"m","input":{"text":"a"}}`, "input"},
		{"empty string in array", `{"model":"m","input":["a",""]}`, "input[1]"},
		{"mixed strings and tokens", `{"model":"m","input":["a",[1]]}`, "input[1]"},
		{"mixed tokens and strings", `{"model":"m","input":[[1],"a"]}`, "input[1]"},
		{"negative token", `{"model":"m","input":[1,-2]}`, "input"},
		{"fractional token", `{"model":"m","input":[[1.5]]}`, "input[0]"},
		{"empty token array", `{"model":"m","input":[[1],[]]}`, "input[1]"},
		{"bad encoding", `{"model":"m","input":"a","encoding_format":"int8"}`, "encoding_format"},
		{"zero dimensions", `{"model":"m","input":"a","dimensions":0}`, "dimensions"},
		{"fractional dimensions", `{"model":"m","input":"a","dimensions":1.5}`, "dimensions"},
		{"user not a string", `{"model":"m","input":"a","user":1}`, "user"},
		{"stream", `{"model":"m","input":"a","stream":true}`, "stream"},
		{"too many inputs", `{"model":"m","input":[` + strings.Repeat(`"a",`, MaxInputs) + `"a"]}`, "input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.body), api.DefaultLimits)
			var e *api.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want an *api.Error", err)
			}
			if e.Status != http.StatusBadRequest || e.Type != api.TypeInvalidRequest || e.Param != tt.param {
				t.Errorf("got status %d type %q param %q (%s), want 400 invalid_request_error param %q", e.Status, e.Type, e.Param, e.Message, tt.param)
			}
		})
	}
}

func TestUpstreamBodyCarriesOnlyTheListedInputsInOrder(t *testing.T) {
	body := `{"model":"m","input":["a","b","c"],"dimensions":8}`
	req, err := Parse([]byte(body), api.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	all, err := req.UpstreamBody([]int{0, 1, 2})
	if err != nil || string(all) != body {
		t.Fatalf("every input in order: got %s, %v; want the client's bytes", all, err)
	}
	some, err := req.UpstreamBody([]int{2, 0})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"model":"m","input":["c","a"],"dimensions":8}`; string(some) != want {
		t.Errorf("got %s, want %s", some, want)
	}
	if string(req.Body) != body {
		t.Errorf("the client's body changed: %s", req.Body)
	}
}

func TestEstimateTokensCountsIdsAndText(t *testing.T) {
	req, _ := Parse([]byte(`{"model":"m","input":[[1,2,3],[4]]}`), api.DefaultLimits)
	if got := req.EstimateTokens(nil); got != 4 {
		t.Errorf("token arrays: got %d, want 4", got)
	}
	req, _ = Parse([]byte(`{"model":"m","input":["12345678","1234"]}`), api.DefaultLimits)
	if got, want := req.EstimateTokens([]int{0}), 2; got != want {
		t.Errorf("one string of 8 bytes: got %d, want %d", got, want)
	}
}
