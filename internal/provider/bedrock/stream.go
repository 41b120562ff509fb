package bedrock

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream/eventstreamapi"
	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/edge-agent/edge-agent/internal/cost"
	"github.com/edge-agent/edge-agent/internal/provider"
)

// maxEventBytes bounds one event-stream message: the SDK's decoder takes
// the length its prelude announces, so a larger one is refused before it
// is read.
const maxEventBytes = 4 << 20

// Stream translates a ConverseStream answer, AWS's binary event-stream
// framing decoded by the SDK's eventstream package, into OpenAI
// chat.completion.chunk payloads. It implements provider.Stream.
//
// It ends with a usage chunk (from the metadata event that follows
// messageStop) and then io.EOF. An exception event, or input that ends
// before messageStop, is an *api.Error: a truncated answer must never look
// complete to the cache or the client.
type Stream struct {
	ctx     context.Context
	name    string
	br      *bufio.Reader
	closer  io.Closer
	dec     *eventstream.Decoder
	payload []byte // the decoder's payload buffer, reused

	head   []byte // {"id":…,"object":"chat.completion.chunk","created":…,"model":…
	buf    []byte
	blocks []int // Converse content block index -> OpenAI tool call index, -1 for other blocks
	tools  int
	usage  usage

	stopped, usageSent bool
	err                error
	closeOnce          sync.Once
	closeErr           error
}

var (
	_ provider.Stream        = (*Stream)(nil)
	_ provider.UsageReporter = (*Stream)(nil)
)

// NewStream returns a Stream reading ConverseStream frames from r for
// model, with chunk ids chatcmpl-{requestID} stamped with created (Unix
// seconds). Close closes r when it is an io.Closer.
func NewStream(r io.Reader, model, requestID string, created int64) *Stream {
	return newStream(context.Background(), "bedrock", r, model, requestID, created)
}

func newStream(ctx context.Context, name string, r io.Reader, model, requestID string, created int64) *Stream {
	s := &Stream{ctx: ctx, name: name, br: bufio.NewReaderSize(r, 16<<10), dec: eventstream.NewDecoder()}
	if c, ok := r.(io.Closer); ok {
		s.closer = c
	}
	h := append(make([]byte, 0, 128), `{"id":`...)
	h = appendID(h, requestID)
	h = append(h, `,"object":"chat.completion.chunk","created":`...)
	h = strconv.AppendInt(h, created, 10)
	h = append(h, `,"model":`...)
	s.head = api.AppendString(h, model)
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
	if s.usageSent {
		return nil, io.EOF
	}
	for {
		msg, err := s.decode()
		if err != nil {
			if err == io.EOF && s.stopped {
				// The answer was complete; a stream without metadata has
				// no usage to report.
				if s.usage.seen {
					s.usageSent = true
					return s.usageChunk(), nil
				}
				s.err = io.EOF
				return nil, io.EOF
			}
			s.err = s.readError(err)
			return nil, s.err
		}
		switch header(msg, eventstreamapi.MessageTypeHeader) {
		case eventstreamapi.ExceptionMessageType:
			s.err = streamError(s.name, header(msg, eventstreamapi.ExceptionTypeHeader), msg.Payload)
			return nil, s.err
		case eventstreamapi.ErrorMessageType:
			p := append([]byte(`{"message":`), api.AppendString(nil, header(msg, eventstreamapi.ErrorMessageHeader))...)
			s.err = streamError(s.name, header(msg, eventstreamapi.ErrorCodeHeader), append(p, '}'))
			return nil, s.err
		}
		// The payload is parsed in place: results point into s.payload
		// and are copied into s.buf before the next read.
		data := gjson.Parse(api.View(msg.Payload))
		switch header(msg, eventstreamapi.EventTypeHeader) {
		case "messageStart":
			return s.chunk(`{"role":"assistant","content":"","refusal":null}`, ""), nil

		case "contentBlockStart":
			idx := int(data.Get("contentBlockIndex").Int())
			if tu := data.Get("start.toolUse"); tu.IsObject() {
				s.setBlock(idx, s.tools)
				s.tools++
				return s.toolStartChunk(s.tools-1, tu.Get("toolUseId"), tu.Get("name")), nil
			}
			s.setBlock(idx, -1)

		case "contentBlockDelta":
			delta := data.Get("delta")
			if t := delta.Get("text"); t.Type == gjson.String {
				if t.Str != "" {
					return s.textChunk(t.Raw), nil
				}
				continue
			}
			tool := s.toolAt(int(data.Get("contentBlockIndex").Int()))
			if in := delta.Get("toolUse.input"); tool >= 0 && in.Type == gjson.String && in.Str != "" {
				return s.toolArgsChunk(tool, in.Raw), nil
			}
			// reasoningContent and citation deltas have no OpenAI field.

		case "messageStop":
			s.stopped = true
			return s.chunk("{}", finishReason(data.Get("stopReason").Str)), nil

		case "metadata":
			s.usage.set(data.Get("usage"))
			if s.stopped {
				s.usageSent = true
				return s.usageChunk(), nil
			}
		}
		// contentBlockStop and unknown events add nothing.
	}
}

// decode reads the next event-stream message, refusing one larger than
// maxEventBytes before reading it.
func (s *Stream) decode() (eventstream.Message, error) {
	prelude, err := s.br.Peek(4)
	if err != nil {
		if err == io.EOF && len(prelude) == 0 {
			return eventstream.Message{}, io.EOF
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return eventstream.Message{}, err
	}
	if n := binary.BigEndian.Uint32(prelude); n > maxEventBytes {
		return eventstream.Message{}, errEventTooLarge
	}
	msg, err := s.dec.Decode(s.br, s.payload[:0])
	if err == io.EOF {
		err = io.ErrUnexpectedEOF // a frame was announced
	}
	if err == nil && cap(msg.Payload) > cap(s.payload) {
		s.payload = msg.Payload[:0]
	}
	return msg, err
}

var errEventTooLarge = errors.New("bedrock: event-stream message over the size limit")

// header is a string header of msg, "" when absent.
func header(msg eventstream.Message, name string) string {
	if v, ok := msg.Headers.Get(name).(eventstream.StringValue); ok {
		return string(v)
	}
	return ""
}

// readError maps a failed read. The end of the body before messageStop is
// a truncated answer, reported as io.ErrUnexpectedEOF.
func (s *Stream) readError(err error) error {
	if s.ctx.Err() != nil {
		return provider.TransportError(s.ctx, s.name, s.ctx.Err())
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_stream_truncated",
			Message: fmt.Sprintf("provider %s ended the stream before the answer was complete", s.name),
			Err:     io.ErrUnexpectedEOF}
	}
	var ce eventstream.ChecksumError
	var le eventstream.LengthError
	if errors.Is(err, errEventTooLarge) || errors.As(err, &ce) || errors.As(err, &le) {
		return &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_invalid_response",
			Message: fmt.Sprintf("provider %s sent an invalid event-stream message: %v", s.name, err), Err: err}
	}
	return provider.TransportError(s.ctx, s.name, err)
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

// chunk writes a chunk with the given delta object and finish_reason ("" for null).
func (s *Stream) chunk(delta, finish string) []byte {
	b := append(append(s.buf[:0], s.head...), `,"choices":[{"index":0,"delta":`...)
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
	b := append(append(s.buf[:0], s.head...), `,"choices":[{"index":0,"delta":{"content":`...)
	b = append(b, raw...)
	return s.end(append(b, '}'), "")
}

func (s *Stream) toolStartChunk(tool int, id, name gjson.Result) []byte {
	b := append(append(s.buf[:0], s.head...), `,"choices":[{"index":0,"delta":{"tool_calls":[{"index":`...)
	b = strconv.AppendInt(b, int64(tool), 10)
	b = append(b, `,"id":`...)
	b = api.AppendString(b, id.Str)
	b = append(b, `,"type":"function","function":{"name":`...)
	b = api.AppendString(b, name.Str)
	b = append(b, `,"arguments":""}}]}`...)
	return s.end(b, "")
}

func (s *Stream) toolArgsChunk(tool int, raw string) []byte {
	b := append(append(s.buf[:0], s.head...), `,"choices":[{"index":0,"delta":{"tool_calls":[{"index":`...)
	b = strconv.AppendInt(b, int64(tool), 10)
	b = append(b, `,"function":{"arguments":`...)
	b = append(b, raw...)
	b = append(b, "}}]}"...)
	return s.end(b, "")
}

func (s *Stream) usageChunk() []byte {
	b := append(append(s.buf[:0], s.head...), `,"choices":[],"usage":`...)
	b = s.usage.appendJSON(b)
	b = append(b, '}')
	s.buf = b
	return b
}
