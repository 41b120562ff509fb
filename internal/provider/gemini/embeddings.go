package gemini

import (
	"github.com/edge-agent/edge-agent/internal/provider/chatreq"

	"context"
	"encoding/base64"
	"encoding/binary"
	"math"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/cost"
	"github.com/edge-agent/edge-agent/internal/provider"
)

// embedRequest is what an OpenAI embeddings request asks for.
type embedRequest struct {
	inputs     []gjson.Result // the texts, as JSON string literals
	single     bool           // input was one string, not an array
	dimensions gjson.Result
	base64     bool
}

// parseEmbeddings reads an OpenAI embeddings request. Token-array inputs
// are refused: Gemini embeds text, and the tokens are OpenAI's.
func parseEmbeddings(body []byte) (*embedRequest, error) {
	if !gjson.ValidBytes(body) {
		return nil, api.InvalidRequest("", "request body is not valid JSON")
	}
	root := gjson.Parse(api.View(body))
	if !root.IsObject() {
		return nil, api.InvalidRequest("", "request body must be a JSON object")
	}
	r := &embedRequest{dimensions: root.Get("dimensions")}
	in := root.Get("input")
	switch {
	case in.Type == gjson.String:
		r.single = true
		r.inputs = append(r.inputs, in)
	case in.IsArray():
		var err error
		i := 0
		in.ForEach(func(_, v gjson.Result) bool {
			if v.Type != gjson.String {
				err = api.InvalidRequest("input", "input[%d]: Gemini embeds text: input must be a string or an array of strings", i)
				return false
			}
			r.inputs = append(r.inputs, v)
			i++
			return true
		})
		if err != nil {
			return nil, err
		}
	default:
		return nil, api.InvalidRequest("input", "input must be a string or an array of strings")
	}
	if len(r.inputs) == 0 {
		return nil, api.InvalidRequest("input", "input must not be empty")
	}
	for i, v := range r.inputs {
		if v.Str == "" {
			return nil, api.InvalidRequest("input", "input[%d] must not be empty", i)
		}
	}
	switch d := r.dimensions; {
	case !d.Exists() || d.Type == gjson.Null:
	case d.Type == gjson.Number && d.Int() > 0 && float64(d.Int()) == d.Num:
	default:
		return nil, api.InvalidRequest("dimensions", "dimensions must be a positive integer")
	}
	switch f := root.Get("encoding_format"); {
	case !f.Exists() || f.Type == gjson.Null || f.Str == "float":
	case f.Str == "base64":
		r.base64 = true
	default:
		return nil, api.InvalidRequest("encoding_format", "encoding_format must be float or base64")
	}
	return r, nil
}

// TranslateEmbeddingsRequest turns an OpenAI embeddings request into the
// body of the Google method that serves it: AI Studio's embedContent (one
// string) or batchEmbedContents (an array) for model, or Vertex AI's
// predict. It returns the body and the method (":embedContent" ...).
func TranslateEmbeddingsRequest(openAIBody []byte, model string, vertex bool) ([]byte, string, error) {
	r, err := parseEmbeddings(openAIBody)
	if err != nil {
		return nil, "", err
	}
	body, method := r.appendRequest(make([]byte, 0, len(openAIBody)+128), model, vertex)
	return body, method, nil
}

func (r *embedRequest) appendRequest(dst []byte, model string, vertex bool) ([]byte, string) {
	dims := func(dst []byte, key string) []byte {
		if r.dimensions.Type == gjson.Number {
			dst = append(dst, `,"`...)
			dst = append(dst, key...)
			dst = append(dst, `":`...)
			dst = append(dst, r.dimensions.Raw...)
		}
		return dst
	}
	switch {
	case vertex:
		dst = append(dst, `{"instances":[`...)
		for i, in := range r.inputs {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"content":`...)
			dst = append(dst, in.Raw...)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
		if r.dimensions.Type == gjson.Number {
			dst = append(dst, `,"parameters":{"outputDimensionality":`...)
			dst = append(dst, r.dimensions.Raw...)
			dst = append(dst, '}')
		}
		return append(dst, '}'), ":predict"
	case r.single:
		dst = append(dst, `{"content":{"parts":[{"text":`...)
		dst = append(dst, r.inputs[0].Raw...)
		dst = append(dst, "}]}"...)
		dst = dims(dst, "outputDimensionality")
		return append(dst, '}'), ":embedContent"
	}
	dst = append(dst, `{"requests":[`...)
	for i, in := range r.inputs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"model":`...)
		dst = api.AppendString(dst, "models/"+model)
		dst = append(dst, `,"content":{"parts":[{"text":`...)
		dst = append(dst, in.Raw...)
		dst = append(dst, "}]}"...)
		dst = dims(dst, "outputDimensionality")
		dst = append(dst, '}')
	}
	return append(dst, "]}"...), ":batchEmbedContents"
}

// TranslateEmbeddingsResponse turns the answer of embedContent,
// batchEmbedContents or predict into OpenAI's embeddings list for the
// request openAIBody. Vertex reports each input's token count; AI Studio
// reports none, and the usage is then estimated as one token per four
// bytes of input, the gateway's estimate everywhere.
func TranslateEmbeddingsResponse(googleBody, openAIBody []byte, model string) ([]byte, error) {
	r, err := parseEmbeddings(openAIBody)
	if err != nil {
		return nil, err
	}
	out, _, err := r.appendResponse(nil, googleBody, "gemini", model)
	return out, err
}

func (r *embedRequest) appendResponse(dst, body []byte, name, model string) ([]byte, int, error) {
	if !gjson.ValidBytes(body) {
		return nil, 0, invalidResponse(name, "not valid JSON")
	}
	root := gjson.Parse(api.View(body))
	var vectors []gjson.Result // each an array of numbers
	counted, tokens := false, 0
	switch {
	case root.Get("embedding").IsObject():
		vectors = append(vectors, root.Get("embedding.values"))
	case root.Get("embeddings").IsArray():
		root.Get("embeddings").ForEach(func(_, e gjson.Result) bool {
			vectors = append(vectors, e.Get("values"))
			return true
		})
	case root.Get("predictions").IsArray():
		counted = true
		root.Get("predictions").ForEach(func(_, p gjson.Result) bool {
			vectors = append(vectors, p.Get("embeddings.values"))
			tokens += int(p.Get("embeddings.statistics.token_count").Int())
			return true
		})
	default:
		return nil, 0, invalidResponse(name, "no embeddings")
	}
	if len(vectors) != len(r.inputs) {
		return nil, 0, invalidResponse(name, "got "+strconv.Itoa(len(vectors))+" embeddings for "+strconv.Itoa(len(r.inputs))+" inputs")
	}
	if !counted {
		for _, in := range r.inputs {
			tokens += (len(in.Str) + 3) / 4
		}
	}
	dst = append(dst, `{"object":"list","data":[`...)
	var scratch []byte
	for i, v := range vectors {
		if !v.IsArray() {
			return nil, 0, invalidResponse(name, "an embedding has no values")
		}
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"object":"embedding","index":`...)
		dst = strconv.AppendInt(dst, int64(i), 10)
		dst = append(dst, `,"embedding":`...)
		if r.base64 {
			// OpenAI's base64 is the little-endian float32 array.
			scratch = scratch[:0]
			v.ForEach(func(_, n gjson.Result) bool {
				scratch = binary.LittleEndian.AppendUint32(scratch, math.Float32bits(float32(n.Num)))
				return true
			})
			dst = append(dst, '"')
			dst = base64.StdEncoding.AppendEncode(dst, scratch)
			dst = append(dst, '"')
		} else {
			dst = chatreq.AppendCompact(dst, v.Raw)
		}
		dst = append(dst, '}')
	}
	dst = append(dst, `],"model":`...)
	dst = api.AppendString(dst, model)
	dst = append(dst, `,"usage":{"prompt_tokens":`...)
	dst = strconv.AppendInt(dst, int64(tokens), 10)
	dst = append(dst, `,"total_tokens":`...)
	dst = strconv.AppendInt(dst, int64(tokens), 10)
	return append(dst, "}}"...), tokens, nil
}

// embeddings serves an OpenAI embeddings request through the Google
// embedding method for its shape.
func (p *Provider) embeddings(ctx context.Context, req *provider.Request) (*provider.Response, error) {
	r, err := parseEmbeddings(req.Body)
	if err != nil {
		return nil, err
	}
	var b []byte
	var secret string
	if p.vertex && len(r.inputs) > 1 && strings.HasPrefix(strings.TrimPrefix(req.Model, "models/"), "gemini-embedding") {
		// Vertex AI's gemini-embedding models take one instance a
		// request: one call per input, answers joined in order.
		b = append(b, `{"predictions":[`...)
		for i := range r.inputs {
			one := embedRequest{inputs: r.inputs[i : i+1], dimensions: r.dimensions}
			body, sec, err := p.embedCall(ctx, req, &one)
			if err != nil {
				return nil, err
			}
			secret = sec
			pred := gjson.GetBytes(body, "predictions.0")
			if !pred.IsObject() {
				return nil, invalidResponse(p.name, "no prediction")
			}
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, pred.Raw...)
		}
		b = append(b, "]}"...)
	} else if b, secret, err = p.embedCall(ctx, req, r); err != nil {
		return nil, err
	}
	out, tokens, err := r.appendResponse(make([]byte, 0, len(b)+128), b, p.name, req.Model)
	if err != nil {
		return nil, provider.Scrub(err, secret)
	}
	return &provider.Response{Body: out, Usage: &cost.Usage{PromptTokens: tokens}}, nil
}

// embedCall sends r to the embedding method and returns the answer's body.
func (p *Provider) embedCall(ctx context.Context, req *provider.Request, r *embedRequest) ([]byte, string, error) {
	body, method := r.appendRequest(make([]byte, 0, 256), req.Model, p.vertex)
	resp, secret, err := p.post(ctx, &provider.Request{Model: req.Model, Header: req.Header}, method, body)
	if err != nil {
		return nil, "", err
	}
	b, err := p.readBody(ctx, resp)
	return b, secret, err
}
