package anthropic

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

// Stream translates an Anthropic Messages event stream into OpenAI
// chat.completion.chunk payloads. It implements provider.Stream.
//
// It ends with a usage chunk after message_stop and then io.EOF. An error
// event, or input that ends before message_stop, is an *api.Error: a
// truncated answer must never look complete to the cache or the client.
type Stream struct {
	ctx     context.Context
	name    string
	r       *sse.Reader
	closer  io.Closer
	created int64
	key     string // the API key, scrubbed from error events

	head   []byte // {"id":…,"object":"chat.completion.chunk","created":…,"model":…
	buf    []byte
	blocks []int // Anthropic content block index -> OpenAI tool call index, -1 for other blocks
	tools  int
	usage  usage

	finishSent, stopped, usageSent bool
	err                            error
	closeOnce                      sync.Once
	closeErr                       error
}

var _ provider.Stream = (*Stream)(nil)

// NewStream returns a Stream reading Anthropic SSE from r, stamping chunks
// with created (Unix seconds). Close closes r when it is an io.Closer.
func NewStream(r io.Reader, created int64) *Stream {
	return newStream(context.Background(), "anthropic", r, created)
}

func newStream(ctx context.Context, name string, r io.Reader, created int64) *Stream {
	s := &Stream{ctx: ctx, name: name, r: sse.NewReader(r), created: created}
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
	if s.err != nil {
		return nil, s.err
	}
	if s.stopped {
		if !s.usageSent {
			s.usageSent = true
			return s.usageChunk(), nil
		}
		return nil, io.EOF
	}
	for {
		ev, err := s.r.Next()
		if err != nil {
			s.err = s.readError(err)
			return nil, s.err
		}
		// The event is parsed in place: results point into the reader's
		// buffer and are copied into s.buf before the next read.
		data := gjson.Parse(api.View(ev.Data))
		typ := api.View(ev.Event)
		if typ == "" {
			typ = data.Get("type").Str
		}
		switch typ {
		case "message_start":
			msg := data.Get("message")
			s.setHead(msg.Get("id").Str, msg.Get("model"))
			s.usage.set(msg.Get("usage"))
			return s.chunk(`{"role":"assistant","content":"","refusal":null}`, ""), nil

		case "content_block_start":
			idx := int(data.Get("index").Int())
			block := data.Get("content_block")
			switch block.Get("type").Str {
			case "tool_use":
				s.setBlock(idx, s.tools)
				s.tools++
				return s.toolStartChunk(s.tools-1, block.Get("id"), block.Get("name")), nil
			case "text":
				s.setBlock(idx, -1)
				if t := block.Get("text"); t.Type == gjson.String && t.Str != "" {
					return s.textChunk(t.Raw), nil
				}
			default:
				s.setBlock(idx, -1)
			}

		case "content_block_delta":
			delta := data.Get("delta")
			switch delta.Get("type").Str {
			case "text_delta":
				if t := delta.Get("text"); t.Type == gjson.String && t.Str != "" {
					return s.textChunk(t.Raw), nil
				}
			case "input_json_delta":
				tool := s.toolAt(int(data.Get("index").Int()))
				if pj := delta.Get("partial_json"); tool >= 0 && pj.Type == gjson.String && pj.Str != "" {
					return s.toolArgsChunk(tool, pj.Raw), nil
				}
			}
			// thinking, signature and citation deltas have no OpenAI field.

		case "message_delta":
			s.usage.set(data.Get("usage"))
			if sr := data.Get("delta.stop_reason"); sr.Type == gjson.String {
				s.finishSent = true
				return s.chunk("{}", finishReason(sr.Str)), nil
			}

		case "message_stop":
			s.stopped = true
			if !s.finishSent {
				s.finishSent = true
				return s.chunk("{}", "stop"), nil
			}
			s.usageSent = true
			return s.usageChunk(), nil

		case "error":
			s.err = provider.ScrubSecret(eventError(s.name, data), s.key)
			return nil, s.err
		}
		// ping, content_block_stop and unknown events add nothing.
	}
}

// readError maps a failed read. The end of the body before message_stop
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

func (s *Stream) setHead(id string, model gjson.Result) {
	h := append(s.head[:0], `{"id":`...)
	h = appendID(h, id)
	h = append(h, `,"object":"chat.completion.chunk","created":`...)
	h = strconv.AppendInt(h, s.created, 10)
	h = append(h, `,"model":`...)
	if model.Type == gjson.String {
		h = append(h, model.Raw...)
	} else {
		h = append(h, `""`...)
	}
	s.head = h
}

func (s *Stream) setBlock(idx, tool int) {
	if idx < 0 || idx > 1<<16 {
		return
	}
	for len(s.blocks) <= idx {
		s.blocks = append(s.blocks, -1)
	}
	s.blocks[idx] = tool
}

func (s *Stream) toolAt(idx int) int {
	if idx < 0 || idx >= len(s.blocks) {
		return -1
	}
	return s.blocks[idx]
}

// begin starts a chunk in s.buf with the shared id/object/created/model.
func (s *Stream) begin() []byte {
	if s.head == nil { // no message_start: keep chunks well-formed anyway
		s.setHead("", gjson.Result{})
	}
	return append(s.buf[:0], s.head...)
}

// chunk writes a chunk with the given delta object and finish_reason ("" for null).
func (s *Stream) chunk(delta, finish string) []byte {
	b := append(s.begin(), `,"choices":[{"index":0,"delta":`...)
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

// textChunk carries raw, the upstream's JSON string literal, unchanged.
func (s *Stream) textChunk(raw string) []byte {
	b := append(s.begin(), `,"choices":[{"index":0,"delta":{"content":`...)
	b = append(b, raw...)
	return s.end(append(b, '}'), "")
}

func (s *Stream) toolStartChunk(tool int, id, name gjson.Result) []byte {
	b := append(s.begin(), `,"choices":[{"index":0,"delta":{"tool_calls":[{"index":`...)
	b = strconv.AppendInt(b, int64(tool), 10)
	b = append(b, `,"id":`...)
	b = api.AppendString(b, id.Str)
	b = append(b, `,"type":"function","function":{"name":`...)
	b = api.AppendString(b, name.Str)
	b = append(b, `,"arguments":""}}]}`...)
	return s.end(b, "")
}

func (s *Stream) toolArgsChunk(tool int, raw string) []byte {
	b := append(s.begin(), `,"choices":[{"index":0,"delta":{"tool_calls":[{"index":`...)
	b = strconv.AppendInt(b, int64(tool), 10)
	b = append(b, `,"function":{"arguments":`...)
	b = append(b, raw...)
	b = append(b, "}}]}"...)
	return s.end(b, "")
}

func (s *Stream) usageChunk() []byte {
	b := append(s.begin(), `,"choices":[],"usage":`...)
	b = s.usage.appendJSON(b)
	b = append(b, '}')
	s.buf = b
	return b
}
