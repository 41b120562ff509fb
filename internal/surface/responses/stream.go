package responses

import (
	"net/http"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
)

// StreamTranslator turns the chunks of a chat completion stream into the
// Responses event stream. Feed it each chunk's data payload with Add and
// call Finish at the end of the stream; both append SSE text to dst. One
// translator serves one stream; it is not safe for concurrent use.
//
// The events are response.created and response.in_progress (at the first
// chunk), then per text run a message item (output_item.added,
// content_part.added, output_text.delta..., output_text.done,
// content_part.done, output_item.done; refusals the same with
// refusal.delta/done), per tool call a function_call item
// (output_item.added, function_call_arguments.delta..., .done,
// output_item.done), and at the end response.completed or
// response.incomplete with the whole Response and its usage. Only choice 0
// is translated. The translator holds the answer's text: the done events
// and the final response repeat it.
type StreamTranslator struct {
	ev      events
	e       *echo
	h       head
	started bool
	done    bool

	items  []*item
	msg    int         // index of the open message item, -1 when none
	tools  map[int]int // chat tool call index -> item index
	closed int         // items before this index are closed
	finish string
	usage  usage
	hasUse bool
	text   int // bytes of text and arguments seen
}

// NewStreamTranslator returns a translator for a Response with the given
// id that repeats the request members of reqBody.
func NewStreamTranslator(reqBody []byte, id string) *StreamTranslator {
	return newStreamTranslator(readEcho(reqBody), id)
}

func newStreamTranslator(e *echo, id string) *StreamTranslator {
	return &StreamTranslator{e: e, h: head{id: id}, msg: -1}
}

// Add translates one chunk payload. A chunk that is not JSON, or an error
// object in the stream, is an *api.Error 502: the caller ends the stream
// with an error event and does not cache it.
func (t *StreamTranslator) Add(dst, chunk []byte) ([]byte, error) {
	if t.done {
		return dst, nil
	}
	if !gjson.ValidBytes(chunk) {
		return dst, badStream("a chunk is not valid JSON")
	}
	var model, created, choices, usageObj, errObj gjson.Result
	gjson.Parse(api.View(chunk)).ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "model":
			model = v
		case "created":
			created = v
		case "choices":
			choices = v
		case "usage":
			usageObj = v
		case "error":
			errObj = v
		}
		return true
	})
	if errObj.Exists() {
		msg := errObj.Get("message").Str
		if msg == "" {
			msg = "the provider reported an error in the stream"
		}
		return dst, &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_stream_error", Message: msg}
	}
	if !t.started {
		t.started = true
		t.h.model = model.Str
		t.h.created = created.Int()
		t.h.status = statusInProgress
		resp := t.e.appendResponse(nil, t.h, nil, nil)
		dst = t.ev.withResponse(dst, "response.created", resp)
		dst = t.ev.withResponse(dst, "response.in_progress", resp)
	}
	if usageObj.IsObject() {
		t.usage, t.hasUse = chatUsage(usageObj), true
	}
	choice := choices.Get("0")
	if !choice.Exists() {
		return dst, nil
	}
	delta := choice.Get("delta")
	if c := delta.Get("content"); c.Type == gjson.String && c.Str != "" {
		dst = t.textDelta(dst, false, c.Str)
	}
	if r := delta.Get("refusal"); r.Type == gjson.String && r.Str != "" {
		dst = t.textDelta(dst, true, r.Str)
	}
	delta.Get("tool_calls").ForEach(func(_, tc gjson.Result) bool {
		dst = t.toolDelta(dst, tc)
		return true
	})
	if f := choice.Get("finish_reason"); f.Type == gjson.String && f.Str != "" {
		t.finish = f.Str
	}
	return dst, nil
}

func (t *StreamTranslator) textDelta(dst []byte, refusal bool, s string) []byte {
	t.text += len(s)
	if t.msg < 0 {
		t.msg = len(t.items)
		it := &item{id: itemID("msg_", t.h.id, t.msg)}
		t.items = append(t.items, it)
		dst = t.ev.itemAdded(dst, t.msg, it.appendJSON(nil, statusInProgress, true))
	}
	it := t.items[t.msg]
	if n := len(it.parts); n == 0 || it.parts[n-1].refusal != refusal {
		if n > 0 {
			dst = t.closePart(dst, it, n-1)
		}
		it.parts = append(it.parts, part{refusal: refusal})
		p := &it.parts[n]
		dst = t.ev.partEvent(dst, "response.content_part.added", it.id, t.msg, n, p.appendJSON(nil, true))
	}
	n := len(it.parts) - 1
	it.parts[n].text = append(it.parts[n].text, s...)
	return t.ev.textDelta(dst, refusal, it.id, t.msg, n, s)
}

func (t *StreamTranslator) closePart(dst []byte, it *item, n int) []byte {
	p := &it.parts[n]
	dst = t.ev.textDone(dst, p.refusal, it.id, t.msg, n, string(p.text))
	return t.ev.partEvent(dst, "response.content_part.done", it.id, t.msg, n, p.appendJSON(nil, false))
}

// closeMessage ends the open message item, as a tool call or the end of
// the stream does.
func (t *StreamTranslator) closeMessage(dst []byte, status string) []byte {
	if t.msg < 0 {
		return dst
	}
	it := t.items[t.msg]
	if n := len(it.parts); n > 0 {
		dst = t.closePart(dst, it, n-1)
	}
	dst = t.ev.itemDone(dst, t.msg, it.appendJSON(nil, status, false))
	t.msg = -1
	return dst
}

func (t *StreamTranslator) toolDelta(dst []byte, tc gjson.Result) []byte {
	ti := int(tc.Get("index").Int())
	fn := tc.Get("function")
	idx, ok := t.tools[ti]
	if !ok {
		dst = t.closeMessage(dst, statusCompleted)
		if t.tools == nil {
			t.tools = make(map[int]int, 2)
		}
		idx = len(t.items)
		t.tools[ti] = idx
		it := &item{id: itemID("fc_", t.h.id, idx), call: true, callID: tc.Get("id").Str, name: fn.Get("name").Str}
		if it.callID == "" {
			it.callID = "call_" + it.id[len("fc_"):]
		}
		t.items = append(t.items, it)
		dst = t.ev.itemAdded(dst, idx, it.appendJSON(nil, statusInProgress, true))
	}
	it := t.items[idx]
	if it.name == "" {
		it.name = fn.Get("name").Str
	}
	if a := fn.Get("arguments"); a.Type == gjson.String && a.Str != "" {
		t.text += len(a.Str)
		it.args.WriteString(a.Str)
		dst = t.ev.argsDelta(dst, it.id, idx, a.Str)
	}
	return dst
}

// Finish closes the stream: the open items and the terminal event with
// the whole Response, which it also returns. A stream that ended before
// any chunk or without a finish reason was cut: an *api.Error 502.
func (t *StreamTranslator) Finish(dst []byte) (out, response []byte, err error) {
	if t.done {
		return dst, nil, nil
	}
	if !t.started {
		return dst, nil, badStream("the stream ended before its first chunk")
	}
	if t.finish == "" {
		return dst, nil, badStream("the stream ended without a finish reason")
	}
	t.done = true
	status, reason := statusOf(t.finish)
	itemStatus := statusCompleted
	if status == statusIncomplete {
		itemStatus = statusIncomplete
	}
	dst = t.closeMessage(dst, itemStatus)
	for i, it := range t.items {
		if !it.call {
			continue
		}
		dst = t.ev.argsDone(dst, it.id, i, it.name, it.args.String())
		dst = t.ev.itemDone(dst, i, it.appendJSON(nil, itemStatus, false))
	}
	output := []byte{'['}
	for i, it := range t.items {
		if i > 0 {
			output = append(output, ',')
		}
		output = it.appendJSON(output, itemStatus, false)
	}
	output = append(output, ']')
	t.h.status, t.h.reason = status, reason
	u := t.usage
	response = t.e.appendResponse(nil, t.h, output, &u)
	return t.ev.withResponse(dst, terminal(status), response), response, nil
}

// AppendError appends the error event for e.
func (t *StreamTranslator) AppendError(dst []byte, e *api.Error) []byte {
	return t.ev.errorEvent(dst, e)
}

func badStream(why string) *api.Error {
	return &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "bad_upstream_stream",
		Message: "the provider's stream could not be translated to the Responses API: " + why}
}
