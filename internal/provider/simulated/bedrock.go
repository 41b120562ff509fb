package simulated

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/tidwall/gjson"
	"github.com/zeebo/xxh3"

	"github.com/edge-agent/edge-agent/internal/api"
)

// The credentials the simulated Bedrock endpoint accepts. Every request
// must carry a SigV4 signature made with them (any region; service
// "bedrock"), which the endpoint recomputes with the AWS SDK's signer.
const (
	BedrockAccessKeyID     = "AKIDSIMULATEDBEDROCK"
	BedrockSecretAccessKey = "simulated/bedrock/wJalrXUtnFEMI/K7MDENG+EXAMPLEKEY"
)

// bedrockMaxSkew is how far a request's X-Amz-Date may be from now, as on AWS.
const bedrockMaxSkew = 5 * time.Minute

// bedrockError is an answer in Bedrock's error shape: the status, the
// exception name in x-amzn-ErrorType and {"message":...}.
type bedrockError struct {
	status    int
	exception string
	msg       string
}

func bedrockErrorOf(e *simError) *bedrockError {
	switch e.kind {
	case kindRateLimit:
		return &bedrockError{http.StatusTooManyRequests, "ThrottlingException", "Too many requests, please wait before trying again. (simulated)"}
	case kindServer:
		return &bedrockError{http.StatusInternalServerError, "InternalServerException", "The server encountered an error processing your request. (simulated)"}
	case kindOverloaded:
		return &bedrockError{http.StatusServiceUnavailable, "ServiceUnavailableException", "The service is temporarily unavailable. (simulated)"}
	case kindNotFound:
		return &bedrockError{http.StatusNotFound, "ResourceNotFoundException", e.msg}
	case kindMethod:
		return &bedrockError{http.StatusMethodNotAllowed, "UnknownOperationException", e.msg}
	}
	return &bedrockError{http.StatusBadRequest, "ValidationException", e.msg}
}

func (s *Server) writeBedrockError(w http.ResponseWriter, e *bedrockError) {
	body := append([]byte(`{"message":`), api.AppendString(nil, e.msg)...)
	body = append(body, "}"...)
	h := w.Header()
	h["Content-Type"] = s.ctJSON
	h.Set("X-Amzn-Errortype", e.exception+":http://internal.amazon.com/coral/com.amazon.bedrock/")
	if e.status == http.StatusTooManyRequests {
		h["Retry-After"] = s.cfg.Load().retryAfter
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(e.status)
	_, _ = w.Write(body)
}

// bedrock serves POST /model/{modelId}/converse, /converse-stream and
// /invoke (embedding models).
func (s *Server) bedrock(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.EscapedPath(), "/model/")
	i := strings.LastIndexByte(rest, '/')
	if i <= 0 {
		s.writeBedrockError(w, &bedrockError{http.StatusNotFound, "UnknownOperationException", "Unknown operation " + r.URL.Path})
		return
	}
	model, err := url.PathUnescape(rest[:i])
	op := rest[i+1:]
	if err != nil || model == "" || (op != "converse" && op != "converse-stream" && op != "invoke") {
		s.writeBedrockError(w, &bedrockError{http.StatusNotFound, "UnknownOperationException", "Unknown operation " + r.URL.Path})
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		s.writeBedrockError(w, bedrockErrorOf(&simError{kind: kindMethod, msg: "Method " + r.Method + " is not allowed on " + r.URL.Path}))
		return
	}
	s.calls.Add(1)
	x := s.pool.Get().(*exchange)
	defer s.release(x)
	body, serr := x.readBody(r.Body, r.ContentLength)
	if serr != nil {
		s.writeBedrockError(w, bedrockErrorOf(serr))
		return
	}
	s.record(r, body)
	if e := verifySigV4(r, body, time.Now()); e != nil {
		s.writeBedrockError(w, e)
		return
	}
	id := xxh3.Hash(body)
	w.Header().Set("X-Amzn-Requestid", requestUUID(id))
	if op == "invoke" {
		s.bedrockInvoke(w, model, body)
		return
	}
	conv, serr := converseAsMessages(model, body, op == "converse-stream")
	if serr != nil {
		s.writeBedrockError(w, bedrockErrorOf(serr))
		return
	}
	if serr := x.parse(dialectAnthropic, conv); serr != nil {
		s.writeBedrockError(w, bedrockErrorOf(serr))
		return
	}
	req := &x.req
	c := s.cfg.Load()
	if serr := s.fault(c, req); serr != nil {
		s.writeBedrockError(w, bedrockErrorOf(serr))
		return
	}
	ctx := r.Context()
	delay := req.slow
	if delay < 0 {
		delay = s.ttft(c)
	}
	if !req.stream && req.magic&magicStall != 0 {
		<-ctx.Done()
		return
	}
	if !sleep(ctx, delay) {
		return
	}
	x.c = c
	if req.stream {
		x.streamConverse(ctx, w, s)
		return
	}
	x.writeConverse(w, s)
}

// requestUUID formats v as the UUID-shaped request id AWS sends.
func requestUUID(v uint64) string {
	h := appendHex(nil, v)
	h = appendHex(h, mix64(v))
	return string(h[:8]) + "-" + string(h[8:12]) + "-" + string(h[12:16]) + "-" + string(h[16:20]) + "-" + string(h[20:32])
}

// verifySigV4 checks r's Authorization header: the scope's key and
// service, the date's skew, and the signature, recomputed over the headers
// the client says it signed with the SDK's signer.
func verifySigV4(r *http.Request, body []byte, now time.Time) *bedrockError {
	denied := func(exception, msg string) *bedrockError {
		return &bedrockError{http.StatusForbidden, exception, msg}
	}
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return denied("MissingAuthenticationTokenException", "Missing Authentication Token")
	}
	credential, signedHeaders, signature, ok := parseAuthorization(auth)
	if !ok {
		return denied("IncompleteSignatureException", "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters of AWS4-HMAC-SHA256.")
	}
	scope := strings.Split(credential, "/")
	if len(scope) != 5 || scope[4] != "aws4_request" {
		return denied("IncompleteSignatureException", "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term.")
	}
	if scope[0] != BedrockAccessKeyID {
		return denied("UnrecognizedClientException", "The security token included in the request is invalid.")
	}
	if scope[3] != "bedrock" {
		return denied("InvalidSignatureException", "Credential should be scoped to correct service: 'bedrock'.")
	}
	date, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return denied("IncompleteSignatureException", "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
	}
	if d := now.Sub(date); d > bedrockMaxSkew || d < -bedrockMaxSkew {
		return denied("InvalidSignatureException", "Signature expired: "+date.Format("20060102T150405Z")+" is now earlier than "+
			now.Add(-bedrockMaxSkew).UTC().Format("20060102T150405Z")+" (simulated: 5 min.)")
	}
	if scope[1] != date.Format("20060102") {
		return denied("InvalidSignatureException", "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP.")
	}

	vr, err := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), nil)
	if err != nil {
		return denied("InvalidSignatureException", "The request URI could not be read.")
	}
	vr.ContentLength = int64(len(body))
	for _, name := range strings.Split(signedHeaders, ";") {
		if name == "host" || name == "content-length" {
			continue // the signer takes them from the request itself
		}
		ck := http.CanonicalHeaderKey(name)
		vs, present := r.Header[ck]
		if !present {
			return denied("InvalidSignatureException", "The request signature we calculated does not match the signature you provided: signed header "+name+" is missing.")
		}
		vr.Header[ck] = vs
	}
	creds := aws.Credentials{AccessKeyID: BedrockAccessKeyID, SecretAccessKey: BedrockSecretAccessKey,
		SessionToken: r.Header.Get("X-Amz-Security-Token")}
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(r.Context(), creds, vr, hex.EncodeToString(sum[:]), scope[3], scope[2], date); err != nil {
		return denied("InvalidSignatureException", "The request could not be signed for comparison.")
	}
	_, wantHeaders, want, _ := parseAuthorization(vr.Header.Get("Authorization"))
	if wantHeaders != signedHeaders || subtle.ConstantTimeCompare([]byte(want), []byte(signature)) != 1 {
		return denied("InvalidSignatureException", "The request signature we calculated does not match the signature you provided. "+
			"Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
	}
	return nil
}

// parseAuthorization splits "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...".
func parseAuthorization(h string) (credential, signedHeaders, signature string, ok bool) {
	rest, found := strings.CutPrefix(h, "AWS4-HMAC-SHA256 ")
	if !found {
		return "", "", "", false
	}
	for _, f := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		switch k {
		case "Credential":
			credential = v
		case "SignedHeaders":
			signedHeaders = v
		case "Signature":
			signature = v
		}
	}
	return credential, signedHeaders, signature, credential != "" && signedHeaders != "" && signature != ""
}

// converseAsMessages rewrites a Converse request as the Messages request
// the simulated provider's parser reads (what it checks and how it picks
// the answer are the same), after the checks Converse itself makes.
func converseAsMessages(model string, body []byte, stream bool) ([]byte, *simError) {
	if !gjson.ValidBytes(body) {
		return nil, &simError{kind: kindBadRequest, msg: "Malformed input request, please reformat your input and try again."}
	}
	root := gjson.ParseBytes(body)
	if !root.IsObject() {
		return nil, &simError{kind: kindBadRequest, msg: "Malformed input request, please reformat your input and try again."}
	}
	messages := root.Get("messages")
	if !messages.IsArray() || len(messages.Array()) == 0 {
		return nil, &simError{kind: kindBadRequest, msg: "1 validation error detected: Value at 'messages' failed to satisfy constraint: Member must not be null"}
	}
	hasToolConfig := root.Get("toolConfig.tools").IsArray()
	o := append(make([]byte, 0, len(body)+128), `{"model":`...)
	o = api.AppendString(o, model)
	o = append(o, `,"max_tokens":`...)
	if mt := root.Get("inferenceConfig.maxTokens"); mt.Type == gjson.Number {
		if mt.Int() < 1 {
			return nil, &simError{kind: kindBadRequest, msg: "1 validation error detected: Value at 'inferenceConfig.maxTokens' failed to satisfy constraint: Member must have value greater than or equal to 1"}
		}
		o = strconv.AppendInt(o, mt.Int(), 10)
	} else {
		o = append(o, "4096"...)
	}
	if stream {
		o = append(o, `,"stream":true`...)
	}
	if sys := root.Get("system"); sys.IsArray() {
		o = append(o, `,"system":[`...)
		n := 0
		sys.ForEach(func(_, b gjson.Result) bool {
			if t := b.Get("text"); t.Type == gjson.String {
				if n > 0 {
					o = append(o, ',')
				}
				n++
				o = append(o, `{"type":"text","text":`...)
				o = append(o, t.Raw...)
				o = append(o, '}')
			}
			return true
		})
		o = append(o, ']')
	}
	o = append(o, `,"messages":[`...)
	var err *simError
	i := -1
	messages.ForEach(func(_, m gjson.Result) bool {
		i++
		role := m.Get("role").Str
		if role != "user" && role != "assistant" {
			err = &simError{kind: kindBadRequest, msg: "1 validation error detected: Value at 'messages." + strconv.Itoa(i+1) + ".member.role' failed to satisfy constraint: Member must satisfy enum value set: [user, assistant]"}
			return false
		}
		if i == 0 && role != "user" {
			err = &simError{kind: kindBadRequest, msg: "A conversation must start with a user message. Try again with a conversation that starts with a user message."}
			return false
		}
		if i > 0 {
			o = append(o, ',')
		}
		o = append(o, `{"role":"`...)
		o = append(o, role...)
		o = append(o, `","content":[`...)
		n := 0
		m.Get("content").ForEach(func(_, b gjson.Result) bool {
			var block string
			switch {
			case b.Get("text").Exists():
				t := b.Get("text")
				if strings.TrimSpace(t.Str) == "" {
					err = &simError{kind: kindBadRequest, msg: "The text field in the ContentBlock object at messages." + strconv.Itoa(i) + ".content." + strconv.Itoa(n) + " is blank. Add text to the text field, and try again."}
					return false
				}
				block = `{"type":"text","text":` + t.Raw + `}`
			case b.Get("toolUse").IsObject(), b.Get("toolResult").IsObject():
				if !hasToolConfig {
					err = &simError{kind: kindBadRequest, msg: "The toolConfig field must be defined when using toolUse and toolResult content blocks."}
					return false
				}
				if tu := b.Get("toolUse"); tu.IsObject() {
					block = `{"type":"tool_use","id":` + tu.Get("toolUseId").Raw + `,"name":` + tu.Get("name").Raw + `,"input":{}}`
				} else {
					block = `{"type":"tool_result","tool_use_id":` + b.Get("toolResult.toolUseId").Raw + `}`
				}
			case b.Get("image").IsObject():
				block = `{"type":"image"}`
			default: // cachePoint and others carry no text
				return true
			}
			if n > 0 {
				o = append(o, ',')
			}
			n++
			o = append(o, block...)
			return true
		})
		o = append(o, "]}"...)
		return err == nil
	})
	if err != nil {
		return nil, err
	}
	o = append(o, ']')
	if hasToolConfig {
		o = append(o, `,"tools":[`...)
		n := 0
		root.Get("toolConfig.tools").ForEach(func(_, t gjson.Result) bool {
			spec := t.Get("toolSpec")
			if !spec.IsObject() {
				return true // a cachePoint
			}
			if n > 0 {
				o = append(o, ',')
			}
			n++
			o = append(o, `{"name":`...)
			o = append(o, spec.Get("name").Raw...)
			o = append(o, `,"input_schema":`...)
			if js := spec.Get("inputSchema.json"); js.IsObject() {
				o = append(o, js.Raw...)
			} else {
				o = append(o, "{}"...)
			}
			o = append(o, '}')
			return true
		})
		o = append(o, ']')
		tc := root.Get("toolConfig.toolChoice")
		switch {
		case tc.Get("any").Exists():
			o = append(o, `,"tool_choice":{"type":"any"}`...)
		case tc.Get("tool").Exists():
			o = append(o, `,"tool_choice":{"type":"tool","name":`...)
			o = append(o, tc.Get("tool.name").Raw...)
			o = append(o, '}')
		}
	}
	return append(o, '}'), nil
}

// appendConverseUsage writes Converse's usage; cache counts come on top of
// inputTokens and appear only when non-zero, as Bedrock sends them.
func appendConverseUsage(o []byte, req *request, output int) []byte {
	o = append(o, `{"inputTokens":`...)
	o = strconv.AppendInt(o, int64(req.promptTokens), 10)
	o = append(o, `,"outputTokens":`...)
	o = strconv.AppendInt(o, int64(output), 10)
	o = append(o, `,"totalTokens":`...)
	o = strconv.AppendInt(o, int64(req.promptTokens+output+req.cacheRead+req.cacheWrite), 10)
	if req.cacheRead > 0 {
		o = append(o, `,"cacheReadInputTokens":`...)
		o = strconv.AppendInt(o, int64(req.cacheRead), 10)
	}
	if req.cacheWrite > 0 {
		o = append(o, `,"cacheWriteInputTokens":`...)
		o = strconv.AppendInt(o, int64(req.cacheWrite), 10)
	}
	return append(o, '}')
}

func (x *exchange) appendToolUseID(o []byte) []byte {
	o = append(o, `"tooluse_sim_`...)
	o = appendHex(o, x.req.id)
	return append(o, '"')
}

// writeConverse answers with a Converse response.
func (x *exchange) writeConverse(w http.ResponseWriter, s *Server) {
	req := &x.req
	o := append(x.out[:0], `{"output":{"message":{"role":"assistant","content":[`...)
	var output int
	stop := "tool_use"
	if req.tool != "" {
		output = x.buildArgs()
		o = append(o, `{"toolUse":{"toolUseId":`...)
		o = x.appendToolUseID(o)
		o = append(o, `,"name":`...)
		o = api.AppendString(o, req.tool)
		o = append(o, `,"input":`...)
		o = append(o, x.args...)
		o = append(o, "}}"...)
	} else {
		var truncated bool
		output, truncated = x.buildText(0)
		stop = "end_turn"
		if truncated {
			stop = "max_tokens"
		}
		o = append(o, `{"text":`...)
		o = api.AppendString(o, api.View(x.text))
		o = append(o, '}')
	}
	o = append(o, `]}},"stopReason":"`...)
	o = append(o, stop...)
	o = append(o, `","usage":`...)
	o = appendConverseUsage(o, req, output)
	o = append(o, `,"metrics":{"latencyMs":`...)
	o = strconv.AppendInt(o, int64(x.c.TTFT/time.Millisecond), 10)
	o = append(o, "}}"...)
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
		s.writeBedrockError(w, bedrockErrorOf(&simError{kind: kindOverloaded}))
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(o)))
	_, _ = w.Write(o)
}

// bedrockPadding stands in for the random "p" field Bedrock adds to every
// stream event (so event sizes do not reveal the text); clients ignore it.
const bedrockPadding = `,"p":"abcdefghijklmnopqrstuvwxyzABCDEFGH"`

// streamConverse answers with ConverseStream's event sequence in AWS's
// event-stream framing: messageStart, [contentBlockStart], contentBlockDelta...,
// contentBlockStop, messageStop, metadata.
func (x *exchange) streamConverse(ctx context.Context, w http.ResponseWriter, s *Server) {
	req := &x.req
	h := w.Header()
	h.Set("Content-Type", "application/vnd.amazon.eventstream")
	w.WriteHeader(http.StatusOK)
	st := stream{ctx: ctx, w: w, rc: http.NewResponseController(w), delay: x.c.ChunkDelay}
	enc := eventstream.NewEncoder()
	var frame bytes.Buffer
	send := func(msgType, name string, payload []byte, content bool) bool {
		frame.Reset()
		m := eventstream.Message{Payload: payload}
		m.Headers.Set(":message-type", eventstream.StringValue(msgType))
		if msgType == "exception" {
			m.Headers.Set(":exception-type", eventstream.StringValue(name))
		} else {
			m.Headers.Set(":event-type", eventstream.StringValue(name))
		}
		m.Headers.Set(":content-type", eventstream.StringValue("application/json"))
		if err := enc.Encode(&frame, m); err != nil {
			return false
		}
		return st.send(frame.Bytes(), content)
	}
	event := func(name string, payload []byte, content bool) bool {
		return send("event", name, payload, content)
	}
	fault := func() {
		if req.magic&magicCutStream != 0 {
			cut(&st)
		}
		send("exception", "modelStreamErrorException",
			[]byte(`{"message":"The model stream failed (simulated).","originalStatusCode":500}`), false)
	}

	if !event("messageStart", []byte(`{"role":"assistant"`+bedrockPadding+`}`), false) {
		return
	}
	if req.magic&magicStall != 0 {
		stall(&st)
		return
	}
	var output int
	stop := "tool_use"
	if req.tool != "" {
		output = x.buildArgs()
		o := append(x.out[:0], `{"contentBlockIndex":0,"start":{"toolUse":{"toolUseId":`...)
		o = x.appendToolUseID(o)
		o = append(o, `,"name":`...)
		o = api.AppendString(o, req.tool)
		x.out = append(o, "}}"+bedrockPadding+"}"...)
		if !event("contentBlockStart", x.out, false) {
			return
		}
		for _, piece := range x.argPieces() {
			if piece == "" {
				continue
			}
			o := append(x.out[:0], `{"contentBlockIndex":0,"delta":{"toolUse":{"input":`...)
			o = api.AppendString(o, piece)
			x.out = append(o, "}}"+bedrockPadding+"}"...)
			if !event("contentBlockDelta", x.out, true) {
				return
			}
			if x.faultDue(&st, false) {
				fault()
				return
			}
		}
	} else {
		var truncated bool
		output, truncated = x.buildText(0)
		stop = "end_turn"
		if truncated {
			stop = "max_tokens"
		}
		for k := range x.chunkCount() {
			o := append(x.out[:0], `{"contentBlockIndex":0,"delta":{"text":`...)
			o = api.AppendString(o, x.chunk(k))
			x.out = append(o, "}"+bedrockPadding+"}"...)
			if !event("contentBlockDelta", x.out, true) {
				return
			}
			if x.faultDue(&st, false) {
				fault()
				return
			}
		}
	}
	if x.faultDue(&st, true) {
		fault()
		return
	}
	if !event("contentBlockStop", []byte(`{"contentBlockIndex":0`+bedrockPadding+`}`), false) {
		return
	}
	if !event("messageStop", []byte(`{"stopReason":"`+stop+`"`+bedrockPadding+`}`), false) {
		return
	}
	o := append(x.out[:0], `{"usage":`...)
	o = appendConverseUsage(o, req, output)
	o = append(o, `,"metrics":{"latencyMs":`...)
	o = strconv.AppendInt(o, int64(x.c.TTFT/time.Millisecond), 10)
	x.out = append(o, "}"+bedrockPadding+"}"...)
	event("metadata", x.out, false)
}

// bedrockInvoke answers InvokeModel for the Titan and Cohere embedding
// models with deterministic vectors: the same text always gets the same
// vector, of unit length.
func (s *Server) bedrockInvoke(w http.ResponseWriter, model string, body []byte) {
	if !gjson.ValidBytes(body) {
		s.writeBedrockError(w, &bedrockError{http.StatusBadRequest, "ValidationException", "Malformed input request, please reformat your input and try again."})
		return
	}
	root := gjson.ParseBytes(body)
	var texts []string
	var o []byte
	tokens := 0
	switch {
	case strings.Contains(model, "amazon.titan-embed"):
		in := root.Get("inputText")
		if in.Type != gjson.String || in.Str == "" {
			s.writeBedrockError(w, &bedrockError{http.StatusBadRequest, "ValidationException", "Malformed input request: #: required key [inputText] not found, please reformat your input and try again."})
			return
		}
		dims := 1536
		if strings.Contains(model, "-v2") {
			dims = 1024
			if d := root.Get("dimensions"); d.Exists() {
				dims = int(d.Int())
				if dims != 256 && dims != 512 && dims != 1024 {
					s.writeBedrockError(w, &bedrockError{http.StatusBadRequest, "ValidationException", "Malformed input request: #/dimensions: " + d.Raw + " is not a valid enum value, please reformat your input and try again."})
					return
				}
			}
		}
		tokens = (len(in.Str) + 3) / 4
		o = append(o, `{"embedding":`...)
		o = appendSimVector(o, in.Str, dims)
		o = append(o, `,"inputTextTokenCount":`...)
		o = strconv.AppendInt(o, int64(tokens), 10)
		o = append(o, '}')
	case strings.Contains(model, "cohere.embed"):
		root.Get("texts").ForEach(func(_, t gjson.Result) bool {
			texts = append(texts, t.Str)
			return true
		})
		if len(texts) == 0 || len(texts) > 96 {
			s.writeBedrockError(w, &bedrockError{http.StatusBadRequest, "ValidationException", "Malformed input request: #/texts: expected between 1 and 96 texts, please reformat your input and try again."})
			return
		}
		if root.Get("input_type").Str == "" {
			s.writeBedrockError(w, &bedrockError{http.StatusBadRequest, "ValidationException", "Malformed input request: #: required key [input_type] not found, please reformat your input and try again."})
			return
		}
		dims := 1024
		if d := root.Get("output_dimension"); d.Type == gjson.Number {
			dims = int(d.Int())
		}
		byType := root.Get("embedding_types").Exists()
		o = append(o, `{"id":"`...)
		o = appendHex(o, xxh3.Hash(body))
		o = append(o, `","embeddings":`...)
		if byType {
			o = append(o, `{"float":`...)
		}
		o = append(o, '[')
		for i, t := range texts {
			if i > 0 {
				o = append(o, ',')
			}
			o = appendSimVector(o, t, dims)
			tokens += (len(t) + 3) / 4
		}
		o = append(o, ']')
		if byType {
			o = append(o, `},"response_type":"embeddings_by_type"}`...)
		} else {
			o = append(o, `,"response_type":"embeddings_floats"}`...)
		}
	default:
		s.writeBedrockError(w, &bedrockError{http.StatusBadRequest, "ValidationException",
			"The simulated provider serves InvokeModel for embedding models (amazon.titan-embed-*, cohere.embed-*) only; use Converse for " + model})
		return
	}
	h := w.Header()
	h["Content-Type"] = s.ctJSON
	h.Set("X-Amzn-Bedrock-Input-Token-Count", strconv.Itoa(tokens))
	h.Set("Content-Length", strconv.Itoa(len(o)))
	_, _ = w.Write(o)
}

// appendSimVector appends a deterministic unit vector of dims numbers for text.
func appendSimVector(o []byte, text string, dims int) []byte {
	seed := xxh3.HashString(text)
	v := make([]float64, dims)
	var norm float64
	for i := range v {
		v[i] = float64(mix64(seed+uint64(i)*0x9e3779b97f4a7c15)>>11)*0x1p-52 - 1
		norm += v[i] * v[i]
	}
	norm = math.Sqrt(norm)
	o = append(o, '[')
	for i, f := range v {
		if i > 0 {
			o = append(o, ',')
		}
		o = strconv.AppendFloat(o, f/norm, 'g', 7, 32)
	}
	return append(o, ']')
}
