package gemini

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/cost"
	"github.com/edge-agent/edge-agent/internal/provider"
	"github.com/edge-agent/edge-agent/internal/sse"
)

// Stream translates a streamGenerateContent?alt=sse answer (one
// GenerateContentResponse per event) into OpenAI chat.completion.chunk
// payloads. It implements provider.Stream.
//
// Gemini ends a stream by closing it after the event carrying
// finishReason; the Stream then sends a usage chunk and io.EOF. An error
// event, or input that ends before any finishReason, is an *api.Error: a
// truncated answer must never look complete to the cache or the client.
type Stream struct {
	ctx     context.Context
	name    string
	model   string // the requested model, for chunks when the upstream names none
	r       *sse.Reader
	closer  io.Closer
	created int64
	secret  string // the credential, scrubbed from error events

	head  []byte // {"id":…,"object":"chat.completion.chunk","created":…,"model":…
	buf   []byte
	ev    event // the event being translated; points into r's buffer
	tools int   // tool calls sent
	usage usage

	// What the current event still owes the client, in order.
	roleDue, contentDue bool
	finishDue           string

	finished, usageSent bool
	err                 error
	closeOnce           sync.Once
	closeErr            error
}

var _ provider.Stream = (*Stream)(nil)

// NewStream returns a Stream reading Gemini SSE from r, stamping chunks
// with created (Unix seconds) and model when the events name none. Close
// closes r when it is an io.Closer.
func NewStream(r io.Reader, created int64, model string) *Stream {
	return newStream(context.Background(), "gemini", r, created, model)
}

func newStream(ctx context.Context, name string, r io.Reader, created int64, model string) *Stream {
	s := &Stream{ctx: ctx, name: name, r: sse.NewReader(r), created: created, model: model, roleDue: true}
	if c, ok := r.(io.Closer); ok {
		s.closer = c
	}
	return s
}

// Close releases the upstream body. It is safe to call twice and from
// another goroutine than Next (closing unblocks a pending read).
func (s *Stream) Close() error {
	s.closeOnce.Do(func() {
		if s.closer != nil {
			s.closeErr = s.closer.Close()
		}
	})
	return s.closeErr
}

// Usage is the answer's usage by token kind, for pricing; ok is false
// until the upstream reported usage. Read it after Next returned io.EOF.
func (s *Stream) Usage() (cost.Usage, bool) {
	return s.usage.cost(), s.usage.seen
}

// Next returns the next chunk, valid until the following call.
func (s *Stream) Next() ([]byte, error) {
	for {
		if s.err != nil {
			return nil, s.err
		}
		if s.head != nil && s.roleDue {
			s.roleDue = false
			return s.chunk(`{"role":"assistant","content":"","refusal":null}`, ""), nil
		}
		if s.contentDue {
			s.contentDue = false
			if c := s.contentChunk(); c != nil {
				return c, nil
			}
		}
		if s.finishDue != "" {
			f := s.finishDue
			s.finishDue = ""
			return s.chunk("{}", f), nil
		}
		raw, err := s.r.Next()
		if err != nil {
			if errors.Is(err, io.EOF) && s.finished && s.ctx.Err() == nil {
				if !s.usageSent && s.usage.seen {
					s.usageSent = true
					return s.usageChunk(), nil
				}
				return nil, io.EOF
			}
			s.err = s.readError(err)
			return nil, s.err
		}
		// The event is parsed in place: results point into the reader's
		// buffer and are copied into s.buf before the next read. One pass
		// over its top-level keys finds what we need.
		var ev event
		ev.parse(gjson.Parse(api.View(raw.Data)))
		if ev.err.IsObject() {
			s.err = provider.ScrubSecret(streamError(s.name, ev.err), s.secret)
			return nil, s.err
		}
		s.usage.set(ev.usage)
		if s.finished {
			continue // a trailing event (usage only): nothing more to say
		}
		if s.head == nil {
			s.setHead(ev.id, ev.model)
		}
		s.ev = ev
		s.contentDue = ev.parts.IsArray()
		if ev.finish.Type == gjson.String && ev.finish.Str != "" {
			s.finished = true
			s.finishDue = FinishReason(ev.finish.Str, s.tools > 0 || hasCall(ev.parts))
		} else if ev.blocked.Type == gjson.String && ev.blocked.Str != "" {
			s.finished = true
			s.finishDue = "content_filter"
		}
	}
}

// event holds the fields of one GenerateContentResponse a Stream reads.
type event struct {
	id, model, usage, err, blocked gjson.Result
	parts, finish                  gjson.Result // of the first candidate
}

func (e *event) parse(v gjson.Result) {
	v.ForEach(func(k, f gjson.Result) bool {
		switch k.Str {
		case "candidates":
			cand := f.Get("0")
			cand.ForEach(func(ck, cf gjson.Result) bool {
				switch ck.Str {
				case "content":
					e.parts = cf.Get("parts")
				case "finishReason":
					e.finish = cf
				}
				return true
			})
		case "usageMetadata":
			e.usage = f
		case "responseId":
			e.id = f
		case "modelVersion":
			e.model = f
		case "error":
			e.err = f
		case "promptFeedback":
			e.blocked = f.Get("blockReason")
		}
		return true
	})
}

func hasCall(parts gjson.Result) bool {
	found := false
	parts.ForEach(func(_, p gjson.Result) bool {
		found = p.Get("functionCall").IsObject()
		return !found
	})
	return found
}

// readError maps a failed read. The end of the body before a finishReason
// is a truncated answer, reported as io.ErrUnexpectedEOF.
func (s *Stream) readError(err error) error {
	if s.ctx.Err() != nil {
		return provider.TransportError(s.ctx, s.name, s.ctx.Err())
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_stream_truncated",
			Message: fmt.Sprintf("provider %s ended the stream before the answer was complete", s.name),
			Err:     io.ErrUnexpectedEOF}
	}
	if errors.Is(err, sse.ErrLineTooLong) {
		return &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_invalid_response",
			Message: fmt.Sprintf("provider %s sent an oversized stream event", s.name), Err: err}
	}
	return provider.TransportError(s.ctx, s.name, err)
}

func (s *Stream) setHead(id, model gjson.Result) {
	h := append(s.head[:0], `{"id":`...)
	h = appendID(h, id.Str)
	h = append(h, `,"object":"chat.completion.chunk","created":`...)
	h = strconv.AppendInt(h, s.created, 10)
	h = append(h, `,"model":`...)
	s.head = appendModel(h, model, s.model)
}

// contentChunk is the current event's text and function calls as one
// chunk, nil when it has neither (thought parts only). Gemini sends each
// call whole: its name and arguments in one part.
func (s *Stream) contentChunk() []byte {
	b := append(s.buf[:0], s.head...)
	b = append(b, `,"choices":[{"index":0,"delta":{`...)
	mark := len(b)
	texts := 0
	var calls []gjson.Result
	s.ev.parts.ForEach(func(_, p gjson.Result) bool {
		var text, thought, call gjson.Result
		p.ForEach(func(k, v gjson.Result) bool {
			switch k.Str {
			case "text":
				text = v
			case "thought":
				thought = v
			case "functionCall":
				call = v
			}
			return true
		})
		if call.IsObject() {
			calls = append(calls, call)
			return true
		}
		if text.Type != gjson.String || text.Str == "" || thought.Type == gjson.True {
			return true
		}
		if texts == 0 {
			b = append(b, `"content":"`...)
		}
		texts++
		b = append(b, text.Raw[1:len(text.Raw)-1]...)
		return true
	})
	if texts > 0 {
		b = append(b, '"')
	}
	if len(calls) > 0 {
		if len(b) > mark {
			b = append(b, ',')
		}
		b = append(b, `"tool_calls":[`...)
		var scratch []byte
		for i, fc := range calls {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"index":`...)
			b = strconv.AppendInt(b, int64(s.tools), 10)
			b = append(b, `,"id":`...)
			b = appendCallID(b, fc.Get("id").Str, s.ev.id.Str, s.tools)
			b = append(b, `,"type":"function","function":{"name":`...)
			b = api.AppendString(b, fc.Get("name").Str)
			b = append(b, `,"arguments":`...)
			scratch = appendArgs(scratch[:0], fc.Get("args"))
			b = api.AppendString(b, api.View(scratch))
			b = append(b, "}}"...)
			s.tools++
		}
		b = append(b, ']')
	}
	if texts == 0 && len(calls) == 0 {
		return nil
	}
	return s.end(append(b, '}'), "")
}

// chunk writes a chunk with the given delta object and finish_reason ("" for null).
func (s *Stream) chunk(delta, finish string) []byte {
	b := append(s.buf[:0], s.head...)
	b = append(b, `,"choices":[{"index":0,"delta":`...)
	b = append(b, delta...)
	return s.end(b, finish)
}

func (s *Stream) end(b []byte, finish string) []byte {
	b = append(b, `,"logprobs":null,"finish_reason":`...)
	if finish == "" {
		b = append(b, "null"...)
	} else {
		b = append(b, '"')
		b = append(b, finish...)
		b = append(b, '"')
	}
	b = append(b, "}]}"...)
	s.buf = b
	return b
}

func (s *Stream) usageChunk() []byte {
	b := append(s.buf[:0], s.head...)
	b = append(b, `,"choices":[],"usage":`...)
	b = s.usage.appendJSON(b)
	b = append(b, '}')
	s.buf = b
	return b
}
