package messages

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/cost"
)

// maxBlocks bounds the content block index an event may name, so a hostile
// stream cannot make the accumulator allocate without limit.
const maxBlocks = 4096

// Accumulator rebuilds one complete Messages answer from the events of a
// stream, so a stream can be cached and priced like a JSON answer. Feed it
// each event's data payload (the event name is repeated in data.type).
//
// Blocks are rebuilt from their content_block_start object with the deltas
// applied: text_delta to text, thinking_delta to thinking, signature_delta
// to signature, input_json_delta to input (parsed when the block ends),
// citations_delta to citations. Fields it does not know, in blocks, in the
// message and in usage, are kept as sent. Usage is merged member by member:
// message_start's, then message_delta's, the later value winning (Anthropic
// repeats cumulative counts).
type Accumulator struct {
	msg      []field // message members but content, stop_reason, stop_sequence, usage
	usage    []field
	stop     string // raw stop_reason
	stopSeq  string // raw stop_sequence
	blocks   []accBlock
	started  bool
	complete bool
	events   int
	text     int // bytes of text, thinking and tool input delivered
	limit    int // past this many bytes the answer is not held (0: no limit)
	over     bool
}

// SetLimit bounds the text the accumulator holds: past n bytes it stops
// keeping the answer (Overflowed) but still counts what it is fed.
func (a *Accumulator) SetLimit(n int) { a.limit = n }

// StopReason is the stop_reason reported so far ("" when none).
func (a *Accumulator) StopReason() string {
	return gjson.Parse(a.stop).Str
}

// Overflowed reports that the answer outgrew the limit.
func (a *Accumulator) Overflowed() bool { return a.over }

// TextBytes counts the text, thinking and tool input delivered so far.
func (a *Accumulator) TextBytes() int { return a.text }

// Usage is the usage reported so far (message_start's, updated by
// message_delta's); ok false when no event carried any.
func (a *Accumulator) Usage() (u cost.Usage, ok bool) {
	if len(a.usage) == 0 {
		return u, false
	}
	return Usage(appendWith(make([]byte, 0, 128), "{}", a.usage)), true
}

type field struct{ key, raw string }

type accBlock struct {
	start string // the content_block_start object, raw
	typ   string
	// []byte, not strings.Builder: blocks live in a slice that grows as
	// blocks start, and a Builder must not be copied.
	text      []byte
	thinking  []byte
	signature []byte
	partial   []byte
	citations []string
	hasText   bool
	hasThink  bool
	hasSig    bool
}

// Add folds one event payload into the answer. An error event, or an event
// that is not JSON, is an *api.Error and leaves the answer incomplete.
func (a *Accumulator) Add(data []byte) error {
	if !gjson.ValidBytes(data) {
		return badStream("an event is not valid JSON")
	}
	a.events++
	// Parsed in place; what is kept is copied (Builders, strings.Clone).
	root := gjson.Parse(api.View(data))
	typ := root.Get("type").Str
	if typ == "message_start" || typ == "message_delta" {
		// Their members are kept as they are: one copy of the event, the
		// members cut from it, instead of a copy per member.
		root = gjson.Parse(strings.Clone(api.View(data)))
		if a.msg == nil {
			a.msg, a.usage = make([]field, 0, 8), make([]field, 0, 8)
		}
	}
	switch typ {
	case "message_start":
		a.started = true
		root.Get("message").ForEach(func(k, v gjson.Result) bool {
			switch k.Str {
			case "content":
			case "stop_reason":
				a.stop = v.Raw
			case "stop_sequence":
				a.stopSeq = v.Raw
			case "usage":
				a.usage = merge(a.usage, v)
			default:
				a.msg = set(a.msg, k.Str, v.Raw)
			}
			return true
		})
	case "content_block_start":
		b, err := a.block(root, true)
		if err != nil {
			return err
		}
		cb := root.Get("content_block")
		b.start = strings.Clone(cb.Raw)
		b.typ = strings.Clone(cb.Get("type").Str)
	case "content_block_delta":
		b, err := a.block(root, false)
		if err != nil {
			return err
		}
		d := root.Get("delta")
		if a.limit > 0 && a.text > a.limit {
			a.over = true
		}
		if a.over {
			// Counted for pricing, no longer held.
			for _, f := range [...]string{"text", "thinking", "partial_json"} {
				a.text += len(d.Get(f).Str)
			}
			break
		}
		switch d.Get("type").Str {
		case "text_delta":
			t := d.Get("text").Str
			b.text = append(b.text, t...)
			b.hasText = true
			a.text += len(t)
		case "thinking_delta":
			t := d.Get("thinking").Str
			b.thinking = append(b.thinking, t...)
			b.hasThink = true
			a.text += len(t)
		case "signature_delta":
			b.signature = append(b.signature, d.Get("signature").Str...)
			b.hasSig = true
		case "input_json_delta":
			t := d.Get("partial_json").Str
			b.partial = append(b.partial, t...)
			a.text += len(t)
		case "citations_delta":
			if c := d.Get("citation"); c.IsObject() {
				b.citations = append(b.citations, strings.Clone(c.Raw))
			}
		}
	case "message_delta":
		root.Get("delta").ForEach(func(k, v gjson.Result) bool {
			switch k.Str {
			case "stop_reason":
				a.stop = v.Raw
			case "stop_sequence":
				a.stopSeq = v.Raw
			default:
				a.msg = set(a.msg, k.Str, v.Raw)
			}
			return true
		})
		if u := root.Get("usage"); u.IsObject() {
			a.usage = merge(a.usage, u)
		}
	case "message_stop":
		a.complete = a.started
	case "error":
		return eventError(root)
	}
	// ping, content_block_stop and new event types add nothing.
	return nil
}

func (a *Accumulator) block(root gjson.Result, starting bool) (*accBlock, error) {
	idx := root.Get("index")
	i := int(idx.Int())
	if idx.Type != gjson.Number || i < 0 || i >= maxBlocks {
		return nil, badStream("an event names no valid content block index")
	}
	if starting {
		for len(a.blocks) <= i {
			a.blocks = append(a.blocks, accBlock{})
		}
	}
	if i >= len(a.blocks) || !starting && a.blocks[i].start == "" {
		return nil, badStream("a delta names a content block that was never started")
	}
	return &a.blocks[i], nil
}

// Events is the number of events added.
func (a *Accumulator) Events() int { return a.events }

// Complete reports whether the stream reached message_stop. Only a
// complete answer may be cached.
func (a *Accumulator) Complete() bool { return a.complete }

// Answer returns the accumulated answer as Messages JSON. A tool input
// whose deltas do not add up to a JSON object is an error.
func (a *Accumulator) Answer() ([]byte, error) {
	dst := make([]byte, 0, 256)
	dst = append(dst, '{')
	for _, f := range a.msg {
		dst = appendMember(dst, f.key, f.raw)
		dst = append(dst, ',')
	}
	dst = append(dst, `"content":[`...)
	for i := range a.blocks {
		b := &a.blocks[i]
		if b.start == "" {
			return nil, badStream("content block " + strconv.Itoa(i) + " was never started")
		}
		if i > 0 {
			dst = append(dst, ',')
		}
		var over []field
		if b.hasText {
			over = append(over, field{"text", string(api.AppendString(nil, string(b.text)))})
		}
		if b.hasThink {
			over = append(over, field{"thinking", string(api.AppendString(nil, string(b.thinking)))})
		}
		if b.hasSig {
			over = append(over, field{"signature", string(api.AppendString(nil, string(b.signature)))})
		}
		if len(b.citations) > 0 {
			over = append(over, field{"citations", "[" + strings.Join(b.citations, ",") + "]"})
		}
		if len(b.partial) > 0 {
			in := strings.TrimSpace(string(b.partial))
			if !gjson.Valid(in) || !gjson.Parse(in).IsObject() {
				return nil, badStream("the input of content block " + strconv.Itoa(i) + " is not a JSON object")
			}
			over = append(over, field{"input", string(appendCompact(nil, in))})
		}
		dst = appendWith(dst, b.start, over)
	}
	dst = append(dst, `],"stop_reason":`...)
	dst = append(dst, orNull(a.stop)...)
	dst = append(dst, `,"stop_sequence":`...)
	dst = append(dst, orNull(a.stopSeq)...)
	dst = append(dst, `,"usage":`...)
	dst = appendWith(dst, "{}", a.usage)
	return append(dst, '}'), nil
}

// Replay appends the event sequence that streams answer, a complete
// Messages answer (as Accumulator.Answer or an Anthropic upstream makes
// it): message_start, ping, per block content_block_start, its deltas and
// content_block_stop, message_delta and message_stop. Each block's content
// goes in one delta: the answer is already complete.
func Replay(dst, answer []byte) ([]byte, error) {
	if !gjson.ValidBytes(answer) {
		return dst, fmt.Errorf("replay: the answer is not valid JSON")
	}
	root := gjson.Parse(api.View(answer))
	content := root.Get("content")
	if root.Get("type").Str != "message" || !content.IsArray() {
		return dst, fmt.Errorf("replay: the answer is not a Messages answer")
	}
	var msg []field
	var usage, stop, stopSeq string = "{}", "null", "null"
	root.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "content":
		case "usage":
			usage = v.Raw
		case "stop_reason":
			stop = v.Raw
		case "stop_sequence":
			stopSeq = v.Raw
		default:
			msg = append(msg, field{k.Str, v.Raw})
		}
		return true
	})
	dst = append(dst, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{"...)
	for _, f := range msg {
		dst = appendMember(dst, f.key, f.raw)
		dst = append(dst, ',')
	}
	dst = append(dst, `"content":[],"stop_reason":null,"stop_sequence":null,"usage":`...)
	dst = appendCompact(dst, usage)
	dst = append(dst, "}}\n\nevent: ping\ndata: {\"type\":\"ping\"}\n\n"...)
	i := 0
	content.ForEach(func(_, b gjson.Result) bool {
		dst = replayBlock(dst, i, b)
		i++
		return true
	})
	dst = append(dst, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"...)
	dst = append(dst, stop...)
	dst = append(dst, `,"stop_sequence":`...)
	dst = append(dst, stopSeq...)
	dst = append(dst, `},"usage":`...)
	dst = appendCompact(dst, usage)
	return append(dst, "}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"...), nil
}

func replayBlock(dst []byte, i int, b gjson.Result) []byte {
	var over, drop []field
	type delta struct{ typ, field, raw string }
	var deltas []delta
	switch b.Get("type").Str {
	case "text":
		over = []field{{"text", `""`}}
		drop = []field{{key: "citations"}}
		b.Get("citations").ForEach(func(_, c gjson.Result) bool {
			deltas = append(deltas, delta{"citations_delta", "citation", c.Raw})
			return true
		})
		if t := b.Get("text"); t.Str != "" {
			deltas = append(deltas, delta{"text_delta", "text", t.Raw})
		}
	case "thinking":
		over = []field{{"thinking", `""`}, {"signature", `""`}}
		if t := b.Get("thinking"); t.Str != "" {
			deltas = append(deltas, delta{"thinking_delta", "thinking", t.Raw})
		}
		if s := b.Get("signature"); s.Str != "" {
			deltas = append(deltas, delta{"signature_delta", "signature", s.Raw})
		}
	case "tool_use", "server_tool_use", "mcp_tool_use":
		over = []field{{"input", "{}"}}
		if in := b.Get("input"); in.IsObject() && len(in.Map()) > 0 {
			deltas = append(deltas, delta{"input_json_delta", "partial_json", string(api.AppendString(nil, string(appendCompact(nil, in.Raw))))})
		}
	}
	dst = appendBlockStart(dst, i)
	dst = appendWithout(dst, b.Raw, over, drop)
	dst = append(dst, "}\n\n"...)
	for _, d := range deltas {
		dst = appendDeltaHead(dst, i, d.typ, d.field)
		dst = appendCompact(dst, d.raw)
		dst = append(dst, "}}\n\n"...)
	}
	dst = append(dst, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":"...)
	dst = strconv.AppendInt(dst, int64(i), 10)
	return append(dst, "}\n\n"...)
}

// set replaces the member key of fs, or adds it at the end.
// key and raw must be the accumulator's own (not the caller's buffer).
func set(fs []field, key, raw string) []field {
	for i := range fs {
		if fs[i].key == key {
			fs[i].raw = raw
			return fs
		}
	}
	return append(fs, field{key, raw})
}

// merge sets every member of obj in fs.
func merge(fs []field, obj gjson.Result) []field {
	obj.ForEach(func(k, v gjson.Result) bool {
		fs = set(fs, k.Str, v.Raw)
		return true
	})
	return fs
}

// appendWith writes the object raw with the members named in over
// replaced, and the members of over it lacks appended, compacted.
func appendWith(dst []byte, raw string, over []field) []byte {
	return appendWithout(dst, raw, over, nil)
}

// appendWithout is appendWith that also leaves out the members in drop.
func appendWithout(dst []byte, raw string, over, drop []field) []byte {
	dst = append(dst, '{')
	n := 0
	done := make([]bool, len(over))
	gjson.Parse(raw).ForEach(func(k, v gjson.Result) bool {
		for _, d := range drop {
			if d.key == k.Str {
				return true
			}
		}
		val := v.Raw
		for j, o := range over {
			if o.key == k.Str {
				val, done[j] = o.raw, true
				break
			}
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		dst = appendMember(dst, k.Str, val)
		return true
	})
	for j, o := range over {
		if !done[j] {
			if n > 0 {
				dst = append(dst, ',')
			}
			n++
			dst = appendMember(dst, o.key, o.raw)
		}
	}
	return append(dst, '}')
}

func appendMember(dst []byte, key, raw string) []byte {
	dst = api.AppendString(dst, key)
	dst = append(dst, ':')
	return appendCompact(dst, raw)
}

func orNull(raw string) string {
	if raw == "" {
		return "null"
	}
	return raw
}

// eventError maps an error event. The stream had already started, so the
// provider failed mid-answer: 502, or 503 for overloaded_error, the one
// worth retrying elsewhere (as internal/provider/anthropic does).
func eventError(v gjson.Result) *api.Error {
	msg := v.Get("error.message").Str
	if msg == "" {
		msg = "unknown error"
	}
	e := &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_stream_error",
		Message: "the provider failed mid-answer: " + msg}
	if v.Get("error.type").Str == "overloaded_error" {
		e.Status, e.Type = http.StatusServiceUnavailable, api.TypeOverloaded
	}
	return e
}
