package responses

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/cost"
)

// NewID returns a fresh response id: "resp_" and 48 hex digits, the shape
// of OpenAI's.
func NewID() string {
	var b [24]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return "resp_" + hex.EncodeToString(b[:])
}

// itemID names output item i of response id: the response's hex with the
// item's prefix (msg_, fc_) and index, unique as the response id is.
func itemID(prefix, respID string, i int) string {
	return prefix + strings.TrimPrefix(respID, "resp_") + "_" + itoa(i)
}

// echo holds the request members a Response repeats (instructions, tools,
// text, ...), as raw JSON cloned from the request.
type echo struct {
	instructions, maxOutputTokens, metadata, parallelToolCalls, previousResponseID string
	reasoning, store, temperature, text, toolChoice, tools, topP, truncation       string
	user, serviceTier, safetyIdentifier, promptCacheKey, topLogprobs, maxToolCalls string
}

func readEcho(body []byte) *echo {
	e := &echo{}
	gjson.Parse(api.View(body)).ForEach(func(k, v gjson.Result) bool {
		if v.Type == gjson.Null {
			return true
		}
		var p *string
		switch k.Str {
		case "instructions":
			p = &e.instructions
		case "max_output_tokens":
			p = &e.maxOutputTokens
		case "metadata":
			p = &e.metadata
		case "parallel_tool_calls":
			p = &e.parallelToolCalls
		case "previous_response_id":
			p = &e.previousResponseID
		case "reasoning":
			p = &e.reasoning
		case "store":
			p = &e.store
		case "temperature":
			p = &e.temperature
		case "text":
			if v.Get("format").IsObject() {
				p = &e.text
			}
		case "tool_choice":
			p = &e.toolChoice
		case "tools":
			p = &e.tools
		case "top_p":
			p = &e.topP
		case "truncation":
			p = &e.truncation
		case "user":
			p = &e.user
		case "service_tier":
			p = &e.serviceTier
		case "safety_identifier":
			p = &e.safetyIdentifier
		case "prompt_cache_key":
			p = &e.promptCacheKey
		case "top_logprobs":
			p = &e.topLogprobs
		case "max_tool_calls":
			p = &e.maxToolCalls
		}
		if p != nil && *p == "" {
			*p = strings.Clone(v.Raw)
		}
		return true
	})
	return e
}

func or(raw, def string) string {
	if raw == "" {
		return def
	}
	return raw
}

// usage is a Response's usage object.
type usage struct {
	input, cached, output, reasoning int
}

func (u usage) cost() cost.Usage {
	return cost.Usage{PromptTokens: u.input, CachedTokens: u.cached, CompletionTokens: u.output, ReasoningTokens: u.reasoning}
}

func (u usage) appendJSON(dst []byte) []byte {
	dst = append(dst, `{"input_tokens":`...)
	dst = strconv.AppendInt(dst, int64(u.input), 10)
	dst = append(dst, `,"input_tokens_details":{"cached_tokens":`...)
	dst = strconv.AppendInt(dst, int64(u.cached), 10)
	dst = append(dst, `,"cache_write_tokens":0},"output_tokens":`...)
	dst = strconv.AppendInt(dst, int64(u.output), 10)
	dst = append(dst, `,"output_tokens_details":{"reasoning_tokens":`...)
	dst = strconv.AppendInt(dst, int64(u.reasoning), 10)
	dst = append(dst, `},"total_tokens":`...)
	dst = strconv.AppendInt(dst, int64(u.input+u.output), 10)
	return append(dst, '}')
}

// chatUsage reads a chat usage object.
func chatUsage(v gjson.Result) usage {
	return usage{
		input:     nonNeg(v.Get("prompt_tokens")),
		cached:    nonNeg(v.Get("prompt_tokens_details.cached_tokens")),
		output:    nonNeg(v.Get("completion_tokens")),
		reasoning: nonNeg(v.Get("completion_tokens_details.reasoning_tokens")),
	}
}

// Usage reads the token counts of a Response (or of its usage object
// alone) by kind, for pricing: OpenAI's input_tokens include the cached
// ones, output_tokens the reasoning ones, as cost.Usage counts them.
func Usage(response []byte) cost.Usage {
	v := gjson.Parse(api.View(response))
	if u := v.Get("usage"); u.IsObject() {
		v = u
	}
	return usageOf(v)
}

// usageOf reads a Response's usage object.
func usageOf(v gjson.Result) cost.Usage {
	return usage{
		input:     nonNeg(v.Get("input_tokens")),
		cached:    nonNeg(v.Get("input_tokens_details.cached_tokens")),
		output:    nonNeg(v.Get("output_tokens")),
		reasoning: nonNeg(v.Get("output_tokens_details.reasoning_tokens")),
	}.cost()
}

func nonNeg(n gjson.Result) int {
	if n.Type != gjson.Number || n.Int() < 0 {
		return 0
	}
	return int(n.Int())
}

// Response statuses and the reasons of an incomplete one.
const (
	statusInProgress = "in_progress"
	statusCompleted  = "completed"
	statusIncomplete = "incomplete"
	statusFailed     = "failed"

	reasonMaxOutputTokens = "max_output_tokens"
	reasonContentFilter   = "content_filter"
)

// statusOf maps a chat finish reason to a Response status and the reason
// of an incomplete one.
func statusOf(finish string) (status, reason string) {
	switch finish {
	case "length":
		return statusIncomplete, reasonMaxOutputTokens
	case "content_filter":
		return statusIncomplete, reasonContentFilter
	}
	return statusCompleted, ""
}

// finishOf is the chat finish reason of a Response, for the cache's
// decision: what statusOf would have made of it.
func finishOf(response gjson.Result) string {
	calls := false
	response.Get("output").ForEach(func(_, it gjson.Result) bool {
		calls = it.Get("type").Str == "function_call"
		return !calls
	})
	return finishFrom(response.Get("status").Str, response.Get("incomplete_details.reason").Str, calls)
}

func finishFrom(status, reason string, calls bool) string {
	switch status {
	case statusCompleted:
		if calls {
			return "tool_calls"
		}
		return "stop"
	case statusIncomplete:
		if reason == reasonContentFilter {
			return "content_filter"
		}
		return "length"
	}
	return "error" // failed, cancelled, queued, in_progress: never cached
}

// head is what a Response says besides its output and usage.
type head struct {
	id      string
	created int64
	model   string
	status  string
	reason  string // incomplete_details.reason
}

// appendResponse writes a Response object; output is its items' JSON
// array, u nil for a response still in progress.
func (e *echo) appendResponse(dst []byte, h head, output []byte, u *usage) []byte {
	dst = append(dst, `{"id":`...)
	dst = api.AppendString(dst, h.id)
	dst = append(dst, `,"object":"response","created_at":`...)
	dst = strconv.AppendInt(dst, h.created, 10)
	dst = append(dst, `,"status":`...)
	dst = api.AppendString(dst, h.status)
	dst = append(dst, `,"background":false,"error":null,"incomplete_details":`...)
	if h.reason != "" {
		dst = append(dst, `{"reason":`...)
		dst = api.AppendString(dst, h.reason)
		dst = append(dst, '}')
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"instructions":`...)
	dst = append(dst, or(e.instructions, "null")...)
	dst = append(dst, `,"max_output_tokens":`...)
	dst = append(dst, or(e.maxOutputTokens, "null")...)
	dst = append(dst, `,"max_tool_calls":`...)
	dst = append(dst, or(e.maxToolCalls, "null")...)
	dst = append(dst, `,"model":`...)
	dst = api.AppendString(dst, h.model)
	dst = append(dst, `,"output":`...)
	if len(output) == 0 {
		output = []byte("[]")
	}
	dst = append(dst, output...)
	dst = append(dst, `,"parallel_tool_calls":`...)
	dst = append(dst, or(e.parallelToolCalls, "true")...)
	dst = append(dst, `,"previous_response_id":`...)
	dst = append(dst, or(e.previousResponseID, "null")...)
	dst = append(dst, `,"reasoning":`...)
	dst = append(dst, or(e.reasoning, `{"effort":null,"summary":null}`)...)
	if e.promptCacheKey != "" {
		dst = append(dst, `,"prompt_cache_key":`...)
		dst = append(dst, e.promptCacheKey...)
	}
	if e.safetyIdentifier != "" {
		dst = append(dst, `,"safety_identifier":`...)
		dst = append(dst, e.safetyIdentifier...)
	}
	if e.serviceTier != "" {
		dst = append(dst, `,"service_tier":`...)
		dst = append(dst, e.serviceTier...)
	}
	dst = append(dst, `,"store":`...)
	dst = append(dst, or(e.store, "true")...)
	dst = append(dst, `,"temperature":`...)
	dst = append(dst, or(e.temperature, "1")...)
	dst = append(dst, `,"text":`...)
	dst = append(dst, or(e.text, `{"format":{"type":"text"}}`)...)
	dst = append(dst, `,"tool_choice":`...)
	dst = append(dst, or(e.toolChoice, `"auto"`)...)
	dst = append(dst, `,"tools":`...)
	dst = append(dst, or(e.tools, "[]")...)
	if e.topLogprobs != "" {
		dst = append(dst, `,"top_logprobs":`...)
		dst = append(dst, e.topLogprobs...)
	}
	dst = append(dst, `,"top_p":`...)
	dst = append(dst, or(e.topP, "1")...)
	dst = append(dst, `,"truncation":`...)
	dst = append(dst, or(e.truncation, `"disabled"`)...)
	dst = append(dst, `,"usage":`...)
	if u != nil {
		dst = u.appendJSON(dst)
	} else {
		dst = append(dst, "null"...)
	}
	if e.user != "" {
		dst = append(dst, `,"user":`...)
		dst = append(dst, e.user...)
	}
	dst = append(dst, `,"metadata":`...)
	dst = append(dst, or(e.metadata, "{}")...)
	return append(dst, '}')
}

// item is one output item being built: a message (text and refusal
// parts) or a function call.
type item struct {
	id     string
	call   bool
	parts  []part // message
	callID string // function call
	name   string
	args   strings.Builder
}

type part struct {
	refusal bool
	text    []byte // not a strings.Builder: parts live in a growing slice, and a Builder must not be copied
}

// appendItem writes it as an output item with the given status; a message
// in progress has its parts, as the stream announced them, left out when
// bare (an output_item.added event).
func (it *item) appendJSON(dst []byte, status string, bare bool) []byte {
	dst = append(dst, `{"id":`...)
	dst = api.AppendString(dst, it.id)
	if it.call {
		dst = append(dst, `,"type":"function_call","status":`...)
		dst = api.AppendString(dst, status)
		dst = append(dst, `,"arguments":`...)
		if bare {
			dst = append(dst, `""`...)
		} else {
			dst = api.AppendString(dst, it.args.String())
		}
		dst = append(dst, `,"call_id":`...)
		dst = api.AppendString(dst, it.callID)
		dst = append(dst, `,"name":`...)
		dst = api.AppendString(dst, it.name)
		return append(dst, '}')
	}
	dst = append(dst, `,"type":"message","status":`...)
	dst = api.AppendString(dst, status)
	dst = append(dst, `,"role":"assistant","content":[`...)
	if !bare {
		for i := range it.parts {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = it.parts[i].appendJSON(dst, false)
		}
	}
	return append(dst, "]}"...)
}

func (p *part) appendJSON(dst []byte, empty bool) []byte {
	text := ""
	if !empty {
		text = string(p.text)
	}
	if p.refusal {
		dst = append(dst, `{"type":"refusal","refusal":`...)
		dst = api.AppendString(dst, text)
		return append(dst, '}')
	}
	dst = append(dst, `{"type":"output_text","annotations":[],"logprobs":[],"text":`...)
	dst = api.AppendString(dst, text)
	return append(dst, '}')
}
