package bedrock

import (
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

// Embedding model families served through InvokeModel.
const (
	familyTitan    = iota + 1 // amazon.titan-embed-text-v1 / -v2:0: one text a call
	familyTitanV2             // takes dimensions (256, 512, 1024) and normalize
	familyCohere              // cohere.embed-english-v3, -multilingual-v3: up to 96 texts a call
	familyCohereV4            // cohere.embed-v4: output_dimension
)

// cohereBatch is the most texts Cohere's embed models take in one call.
const cohereBatch = 96

// embeddingFamily tells which InvokeModel body model takes; 0 for a model
// the adapter has no embeddings translation for. An inference profile
// prefix (us., eu., an ARN) is ignored.
func embeddingFamily(model string) int {
	if i := strings.LastIndexByte(model, '/'); i >= 0 {
		model = model[i+1:]
	}
	switch {
	case strings.Contains(model, "amazon.titan-embed-text-v2"):
		return familyTitanV2
	case strings.Contains(model, "amazon.titan-embed-text"), strings.Contains(model, "amazon.titan-embed-g1-text"):
		return familyTitan
	case strings.Contains(model, "cohere.embed-v4"):
		return familyCohereV4
	case strings.Contains(model, "cohere.embed"):
		return familyCohere
	}
	return 0
}

// embeddingsRequest is what the adapter reads from OpenAI's embeddings JSON.
type embeddingsRequest struct {
	inputs     []string
	base64     bool
	dimensions int64
	inputType  string // Cohere's input_type; an extra field clients may send
}

func parseEmbeddingsRequest(body []byte, family int) (*embeddingsRequest, error) {
	if !gjson.ValidBytes(body) {
		return nil, api.InvalidRequest("", "request body is not valid JSON")
	}
	root := gjson.ParseBytes(body)
	if !root.IsObject() {
		return nil, api.InvalidRequest("", "request body must be a JSON object")
	}
	r := &embeddingsRequest{inputType: "search_document"}
	in := root.Get("input")
	switch {
	case in.Type == gjson.String:
		r.inputs = []string{in.Str}
	case in.IsArray():
		var err error
		in.ForEach(func(_, v gjson.Result) bool {
			if v.Type != gjson.String {
				err = api.InvalidRequest("input", "input must be a string or an array of strings: Bedrock models do not take token arrays")
				return false
			}
			r.inputs = append(r.inputs, v.Str)
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
	for i, s := range r.inputs {
		if s == "" {
			return nil, api.InvalidRequest("input", "input[%d] is empty: Bedrock embedding models reject empty text", i)
		}
	}
	switch f := root.Get("encoding_format"); {
	case !f.Exists() || f.Type == gjson.Null || f.Str == "float":
	case f.Str == "base64":
		r.base64 = true
	default:
		return nil, api.InvalidRequest("encoding_format", "encoding_format must be float or base64")
	}
	if d := root.Get("dimensions"); d.Exists() && d.Type != gjson.Null {
		if d.Type != gjson.Number || d.Num != math.Trunc(d.Num) {
			return nil, api.InvalidRequest("dimensions", "dimensions must be an integer")
		}
		r.dimensions = d.Int()
		switch family {
		case familyTitanV2:
			if r.dimensions != 256 && r.dimensions != 512 && r.dimensions != 1024 {
				return nil, api.InvalidRequest("dimensions", "dimensions must be 256, 512 or 1024 for Titan Text Embeddings V2")
			}
		case familyCohereV4:
			if r.dimensions != 256 && r.dimensions != 512 && r.dimensions != 1024 && r.dimensions != 1536 {
				return nil, api.InvalidRequest("dimensions", "dimensions must be 256, 512, 1024 or 1536 for Cohere Embed v4")
			}
		default:
			return nil, api.InvalidRequest("dimensions", "this model's embeddings have a fixed size: dimensions is not supported")
		}
	}
	if t := root.Get("input_type"); t.Type == gjson.String && t.Str != "" {
		r.inputType = t.Str
	}
	return r, nil
}

// appendTitanBody writes the InvokeModel body for one text.
func appendTitanBody(dst []byte, text string, r *embeddingsRequest, family int) []byte {
	dst = append(dst, `{"inputText":`...)
	dst = api.AppendString(dst, text)
	if family == familyTitanV2 {
		if r.dimensions > 0 {
			dst = append(dst, `,"dimensions":`...)
			dst = strconv.AppendInt(dst, r.dimensions, 10)
		}
		// OpenAI's embeddings are unit vectors; so are these.
		dst = append(dst, `,"normalize":true`...)
	}
	return append(dst, '}')
}

// appendCohereBody writes the InvokeModel body for a batch of texts.
func appendCohereBody(dst []byte, texts []string, r *embeddingsRequest, family int) []byte {
	dst = append(dst, `{"texts":[`...)
	for i, t := range texts {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = api.AppendString(dst, t)
	}
	dst = append(dst, `],"input_type":`...)
	dst = api.AppendString(dst, r.inputType)
	if family == familyCohereV4 {
		dst = append(dst, `,"embedding_types":["float"]`...)
		if r.dimensions > 0 {
			dst = append(dst, `,"output_dimension":`...)
			dst = strconv.AppendInt(dst, r.dimensions, 10)
		}
	}
	return append(dst, '}')
}

// embeddings serves an OpenAI embeddings request: one InvokeModel call a
// text for Titan, one a batch of 96 for Cohere, the vectors in input order.
func (p *Provider) embeddings(ctx context.Context, req *provider.Request) (*provider.Response, error) {
	family := embeddingFamily(req.Model)
	if family == 0 {
		return nil, api.InvalidRequest("model", "Bedrock model %q is not an embedding model the gateway can translate to (amazon.titan-embed-text-*, cohere.embed-*)", req.Model)
	}
	r, err := parseEmbeddingsRequest(req.Body, family)
	if err != nil {
		return nil, err
	}
	out := append(make([]byte, 0, 64+len(r.inputs)*4096), `{"object":"list","data":[`...)
	var tokens int64
	var body []byte
	index := 0
	call := func(b []byte) (gjson.Result, int64, error) {
		resp, err := p.post(ctx, req.Model, "/invoke", b, req.Header, false)
		if err != nil {
			return gjson.Result{}, 0, err
		}
		defer resp.Body.Close()
		a, err := p.readAnswer(ctx, resp)
		if err != nil {
			return gjson.Result{}, 0, err
		}
		if !gjson.ValidBytes(a) {
			return gjson.Result{}, 0, invalidResponse(p.name, "not valid JSON")
		}
		n, _ := strconv.ParseInt(resp.Header.Get("X-Amzn-Bedrock-Input-Token-Count"), 10, 64)
		return gjson.ParseBytes(a), n, nil
	}
	switch family {
	case familyTitan, familyTitanV2:
		for _, text := range r.inputs {
			body = appendTitanBody(body[:0], text, r, family)
			root, n, err := call(body)
			if err != nil {
				return nil, err
			}
			if c := root.Get("inputTextTokenCount"); c.Type == gjson.Number {
				n = c.Int()
			}
			tokens += n
			if out, err = appendEmbedding(out, index, root.Get("embedding"), r.base64, p.name); err != nil {
				return nil, err
			}
			index++
		}
	default:
		for start := 0; start < len(r.inputs); start += cohereBatch {
			batch := r.inputs[start:min(start+cohereBatch, len(r.inputs))]
			body = appendCohereBody(body[:0], batch, r, family)
			root, n, err := call(body)
			if err != nil {
				return nil, err
			}
			tokens += n
			vecs := root.Get("embeddings")
			if vecs.IsObject() { // embedding_types given: {"float":[[...]]}
				vecs = vecs.Get("float")
			}
			got := 0
			vecs.ForEach(func(_, v gjson.Result) bool {
				if got < len(batch) {
					out, err = appendEmbedding(out, index, v, r.base64, p.name)
				}
				got++
				index++
				return err == nil
			})
			if err != nil {
				return nil, err
			}
			if got != len(batch) {
				return nil, invalidResponse(p.name, "the number of embeddings differs from the number of texts")
			}
		}
	}
	out = append(out, `],"model":`...)
	out = api.AppendString(out, req.Model)
	out = append(out, `,"usage":{"prompt_tokens":`...)
	out = strconv.AppendInt(out, tokens, 10)
	out = append(out, `,"total_tokens":`...)
	out = strconv.AppendInt(out, tokens, 10)
	out = append(out, "}}"...)
	return &provider.Response{Body: out, Usage: &cost.Usage{PromptTokens: int(tokens)}}, nil
}

// appendEmbedding writes one item of OpenAI's data array: the vector's
// numbers as Bedrock wrote them, or base64 of their float32 little-endian
// bytes (OpenAI's base64 encoding_format).
func appendEmbedding(dst []byte, index int, vec gjson.Result, b64 bool, name string) ([]byte, error) {
	if !vec.IsArray() {
		return nil, invalidResponse(name, "no embedding array")
	}
	if index > 0 {
		dst = append(dst, ',')
	}
	dst = append(dst, `{"object":"embedding","index":`...)
	dst = strconv.AppendInt(dst, int64(index), 10)
	dst = append(dst, `,"embedding":`...)
	var bad bool
	if !b64 {
		dst = append(dst, '[')
		n := 0
		vec.ForEach(func(_, v gjson.Result) bool {
			if v.Type != gjson.Number {
				bad = true
				return false
			}
			if n > 0 {
				dst = append(dst, ',')
			}
			n++
			dst = append(dst, v.Raw...)
			return true
		})
		dst = append(dst, ']')
	} else {
		var raw []byte
		vec.ForEach(func(_, v gjson.Result) bool {
			if v.Type != gjson.Number {
				bad = true
				return false
			}
			raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(float32(v.Num)))
			return true
		})
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, raw)
		dst = append(dst, '"')
	}
	if bad {
		return nil, invalidResponse(name, "an embedding holds something other than numbers")
	}
	return append(dst, '}'), nil
}
