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
	ev    gjson.Result // the event being translated; points into r's buffer
	tools int          // tool calls sent
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
		ev, err := s.r.Next()
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
		// buffer and are copied into s.buf before the next read.
		data := gjson.Parse(bstr(ev.Data))
		if e := data.Get("error"); e.IsObject() {
			s.err = provider.ScrubSecret(streamError(s.name, e), s.secret)
			return nil, s.err
		}
		if !data.IsObject() {
			continue
		}
		s.usage.set(data.Get("usageMetadata"))
		if s.finished {
			continue // a trailing event (usage only): nothing more to say
		}
		if s.head == nil {
			s.setHead(data)
		}
		s.ev = data
		cand := data.Get("candidates.0")
		s.contentDue = cand.Get("content.parts").IsArray()
		if fr := cand.Get("finishReason"); fr.Type == gjson.String && fr.Str != "" {
			s.finished = true
			s.finishDue = FinishReason(fr.Str, s.tools > 0 || hasCall(cand))
		} else if br := data.Get("promptFeedback.blockReason"); br.Type == gjson.String && br.Str != "" {
			s.finished = true
			s.finishDue = "content_filter"
		}
	}
}

func hasCall(cand gjson.Result) bool {
	found := false
	cand.Get("content.parts").ForEach(func(_, p gjson.Result) bool {
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

func (s *Stream) setHead(ev gjson.Result) {
	h := append(s.head[:0], `{"id":`...)
	h = appendID(h, ev.Get("responseId").Str)
	h = append(h, `,"object":"chat.completion.chunk","created":`...)
	h = strconv.AppendInt(h, s.created, 10)
	h = append(h, `,"model":`...)
	s.head = appendModel(h, ev.Get("modelVersion"), s.model)
}

// contentChunk is the current event's text and function calls as one
// chunk, nil when it has neither (thought parts only).
func (s *Stream) contentChunk() []byte {
	parts := s.ev.Get("candidates.0.content.parts")
	b := append(s.buf[:0], s.head...)
	b = append(b, `,"choices":[{"index":0,"delta":{`...)
	texts, calls := 0, 0
	parts.ForEach(func(_, p gjson.Result) bool {
		t := p.Get("text")
		if t.Type != gjson.String || t.Str == "" || p.Get("thought").Type == gjson.True {
			return true
		}
		if texts == 0 {
			b = append(b, `"content":"`...)
		}
		texts++
		b = append(b, t.Raw[1:len(t.Raw)-1]...)
		return true
	})
	if texts > 0 {
		b = append(b, '"')
	}
	var scratch []byte
	parts.ForEach(func(_, p gjson.Result) bool {
		fc := p.Get("functionCall")
		if !fc.IsObject() {
			return true
		}
		switch {
		case calls > 0:
			b = append(b, ',')
		case texts > 0:
			b = append(b, `,"tool_calls":[`...)
		default:
			b = append(b, `"tool_calls":[`...)
		}
		calls++
		// Gemini sends each call whole: its id, name and arguments in one chunk.
		b = append(b, `{"index":`...)
		b = strconv.AppendInt(b, int64(s.tools), 10)
		b = append(b, `,"id":`...)
		b = appendCallID(b, fc.Get("id").Str, s.ev.Get("responseId").Str, s.tools)
		b = append(b, `,"type":"function","function":{"name":`...)
		b = api.AppendString(b, fc.Get("name").Str)
		b = append(b, `,"arguments":`...)
		scratch = appendArgs(scratch[:0], fc.Get("args"))
		b = api.AppendString(b, bstr(scratch))
		b = append(b, "}}"...)
		s.tools++
		return true
	})
	if calls > 0 {
		b = append(b, ']')
	}
	if texts == 0 && calls == 0 {
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
