package responses

import (
	"strconv"

	"github.com/edge-agent/edge-agent/internal/api"
)

// events writes Responses stream events: "event: TYPE\ndata: {...}\n\n",
// each with its type and the stream's next sequence_number.
type events struct{ seq int64 }

// begin opens event typ; the caller appends its other members (each
// starting with a comma) and calls end.
func (ev *events) begin(dst []byte, typ string) []byte {
	dst = append(dst, "event: "...)
	dst = append(dst, typ...)
	dst = append(dst, "\ndata: {\"type\":\""...)
	dst = append(dst, typ...)
	dst = append(dst, `","sequence_number":`...)
	dst = strconv.AppendInt(dst, ev.seq, 10)
	ev.seq++
	return dst
}

func end(dst []byte) []byte { return append(dst, "}\n\n"...) }

// withResponse appends an event whose only member is the response.
func (ev *events) withResponse(dst []byte, typ string, response []byte) []byte {
	dst = ev.begin(dst, typ)
	dst = append(dst, `,"response":`...)
	dst = append(dst, response...)
	return end(dst)
}

// itemRef appends the item_id and output_index members.
func itemRef(dst []byte, id string, index int) []byte {
	dst = append(dst, `,"item_id":`...)
	dst = api.AppendString(dst, id)
	dst = append(dst, `,"output_index":`...)
	return strconv.AppendInt(dst, int64(index), 10)
}

func (ev *events) itemAdded(dst []byte, index int, itemJSON []byte) []byte {
	return ev.itemEvent(dst, "response.output_item.added", index, itemJSON)
}

func (ev *events) itemDone(dst []byte, index int, itemJSON []byte) []byte {
	return ev.itemEvent(dst, "response.output_item.done", index, itemJSON)
}

func (ev *events) itemEvent(dst []byte, typ string, index int, itemJSON []byte) []byte {
	dst = ev.begin(dst, typ)
	dst = append(dst, `,"output_index":`...)
	dst = strconv.AppendInt(dst, int64(index), 10)
	dst = append(dst, `,"item":`...)
	dst = append(dst, itemJSON...)
	return end(dst)
}

// partEvent appends response.content_part.added or .done.
func (ev *events) partEvent(dst []byte, typ, itemID string, index, content int, partJSON []byte) []byte {
	dst = ev.begin(dst, typ)
	dst = itemRef(dst, itemID, index)
	dst = append(dst, `,"content_index":`...)
	dst = strconv.AppendInt(dst, int64(content), 10)
	dst = append(dst, `,"part":`...)
	dst = append(dst, partJSON...)
	return end(dst)
}

// textDelta appends response.output_text.delta or response.refusal.delta.
func (ev *events) textDelta(dst []byte, refusal bool, itemID string, index, content int, delta string) []byte {
	if refusal {
		dst = ev.begin(dst, "response.refusal.delta")
	} else {
		dst = ev.begin(dst, "response.output_text.delta")
	}
	dst = itemRef(dst, itemID, index)
	dst = append(dst, `,"content_index":`...)
	dst = strconv.AppendInt(dst, int64(content), 10)
	dst = append(dst, `,"delta":`...)
	dst = api.AppendString(dst, delta)
	if !refusal {
		dst = append(dst, `,"logprobs":[]`...)
	}
	return end(dst)
}

// textDone appends response.output_text.done or response.refusal.done.
func (ev *events) textDone(dst []byte, refusal bool, itemID string, index, content int, text string) []byte {
	if refusal {
		dst = ev.begin(dst, "response.refusal.done")
	} else {
		dst = ev.begin(dst, "response.output_text.done")
	}
	dst = itemRef(dst, itemID, index)
	dst = append(dst, `,"content_index":`...)
	dst = strconv.AppendInt(dst, int64(content), 10)
	if refusal {
		dst = append(dst, `,"refusal":`...)
		dst = api.AppendString(dst, text)
	} else {
		dst = append(dst, `,"text":`...)
		dst = api.AppendString(dst, text)
		dst = append(dst, `,"logprobs":[]`...)
	}
	return end(dst)
}

func (ev *events) argsDelta(dst []byte, itemID string, index int, delta string) []byte {
	dst = ev.begin(dst, "response.function_call_arguments.delta")
	dst = itemRef(dst, itemID, index)
	dst = append(dst, `,"delta":`...)
	dst = api.AppendString(dst, delta)
	return end(dst)
}

func (ev *events) argsDone(dst []byte, itemID string, index int, name, args string) []byte {
	dst = ev.begin(dst, "response.function_call_arguments.done")
	dst = itemRef(dst, itemID, index)
	dst = append(dst, `,"name":`...)
	dst = api.AppendString(dst, name)
	dst = append(dst, `,"arguments":`...)
	dst = api.AppendString(dst, args)
	return end(dst)
}

// errorEvent appends the stream's error event for e.
func (ev *events) errorEvent(dst []byte, e *api.Error) []byte {
	dst = ev.begin(dst, "error")
	dst = append(dst, `,"code":`...)
	code := e.Code
	if code == "" {
		code = e.Type
	}
	dst = api.AppendString(dst, code)
	dst = append(dst, `,"message":`...)
	dst = api.AppendString(dst, e.Message)
	dst = append(dst, `,"param":`...)
	if e.Param == "" {
		dst = append(dst, "null"...)
	} else {
		dst = api.AppendString(dst, e.Param)
	}
	return end(dst)
}

// terminal is the event that ends a stream whose response has status.
func terminal(status string) string {
	switch status {
	case statusIncomplete:
		return "response.incomplete"
	case statusFailed:
		return "response.failed"
	}
	return "response.completed"
}
