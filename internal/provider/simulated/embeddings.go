package simulated

import (
	"encoding/base64"
	"encoding/binary"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/zeebo/xxh3"

	"github.com/edge-agent/edge-agent/internal/api"
)

// Embedding sizes (the default, defaultEmbeddingDims, is azure.go's): the
// largest asked for, and the most inputs in one request.
const (
	largeEmbeddingDims = 3072 // text-embedding-3-large's
	maxEmbeddingInputs = 2048
)

// EmbeddingCalls is the number of POST /v1/embeddings requests received
// since the start or the last ResetCalls, whatever their outcome.
func (s *Server) EmbeddingCalls() int64 { return s.embedCalls.Load() }

// EmbeddingInputs is the number of inputs those requests carried (counted
// for requests that parsed): what a cache in front saved shows here.
func (s *Server) EmbeddingInputs() int64 { return s.embedInputs.Load() }

// embeddings answers POST /v1/embeddings as OpenAI does: one vector per
// input, in input order, as float arrays or base64 little-endian float32.
// A vector depends only on the input (its text or tokens), the model and
// the dimensions: the same input always gets the same bytes. It is a unit
// vector, as OpenAI's are.
func (s *Server) embeddings(w http.ResponseWriter, r *http.Request) {
	d := dialectOpenAI
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		s.writeError(w, d, &simError{kind: kindMethod, msg: "Method " + r.Method + " is not allowed on " + r.URL.Path})
		return
	}
	s.embedCalls.Add(1)
	c := s.cfg.Load()
	x := s.pool.Get().(*exchange)
	defer s.release(x)
	body, serr := x.readBody(r.Body, r.ContentLength)
	if serr != nil {
		s.writeError(w, d, serr)
		return
	}
	s.record(r, body)
	if c.apiKey != nil && !authorized(r.Header, d, c.apiKey) {
		s.writeError(w, d, errUnauthorized(d))
		return
	}
	er, serr := parseEmbeddings(body)
	if serr != nil {
		s.writeError(w, d, serr)
		return
	}
	s.embedInputs.Add(int64(len(er.inputs)))
	req := &x.req
	*req = request{slow: -1, words: -1}
	for _, in := range er.inputs {
		if in.Type == gjson.String && strings.Contains(in.Str, "SIM_") {
			req.scanMagic(in.Str)
		}
	}
	if err := s.fault(c, req); err != nil {
		s.writeError(w, d, err)
		return
	}
	delay := req.slow
	if delay < 0 {
		delay = s.ttft(c)
	}
	if !sleep(r.Context(), delay) {
		return
	}
	o := append(x.out[:0], `{"object":"list","data":[`...)
	tokens := 0
	for i, in := range er.inputs {
		if i > 0 {
			o = append(o, ',')
		}
		o = append(o, `{"object":"embedding","index":`...)
		o = strconv.AppendInt(o, int64(i), 10)
		o = append(o, `,"embedding":`...)
		o = appendVector(o, er, in)
		o = append(o, '}')
		tokens += inputTokens(in)
	}
	o = append(o, `],"model":`...)
	o = api.AppendString(o, er.model)
	o = append(o, `,"usage":{"prompt_tokens":`...)
	o = strconv.AppendInt(o, int64(tokens), 10)
	o = append(o, `,"total_tokens":`...)
	o = strconv.AppendInt(o, int64(tokens), 10)
	o = append(o, "}}\n"...)
	x.out = o
	h := w.Header()
	h["Content-Type"] = s.ctJSON
	h.Set("Content-Length", strconv.Itoa(len(o)))
	_, _ = w.Write(o)
}

// embeddingsRequest is what the simulated provider reads of an embeddings
// request; its results point into the request body.
type embeddingsRequest struct {
	model  string
	inputs []gjson.Result
	dims   int
	base64 bool
}

func badParam(param, msg string) *simError {
	return &simError{kind: kindBadRequest, param: param, code: "invalid_value", msg: msg}
}

// parseEmbeddings validates an embeddings request as OpenAI does.
func parseEmbeddings(body []byte) (*embeddingsRequest, *simError) {
	js := api.View(body)
	if !gjson.Valid(js) {
		return nil, &simError{kind: kindBadRequest, msg: "We could not parse the JSON body of your request. The OpenAI API expects a JSON payload, but what was sent was not valid JSON."}
	}
	root := gjson.Parse(js)
	model := root.Get("model")
	if model.Type != gjson.String || model.Str == "" {
		return nil, &simError{kind: kindBadRequest, msg: "you must provide a model parameter"}
	}
	er := &embeddingsRequest{model: model.Str, dims: defaultEmbeddingDims}
	if strings.Contains(model.Str, "-large") {
		er.dims = largeEmbeddingDims
	}
	switch f := root.Get("encoding_format"); {
	case !f.Exists() || f.Type == gjson.Null || f.Str == "float":
	case f.Str == "base64":
		er.base64 = true
	default:
		return nil, badParam("encoding_format", "Invalid value for 'encoding_format': expected 'float' or 'base64'.")
	}
	if dm := root.Get("dimensions"); dm.Exists() && dm.Type != gjson.Null {
		n := dm.Int()
		if dm.Type != gjson.Number || n < 1 || n > largeEmbeddingDims {
			return nil, badParam("dimensions", "Invalid 'dimensions': must be an integer between 1 and 3072.")
		}
		er.dims = int(n)
	}
	in := root.Get("input")
	switch {
	case !in.Exists():
		return nil, &simError{kind: kindBadRequest, param: "input", code: "missing_required_parameter", msg: "Missing required parameter: 'input'."}
	case in.Type == gjson.String || in.IsArray() && in.Get("0").Type == gjson.Number:
		er.inputs = []gjson.Result{in}
	case in.IsArray():
		er.inputs = in.Array()
	default:
		return nil, badParam("input", "Invalid 'input': expected a string, an array of strings or an array of token arrays.")
	}
	if len(er.inputs) == 0 || len(er.inputs) > maxEmbeddingInputs {
		return nil, badParam("input", "Invalid 'input': the array must hold between 1 and 2048 items.")
	}
	for i, e := range er.inputs {
		if (e.Type != gjson.String || e.Str == "") && (!e.IsArray() || len(e.Raw) <= 2) {
			return nil, badParam("input", "Invalid 'input["+strconv.Itoa(i)+"]': expected a non-empty string or token array.")
		}
	}
	return er, nil
}

// inputTokens counts an input's tokens: its ids, or a token per 4 bytes.
func inputTokens(in gjson.Result) int {
	if in.IsArray() {
		return strings.Count(in.Raw, ",") + 1
	}
	return max(1, (len(in.Str)+3)/4)
}

// appendVector appends the input's unit vector: a JSON array of float32
// values in their shortest form, or base64 of their little-endian bytes.
func appendVector(dst []byte, er *embeddingsRequest, in gjson.Result) []byte {
	seed := xxh3.HashString(er.model) ^ uint64(er.dims)*0x9e3779b97f4a7c15
	if in.Type == gjson.String {
		seed ^= xxh3.HashString(in.Str)
	} else {
		seed ^= xxh3.HashString(in.Raw) * 31
	}
	var norm float64
	for j := range er.dims {
		v := component(seed, j)
		norm += v * v
	}
	scale := 1 / math.Sqrt(norm)
	if er.base64 {
		raw := make([]byte, 4*er.dims)
		for j := range er.dims {
			binary.LittleEndian.PutUint32(raw[4*j:], math.Float32bits(float32(component(seed, j)*scale)))
		}
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, raw)
		return append(dst, '"')
	}
	dst = append(dst, '[')
	for j := range er.dims {
		if j > 0 {
			dst = append(dst, ',')
		}
		dst = strconv.AppendFloat(dst, float64(float32(component(seed, j)*scale)), 'g', -1, 32)
	}
	return append(dst, ']')
}

// component is coordinate j of the vector of seed, uniform in [-1, 1).
func component(seed uint64, j int) float64 {
	return float64(mix64(seed+uint64(j+1)*0x9e3779b97f4a7c15)>>11)*0x1p-52 - 1
}
