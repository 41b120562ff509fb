package simulated

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
	"github.com/zeebo/xxh3"

	"github.com/edge-agent/edge-agent/internal/api"
)

// Azure OpenAI's routes:
//
//	POST /openai/deployments/{deployment}/chat/completions?api-version=V
//	POST /openai/deployments/{deployment}/embeddings?api-version=V
//	POST /openai/v1/chat/completions   (the v1 endpoint: the model field is the deployment;
//	POST /openai/v1/embeddings          api-version absent or "preview")
//	POST /openai/v1/responses
//
// The deployment (the path's, or the model on the v1 endpoint) must be one
// of Options.Models, else 404 DeploymentNotFound; a missing api-version on
// a deployment path is 404 Resource not found and an unknown one 400 API
// version not supported, as Azure answers. Requests before 2024-09-01
// refuse stream_options. Options.APIKey, when set, must come as the api-key
// header or as the Bearer token (what an Entra ID token stands in for).
// Errors are in Azure's shape: {"error":{"code":"429","message":...}}.
//
// Azure's answers carry prompt_filter_results (in a first stream chunk with
// no choices and an empty id, as Azure sends it), and two magic words steer
// its content filter:
//
//	SIM_AZURE_FILTER_PROMPT  400 content_filter with innererror
//	                         ResponsibleAIPolicyViolation (violence, medium)
//	SIM_AZURE_FILTER_ANSWER  the answer is cut by the filter: a few words,
//	                         then finish_reason content_filter with the
//	                         choice's content_filter_results
const (
	azureFilterPrompt = "SIM_AZURE_FILTER_PROMPT"
	azureFilterAnswer = "SIM_AZURE_FILTER_ANSWER"
)

// azureAPIVersions are the dated api-versions the simulated resource serves.
var azureAPIVersions = []string{
	"2023-05-15", "2024-02-01", "2024-06-01", "2024-10-21",
	"2024-08-01-preview", "2024-09-01-preview", "2024-10-01-preview", "2024-12-01-preview",
	"2025-01-01-preview", "2025-03-01-preview", "2025-04-01-preview",
}

// azureSurface is the API an Azure path serves.
type azureSurface uint8

const (
	azureChat azureSurface = iota
	azureEmbeddings
	azureResponses
)

const azurePromptFilter = `[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"},"jailbreak":{"filtered":false,"detected":false},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":false,"severity":"safe"}}}]`

const azureAnswerFiltered = `{"hate":{"filtered":false,"severity":"safe"},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":true,"severity":"medium"}}`

// azureError is an error in Azure's shape.
type azureError struct {
	status  int
	code    string
	message string
	raw     string // the whole body, when set
}

func (s *Server) writeAzureError(w http.ResponseWriter, e azureError) {
	body := []byte(e.raw)
	if e.raw == "" {
		body = append(body, `{"error":{"code":`...)
		body = api.AppendString(body, e.code)
		body = append(body, `,"message":`...)
		body = api.AppendString(body, e.message)
		body = append(body, "}}"...)
	}
	body = append(body, '\n')
	h := w.Header()
	h["Content-Type"] = s.ctJSON
	if e.status == http.StatusTooManyRequests {
		c := s.cfg.Load()
		h["Retry-After"] = c.retryAfter
		h.Set("Retry-After-Ms", strconv.FormatInt(c.RetryAfter.Milliseconds(), 10))
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(e.status)
	_, _ = w.Write(body)
}

// azureFromSim is the Azure form of a simulated fault.
func azureFromSim(e *simError) azureError {
	st := e.status(dialectOpenAI)
	switch e.kind {
	case kindBadRequest:
		// Azure passes OpenAI's validation errors through in OpenAI's shape.
		ae := api.Error{Message: e.msg, Type: e.openAIType(), Param: e.param, Code: e.code}
		return azureError{status: st, raw: string(ae.AppendEnvelope(nil))}
	case kindServer:
		return azureError{status: st, code: "InternalServerError", message: e.msg}
	}
	return azureError{status: st, code: strconv.Itoa(st), message: e.msg}
}

// azure routes a request under /openai/.
func (s *Server) azure(w http.ResponseWriter, r *http.Request) {
	var deployment string
	var surface azureSurface
	v1 := false
	rest, isDeployment := strings.CutPrefix(r.URL.Path, "/openai/deployments/")
	switch {
	case isDeployment:
		var op string
		deployment, op, _ = strings.Cut(rest, "/")
		switch op {
		case "chat/completions":
			surface = azureChat
		case "embeddings":
			surface = azureEmbeddings
		default:
			s.writeAzureError(w, azureError{status: http.StatusNotFound, code: "404", message: "Resource not found"})
			return
		}
	case r.URL.Path == "/openai/v1/chat/completions":
		v1, surface = true, azureChat
	case r.URL.Path == "/openai/v1/embeddings":
		v1, surface = true, azureEmbeddings
	case r.URL.Path == "/openai/v1/responses":
		v1, surface = true, azureResponses
	default:
		s.writeAzureError(w, azureError{status: http.StatusNotFound, code: "404", message: "Resource not found"})
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		s.writeAzureError(w, azureError{status: http.StatusMethodNotAllowed, code: "405", message: "Method " + r.Method + " is not allowed"})
		return
	}
	version := r.URL.Query().Get("api-version")
	switch {
	case v1 && version != "" && version != "preview" && version != "latest":
		s.writeAzureError(w, azureError{status: http.StatusBadRequest, code: "BadRequest", message: "API version not supported"})
		return
	case !v1 && version == "":
		s.writeAzureError(w, azureError{status: http.StatusNotFound, code: "404", message: "Resource not found"})
		return
	case !v1 && !slices.Contains(azureAPIVersions, version):
		s.writeAzureError(w, azureError{status: http.StatusBadRequest, code: "BadRequest", message: "API version not supported"})
		return
	}

	s.calls.Add(1)
	c := s.cfg.Load()
	x := s.pool.Get().(*exchange)
	defer s.release(x)
	body, serr := x.readBody(r.Body, r.ContentLength)
	if serr != nil {
		s.writeAzureError(w, azureFromSim(serr))
		return
	}
	s.record(r, body)
	if c.apiKey != nil && !azureAuthorized(r.Header, c.apiKey) {
		s.writeAzureError(w, azureError{status: http.StatusUnauthorized, code: "401",
			message: "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."})
		return
	}
	if v1 {
		deployment = gjson.GetBytes(body, "model").String()
	}
	if !slices.Contains(c.Models, deployment) {
		s.writeAzureError(w, azureError{status: http.StatusNotFound, code: "DeploymentNotFound",
			message: "The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again."})
		return
	}
	x.c = c
	switch surface {
	case azureEmbeddings:
		s.azureEmbeddings(w, x, body, deployment)
	case azureResponses:
		s.azureResponses(r.Context(), w, x, body, deployment)
	default:
		s.azureChat(r.Context(), w, x, body, deployment, version)
	}
}

// azureAuthorized checks the api-key header, or the Bearer token, in
// constant time.
func azureAuthorized(h http.Header, key []byte) bool {
	if v := h["Api-Key"]; len(v) > 0 {
		return subtle.ConstantTimeCompare([]byte(v[0]), key) == 1
	}
	return authorized(h, dialectOpenAI, key)
}

func (s *Server) azureChat(ctx context.Context, w http.ResponseWriter, x *exchange, body []byte, deployment, version string) {
	if version != "" && version < "2024-09-01" && gjson.GetBytes(body, "stream_options").Exists() {
		s.writeAzureError(w, azureError{status: http.StatusBadRequest,
			raw: `{"error":{"message":"Unrecognized request argument supplied: stream_options","type":"invalid_request_error","param":null,"code":null}}`})
		return
	}
	if !gjson.GetBytes(body, "model").Exists() && gjson.ValidBytes(body) {
		// The path names the deployment; Azure needs no model field.
		if b, err := sjson.SetBytes(body, "model", deployment); err == nil {
			body = b
		}
	}
	if err := x.parse(dialectOpenAI, body); err != nil {
		s.writeAzureError(w, azureFromSim(err))
		return
	}
	req := &x.req
	if strings.Contains(req.prompt, azureFilterPrompt) {
		s.writeAzureError(w, azureError{status: http.StatusBadRequest, raw: `{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry.","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"hate":{"filtered":false,"severity":"safe"},"jailbreak":{"filtered":false,"detected":false},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":true,"severity":"medium"}}}}}`})
		return
	}
	if err := s.fault(x.c, req); err != nil {
		s.writeAzureError(w, azureFromSim(err))
		return
	}
	delay := req.slow
	if delay < 0 {
		delay = s.ttft(x.c)
	}
	if !sleep(ctx, delay) {
		return
	}
	filtered := strings.Contains(req.prompt, azureFilterAnswer)
	switch {
	case filtered && req.stream:
		x.streamAzureFiltered(ctx, w, s)
	case filtered:
		x.writeAzureFiltered(w, s)
	case req.stream:
		// Azure's first event: the prompt's filter results, no choices.
		x.streamOpenAI(ctx, &azureWriter{ResponseWriter: w, prefix: `data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":` + azurePromptFilter + "}\n\n"}, s)
	default:
		x.writeOpenAI(&azureWriter{ResponseWriter: w, prefix: `{"prompt_filter_results":` + azurePromptFilter + `,`, json: true}, s)
	}
}

// azureWriter adds Azure's prompt filter results to an OpenAI answer: a
// first stream event, or the first field of the JSON body.
type azureWriter struct {
	http.ResponseWriter
	prefix string
	json   bool
	done   bool
}

func (a *azureWriter) Write(p []byte) (int, error) {
	if a.done || len(p) == 0 {
		return a.ResponseWriter.Write(p)
	}
	a.done = true
	if a.json && p[0] == '{' {
		if _, err := a.ResponseWriter.Write([]byte(a.prefix)); err != nil {
			return 0, err
		}
		n, err := a.ResponseWriter.Write(p[1:])
		return n + 1, err
	}
	if _, err := a.ResponseWriter.Write([]byte(a.prefix)); err != nil {
		return 0, err
	}
	return a.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController flush the stream.
func (a *azureWriter) Unwrap() http.ResponseWriter { return a.ResponseWriter }

// filteredWords is how many words an answer the filter cut keeps.
const filteredWords = 6

func (x *exchange) writeAzureFiltered(w http.ResponseWriter, s *Server) {
	req := &x.req
	req.words = filteredWords
	words, _ := x.buildText(0)
	o := append(x.out[:0], `{"id":"chatcmpl-sim-`...)
	o = appendHex(o, req.id)
	o = append(o, `","object":"chat.completion","created":`...)
	o = strconv.AppendInt(o, time.Now().Unix(), 10)
	o = append(o, `,"model":`...)
	o = api.AppendString(o, req.model)
	o = append(o, `,"prompt_filter_results":`...)
	o = append(o, azurePromptFilter...)
	o = append(o, `,"choices":[{"index":0,"finish_reason":"content_filter","message":{"role":"assistant","content":`...)
	o = api.AppendString(o, api.View(x.text))
	o = append(o, `,"refusal":null},"logprobs":null,"content_filter_results":`...)
	o = append(o, azureAnswerFiltered...)
	o = append(o, `}],"usage":`...)
	o = appendOpenAIUsage(o, req, words)
	o = append(o, `,"system_fingerprint":"fp_sim"}`+"\n"...)
	x.out = o
	w.Header()["Content-Type"] = s.ctJSON
	_, _ = w.Write(o)
}

func (x *exchange) streamAzureFiltered(ctx context.Context, w http.ResponseWriter, s *Server) {
	req := &x.req
	req.words = filteredWords
	words, _ := x.buildText(0)
	st := x.newStream(ctx, w, s)
	event := func(o []byte, content bool) bool {
		x.out = o
		return st.send(o, content)
	}
	head := func() []byte {
		o := append(x.out[:0], `data: {"id":"chatcmpl-sim-`...)
		o = appendHex(o, req.id)
		o = append(o, `","object":"chat.completion.chunk","created":`...)
		o = strconv.AppendInt(o, time.Now().Unix(), 10)
		o = append(o, `,"model":`...)
		return api.AppendString(o, req.model)
	}
	if !event(append(x.out[:0], `data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":`+azurePromptFilter+"}\n\n"...), false) {
		return
	}
	if !event(append(head(), `,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`+"\n\n"...), false) {
		return
	}
	for k := range x.chunkCount() {
		o := append(head(), `,"choices":[{"index":0,"delta":{"content":`...)
		o = api.AppendString(o, x.chunk(k))
		if !event(append(o, `},"finish_reason":null}]}`+"\n\n"...), true) {
			return
		}
	}
	o := append(head(), `,"choices":[{"index":0,"delta":{},"finish_reason":"content_filter","content_filter_results":`...)
	o = append(o, azureAnswerFiltered...)
	if !event(append(o, "}]}\n\n"...), false) {
		return
	}
	if req.includeUsage {
		o := append(head(), `,"choices":[],"usage":`...)
		o = appendOpenAIUsage(o, req, words)
		if !event(append(o, "}\n\n"...), false) {
			return
		}
	}
	event(append(x.out[:0], "data: [DONE]\n\n"...), false)
}

// defaultEmbeddingDims is the vector size when the request sets no
// dimensions (text-embedding-3-small's).
const defaultEmbeddingDims = 1536

// azureEmbeddings answers OpenAI's embeddings format: one deterministic
// unit vector per input (a string, strings, a token array or token
// arrays), as floats or base64 of little-endian float32s.
func (s *Server) azureEmbeddings(w http.ResponseWriter, x *exchange, body []byte, deployment string) {
	if !gjson.ValidBytes(body) {
		s.writeAzureError(w, azureFromSim(&simError{kind: kindBadRequest, msg: "We could not parse the JSON body of your request."}))
		return
	}
	root := gjson.ParseBytes(body)
	in := root.Get("input")
	var inputs []string
	switch {
	case in.Type == gjson.String:
		inputs = append(inputs, in.Str)
	case in.IsArray() && len(in.Array()) > 0:
		first := in.Array()[0]
		if first.Type == gjson.Number {
			inputs = append(inputs, in.Raw) // one token array
		} else {
			for _, v := range in.Array() {
				if v.Type != gjson.String && !v.IsArray() {
					inputs = nil
					break
				}
				inputs = append(inputs, v.String())
			}
		}
	}
	if len(inputs) == 0 {
		s.writeAzureError(w, azureFromSim(&simError{kind: kindBadRequest, param: "input", msg: "'input' must be a non-empty string or array"}))
		return
	}
	dims := int(root.Get("dimensions").Int())
	if dims <= 0 {
		dims = defaultEmbeddingDims
	}
	if dims > 3072 {
		s.writeAzureError(w, azureFromSim(&simError{kind: kindBadRequest, param: "dimensions", msg: "dimensions must be at most 3072"}))
		return
	}
	b64 := root.Get("encoding_format").String() == "base64"
	o := append(x.out[:0], `{"object":"list","data":[`...)
	tokens := 0
	vec := make([]float32, dims)
	var raw []byte
	for i, text := range inputs {
		tokens += (len(text) + 3) / 4
		embedding(vec, text)
		if i > 0 {
			o = append(o, ',')
		}
		o = append(o, `{"object":"embedding","index":`...)
		o = strconv.AppendInt(o, int64(i), 10)
		o = append(o, `,"embedding":`...)
		if b64 {
			raw = raw[:0]
			for _, f := range vec {
				raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(f))
			}
			o = append(o, '"')
			o = base64.StdEncoding.AppendEncode(o, raw)
			o = append(o, '"')
		} else {
			o = append(o, '[')
			for j, f := range vec {
				if j > 0 {
					o = append(o, ',')
				}
				o = strconv.AppendFloat(o, float64(f), 'g', -1, 32)
			}
			o = append(o, ']')
		}
		o = append(o, '}')
	}
	o = append(o, `],"model":`...)
	o = api.AppendString(o, deployment)
	o = append(o, `,"usage":{"prompt_tokens":`...)
	o = strconv.AppendInt(o, int64(tokens), 10)
	o = append(o, `,"total_tokens":`...)
	o = strconv.AppendInt(o, int64(tokens), 10)
	o = append(o, "}}\n"...)
	x.out = o
	w.Header()["Content-Type"] = s.ctJSON
	_, _ = w.Write(o)
}

// embedding fills vec with a unit vector drawn from a hash of text: the
// same text always gets the same vector.
func embedding(vec []float32, text string) {
	h := xxh3.HashString(text)
	var norm float64
	for i := range vec {
		v := float64(int64(mix64(h+uint64(i)*0x9e3779b97f4a7c15))) * 0x1p-63
		vec[i] = float32(v)
		norm += v * v
	}
	norm = math.Sqrt(norm)
	for i := range vec {
		vec[i] = float32(float64(vec[i]) / norm)
	}
}

// azureResponses answers the Responses API: the answer text of the chat
// answer to the last user input, as one message output item; streamed as
// response.created, output item and text delta events, and
// response.completed.
func (s *Server) azureResponses(ctx context.Context, w http.ResponseWriter, x *exchange, body []byte, deployment string) {
	if !gjson.ValidBytes(body) {
		s.writeAzureError(w, azureFromSim(&simError{kind: kindBadRequest, msg: "We could not parse the JSON body of your request."}))
		return
	}
	root := gjson.ParseBytes(body)
	in := root.Get("input")
	req := &x.req
	req.words, req.slow, req.n = -1, -1, 1
	req.model = deployment
	req.stream = root.Get("stream").Bool()
	req.maxTokens = root.Get("max_output_tokens").Int()
	req.id = xxh3.Hash(body)
	req.seed = xxh3.HashString(in.Raw)
	switch {
	case in.Type == gjson.String:
		req.prompt = in.Str
	case in.IsArray():
		in.ForEach(func(_, item gjson.Result) bool {
			if item.Get("role").String() != "user" {
				return true
			}
			c := item.Get("content")
			if c.Type == gjson.String {
				req.prompt = c.Str
				return true
			}
			c.ForEach(func(_, part gjson.Result) bool {
				if part.Get("type").String() == "input_text" {
					req.prompt = part.Get("text").String()
				}
				return true
			})
			return true
		})
	}
	if req.prompt == "" {
		s.writeAzureError(w, azureFromSim(&simError{kind: kindBadRequest, param: "input", msg: "Missing required parameter: 'input'."}))
		return
	}
	req.promptTokens = (len(in.Raw) + len(root.Get("instructions").Raw) + 3) / 4
	req.scanMagic(req.prompt)
	if err := s.fault(x.c, req); err != nil {
		s.writeAzureError(w, azureFromSim(err))
		return
	}
	if !sleep(ctx, s.ttft(x.c)) {
		return
	}
	words, truncated := x.buildText(0)
	created := time.Now().Unix()
	response := func(o []byte, status string, full bool) []byte {
		o = append(o, `{"id":"resp_sim_`...)
		o = appendHex(o, req.id)
		o = append(o, `","object":"response","created_at":`...)
		o = strconv.AppendInt(o, created, 10)
		o = append(o, `,"status":"`...)
		o = append(o, status...)
		o = append(o, `","model":`...)
		o = api.AppendString(o, deployment)
		if truncated && full {
			o = append(o, `,"incomplete_details":{"reason":"max_output_tokens"}`...)
		} else {
			o = append(o, `,"incomplete_details":null`...)
		}
		o = append(o, `,"output":[`...)
		if full {
			o = x.appendResponseMessage(o, status)
		}
		o = append(o, `],"usage":`...)
		if !full {
			return append(o, "null}"...)
		}
		o = append(o, `{"input_tokens":`...)
		o = strconv.AppendInt(o, int64(req.promptTokens), 10)
		o = append(o, `,"input_tokens_details":{"cached_tokens":0},"output_tokens":`...)
		o = strconv.AppendInt(o, int64(words), 10)
		o = append(o, `,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":`...)
		o = strconv.AppendInt(o, int64(req.promptTokens+words), 10)
		return append(o, "}}"...)
	}
	final := "completed"
	if truncated {
		final = "incomplete"
	}
	if !req.stream {
		o := append(response(x.out[:0], final, true), '\n')
		x.out = o
		w.Header()["Content-Type"] = s.ctJSON
		_, _ = w.Write(o)
		return
	}
	st := x.newStream(ctx, w, s)
	seq := 0
	event := func(typ string, content bool, fill func(o []byte) []byte) bool {
		o := append(x.out[:0], "event: "...)
		o = append(o, typ...)
		o = append(o, "\ndata: {\"type\":\""...)
		o = append(o, typ...)
		o = append(o, `","sequence_number":`...)
		o = strconv.AppendInt(o, int64(seq), 10)
		seq++
		o = fill(o)
		o = append(o, "}\n\n"...)
		x.out = o
		return st.send(o, content)
	}
	itemID := func(o []byte) []byte {
		o = append(o, `"msg_sim_`...)
		o = appendHex(o, req.id)
		return append(o, '"')
	}
	if !event("response.created", false, func(o []byte) []byte { return response(append(o, `,"response":`...), "in_progress", false) }) ||
		!event("response.output_item.added", false, func(o []byte) []byte {
			o = append(o, `,"output_index":0,"item":{"type":"message","id":`...)
			o = itemID(o)
			return append(o, `,"status":"in_progress","role":"assistant","content":[]}`...)
		}) {
		return
	}
	for k := range x.chunkCount() {
		if !event("response.output_text.delta", true, func(o []byte) []byte {
			o = append(o, `,"item_id":`...)
			o = itemID(o)
			o = append(o, `,"output_index":0,"content_index":0,"delta":`...)
			return api.AppendString(o, x.chunk(k))
		}) {
			return
		}
	}
	_ = event("response.output_text.done", false, func(o []byte) []byte {
		o = append(o, `,"item_id":`...)
		o = itemID(o)
		o = append(o, `,"output_index":0,"content_index":0,"text":`...)
		return api.AppendString(o, api.View(x.text))
	}) &&
		event("response.output_item.done", false, func(o []byte) []byte {
			return x.appendResponseMessage(append(o, `,"output_index":0,"item":`...), final)
		}) &&
		event("response."+final, false, func(o []byte) []byte { return response(append(o, `,"response":`...), final, true) })
}

// appendResponseMessage appends the answer as a Responses message item.
func (x *exchange) appendResponseMessage(o []byte, status string) []byte {
	o = append(o, `{"type":"message","id":"msg_sim_`...)
	o = appendHex(o, x.req.id)
	o = append(o, `","status":"`...)
	o = append(o, status...)
	o = append(o, `","role":"assistant","content":[{"type":"output_text","text":`...)
	o = api.AppendString(o, api.View(x.text))
	return append(o, `,"annotations":[]}]}`...)
}
