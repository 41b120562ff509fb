package simulated

import (
	"errors"
	"io"
	"strings"
	"time"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/tidwall/gjson"
	"github.com/zeebo/xxh3"
)

// Magic words, a bit each.
const (
	magicError400 uint16 = 1 << iota
	magicError429
	magicError500
	magicCutStream
	magicStreamError
	magicStall
	magicToolCall
)

// Answer formats: response_format (OpenAI) or output_format (Anthropic).
const (
	formatText uint8 = iota
	formatJSONObject
	formatJSONSchema
)

// request is what the simulated provider reads from a chat request. Its
// strings point into the exchange's body buffer and die with it.
type request struct {
	model        string
	stream       bool
	includeUsage bool
	maxTokens    int64 // 0 when absent
	n            int
	seed         uint64 // hash of the conversation: drives the filler words
	id           uint64 // hash of the whole body: the answer's id
	promptTokens int
	prompt       string // text of the last user message

	tool       string       // name of the tool to call, "" for a text answer
	toolSchema gjson.Result // its parameters (OpenAI) or input_schema (Anthropic)
	format     uint8        // formatText, formatJSONObject or formatJSONSchema
	schema     gjson.Result // the JSON Schema of formatJSONSchema

	magic uint16
	words int           // SIM_WORDS_<n>, -1 when absent
	slow  time.Duration // SIM_SLOW_<ms>, -1 when absent

	cacheRead, cacheWrite int // SIM_CACHE_READ_<n>, SIM_CACHE_WRITE_<n>: prompt-cache tokens reported
}

// exchange holds the buffers of one request; exchanges are pooled so a
// steady stream of requests allocates almost nothing.
type exchange struct {
	body   []byte
	out    []byte  // the event or body being written
	text   []byte  // one choice's answer text
	starts []int32 // word start offsets in text
	args   []byte  // tool call arguments (JSON)
	prefix []byte  // the start shared by every event of a stream
	req    request
	c      *config
}

func newExchange() *exchange {
	return &exchange{
		body:   make([]byte, 0, 4<<10),
		out:    make([]byte, 0, 4<<10),
		text:   make([]byte, 0, 512),
		starts: make([]int32, 0, 64),
		args:   make([]byte, 0, 128),
		prefix: make([]byte, 0, 160),
	}
}

// maxPooled keeps one huge request from pinning its buffers in the pool.
const maxPooled = 1 << 20

// reset clears x for reuse and reports whether it is worth pooling.
func (x *exchange) reset() bool {
	x.req = request{}
	x.c = nil
	if cap(x.body) > maxPooled || cap(x.out) > maxPooled || cap(x.text) > maxPooled {
		return false
	}
	x.body, x.out, x.text, x.starts, x.args, x.prefix = x.body[:0], x.out[:0], x.text[:0], x.starts[:0], x.args[:0], x.prefix[:0]
	return true
}

// readBody reads the request body into x.body.
func (x *exchange) readBody(r io.Reader, size int64) ([]byte, *simError) {
	if size > maxBody {
		return nil, &simError{kind: kindTooLarge, msg: "Request body too large (simulated limit 32 MiB)."}
	}
	b := x.body[:0]
	if size > 0 && int64(cap(b)) < size+1 {
		b = make([]byte, 0, size+1) // +1 so the final read sees EOF without growing
	}
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if len(b) > maxBody {
			x.body = b
			return nil, &simError{kind: kindTooLarge, msg: "Request body too large (simulated limit 32 MiB)."}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			x.body = b
			return nil, &simError{kind: kindBadRequest, msg: "Could not read the request body: " + err.Error()}
		}
	}
	x.body = b
	return b, nil
}

// parse validates body and fills x.req, like the real APIs do for the
// fields they require.
func (x *exchange) parse(d dialect, body []byte) *simError {
	js := api.View(body)
	if !gjson.Valid(js) {
		if d == dialectAnthropic {
			return &simError{kind: kindBadRequest, msg: "There was an error parsing the body of your request: invalid JSON"}
		}
		return &simError{kind: kindBadRequest, msg: "We could not parse the JSON body of your request. The OpenAI API expects a JSON payload, but what was sent was not valid JSON."}
	}
	root := gjson.Parse(js)
	if !root.IsObject() {
		return &simError{kind: kindBadRequest, msg: "The request body must be a JSON object."}
	}
	req := &x.req
	*req = request{n: 1, words: -1, slow: -1, id: xxh3.HashString(js)}
	var messages, system, tools, toolChoice, format gjson.Result
	var hasModel, hasMaxTokens bool
	root.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "model":
			hasModel = v.Type == gjson.String && v.Str != ""
			req.model = v.Str
		case "messages":
			messages = v
		case "system":
			system = v
		case "tools":
			tools = v
		case "tool_choice":
			toolChoice = v
		case "response_format", "output_format":
			format = v
		case "stream":
			req.stream = v.Type == gjson.True
		case "stream_options":
			req.includeUsage = v.Get("include_usage").Type == gjson.True
		case "max_tokens":
			hasMaxTokens = v.Type == gjson.Number
			if v.Type == gjson.Number && req.maxTokens == 0 {
				req.maxTokens = v.Int()
			}
		case "max_completion_tokens":
			if v.Type == gjson.Number {
				req.maxTokens = v.Int() // wins over the deprecated max_tokens
			}
		case "n":
			if v.Type == gjson.Number {
				req.n = int(v.Int())
			}
		}
		return true
	})
	if d == dialectAnthropic {
		switch {
		case !hasModel:
			return &simError{kind: kindBadRequest, msg: "model: Field required"}
		case !messages.IsArray():
			return &simError{kind: kindBadRequest, msg: "messages: Field required"}
		case !hasMaxTokens:
			return &simError{kind: kindBadRequest, msg: "max_tokens: Field required"}
		case req.maxTokens < 1:
			return &simError{kind: kindBadRequest, msg: "max_tokens: Input should be greater than or equal to 1"}
		}
	} else {
		switch {
		case !hasModel:
			return &simError{kind: kindBadRequest, msg: "you must provide a model parameter"}
		case !messages.IsArray():
			return &simError{kind: kindBadRequest, param: "messages", code: "missing_required_parameter", msg: "Missing required parameter: 'messages'."}
		case req.n < 1 || req.n > 128:
			return &simError{kind: kindBadRequest, param: "n", code: "integer_out_of_range", msg: "Invalid 'n': integer must be between 1 and 128."}
		case req.maxTokens < 0:
			return &simError{kind: kindBadRequest, param: "max_tokens", code: "integer_below_min_value", msg: "Invalid 'max_tokens': integer below minimum value."}
		}
	}
	if len(messages.Raw) <= 2 { // "[]"
		if d == dialectAnthropic {
			return &simError{kind: kindBadRequest, msg: "messages: at least one message is required"}
		}
		return &simError{kind: kindBadRequest, param: "messages", code: "empty_array", msg: "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead."}
	}

	req.seed = xxh3.HashString(messages.Raw) ^ xxh3.HashString(system.Raw)
	req.promptTokens = max(1, (len(messages.Raw)+len(system.Raw)+len(tools.Raw))/4)

	var lastUser, last gjson.Result
	messages.ForEach(func(_, m gjson.Result) bool {
		last = m
		if m.Get("role").Str == "user" {
			lastUser = m
		}
		return true
	})
	prompt, _ := messageText(lastUser.Get("content"))
	req.prompt = prompt
	if strings.Contains(prompt, "SIM_") {
		req.scanMagic(prompt)
	}
	// A tool result as the last message must get a text answer, or an agent
	// loop driven by SIM_TOOL_CALL would never end.
	_, lastIsToolResult := messageText(last.Get("content"))
	lastIsUserText := last.Get("role").Str == "user" && !lastIsToolResult
	req.tool, req.toolSchema = pickTool(d, tools, toolChoice, lastIsUserText)
	switch format.Get("type").Str {
	case "json_object":
		req.format = formatJSONObject
	case "json_schema":
		req.format = formatJSONSchema
		req.schema = format.Get("json_schema.schema") // OpenAI
		if d == dialectAnthropic {
			req.schema = format.Get("schema")
		}
	}
	return nil
}

// messageText returns the text of a message's content, a string or an
// array of parts, and whether the parts hold a tool result.
func messageText(content gjson.Result) (text string, toolResult bool) {
	if content.Type == gjson.String {
		return content.Str, false
	}
	if !content.IsArray() {
		return "", false
	}
	var parts int
	var sb strings.Builder
	content.ForEach(func(_, p gjson.Result) bool {
		switch p.Get("type").Str {
		case "text":
			t := p.Get("text").Str
			if parts == 0 {
				text = t
			} else {
				if parts == 1 {
					sb.WriteString(text)
				}
				sb.WriteByte('\n')
				sb.WriteString(t)
			}
			parts++
		case "tool_result":
			toolResult = true
		}
		return true
	})
	if parts > 1 {
		text = sb.String()
	}
	return text, toolResult
}

// pickTool returns the tool the answer calls, "" for a text answer, and
// its parameters schema. auto (or no tool_choice) calls the first tool
// when the last message is the user's text: a tool result or an assistant
// prefill gets a text answer, so agent loops end.
func pickTool(d dialect, tools, choice gjson.Result, userSpoke bool) (string, gjson.Result) {
	name := pickToolName(d, tools, choice, userSpoke)
	if name == "" {
		return "", gjson.Result{}
	}
	var schema gjson.Result
	tools.ForEach(func(_, t gjson.Result) bool {
		n, p := t.Get("name"), t.Get("input_schema")
		if d == dialectOpenAI {
			n, p = t.Get("function.name"), t.Get("function.parameters")
		}
		if n.Str == name {
			schema = p
			return false
		}
		return true
	})
	return name, schema
}

func pickToolName(d dialect, tools, choice gjson.Result, asked bool) string {
	if !tools.IsArray() {
		return ""
	}
	first := tools.Get("0")
	if !first.Exists() {
		return ""
	}
	firstName := first.Get("name").Str
	if d == dialectOpenAI {
		firstName = first.Get("function.name").Str
	}
	switch {
	case choice.Type == gjson.String: // OpenAI "none", "auto", "required"
		switch choice.Str {
		case "none":
			return ""
		case "required":
			return firstName
		}
	case choice.IsObject():
		switch choice.Get("type").Str {
		case "none":
			return ""
		case "any":
			return firstName
		case "tool":
			if n := choice.Get("name").Str; n != "" {
				return n
			}
			return firstName
		case "function":
			if n := choice.Get("function.name").Str; n != "" {
				return n
			}
			return firstName
		}
	}
	if asked {
		return firstName
	}
	return ""
}

// scanMagic records the magic words found in prompt.
func (req *request) scanMagic(prompt string) {
	for i := strings.Index(prompt, "SIM_"); i >= 0; {
		rest := prompt[i+len("SIM_"):]
		switch {
		case strings.HasPrefix(rest, "ERROR_400"):
			req.magic |= magicError400
		case strings.HasPrefix(rest, "ERROR_429"):
			req.magic |= magicError429
		case strings.HasPrefix(rest, "ERROR_500"):
			req.magic |= magicError500
		case strings.HasPrefix(rest, "CUT_STREAM"):
			req.magic |= magicCutStream
		case strings.HasPrefix(rest, "STREAM_ERROR"):
			req.magic |= magicStreamError
		case strings.HasPrefix(rest, "STALL"):
			req.magic |= magicStall
		case strings.HasPrefix(rest, "TOOL_CALL"):
			req.magic |= magicToolCall
		case strings.HasPrefix(rest, "SLOW_"):
			if ms, ok := leadingInt(rest[len("SLOW_"):]); ok {
				req.slow = time.Duration(min(ms, 3_600_000)) * time.Millisecond
			}
		case strings.HasPrefix(rest, "CACHE_READ_"):
			if n, ok := leadingInt(rest[len("CACHE_READ_"):]); ok {
				req.cacheRead = min(n, 1<<30)
			}
		case strings.HasPrefix(rest, "CACHE_WRITE_"):
			if n, ok := leadingInt(rest[len("CACHE_WRITE_"):]); ok {
				req.cacheWrite = min(n, 1<<30)
			}
		case strings.HasPrefix(rest, "WORDS_"):
			if n, ok := leadingInt(rest[len("WORDS_"):]); ok {
				req.words = min(n, maxWords)
			}
		}
		j := strings.Index(rest, "SIM_")
		if j < 0 {
			break
		}
		i += len("SIM_") + j
	}
}

// leadingInt parses the decimal digits at the start of s.
func leadingInt(s string) (int, bool) {
	n, i := 0, 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		if n < 1<<30 {
			n = n*10 + int(s[i]-'0')
		}
	}
	return n, i > 0
}

// echo returns the first 60 characters of s.
func echo(s string) string {
	const limit = 60
	if len(s) <= limit {
		return s
	}
	n := 0
	for i := range s {
		if n == limit {
			return s[:i]
		}
		n++
	}
	return s
}
