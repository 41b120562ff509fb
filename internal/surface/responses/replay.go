package responses

import (
	"bytes"
	"encoding/json"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// AppendReplay appends a complete Response as the event stream a client
// that streamed it would have received: response.created and
// response.in_progress (the response in progress, without output or
// usage), per output item its added event, the deltas of its text or
// arguments in one piece each and its done events, then the terminal
// event (completed, incomplete or failed) with the response as stored.
// Items of other types (reasoning, built-in tool calls from a native
// upstream) are replayed as added and done.
func AppendReplay(dst, response []byte) ([]byte, error) {
	// The response goes into one data line: an upstream's pretty-printed
	// answer (OpenAI indents its JSON) is compacted first.
	if bytes.ContainsAny(response, "\r\n") {
		var b bytes.Buffer
		if err := json.Compact(&b, response); err != nil {
			return dst, badAnswer("the stored response is not valid JSON")
		}
		response = b.Bytes()
	}
	if !gjson.ValidBytes(response) {
		return dst, badAnswer("the stored response is not valid JSON")
	}
	root := gjson.ParseBytes(response)
	if !root.IsObject() || root.Get("object").Str != "response" {
		return dst, badAnswer("the stored answer is not a response object")
	}
	start, err := sjson.SetBytes(append([]byte(nil), response...), "status", statusInProgress)
	if err == nil {
		start, err = sjson.SetRawBytes(start, "output", []byte("[]"))
	}
	if err == nil {
		start, err = sjson.SetRawBytes(start, "usage", []byte("null"))
	}
	if err == nil {
		start, err = sjson.SetRawBytes(start, "incomplete_details", []byte("null"))
	}
	if err != nil {
		return dst, badAnswer(err.Error())
	}
	var ev events
	dst = ev.withResponse(dst, "response.created", start)
	dst = ev.withResponse(dst, "response.in_progress", start)
	i := 0
	root.Get("output").ForEach(func(_, it gjson.Result) bool {
		dst = replayItem(&ev, dst, i, it)
		i++
		return true
	})
	return ev.withResponse(dst, terminal(root.Get("status").Str), response), nil
}

func replayItem(ev *events, dst []byte, index int, it gjson.Result) []byte {
	id := it.Get("id").Str
	switch it.Get("type").Str {
	case "message":
		added, _ := sjson.SetRawBytes([]byte(it.Raw), "content", []byte("[]"))
		added, _ = sjson.SetBytes(added, "status", statusInProgress)
		dst = ev.itemAdded(dst, index, added)
		n := 0
		it.Get("content").ForEach(func(_, p gjson.Result) bool {
			refusal := p.Get("type").Str == "refusal"
			text := p.Get("text").Str
			if refusal {
				text = p.Get("refusal").Str
			}
			field := "text"
			if refusal {
				field = "refusal"
			}
			empty, _ := sjson.SetBytes([]byte(p.Raw), field, "")
			dst = ev.partEvent(dst, "response.content_part.added", id, index, n, empty)
			if text != "" {
				dst = ev.textDelta(dst, refusal, id, index, n, text)
			}
			dst = ev.textDone(dst, refusal, id, index, n, text)
			dst = ev.partEvent(dst, "response.content_part.done", id, index, n, []byte(p.Raw))
			n++
			return true
		})
	case "function_call":
		added, _ := sjson.SetBytes([]byte(it.Raw), "arguments", "")
		added, _ = sjson.SetBytes(added, "status", statusInProgress)
		dst = ev.itemAdded(dst, index, added)
		args := it.Get("arguments").Str
		if args != "" {
			dst = ev.argsDelta(dst, id, index, args)
		}
		dst = ev.argsDone(dst, id, index, it.Get("name").Str, args)
	default:
		dst = ev.itemAdded(dst, index, []byte(it.Raw))
	}
	return ev.itemDone(dst, index, []byte(it.Raw))
}
