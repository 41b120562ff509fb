package messages

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
)

// StreamTranslator turns the chunks of a chat completion stream into
// Messages events. Feed it each chunk's data payload with Add and call
// Finish at the end of the stream ([DONE] or EOF); both append SSE text
// ("event: X\ndata: {...}\n\n") to dst. One translator serves one stream;
// it is not safe for concurrent use.
//
// The events are message_start (input tokens from the first chunk's usage
// when the upstream sends it, else 0: chat streams report usage last),
// then per text run or tool call a content_block_start, its deltas
// (text_delta, input_json_delta with the arguments as sent) and
// content_block_stop, and at the end message_delta with stop_reason and
// the usage of the final usage chunk, then message_stop. Only choice 0 is
// translated. Reasoning deltas some servers add (reasoning_content) are
// dropped: they carry no Anthropic signature, and a thinking block without
// one is rejected if the conversation later goes to a Claude model.
type StreamTranslator struct {
	model   string
	started bool
	done    bool // message_stop written

	open    int // Anthropic index of the open block, -1 when none
	openTxt bool
	blocks  int         // blocks started so far
	tools   map[int]int // chat tool call index -> Anthropic block index

	finish     string
	matched    string // vLLM's matched stop sequence
	hasTools   bool
	usage      tokens
	usageFound bool
}

// NewStreamTranslator returns a translator that reports model (the
// chunks' own model when model is "").
func NewStreamTranslator(model string) *StreamTranslator {
	return &StreamTranslator{model: model, open: -1}
}

// Add translates one chunk payload. A chunk that is not JSON, or an error
// object in the stream, is an *api.Error 502: the caller ends the stream
// with AppendErrorEvent and does not cache it.
func (t *StreamTranslator) Add(dst, chunk []byte) ([]byte, error) {
	if t.done {
		return dst, nil
	}
	if !gjson.ValidBytes(chunk) {
		return dst, badStream("a chunk is not valid JSON")
	}
	// One pass over the chunk's members, and one over choice 0's and its
	// delta's, instead of a scan from the start for each field.
	var id, model, choices, usage, errObj gjson.Result
	gjson.Parse(api.View(chunk)).ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "id":
			id = v
		case "model":
			model = v
		case "choices":
			choices = v
		case "usage":
			usage = v
		case "error":
			errObj = v
		}
		return true
	})
	if errObj.Exists() {
		msg := errObj.Get("message").Str
		if msg == "" {
			msg = "unknown error"
		}
		return dst, &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_stream_error",
			Message: "the provider failed mid-answer: " + msg}
	}
	if usage.IsObject() {
		t.usage, t.usageFound = chatUsage(usage), true
	}
	if !t.started {
		dst = t.start(dst, id, model)
	}
	var choice gjson.Result
	choices.ForEach(func(_, c gjson.Result) bool {
		choice = c
		return false
	})
	if choice.Exists() {
		var index, delta, finish, matched gjson.Result
		choice.ForEach(func(k, v gjson.Result) bool {
			switch k.Str {
			case "index":
				index = v
			case "delta":
				delta = v
			case "finish_reason":
				finish = v
			case "stop_reason":
				matched = v
			}
			return true
		})
		if index.Int() == 0 {
			dst = t.delta(dst, delta)
			if finish.Type == gjson.String && finish.Str != "" {
				t.finish = strings.Clone(finish.Str) // chunk's buffer is the caller's
				if matched.Type == gjson.String {
					t.matched = strings.Clone(matched.Raw) // chunk's buffer is the caller's
				}
				dst = t.closeBlock(dst)
			}
		}
	}
	if t.finish != "" && t.usageFound && !choice.Exists() {
		// The usage-only chunk is the last one the upstream sends.
		dst = t.stop(dst)
	}
	return dst, nil
}

// Finish ends the stream. Without a finish_reason the answer is truncated:
// Finish returns an *api.Error 502 and writes nothing, so the caller can
// end the stream with an error event instead of a message_stop.
func (t *StreamTranslator) Finish(dst []byte) ([]byte, error) {
	if t.done {
		return dst, nil
	}
	if t.finish == "" {
		return dst, &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_stream_truncated",
			Message: "the provider ended the stream before the answer was complete"}
	}
	return t.stop(dst), nil
}

// Done reports whether message_stop was written.
func (t *StreamTranslator) Done() bool { return t.done }

func (t *StreamTranslator) delta(dst []byte, d gjson.Result) []byte {
	d.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "content", "refusal":
			if v.Type == gjson.String && v.Str != "" {
				dst = t.text(dst, v.Raw)
			}
		case "tool_calls":
			v.ForEach(func(_, tc gjson.Result) bool {
				dst = t.tool(dst, tc)
				return true
			})
		}
		return true
	})
	return dst
}

func (t *StreamTranslator) start(dst []byte, id, model gjson.Result) []byte {
	t.started = true
	if t.model == "" {
		t.model = strings.Clone(model.Str) // chunk's buffer is the caller's
	}
	dst = append(dst, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":"...)
	dst = appendMessageID(dst, id.Str)
	dst = append(dst, `,"type":"message","role":"assistant","model":`...)
	dst = api.AppendString(dst, t.model)
	dst = append(dst, `,"content":[],"stop_reason":null,"stop_sequence":null,"usage":`...)
	u := t.usage // zero unless this first chunk carried usage
	u.output = 0
	dst = u.appendJSON(dst)
	return append(dst, "}}\n\n"...)
}

func (t *StreamTranslator) text(dst []byte, raw string) []byte {
	if !t.openTxt {
		dst = t.closeBlock(dst)
		t.open, t.openTxt = t.blocks, true
		t.blocks++
		dst = appendBlockStart(dst, t.open)
		dst = append(dst, `{"type":"text","text":""}}`+"\n\n"...)
	}
	dst = appendDeltaHead(dst, t.open, "text_delta", "text")
	dst = append(dst, raw...)
	return append(dst, "}}\n\n"...)
}

func (t *StreamTranslator) tool(dst []byte, tc gjson.Result) []byte {
	k := int(tc.Get("index").Int())
	idx, seen := t.tools[k]
	if !seen {
		dst = t.closeBlock(dst)
		if t.tools == nil {
			t.tools = make(map[int]int, 2)
		}
		idx = t.blocks
		t.blocks++
		t.tools[k] = idx
		t.open, t.openTxt, t.hasTools = idx, false, true
		dst = appendBlockStart(dst, idx)
		dst = append(dst, `{"type":"tool_use","id":`...)
		dst = api.AppendString(dst, tc.Get("id").Str)
		dst = append(dst, `,"name":`...)
		dst = api.AppendString(dst, tc.Get("function.name").Str)
		dst = append(dst, `,"input":{}}}`+"\n\n"...)
	}
	// A delta for a call whose block was closed (servers that interleave
	// parallel calls) still names its block: Anthropic's SDKs accumulate
	// by index.
	if a := tc.Get("function.arguments"); a.Type == gjson.String && a.Str != "" {
		dst = appendDeltaHead(dst, idx, "input_json_delta", "partial_json")
		dst = append(dst, a.Raw...)
		dst = append(dst, "}}\n\n"...)
	}
	return dst
}

func (t *StreamTranslator) closeBlock(dst []byte) []byte {
	if t.open < 0 {
		return dst
	}
	dst = append(dst, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":"...)
	dst = strconv.AppendInt(dst, int64(t.open), 10)
	t.open, t.openTxt = -1, false
	return append(dst, "}\n\n"...)
}

func (t *StreamTranslator) stop(dst []byte) []byte {
	dst = t.closeBlock(dst)
	var matched gjson.Result
	if t.matched != "" {
		matched = gjson.Parse(t.matched)
	}
	reason, seq := stopReason(t.finish, matched, t.hasTools)
	dst = append(dst, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\""...)
	dst = append(dst, reason...)
	dst = append(dst, `","stop_sequence":`...)
	if seq.Type == gjson.String {
		dst = append(dst, seq.Raw...)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `},"usage":`...)
	dst = t.usage.appendJSON(dst)
	dst = append(dst, "}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"...)
	t.done = true
	return dst
}

func appendBlockStart(dst []byte, idx int) []byte {
	dst = append(dst, "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":"...)
	dst = strconv.AppendInt(dst, int64(idx), 10)
	return append(dst, `,"content_block":`...)
}

func appendDeltaHead(dst []byte, idx int, typ, field string) []byte {
	dst = append(dst, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":"...)
	dst = strconv.AppendInt(dst, int64(idx), 10)
	dst = append(dst, `,"delta":{"type":"`...)
	dst = append(dst, typ...)
	dst = append(dst, `","`...)
	dst = append(dst, field...)
	return append(dst, `":`...)
}

func badStream(why string) *api.Error {
	return &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_invalid_response",
		Message: fmt.Sprintf("the provider's stream cannot be translated to Messages events: %s", why)}
}
