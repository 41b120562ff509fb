package embeddings

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/cost"
)

// MaxInputs bounds the inputs of one request, as OpenAI does (2048).
const MaxInputs = 2048

// Encodings of the vectors in an answer (encoding_format).
const (
	EncodingFloat  = "float"
	EncodingBase64 = "base64"
)

// Request is the gateway's view of an embeddings request: the client's
// bytes, untouched, and the fields the gateway acts on.
type Request struct {
	Body     []byte
	Model    string
	Encoding string // EncodingFloat (also when absent) or EncodingBase64
	// Inputs are the raw JSON of each input in the client's order: a
	// string literal or a token array. They point into Body and live as
	// long as it does.
	Inputs []string
	// Tokens is true when the inputs are token arrays, not strings.
	Tokens bool
	// Single is true when input was one string or one token array rather
	// than an array of them; it changes nothing in the answer (data holds
	// one embedding either way) but the upstream body of a lone miss.
	Single bool
}

// Parse validates body as an OpenAI embeddings request. Every failure is a
// 400 *api.Error naming the field at fault. Nothing returned points into
// body except Body and Inputs.
func Parse(body []byte, lim api.Limits) (*Request, error) {
	if len(body) == 0 {
		return nil, api.InvalidRequest("", "request body is empty; expected a JSON object")
	}
	if !utf8.Valid(body) {
		return nil, api.InvalidRequest("", "request body is not valid UTF-8")
	}
	if err := api.CheckDuplicateKeys(body); err != nil {
		return nil, err
	}
	root := gjson.Parse(api.View(body))
	if !root.IsObject() {
		return nil, api.InvalidRequest("", "request body must be a JSON object")
	}
	req := &Request{Body: body, Encoding: EncodingFloat}
	var perr *api.Error
	var model string
	var seenModel, seenInput bool
	root.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "model":
			seenModel = true
			if v.Type != gjson.String || v.Str == "" {
				perr = api.InvalidRequest("model", "model must be a non-empty string")
				return false
			}
			if perr = api.CheckModelName("model", v.Str); perr == nil {
				model = v.Str
			}
		case "input":
			seenInput = true
			perr = req.readInput(v, lim)
		case "encoding_format":
			switch {
			case v.Type == gjson.Null:
			case v.Type == gjson.String && v.Str == EncodingFloat:
			case v.Type == gjson.String && v.Str == EncodingBase64:
				req.Encoding = EncodingBase64
			default:
				perr = api.InvalidRequest("encoding_format", "encoding_format must be \"float\" or \"base64\"")
			}
		case "dimensions":
			if v.Type == gjson.Null {
				break
			}
			if v.Type != gjson.Number || v.Float() != float64(v.Int()) || v.Int() < 1 {
				perr = api.InvalidRequest("dimensions", "dimensions must be an integer of at least 1")
			}
		case "user":
			if v.Type != gjson.String && v.Type != gjson.Null {
				perr = api.InvalidRequest("user", "user must be a string")
			}
		case "stream":
			if v.Type == gjson.True {
				perr = api.InvalidRequest("stream", "the embeddings API does not stream")
			}
		}
		return perr == nil
	})
	if perr != nil {
		return nil, perr
	}
	if !seenModel {
		return nil, api.InvalidRequest("model", "you must provide a model parameter")
	}
	if !seenInput {
		return nil, api.InvalidRequest("input", "you must provide an input parameter")
	}
	req.Model = strings.Clone(model)
	return req, nil
}

// readInput splits input into Inputs: a string, an array of strings, an
// array of token ids or an array of token arrays, never mixed.
func (req *Request) readInput(v gjson.Result, lim api.Limits) *api.Error {
	switch {
	case v.Type == gjson.String:
		if v.Str == "" {
			return api.InvalidRequest("input", "input must not be an empty string")
		}
		if lim.MaxContentBytes > 0 && len(v.Str) > lim.MaxContentBytes {
			return api.InvalidRequest("input", "input is longer than %d bytes", lim.MaxContentBytes)
		}
		req.Inputs, req.Single = []string{v.Raw}, true
		return nil
	case !v.IsArray():
		return api.InvalidRequest("input", "input must be a string, an array of strings, an array of token ids or an array of token arrays")
	}
	first := v.Get("0")
	if !first.Exists() {
		return api.InvalidRequest("input", "input must not be an empty array")
	}
	if first.Type == gjson.Number {
		if err := checkTokens(v, "input"); err != nil {
			return err
		}
		req.Inputs, req.Single, req.Tokens = []string{v.Raw}, true, true
		return nil
	}
	req.Tokens = first.IsArray()
	n := 0
	var perr *api.Error
	v.ForEach(func(_, e gjson.Result) bool {
		param := "input[" + strconv.Itoa(n) + "]"
		n++
		if n > MaxInputs {
			perr = api.InvalidRequest("input", "input holds more than %d items", MaxInputs)
			return false
		}
		switch {
		case req.Tokens && e.IsArray():
			if !e.Get("0").Exists() {
				perr = api.InvalidRequest(param, "%s must not be an empty token array", param)
				return false
			}
			perr = checkTokens(e, param)
		case !req.Tokens && e.Type == gjson.String:
			if e.Str == "" {
				perr = api.InvalidRequest(param, "%s must not be an empty string", param)
			} else if lim.MaxContentBytes > 0 && len(e.Str) > lim.MaxContentBytes {
				perr = api.InvalidRequest(param, "%s is longer than %d bytes", param, lim.MaxContentBytes)
			}
		default:
			perr = api.InvalidRequest(param, "input must be all strings or all token arrays; %s is not like input[0]", param)
		}
		if perr != nil {
			return false
		}
		req.Inputs = append(req.Inputs, e.Raw)
		return true
	})
	return perr
}

// checkTokens checks that v is an array of non-negative integer token ids.
func checkTokens(v gjson.Result, param string) *api.Error {
	var perr *api.Error
	v.ForEach(func(_, t gjson.Result) bool {
		if t.Type != gjson.Number || t.Float() != float64(t.Int()) || t.Int() < 0 {
			perr = api.InvalidRequest(param, "%s must hold non-negative integer token ids", param)
		}
		return perr == nil
	})
	return perr
}

// EstimateTokens guesses the prompt tokens of the inputs listed in idx
// (all when idx is nil), for rate limits and budgets: a token per id of a
// token array, bytes / 4 of a string.
func (req *Request) EstimateTokens(idx []int) int {
	if idx == nil {
		n := 0
		for i := range req.Inputs {
			n += estimate(req.Inputs[i], req.Tokens)
		}
		return n
	}
	n := 0
	for _, i := range idx {
		n += estimate(req.Inputs[i], req.Tokens)
	}
	return n
}

func estimate(raw string, tokens bool) int {
	if !tokens {
		return cost.EstimateTokensOfLen(len(raw) - 2)
	}
	n := 1
	for i := 0; i < len(raw); i++ {
		if raw[i] == ',' {
			n++
		}
	}
	return n
}

// UpstreamBody is the request for the inputs listed in idx, in that order:
// the client's bytes when idx is every input in order (nothing to
// change), else the body with input replaced by those inputs.
func (req *Request) UpstreamBody(idx []int) ([]byte, error) {
	if len(idx) == len(req.Inputs) {
		same := true
		for k, i := range idx {
			if i != k {
				same = false
				break
			}
		}
		if same {
			return req.Body, nil
		}
	}
	n := 2
	for _, i := range idx {
		n += len(req.Inputs[i]) + 1
	}
	in := make([]byte, 0, n)
	in = append(in, '[')
	for k, i := range idx {
		if k > 0 {
			in = append(in, ',')
		}
		in = append(in, req.Inputs[i]...)
	}
	in = append(in, ']')
	b, err := sjson.SetRawBytes(append([]byte(nil), req.Body...), "input", in)
	if err != nil {
		return nil, api.InvalidRequest("input", "cannot rewrite the request's input: %v", err)
	}
	return b, nil
}

// Fallbacks: the embeddings API has no fallbacks member (the
// X-Fallback-Models header is the gateway's).
func (req *Request) Fallbacks() ([]string, error) { return nil, nil }
