// Package sse reads and writes Server-Sent Events as LLM providers use them.
package sse

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"sync"
)

// Event is one server-sent event. Data lines are joined with '\n'.
// Event and Data are valid only until the next call to Reader.Next.
type Event struct {
	Event []byte
	Data  []byte
	ID    []byte
}

// Reader parses an event stream. It allocates nothing per event once its
// buffers have grown to the largest event seen.
type Reader struct {
	br    *bufio.Reader
	pool  *Pool // where br goes back; nil: not pooled
	src   io.Reader
	wait  Waiter // src as a Waiter; nil: it is not one
	err   error  // sticky: the error that ended the stream, or ErrReleased
	data  []byte
	event []byte
	id    []byte
	line  []byte
}

// MaxLine bounds a single line so a broken upstream cannot exhaust memory.
const MaxLine = 16 << 20

// bufSize is a Reader's read buffer. A provider's event is a few hundred
// bytes; a longer line is assembled from several reads (up to MaxLine).
// A gateway holds one Reader per open stream, thousands at once, so the
// buffer is kept small (it was 16 KiB: docs/benchmarks.md); the source
// below it is buffered already (an HTTP client's connection), so a read
// that does not fill it costs a copy, not a system call.
const bufSize = 1 << 10

// A Waiter is a source that can wait for input without a buffer: WaitRead
// returns once a Read would not block (bytes, the end of the input or an
// error are there); an error it returns is the next Read's too. Between two
// events, a Reader over a Waiter gives its buffer back to its Pool and
// waits with WaitRead, so that thousands of streams waiting for their next
// event hold no read buffer (the provider package's plain-HTTP client
// gives its own back too).
type Waiter interface {
	WaitRead() error
}

// ErrLineTooLong reports a line over MaxLine.
var ErrLineTooLong = errors.New("sse: line too long")

// ErrReleased is what Next returns after Release.
var ErrReleased = errors.New("sse: reader released")

// NewReader returns a Reader over r with a buffer of its own.
func NewReader(r io.Reader) *Reader {
	w, _ := r.(Waiter)
	return &Reader{br: bufio.NewReaderSize(r, bufSize), src: r, wait: w}
}

// Pool lends read buffers to Readers, so a stream that ends gives its
// buffer to the next one instead of to the garbage collector. The zero
// value is ready to use; a Pool must not be copied after first use.
type Pool struct{ p sync.Pool }

// NewReader returns a Reader over r whose buffer comes from the pool and
// goes back to it when the stream ends (Next returns an error) or at
// Release.
func (p *Pool) NewReader(r io.Reader) *Reader {
	rd := new(Reader)
	p.Init(rd, r)
	return rd
}

// Init makes r, a zero Reader, what NewReader returns: for a Reader kept
// inside a stream's own struct, one object fewer that every event touches.
func (p *Pool) Init(r *Reader, src io.Reader) {
	w, _ := src.(Waiter)
	*r = Reader{br: p.get(src), pool: p, src: src, wait: w}
}

func (p *Pool) get(r io.Reader) *bufio.Reader {
	if br, ok := p.p.Get().(*bufio.Reader); ok {
		br.Reset(r)
		return br
	}
	return bufio.NewReaderSize(r, bufSize)
}

func (p *Pool) put(br *bufio.Reader) {
	br.Reset(nil)
	p.p.Put(br)
}

// Release gives the Reader's buffer back (to its Pool, if any) and ends
// it: Next returns ErrReleased from then on, and bytes read from the
// source but not yet returned are dropped. Call it when the stream is over
// (after [DONE]) from the goroutine that calls Next, never while Next runs
// on another. Safe to call more than once.
func (r *Reader) Release() {
	if r.err == nil {
		r.err = ErrReleased
	}
	r.release()
}

func (r *Reader) release() {
	if r.br == nil {
		return
	}
	if r.pool != nil {
		r.pool.put(r.br)
	}
	r.br, r.src, r.wait = nil, nil, nil
	r.data, r.event, r.id, r.line = nil, nil, nil, nil
}

// Next returns the next event with a data field or an event name. It
// returns io.EOF at a clean end of input and io.ErrUnexpectedEOF when the
// input ends inside an event. Once it has returned an error it returns the
// same error again, and the Reader's buffer is released.
func (r *Reader) Next() (Event, error) {
	if r.err != nil {
		return Event{}, r.err
	}
	ev, err := r.next()
	if err != nil {
		r.err = err
		r.release()
	}
	return ev, err
}

func (r *Reader) next() (Event, error) {
	r.data, r.event, r.id = r.data[:0], r.event[:0], r.id[:0]
	if r.wait != nil && r.br.Buffered() == 0 {
		r.waitEvent()
	}
	hasData, inEvent := false, false
	for {
		line, err := r.readLine()
		if err != nil {
			if err == io.EOF && (hasData || len(r.event) > 0) {
				// A final event without its blank line: deliver it; many
				// servers close right after the last data line.
				return Event{Event: r.event, Data: r.data, ID: r.id}, nil
			}
			if err == io.EOF && inEvent {
				return Event{}, io.ErrUnexpectedEOF
			}
			return Event{}, err
		}
		if len(line) == 0 {
			if hasData || len(r.event) > 0 {
				return Event{Event: r.event, Data: r.data, ID: r.id}, nil
			}
			inEvent = false
			continue
		}
		if line[0] == ':' { // comment
			continue
		}
		inEvent = true
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "data":
			if hasData {
				r.data = append(r.data, '\n')
			}
			r.data = append(r.data, value...)
			hasData = true
		case "event":
			r.event = append(r.event[:0], value...)
		case "id":
			r.id = append(r.id[:0], value...)
		}
	}
}

// NextBuffered reports whether the buffer holds a whole event with a data
// field already, so that Next will return it without reading from the
// source (or Next returns the error that ended the stream). A proxy uses it
// to write the events a slow reader let pile up with one flush instead of
// one system call each; false is always safe.
func (r *Reader) NextBuffered() bool {
	if r.err != nil {
		return true
	}
	n := r.br.Buffered()
	if n == 0 {
		return false
	}
	b, _ := r.br.Peek(n)
	end := bytes.Index(b, blankLine)
	if end < 0 {
		return false
	}
	ev := b[:end+1]
	return bytes.HasPrefix(ev, dataField[1:]) || bytes.Contains(ev, dataField)
}

var (
	blankLine = []byte("\n\n")
	dataField = []byte("\ndata:")
)

// waitEvent waits for the source's next bytes with the buffer, empty, back
// in the pool. WaitRead's error is left to the read that follows.
func (r *Reader) waitEvent() {
	if r.pool == nil {
		_ = r.wait.WaitRead()
		return
	}
	r.pool.put(r.br)
	r.br = nil
	_ = r.wait.WaitRead()
	r.br = r.pool.get(r.src)
}

// readLine returns one line without its terminator (\n, \r\n or \r\n).
// A line the buffer holds whole is returned as it lies there (valid until
// the next read: next copies what it keeps); one longer than the buffer is
// assembled in r.line.
func (r *Reader) readLine() ([]byte, error) {
	r.line = r.line[:0]
	for {
		frag, err := r.br.ReadSlice('\n')
		if err == nil && len(r.line) == 0 {
			return trimEOL(frag), nil
		}
		r.line = append(r.line, frag...)
		if len(r.line) > MaxLine {
			return nil, ErrLineTooLong
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF && len(r.line) > 0 {
				return trimEOL(r.line), nil
			}
			return nil, err
		}
		return trimEOL(r.line), nil
	}
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
}

// Writer writes events to an http.ResponseWriter and flushes each one.
type Writer struct {
	w   io.Writer
	rc  *http.ResponseController
	buf []byte
}

// NewWriter returns a Writer that flushes through w's ResponseController.
func NewWriter(w http.ResponseWriter) *Writer {
	return &Writer{w: w, rc: http.NewResponseController(w)}
}

// Done is the payload that ends an OpenAI stream.
var Done = []byte("[DONE]")

// Data writes "data: payload\n\n" without flushing.
func (w *Writer) Data(payload []byte) error {
	w.buf = append(w.buf[:0], "data: "...)
	w.buf = append(w.buf, payload...)
	w.buf = append(w.buf, '\n', '\n')
	_, err := w.w.Write(w.buf)
	return err
}

// Event writes "event: name\ndata: payload\n\n" without flushing.
func (w *Writer) Event(name string, payload []byte) error {
	w.buf = append(w.buf[:0], "event: "...)
	w.buf = append(w.buf, name...)
	w.buf = append(w.buf, "\ndata: "...)
	w.buf = append(w.buf, payload...)
	w.buf = append(w.buf, '\n', '\n')
	_, err := w.w.Write(w.buf)
	return err
}

// Flush sends what was written to the client.
func (w *Writer) Flush() error {
	err := w.rc.Flush()
	if errors.Is(err, http.ErrNotSupported) {
		return nil
	}
	return err
}

// Shared header values (canonical names, never mutated by net/http):
// SetHeaders costs no allocation.
var (
	hdrEventStream = []string{"text/event-stream"}
	hdrNoCache     = []string{"no-cache"}
	hdrKeepAlive   = []string{"keep-alive"}
	hdrNo          = []string{"no"}
)

// SetHeaders sets the headers of an event stream response.
func SetHeaders(h http.Header) {
	h["Content-Type"] = hdrEventStream
	h["Cache-Control"] = hdrNoCache
	h["Connection"] = hdrKeepAlive
	h["X-Accel-Buffering"] = hdrNo
}
