package simulated

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"
	"github.com/zeebo/xxh3"

	"github.com/edge-agent/edge-agent/internal/api"
)

// Google's Gemini API, on AI Studio and on Vertex AI:
//
//	POST /v1beta/models/{model}:generateContent             AI Studio (x-goog-api-key or ?key=)
//	POST /v1beta/models/{model}:streamGenerateContent?alt=sse
//	POST /v1beta/models/{model}:embedContent
//	POST /v1beta/models/{model}:batchEmbedContents
//	POST /v1/projects/{p}/locations/{l}/publishers/google/models/{model}:generateContent   Vertex AI (Bearer token)
//	POST /v1/projects/{p}/locations/{l}/publishers/google/models/{model}:streamGenerateContent?alt=sse
//	POST /v1/projects/{p}/locations/{l}/publishers/google/models/{model}:predict            (text embeddings)
//	POST /oauth2/token                                       OAuth2 token endpoint (JWT bearer grant)
//
// Answers, magic words and faults are those of the other formats; the
// magic word SIM_SAFETY ends the answer with finishReason SAFETY and no
// content. SIM_CACHE_READ_<n> is reported as cachedContentTokenCount,
// inside promptTokenCount as Google counts it.

// googleAuth is the token endpoint's state: the access tokens it issued.
type googleAuth struct {
	mu     sync.Mutex
	issued map[string]bool
	fetch  int64 // token requests answered with a token
}

// TokenRequests is the number of access tokens the OAuth2 token endpoint
// issued since the start.
func (s *Server) TokenRequests() int64 {
	s.google.mu.Lock()
	defer s.google.mu.Unlock()
	return s.google.fetch
}

// googleEmbeddingDims is the length of the simulated embeddings when the
// request sets no outputDimensionality.
const googleEmbeddingDims = 768

// serveGoogle answers the Gemini, Vertex AI and token routes; it reports
// false for any other path.
func (s *Server) serveGoogle(w http.ResponseWriter, r *http.Request) bool {
	p := r.URL.Path
	if p == "/oauth2/token" {
		s.googleToken(w, r)
		return true
	}
	var rest string
	vertex := false
	switch {
	case strings.HasPrefix(p, "/v1beta/models/"):
		rest = p[len("/v1beta/models/"):]
	case strings.HasPrefix(p, "/v1/projects/"):
		// projects/{p}/locations/{l}/publishers/google/models/{model}:{method}
		seg := strings.SplitN(p[len("/v1/projects/"):], "/", 6)
		if len(seg) != 6 || seg[0] == "" || seg[1] != "locations" || seg[2] == "" || seg[3] != "publishers" ||
			seg[4] != "google" || !strings.HasPrefix(seg[5], "models/") {
			return false
		}
		rest, vertex = seg[5][len("models/"):], true
	default:
		return false
	}
	model, method, ok := strings.Cut(rest, ":")
	if !ok || model == "" {
		s.writeGoogleError(w, &simError{kind: kindNotFound, msg: "Invalid URL (" + r.Method + " " + p + ")"})
		return true
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		s.writeGoogleError(w, &simError{kind: kindMethod, msg: "Method " + r.Method + " is not allowed on " + p})
		return true
	}
	switch method {
	case "generateContent", "streamGenerateContent":
		s.googleGenerate(w, r, model, method == "streamGenerateContent", vertex)
	case "embedContent", "batchEmbedContents":
		if vertex {
			s.writeGoogleError(w, &simError{kind: kindNotFound, msg: "method " + method + " is served by the Gemini API; Vertex AI text embeddings use :predict"})
			return true
		}
		s.googleEmbed(w, r, model, method, vertex)
	case "predict":
		if !vertex {
			s.writeGoogleError(w, &simError{kind: kindNotFound, msg: "method predict is not served by the Gemini API"})
			return true
		}
		s.googleEmbed(w, r, model, method, vertex)
	default:
		s.writeGoogleError(w, &simError{kind: kindNotFound, msg: "method " + method + " is not found for model " + model})
	}
	return true
}

// googleAuthorized checks the credential of a Gemini API call: AI Studio's
// key (x-goog-api-key or ?key=) or Vertex AI's bearer token, which must be
// Options.APIKey or a token the token endpoint issued.
func (s *Server) googleAuthorized(w http.ResponseWriter, r *http.Request, c *config, vertex bool) bool {
	if c.apiKey == nil {
		return true
	}
	if vertex {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if ok && got != "" && (subtle.ConstantTimeCompare([]byte(got), c.apiKey) == 1 || s.issued(got)) {
			return true
		}
		s.writeGoogleError(w, &simError{kind: kindUnauthorized,
			msg: "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential."})
		return false
	}
	got := r.Header.Get("X-Goog-Api-Key")
	if got == "" {
		got = r.URL.Query().Get("key")
	}
	if got == "" {
		s.writeGoogleErrorStatus(w, http.StatusForbidden, "PERMISSION_DENIED",
			"Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.", "")
		return false
	}
	if subtle.ConstantTimeCompare([]byte(got), c.apiKey) != 1 {
		// AI Studio's answer to a wrong key: a 400, told apart by its reason.
		s.writeGoogleErrorStatus(w, http.StatusBadRequest, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
			`[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]`)
		return false
	}
	return true
}

func (s *Server) issued(token string) bool {
	s.google.mu.Lock()
	defer s.google.mu.Unlock()
	return s.google.issued[token]
}

func (s *Server) googleGenerate(w http.ResponseWriter, r *http.Request, model string, stream, vertex bool) {
	s.calls.Add(1)
	c := s.cfg.Load()
	x := s.pool.Get().(*exchange)
	defer s.release(x)
	body, err := x.readBody(r.Body, r.ContentLength)
	if err != nil {
		s.writeGoogleError(w, err)
		return
	}
	s.record(r, body)
	if !s.googleAuthorized(w, r, c, vertex) {
		return
	}
	if stream && r.URL.Query().Get("alt") != "sse" {
		s.writeGoogleError(w, &simError{kind: kindBadRequest, msg: "the simulated provider streams only with alt=sse"})
		return
	}
	safety, err := x.parseGemini(body, model)
	if err != nil {
		s.writeGoogleError(w, err)
		return
	}
	req := &x.req
	req.stream = stream
	if err := s.fault(c, req); err != nil {
		s.writeGoogleError(w, err)
		return
	}
	ctx := r.Context()
	delay := req.slow
	if delay < 0 {
		delay = s.ttft(c)
	}
	if !stream && req.magic&magicStall != 0 {
		<-ctx.Done()
		return
	}
	if !sleep(ctx, delay) {
		return
	}
	x.c = c
	if stream {
		x.streamGemini(ctx, w, s, safety)
	} else {
		x.writeGemini(w, s, safety)
	}
}

// parseGemini validates a generateContent body and fills x.req; safety
// reports the SIM_SAFETY magic word.
func (x *exchange) parseGemini(body []byte, model string) (safety bool, _ *simError) {
	js := api.View(body)
	if !gjson.Valid(js) {
		return false, &simError{kind: kindBadRequest, msg: "Invalid JSON payload received."}
	}
	root := gjson.Parse(js)
	if !root.IsObject() {
		return false, &simError{kind: kindBadRequest, msg: "Invalid JSON payload received. The request body must be an object."}
	}
	req := &x.req
	*req = request{n: 1, words: -1, slow: -1, id: xxh3.HashString(js), model: model}
	contents, system, tools := root.Get("contents"), root.Get("systemInstruction"), root.Get("tools")
	if !contents.IsArray() || len(contents.Raw) <= 2 {
		return false, &simError{kind: kindBadRequest, msg: "* GenerateContentRequest.contents: contents is not specified"}
	}
	var err *simError
	contents.ForEach(func(_, c gjson.Result) bool {
		switch c.Get("role").Str {
		case "", "user", "model", "function":
		default:
			err = &simError{kind: kindBadRequest, msg: "Please use a valid role: user, model."}
			return false
		}
		if !c.Get("parts").IsArray() || len(c.Get("parts").Raw) <= 2 {
			err = &simError{kind: kindBadRequest, msg: "* GenerateContentRequest.contents.parts: contents.parts must not be empty."}
			return false
		}
		return true
	})
	if err != nil {
		return false, err
	}
	gc := root.Get("generationConfig")
	if mt := gc.Get("maxOutputTokens"); mt.Type == gjson.Number {
		req.maxTokens = mt.Int()
	}
	if cc := gc.Get("candidateCount"); cc.Exists() {
		if cc.Type != gjson.Number || cc.Int() < 1 || cc.Int() > 8 {
			return false, &simError{kind: kindBadRequest, msg: "* GenerateContentRequest.generation_config.candidate_count: must be between 1 and 8"}
		}
		req.n = int(cc.Int())
	}
	req.seed = xxh3.HashString(contents.Raw) ^ xxh3.HashString(system.Raw)
	req.promptTokens = max(1, (len(contents.Raw)+len(system.Raw)+len(tools.Raw))/4)

	var lastUser, last gjson.Result
	contents.ForEach(func(_, c gjson.Result) bool {
		last = c
		if r := c.Get("role").Str; (r == "user" || r == "") && !hasFunctionResponse(c) {
			lastUser = c
		}
		return true
	})
	var sb strings.Builder
	lastUser.Get("parts").ForEach(func(_, p gjson.Result) bool {
		if t := p.Get("text"); t.Type == gjson.String {
			if sb.Len() > 0 {
				sb.WriteByte('\n')
			}
			sb.WriteString(t.Str)
		}
		return true
	})
	req.prompt = sb.String()
	if strings.Contains(req.prompt, "SIM_") {
		req.scanMagic(req.prompt)
		safety = strings.Contains(req.prompt, "SIM_SAFETY")
	}
	lastIsUserText := last.Get("role").Str != "model" && !hasFunctionResponse(last)
	req.tool, req.toolSchema = pickGeminiTool(tools, root.Get("toolConfig.functionCallingConfig"), lastIsUserText)
	if gc.Get("responseMimeType").Str == "application/json" {
		req.format = formatJSONObject
		if sc := gc.Get("responseSchema"); sc.IsObject() {
			req.format, req.schema = formatJSONSchema, sc
		}
	}
	return safety, nil
}

func hasFunctionResponse(content gjson.Result) bool {
	found := false
	content.Get("parts").ForEach(func(_, p gjson.Result) bool {
		found = p.Get("functionResponse").Exists()
		return !found
	})
	return found
}

// pickGeminiTool returns the function the answer calls and its parameters:
// mode NONE calls none, ANY the first allowed one, AUTO (or none given)
// the first one when the user spoke last.
func pickGeminiTool(tools, cfg gjson.Result, userSpoke bool) (string, gjson.Result) {
	var first, firstParams gjson.Result
	decl := map[string]gjson.Result{}
	tools.ForEach(func(_, t gjson.Result) bool {
		t.Get("functionDeclarations").ForEach(func(_, d gjson.Result) bool {
			if !first.Exists() {
				first, firstParams = d.Get("name"), d.Get("parameters")
			}
			decl[d.Get("name").Str] = d.Get("parameters")
			return true
		})
		return true
	})
	if !first.Exists() {
		return "", gjson.Result{}
	}
	switch cfg.Get("mode").Str {
	case "NONE":
		return "", gjson.Result{}
	case "ANY":
		if n := cfg.Get("allowedFunctionNames.0").Str; n != "" {
			return n, decl[n]
		}
		return first.Str, firstParams
	}
	if userSpoke {
		return first.Str, firstParams
	}
	return "", gjson.Result{}
}

// appendGeminiHead appends a GenerateContentResponse up to its first part.
func (x *exchange) appendGeminiHead(o []byte) []byte {
	return append(o, `{"candidates":[{"content":{"role":"model","parts":[`...)
}

// appendGeminiTail closes the parts and ends the response: finishReason
// ("" for none), usage (output < 0 for the prompt count alone), model and id.
func (x *exchange) appendGeminiTail(o []byte, finish string, output int) []byte {
	o = appendCandidateEnd(o, 0, finish)
	return x.appendGeminiUsage(o, output)
}

// appendCandidateEnd closes a candidate's parts with its index and finishReason.
func appendCandidateEnd(o []byte, index int, finish string) []byte {
	o = append(o, `]},"index":`...)
	o = strconv.AppendInt(o, int64(index), 10)
	if finish != "" {
		o = append(o, `,"finishReason":"`...)
		o = append(o, finish...)
		o = append(o, '"')
	}
	return append(o, '}')
}

// appendGeminiUsage closes the candidates and writes usage, model and id.
func (x *exchange) appendGeminiUsage(o []byte, output int) []byte {
	req := &x.req
	prompt := max(req.promptTokens, req.cacheRead)
	o = append(o, `],"usageMetadata":{"promptTokenCount":`...)
	o = strconv.AppendInt(o, int64(prompt), 10)
	if output >= 0 {
		o = append(o, `,"candidatesTokenCount":`...)
		o = strconv.AppendInt(o, int64(output), 10)
	}
	o = append(o, `,"totalTokenCount":`...)
	o = strconv.AppendInt(o, int64(prompt+max(output, 0)), 10)
	if req.cacheRead > 0 {
		o = append(o, `,"cachedContentTokenCount":`...)
		o = strconv.AppendInt(o, int64(req.cacheRead), 10)
	}
	o = append(o, `},"modelVersion":`...)
	o = api.AppendString(o, req.model)
	o = append(o, `,"responseId":"sim-`...)
	o = appendHex(o, req.id)
	return append(o, `"}`...)
}

func (x *exchange) appendFunctionCall(o []byte) []byte {
	o = append(o, `{"functionCall":{"name":`...)
	o = api.AppendString(o, x.req.tool)
	o = append(o, `,"args":`...)
	o = append(o, x.args...)
	return append(o, "}}"...)
}

func geminiFinish(truncated bool) string {
	if truncated {
		return "MAX_TOKENS"
	}
	return "STOP"
}

// writeGemini answers with a GenerateContentResponse.
func (x *exchange) writeGemini(w http.ResponseWriter, s *Server, safety bool) {
	req := &x.req
	o := x.appendGeminiHead(x.out[:0])
	var output int
	finish := "STOP"
	switch {
	case safety:
		finish = "SAFETY"
	case req.tool != "":
		output = x.buildArgs()
		o = x.appendFunctionCall(o)
	default:
		// One candidate per candidateCount, with different filler.
		for i := range req.n {
			if i > 0 {
				o = appendCandidateEnd(o, i-1, finish)
				o = append(o, `,{"content":{"role":"model","parts":[`...)
			}
			words, truncated := x.buildText(i)
			output += words
			finish = geminiFinish(truncated)
			o = append(o, `{"text":`...)
			o = api.AppendString(o, api.View(x.text))
			o = append(o, '}')
		}
		o = appendCandidateEnd(o, req.n-1, finish)
		o = x.appendGeminiUsage(o, output)
	}
	if req.tool != "" || safety {
		o = x.appendGeminiTail(o, finish, output)
	}
	o = append(o, '\n')
	x.out = o

	h := w.Header()
	h["Content-Type"] = s.ctJSON
	if req.magic&magicCutStream != 0 {
		h.Set("Content-Length", strconv.Itoa(len(o)))
		_, _ = w.Write(o[:len(o)/2])
		_ = http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	}
	if req.magic&magicStreamError != 0 {
		s.writeGoogleError(w, &simError{kind: kindOverloaded, msg: "The model is overloaded. Please try again later."})
		return
	}
	_, _ = w.Write(o)
}

// streamGemini answers with server-sent events, one
// GenerateContentResponse each; the last carries finishReason and the
// full usage, and the stream then ends (Gemini sends no terminator).
func (x *exchange) streamGemini(ctx context.Context, w http.ResponseWriter, s *Server, safety bool) {
	req := &x.req
	st := x.newStream(ctx, w, s)
	send := func(o []byte, content bool) bool {
		x.out = o
		return st.send(o, content)
	}
	event := func(part func([]byte) []byte, finish string, output int, content bool) bool {
		o := append(x.out[:0], "data: "...)
		o = x.appendGeminiHead(o)
		if part != nil {
			o = part(o)
		}
		o = x.appendGeminiTail(o, finish, output)
		return send(append(o, "\r\n\r\n"...), content)
	}
	if req.magic&magicStall != 0 {
		if event(func(o []byte) []byte { return append(o, `{"text":""}`...) }, "", -1, false) {
			stall(&st)
		}
		return
	}
	switch {
	case safety:
		event(nil, "SAFETY", 0, false)
		return
	case req.tool != "":
		output := x.buildArgs()
		if x.faultDue(&st, true) {
			x.geminiFault(&st)
			return
		}
		event(x.appendFunctionCall, "STOP", output, true)
		return
	}
	output, truncated := x.buildText(0)
	n := x.chunkCount()
	if n == 0 {
		event(func(o []byte) []byte { return append(o, `{"text":""}`...) }, geminiFinish(truncated), output, true)
		return
	}
	for k := range n {
		piece := x.chunk(k)
		text := func(o []byte) []byte {
			o = append(o, `{"text":`...)
			o = api.AppendString(o, piece)
			return append(o, '}')
		}
		if k < n-1 {
			if !event(text, "", -1, true) {
				return
			}
			if x.faultDue(&st, false) {
				x.geminiFault(&st)
				return
			}
			continue
		}
		if x.faultDue(&st, true) {
			x.geminiFault(&st)
			return
		}
		event(text, geminiFinish(truncated), output, true)
	}
}

// geminiFault ends a stream the way SIM_CUT_STREAM or SIM_STREAM_ERROR ask.
func (x *exchange) geminiFault(st *stream) {
	if x.req.magic&magicCutStream != 0 {
		cut(st)
	}
	o := append(x.out[:0], "data: "...)
	o = appendGoogleError(o, http.StatusServiceUnavailable, "UNAVAILABLE", "The model is overloaded. Please try again later.", "")
	o = append(o, "\r\n\r\n"...)
	x.out = o
	st.send(o, false)
}

// googleEmbed answers embedContent, batchEmbedContents and (Vertex) predict
// with deterministic vectors: the same text always gets the same one.
func (s *Server) googleEmbed(w http.ResponseWriter, r *http.Request, model, method string, vertex bool) {
	s.calls.Add(1)
	c := s.cfg.Load()
	x := s.pool.Get().(*exchange)
	defer s.release(x)
	body, serr := x.readBody(r.Body, r.ContentLength)
	if serr != nil {
		s.writeGoogleError(w, serr)
		return
	}
	s.record(r, body)
	if !s.googleAuthorized(w, r, c, vertex) {
		return
	}
	if !gjson.ValidBytes(body) {
		s.writeGoogleError(w, &simError{kind: kindBadRequest, msg: "Invalid JSON payload received."})
		return
	}
	root := gjson.ParseBytes(body)
	type item struct {
		text string
		dims int
	}
	var items []item
	bad := ""
	dimsOf := func(v gjson.Result) int {
		if v.Type == gjson.Number && v.Int() > 0 {
			return int(min(v.Int(), 3072))
		}
		return googleEmbeddingDims
	}
	textOf := func(content gjson.Result) string {
		var sb strings.Builder
		content.Get("parts").ForEach(func(_, p gjson.Result) bool {
			sb.WriteString(p.Get("text").Str)
			return true
		})
		return sb.String()
	}
	switch method {
	case "embedContent":
		items = append(items, item{textOf(root.Get("content")), dimsOf(root.Get("outputDimensionality"))})
	case "batchEmbedContents":
		root.Get("requests").ForEach(func(_, q gjson.Result) bool {
			if q.Get("model").Str != "models/"+model {
				bad = "* BatchEmbedContentsRequest.requests: model must be models/" + model
				return false
			}
			items = append(items, item{textOf(q.Get("content")), dimsOf(q.Get("outputDimensionality"))})
			return true
		})
	case "predict":
		if n := len(root.Get("instances").Array()); n > 1 && strings.HasPrefix(model, "gemini-embedding") {
			bad = "* " + model + " supports one instance per request; got " + strconv.Itoa(n)
			break
		}
		d := dimsOf(root.Get("parameters.outputDimensionality"))
		root.Get("instances").ForEach(func(_, in gjson.Result) bool {
			items = append(items, item{in.Get("content").Str, d})
			return true
		})
	}
	for _, it := range items {
		if it.text == "" && bad == "" {
			bad = "* content: the text to embed must not be empty"
		}
	}
	if bad == "" && len(items) == 0 {
		bad = "* nothing to embed"
	}
	if bad != "" {
		s.writeGoogleError(w, &simError{kind: kindBadRequest, msg: bad})
		return
	}
	var magic request
	for _, it := range items {
		if strings.Contains(it.text, "SIM_") {
			magic.scanMagic(it.text)
		}
	}
	if err := s.fault(c, &magic); err != nil {
		s.writeGoogleError(w, err)
		return
	}
	vector := func(o []byte, it item) []byte {
		o = append(o, '[')
		h := xxh3.HashString(it.text)
		for i := range it.dims {
			if i > 0 {
				o = append(o, ',')
			}
			v := float64(mix64(h+uint64(i)*0x9e3779b97f4a7c15)>>11)*0x1p-52 - 1
			o = strconv.AppendFloat(o, v, 'f', 6, 64)
		}
		return append(o, ']')
	}
	o := x.out[:0]
	switch method {
	case "embedContent":
		o = append(o, `{"embedding":{"values":`...)
		o = vector(o, items[0])
		o = append(o, "}}"...)
	case "batchEmbedContents":
		o = append(o, `{"embeddings":[`...)
		for i, it := range items {
			if i > 0 {
				o = append(o, ',')
			}
			o = append(o, `{"values":`...)
			o = vector(o, it)
			o = append(o, '}')
		}
		o = append(o, "]}"...)
	case "predict":
		o = append(o, `{"predictions":[`...)
		chars := 0
		for i, it := range items {
			if i > 0 {
				o = append(o, ',')
			}
			o = append(o, `{"embeddings":{"values":`...)
			o = vector(o, it)
			o = append(o, `,"statistics":{"token_count":`...)
			o = strconv.AppendInt(o, int64(max(1, (len(it.text)+3)/4)), 10)
			o = append(o, `,"truncated":false}}}`...)
			chars += len(it.text)
		}
		o = append(o, `],"metadata":{"billableCharacterCount":`...)
		o = strconv.AppendInt(o, int64(chars), 10)
		o = append(o, "}}"...)
	}
	o = append(o, '\n')
	x.out = o
	w.Header()["Content-Type"] = s.ctJSON
	_, _ = w.Write(o)
}

// googleToken is an OAuth2 token endpoint for the JWT bearer grant that
// service accounts use: it checks the assertion's claims (and, when
// Options.GoogleTokenKey is set, its RS256 signature) and issues an access
// token that the Vertex AI routes then accept.
func (s *Server) googleToken(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, code, why string) {
		b := append([]byte(`{"error":`), api.AppendString(nil, code)...)
		b = append(b, `,"error_description":`...)
		b = api.AppendString(b, why)
		b = append(b, "}\n"...)
		w.Header()["Content-Type"] = s.ctJSON
		w.WriteHeader(status)
		_, _ = w.Write(b)
	}
	if r.Method != http.MethodPost {
		fail(http.StatusMethodNotAllowed, "invalid_request", "the token endpoint takes POST")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		fail(http.StatusBadRequest, "invalid_request", "the body is not a form")
		return
	}
	if r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		fail(http.StatusBadRequest, "unsupported_grant_type", "grant_type must be urn:ietf:params:oauth:grant-type:jwt-bearer")
		return
	}
	parts := strings.Split(r.PostForm.Get("assertion"), ".")
	if len(parts) != 3 {
		fail(http.StatusBadRequest, "invalid_grant", "the assertion is not a JWT")
		return
	}
	header, herr := base64.RawURLEncoding.DecodeString(parts[0])
	claims, cerr := base64.RawURLEncoding.DecodeString(parts[1])
	sig, serr := base64.RawURLEncoding.DecodeString(parts[2])
	if herr != nil || cerr != nil || serr != nil || !gjson.ValidBytes(header) || !gjson.ValidBytes(claims) {
		fail(http.StatusBadRequest, "invalid_grant", "the assertion is not a JWT")
		return
	}
	if alg := gjson.GetBytes(header, "alg").Str; alg != "RS256" {
		fail(http.StatusBadRequest, "invalid_grant", "the assertion must be signed with RS256, not "+alg)
		return
	}
	cl := gjson.ParseBytes(claims)
	now := time.Now().Unix()
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	aud := scheme + "://" + r.Host + r.URL.Path
	switch {
	case cl.Get("iss").Str == "":
		fail(http.StatusBadRequest, "invalid_grant", "the assertion names no issuer (iss)")
		return
	case cl.Get("aud").Str != aud:
		fail(http.StatusBadRequest, "invalid_grant", "the assertion's audience must be "+aud)
		return
	case !strings.Contains(" "+cl.Get("scope").Str+" ", " https://www.googleapis.com/auth/cloud-platform "):
		fail(http.StatusBadRequest, "invalid_scope", "the assertion does not ask for the cloud-platform scope")
		return
	case cl.Get("exp").Int() < now || cl.Get("iat").Int() > now+300:
		fail(http.StatusBadRequest, "invalid_grant", "the assertion has expired or is not yet valid")
		return
	}
	if key := s.cfg.Load().GoogleTokenKey; key != nil {
		sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
		if rsa.VerifyPKCS1v15(key, crypto.SHA256, sum[:], sig) != nil {
			fail(http.StatusBadRequest, "invalid_grant", "Invalid JWT Signature.")
			return
		}
	}
	s.google.mu.Lock()
	s.google.fetch++
	token := "ya29.sim-" + strconv.FormatInt(s.google.fetch, 10) + "-" + strconv.FormatUint(xxh3.HashString(parts[2]), 36)
	if s.google.issued == nil {
		s.google.issued = map[string]bool{}
	}
	if len(s.google.issued) < 1<<16 { // a bound, should a client fetch in a loop
		s.google.issued[token] = true
	}
	s.google.mu.Unlock()
	b := append([]byte(`{"access_token":`), api.AppendString(nil, token)...)
	b = append(b, `,"expires_in":3600,"token_type":"Bearer"}`...)
	w.Header()["Content-Type"] = s.ctJSON
	_, _ = w.Write(append(b, '\n'))
}

// googleStatus is the HTTP status and google.rpc code Google answers e with.
func (e *simError) googleStatus() (int, string) {
	switch e.kind {
	case kindUnauthorized:
		return http.StatusUnauthorized, "UNAUTHENTICATED"
	case kindNotFound:
		return http.StatusNotFound, "NOT_FOUND"
	case kindMethod:
		return http.StatusMethodNotAllowed, "UNIMPLEMENTED"
	case kindTooLarge:
		return http.StatusRequestEntityTooLarge, "INVALID_ARGUMENT"
	case kindRateLimit:
		return http.StatusTooManyRequests, "RESOURCE_EXHAUSTED"
	case kindServer:
		return http.StatusInternalServerError, "INTERNAL"
	case kindOverloaded:
		return http.StatusServiceUnavailable, "UNAVAILABLE"
	}
	return http.StatusBadRequest, "INVALID_ARGUMENT"
}

// writeGoogleError answers e as Google does; rate limits carry RetryInfo.
func (s *Server) writeGoogleError(w http.ResponseWriter, e *simError) {
	status, gstatus := e.googleStatus()
	details := ""
	if e.kind == kindRateLimit {
		details = `[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"` + s.cfg.Load().retryAfter[0] + `s"}]`
	}
	s.writeGoogleErrorStatus(w, status, gstatus, e.msg, details)
}

func (s *Server) writeGoogleErrorStatus(w http.ResponseWriter, status int, gstatus, msg, details string) {
	body := appendGoogleError(make([]byte, 0, 96+len(msg)+len(details)), status, gstatus, msg, details)
	body = append(body, '\n')
	h := w.Header()
	h["Content-Type"] = s.ctJSON
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// appendGoogleError appends {"error":{"code","message","status"[,"details"]}}.
func appendGoogleError(dst []byte, status int, gstatus, msg, details string) []byte {
	dst = append(dst, `{"error":{"code":`...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, `,"message":`...)
	dst = api.AppendString(dst, msg)
	dst = append(dst, `,"status":`...)
	dst = api.AppendString(dst, gstatus)
	if details != "" {
		dst = append(dst, `,"details":`...)
		dst = append(dst, details...)
	}
	return append(dst, "}}"...)
}
