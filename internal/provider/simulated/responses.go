package simulated

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
	"github.com/zeebo/xxh3"

	"github.com/edge-agent/edge-agent/internal/api"
)

// responses serves POST /v1/responses, OpenAI's Responses API: a Response
// object, or its typed event stream (response.created ... response.completed)
// when stream is true. Answers are built as the chat ones are (same words,
// tools, formats and magic words); the request's instructions, tools and
// previous_response_id are repeated in the Response. The simulated
// provider keeps nothing, so a previous_response_id is a 400, as OpenAI
// answers an id it does not hold: a gateway must resolve it before.
func (s *Server) responses(w http.ResponseWriter, r *http.Request) {
	d := dialectOpenAI
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		s.writeError(w, d, &simError{kind: kindMethod, msg: "Method " + r.Method + " is not allowed on " + r.URL.Path})
		return
	}
	s.calls.Add(1)
	c := s.cfg.Load()
	if len(c.Headers) > 0 {
		h := w.Header()
		for k, v := range c.Headers {
			h[k] = v
		}
	}
	x := s.pool.Get().(*exchange)
	defer s.release(x)
	body, err := x.readBody(r.Body, r.ContentLength)
	if err != nil {
		s.writeError(w, d, err)
		return
	}
	s.record(r, body)
	if c.apiKey != nil && !authorized(r.Header, d, c.apiKey) {
		s.writeError(w, d, errUnauthorized(d))
		return
	}
	echoes, perr := x.parseResponses(body)
	if perr != nil {
		s.writeError(w, d, perr)
		return
	}
	req := &x.req
	if err := s.fault(c, req); err != nil {
		s.writeError(w, d, err)
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
		x.streamResponses(ctx, w, s, echoes)
		return
	}
	x.writeResponses(w, s, echoes)
}

// respEcho holds the request members a Response repeats, raw JSON
// pointing into the exchange's body.
type respEcho struct {
	instructions, tools, toolChoice, text, maxOutput, metadata string
}

// parseResponses validates a Responses request and fills x.req.
func (x *exchange) parseResponses(body []byte) (respEcho, *simError) {
	var e respEcho
	js := api.View(body)
	if !gjson.Valid(js) {
		return e, &simError{kind: kindBadRequest, msg: "We could not parse the JSON body of your request. The OpenAI API expects a JSON payload, but what was sent was not valid JSON."}
	}
	root := gjson.Parse(js)
	if !root.IsObject() {
		return e, &simError{kind: kindBadRequest, msg: "The request body must be a JSON object."}
	}
	req := &x.req
	*req = request{n: 1, words: -1, slow: -1, id: xxh3.HashString(js)}
	var input, instructions, tools, choice, format gjson.Result
	var hasModel bool
	var prev string
	root.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "model":
			hasModel = v.Type == gjson.String && v.Str != ""
			req.model = v.Str
		case "input":
			input = v
		case "instructions":
			instructions = v
			e.instructions = v.Raw
		case "tools":
			tools = v
			e.tools = v.Raw
		case "tool_choice":
			choice = v
			e.toolChoice = v.Raw
		case "text":
			format = v.Get("format")
			if format.IsObject() {
				e.text = v.Raw
			}
		case "stream":
			req.stream = v.Type == gjson.True
		case "max_output_tokens":
			if v.Type == gjson.Number {
				req.maxTokens = v.Int()
				e.maxOutput = v.Raw
			}
		case "metadata":
			if v.IsObject() {
				e.metadata = v.Raw
			}
		case "previous_response_id":
			prev = v.Str
		}
		return true
	})
	switch {
	case !hasModel:
		return e, &simError{kind: kindBadRequest, param: "model", code: "missing_required_parameter", msg: "Missing required parameter: 'model'."}
	case prev != "":
		return e, &simError{kind: kindBadRequest, param: "previous_response_id", code: "previous_response_not_found", msg: "Previous response with id '" + prev + "' not found."}
	case input.Type != gjson.String && !input.IsArray():
		return e, &simError{kind: kindBadRequest, param: "input", code: "missing_required_parameter", msg: "Missing required parameter: 'input'."}
	case req.maxTokens < 0 || (e.maxOutput != "" && req.maxTokens < 16):
		return e, &simError{kind: kindBadRequest, param: "max_output_tokens", code: "integer_below_min_value", msg: "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16."}
	}
	req.seed = xxh3.HashString(input.Raw) ^ xxh3.HashString(instructions.Raw)
	req.promptTokens = max(1, (len(input.Raw)+len(instructions.Raw)+len(tools.Raw))/4)

	lastIsUserText := input.Type == gjson.String
	req.prompt = input.Str
	if !input.IsArray() {
		input = gjson.Result{}
	}
	input.ForEach(func(_, it gjson.Result) bool {
		typ := it.Get("type").Str
		isMsg := typ == "" || typ == "message"
		lastIsUserText = isMsg && it.Get("role").Str == "user"
		if lastIsUserText {
			req.prompt = inputText(it.Get("content"))
		}
		return true
	})
	if strings.Contains(req.prompt, "SIM_") {
		req.scanMagic(req.prompt)
	}
	req.tool, req.toolSchema = pickResponsesTool(tools, choice, lastIsUserText)
	switch format.Get("type").Str {
	case "json_object":
		req.format = formatJSONObject
	case "json_schema":
		req.format, req.schema = formatJSONSchema, format.Get("schema")
	}
	return e, nil
}

// inputText is the text of a Responses message's content.
func inputText(content gjson.Result) string {
	if content.Type == gjson.String {
		return content.Str
	}
	var sb strings.Builder
	content.ForEach(func(_, p gjson.Result) bool {
		if t := p.Get("type").Str; t == "input_text" || t == "output_text" {
			if sb.Len() > 0 {
				sb.WriteByte('\n')
			}
			sb.WriteString(p.Get("text").Str)
		}
		return true
	})
	return sb.String()
}

// pickResponsesTool is pickTool for Responses' flat function tools.
func pickResponsesTool(tools, choice gjson.Result, userSpoke bool) (string, gjson.Result) {
	var first gjson.Result
	tools.ForEach(func(_, t gjson.Result) bool {
		if t.Get("type").Str == "function" {
			first = t
			return false
		}
		return true
	})
	if !first.Exists() {
		return "", gjson.Result{}
	}
	name := ""
	switch {
	case choice.Str == "none":
	case choice.Str == "required":
		name = first.Get("name").Str
	case choice.Get("type").Str == "function":
		name = choice.Get("name").Str
	case userSpoke:
		name = first.Get("name").Str
	}
	if name == "" {
		return "", gjson.Result{}
	}
	var schema gjson.Result
	tools.ForEach(func(_, t gjson.Result) bool {
		if t.Get("name").Str == name {
			schema = t.Get("parameters")
			return false
		}
		return true
	})
	return name, schema
}

func or(raw, def string) string {
	if raw == "" {
		return def
	}
	return raw
}

// appendResponseObject writes a Response: output is its items, "" while in
// progress; completion is the output tokens.
func (x *exchange) appendResponseObject(o []byte, e *respEcho, status, output string, completion int) []byte {
	req := &x.req
	o = append(o, `{"id":"resp_sim_`...)
	o = appendHex(o, req.id)
	o = append(o, `","object":"response","created_at":`...)
	o = strconv.AppendInt(o, time.Now().Unix(), 10)
	o = append(o, `,"status":"`...)
	o = append(o, status...)
	o = append(o, `","background":false,"error":null,"incomplete_details":`...)
	if status == "incomplete" {
		o = append(o, `{"reason":"max_output_tokens"}`...)
	} else {
		o = append(o, "null"...)
	}
	o = append(o, `,"instructions":`...)
	o = append(o, or(e.instructions, "null")...)
	o = append(o, `,"max_output_tokens":`...)
	o = append(o, or(e.maxOutput, "null")...)
	o = append(o, `,"model":`...)
	o = api.AppendString(o, req.model)
	o = append(o, `,"output":[`...)
	o = append(o, output...)
	o = append(o, `],"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},"service_tier":"default","store":true,"temperature":1.0,"text":`...)
	o = append(o, or(e.text, `{"format":{"type":"text"}}`)...)
	o = append(o, `,"tool_choice":`...)
	o = append(o, or(e.toolChoice, `"auto"`)...)
	o = append(o, `,"tools":`...)
	o = append(o, or(e.tools, "[]")...)
	o = append(o, `,"top_p":1.0,"truncation":"disabled","usage":`...)
	if status == "in_progress" {
		o = append(o, "null"...)
	} else {
		prompt := max(req.promptTokens, req.cacheRead)
		o = append(o, `{"input_tokens":`...)
		o = strconv.AppendInt(o, int64(prompt), 10)
		o = append(o, `,"input_tokens_details":{"cached_tokens":`...)
		o = strconv.AppendInt(o, int64(req.cacheRead), 10)
		o = append(o, `,"cache_write_tokens":0},"output_tokens":`...)
		o = strconv.AppendInt(o, int64(completion), 10)
		o = append(o, `,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":`...)
		o = strconv.AppendInt(o, int64(prompt+completion), 10)
		o = append(o, '}')
	}
	o = append(o, `,"metadata":`...)
	o = append(o, or(e.metadata, "{}")...)
	return append(o, '}')
}

// appendItem writes the answer's output item: a function call with args,
// or a message with text ("" and status in_progress for the added event).
func (x *exchange) appendItem(o []byte, status, content string) []byte {
	req := &x.req
	if req.tool != "" {
		o = append(o, `{"id":"fc_sim_`...)
		o = appendHex(o, req.id)
		o = append(o, `","type":"function_call","status":"`...)
		o = append(o, status...)
		o = append(o, `","arguments":`...)
		o = api.AppendString(o, content)
		o = append(o, `,"call_id":"call_sim_`...)
		o = appendHex(o, req.id)
		o = append(o, `","name":`...)
		o = api.AppendString(o, req.tool)
		return append(o, '}')
	}
	o = append(o, `{"id":"msg_sim_`...)
	o = appendHex(o, req.id)
	o = append(o, `","type":"message","status":"`...)
	o = append(o, status...)
	o = append(o, `","role":"assistant","content":[`...)
	if status != "in_progress" {
		o = appendTextPart(o, content)
	}
	return append(o, "]}"...)
}

func appendTextPart(o []byte, text string) []byte {
	o = append(o, `{"type":"output_text","annotations":[],"logprobs":[],"text":`...)
	o = api.AppendString(o, text)
	return append(o, '}')
}

// build makes the answer: its status, content (text or arguments) and
// output tokens.
func (x *exchange) build() (status, content string, completion int) {
	if x.req.tool != "" {
		completion = x.buildArgs()
		return "completed", api.View(x.args), completion
	}
	words, truncated := x.buildText(0)
	status = "completed"
	if truncated {
		status = "incomplete"
	}
	return status, api.View(x.text), words
}

func (x *exchange) writeResponses(w http.ResponseWriter, s *Server, e respEcho) {
	status, content, completion := x.build()
	item := x.appendItem(nil, status, content)
	o := x.appendResponseObject(x.out[:0], &e, status, api.View(item), completion)
	o = append(o, '\n')
	x.out = o
	h := w.Header()
	h["Content-Type"] = s.ctJSON
	if x.req.magic&magicCutStream != 0 {
		h.Set("Content-Length", strconv.Itoa(len(o)))
		_, _ = w.Write(o[:len(o)/2])
		_ = http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	}
	if x.req.magic&magicStreamError != 0 {
		s.writeError(w, dialectOpenAI, errServer())
		return
	}
	_, _ = w.Write(o)
}

// streamResponses sends the typed event stream of one output item.
func (x *exchange) streamResponses(ctx context.Context, w http.ResponseWriter, s *Server, e respEcho) {
	req := &x.req
	st := x.newStream(ctx, w, s)
	seq := int64(0)
	event := func(typ string) []byte {
		o := append(x.out[:0], "event: "...)
		o = append(o, typ...)
		o = append(o, "\ndata: {\"type\":\""...)
		o = append(o, typ...)
		o = append(o, `","sequence_number":`...)
		o = strconv.AppendInt(o, seq, 10)
		seq++
		return o
	}
	send := func(o []byte, content bool) bool {
		o = append(o, "}\n\n"...)
		x.out = o
		return st.send(o, content)
	}
	ref := func(o []byte, part bool) []byte {
		o = append(o, `,"item_id":"`...)
		if req.tool != "" {
			o = append(o, "fc_sim_"...)
		} else {
			o = append(o, "msg_sim_"...)
		}
		o = appendHex(o, req.id)
		o = append(o, `","output_index":0`...)
		if part {
			o = append(o, `,"content_index":0`...)
		}
		return o
	}
	status, content, completion := x.build()
	start := x.appendResponseObject(nil, &e, "in_progress", "", 0)
	for _, typ := range [...]string{"response.created", "response.in_progress"} {
		o := append(event(typ), `,"response":`...)
		if !send(append(o, start...), false) {
			return
		}
	}
	if req.magic&magicStall != 0 {
		stall(&st)
		return
	}
	o := append(event("response.output_item.added"), `,"output_index":0,"item":`...)
	if !send(x.appendItem(o, "in_progress", ""), false) {
		return
	}
	fault := func() {
		if req.magic&magicCutStream != 0 {
			cut(&st)
		}
		o := append(event("error"), `,"code":"server_error","message":"The server had an error while processing your request (simulated stream error).","param":null`...)
		send(o, false)
	}
	if req.tool != "" {
		for _, piece := range x.argPieces() {
			if piece == "" {
				continue
			}
			o := append(ref(event("response.function_call_arguments.delta"), false), `,"delta":`...)
			if !send(api.AppendString(o, piece), true) {
				return
			}
			if x.faultDue(&st, false) {
				fault()
				return
			}
		}
		if x.faultDue(&st, true) {
			fault()
			return
		}
		o := append(ref(event("response.function_call_arguments.done"), false), `,"name":`...)
		o = api.AppendString(o, req.tool)
		o = append(o, `,"arguments":`...)
		if !send(api.AppendString(o, content), false) {
			return
		}
	} else {
		o := append(ref(event("response.content_part.added"), true), `,"part":`...)
		if !send(appendTextPart(o, ""), false) {
			return
		}
		for k := range x.chunkCount() {
			o := append(ref(event("response.output_text.delta"), true), `,"delta":`...)
			o = api.AppendString(o, x.chunk(k))
			if !send(append(o, `,"logprobs":[]`...), true) {
				return
			}
			if x.faultDue(&st, false) {
				fault()
				return
			}
		}
		if x.faultDue(&st, true) {
			fault()
			return
		}
		o = append(ref(event("response.output_text.done"), true), `,"text":`...)
		o = api.AppendString(o, content)
		if !send(append(o, `,"logprobs":[]`...), false) {
			return
		}
		o = append(ref(event("response.content_part.done"), true), `,"part":`...)
		if !send(appendTextPart(o, content), false) {
			return
		}
	}
	item := x.appendItem(nil, status, content)
	o = append(event("response.output_item.done"), `,"output_index":0,"item":`...)
	if !send(append(o, item...), false) {
		return
	}
	terminal := "response.completed"
	if status == "incomplete" {
		terminal = "response.incomplete"
	}
	o = append(event(terminal), `,"response":`...)
	send(x.appendResponseObject(o, &e, status, api.View(item), completion), false)
}
