// Package detach serves the rest of a long HTTP/1.1 response off net/http's
// connection goroutine, so that a stream waiting seconds for a model's
// tokens holds only what it needs.
//
// While a handler runs, net/http keeps for its connection a 4 KiB read
// buffer, 4 + 2 KiB of write buffers, its connection and response state, a
// background reader goroutine, and the handler's goroutine, whose stack has
// grown to the deepest point the request reached (16 KiB for the gateway's:
// parsing and routing go deep) and, parked at 7 KiB, is never shrunk. At
// 5000 open streams that is most of the gateway's memory.
//
// Detach hijacks the connection after the request body has been read. The
// caller goes on in a goroutine of its own, which starts with a small stack
// and grows it only to what the rest of the response needs, and writes
// through a Response that frames HTTP/1.1 itself: chunked once it flushes,
// with a Content-Length when the whole body is written before it ends. One
// goroutine with a 1-byte read watches the client, as net/http's background
// reader does, and cancels the Response's context when it goes. When the
// response ends cleanly, the same read waits for the client's next request
// (up to the idle timeout, holding no buffer), and once it begins the
// connection goes back to the http.Server through Listener, which serves it
// as a new connection: keep-alive is kept, and pipelined bytes are served
// first. (A connection handed back is wrapped to serve those bytes, so a
// TLS connection's later requests have no Request.TLS; the gateway does
// not read it.)
//
// HTTP/2, HTTP/1.0, a request whose body is not read to its end, and a
// ResponseWriter that cannot be hijacked are not detached: Detach says so,
// and the caller answers through net/http as before.
package detach

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// Detacher detaches responses of one http.Server. Its base context's end
// (the server's hard stop) ends every detached response's context, with
// its cause.
type Detacher struct {
	base context.Context
	ln   *Listener // nil: connections close after a detached response
	bufs sync.Pool // *[]byte: output waiting to be written

	pollOnce sync.Once
	poll     *poller // watches the clients (Linux); nil: a goroutine each

	mu   sync.Mutex
	n    int           // responses detached and not closed
	idle chan struct{} // closed when n drops to 0
}

// New returns a Detacher whose responses end with base and whose
// connections go back to the server through ln (nil: they are closed after
// the response).
func New(base context.Context, ln *Listener) *Detacher {
	d := &Detacher{base: base, ln: ln}
	d.bufs.New = func() any { b := make([]byte, 0, bufSize); return &b }
	return d
}

type ctxKey struct{}

// NewContext returns ctx carrying d (an http.Server's BaseContext).
func NewContext(ctx context.Context, d *Detacher) context.Context {
	return context.WithValue(ctx, ctxKey{}, d)
}

// FromContext returns the Detacher ctx carries, or nil.
func FromContext(ctx context.Context) *Detacher {
	d, _ := ctx.Value(ctxKey{}).(*Detacher)
	return d
}

// Reasons a request is not detached.
var (
	ErrNotHTTP11    = errors.New("detach: not an HTTP/1.1 request")
	ErrBodyNotAtEnd = errors.New("detach: the request body is not read to its end")
)

// Detach takes r's connection from net/http. The returned Response carries
// w's header map (what the handler set so far is sent with it) and a
// context with ctx's values that ends when the client goes (cause
// context.Canceled), when the Detacher's base ends (its cause), or at
// Close. The handler must return once it has handed the Response on, and
// must not touch w or r.Body again. On error nothing was taken, and the
// handler answers through w.
func (d *Detacher) Detach(ctx context.Context, w http.ResponseWriter, r *http.Request) (*Response, error) {
	if r.ProtoMajor != 1 || r.ProtoMinor < 1 {
		return nil, ErrNotHTTP11
	}
	// What follows the body on the connection is the client's next
	// request: the body must be at its end (net/http's body answers EOF
	// again once it has seen it).
	if r.Body != nil && r.Body != http.NoBody {
		var one [1]byte
		if n, err := r.Body.Read(one[:]); n != 0 || err != io.EOF {
			return nil, ErrBodyNotAtEnd
		}
	}
	h := w.Header()
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, fmt.Errorf("detach: %w", err)
	}
	rw := &Response{d: d, conn: conn, header: h, closeAfter: r.Close, clen: -1, watching: true}
	if n := brw.Reader.Buffered(); n > 0 { // pipelined: read with this request
		p, _ := brw.Reader.Peek(n)
		rw.pre = bytes.Clone(p)
	}
	rw.ctx, rw.cancel = context.WithCancelCause(context.WithoutCancel(ctx))
	rw.stopBase = context.AfterFunc(d.base, func() { rw.cancel(context.Cause(d.base)) })
	d.mu.Lock()
	if d.n == 0 {
		d.idle = make(chan struct{})
	}
	d.n++
	d.mu.Unlock()
	d.pollOnce.Do(func() { d.poll = newPoller(d.base) })
	if fd, ok := sockFD(conn); ok && d.poll != nil {
		rw.fd, rw.polled = fd, true
		if d.poll.watch(rw) {
			return rw, nil
		}
		rw.polled = false
	}
	rw.watched = make(chan struct{})
	go rw.watch()
	return rw, nil
}

// Wait returns once every detached response is closed, or with ctx's error.
func (d *Detacher) Wait(ctx context.Context) error {
	for {
		d.mu.Lock()
		if d.n == 0 {
			d.mu.Unlock()
			return nil
		}
		idle := d.idle
		d.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Active is the number of responses detached and not closed.
func (d *Detacher) Active() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n
}

func (d *Detacher) done() {
	d.mu.Lock()
	d.n--
	if d.n == 0 {
		close(d.idle)
	}
	d.mu.Unlock()
}

// bufSize is the start size of a Response's output buffer: a few events and
// their framing. It is held only between a write and its flush.
const bufSize = 2 << 10

// maxUnflushed bounds the body held before the first flush (the Response
// then starts a chunked body, as net/http does past its 2 KiB) and the
// output held between flushes.
const maxUnflushed = 16 << 10

// Response writes a detached HTTP/1.1 response. It is an
// http.ResponseWriter and http.Flusher used by one goroutine, the one that
// writes the response, which calls Close once at its end.
type Response struct {
	d        *Detacher
	conn     net.Conn
	header   http.Header
	ctx      context.Context
	cancel   context.CancelCauseFunc
	stopBase func() bool
	pre      []byte // the client's next bytes, read with this request

	// The watcher's, under mu. A polled response is watched by the
	// Detacher's poller; the others by a goroutine of their own (watch).
	mu        sync.Mutex
	polled    bool
	fd        int           // polled: the socket
	watched   chan struct{} // not polled: closed when the watch ends before the response does
	watching  bool          // no byte, end or error seen yet, and the watch not ended
	stopped   bool          // Close ended the watch (a read deadline in the past)
	idle      bool          // Close handed the watch on: it waits for the client's next request
	idleTimer *time.Timer   // polled: the end of that wait
	peek      [1]byte
	peeked    bool // the client sent its next request's first byte (in peek; polled: still in the socket)
	gone      bool // the client closed or reset the connection

	status     int
	sent       bool  // the status line and headers are written
	chunked    bool  // the body is chunked
	clen       int64 // the Content-Length the handler set; -1: none
	written    int64 // body bytes written, framing left out
	out        *[]byte
	err        error // the first write error: the client is gone
	closeAfter bool  // the client asked for Connection: close
	broken     bool  // Abort: the connection is not reused
	ended      bool  // EndBody wrote the body's end
	closed     bool
}

// Context is the response's context.
func (rw *Response) Context() context.Context { return rw.ctx }

// Header is the response's header map (the handler's, from Detach). Once
// the headers are sent, changing them has no effect (as with net/http),
// and the map is let go: Header returns an empty one.
func (rw *Response) Header() http.Header {
	if rw.header == nil {
		return http.Header{}
	}
	return rw.header
}

// Started reports whether the status line and headers have been written.
func (rw *Response) Started() bool { return rw.sent }

// WriteHeader sets the status code; the first call wins. Informational
// (1xx) codes are not sent.
func (rw *Response) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("detach: invalid WriteHeader code %v", code))
	}
	if rw.status != 0 || code < 200 {
		return
	}
	rw.status = code
}

// Write adds p to the body. Before the first flush the body is held (up to
// 16 KiB), so that an answer written whole goes with a Content-Length.
func (rw *Response) Write(p []byte) (int, error) {
	if rw.err != nil {
		return 0, rw.err
	}
	if rw.closed {
		return 0, http.ErrHijacked
	}
	if rw.ended {
		return 0, ErrBodyEnded
	}
	if rw.status == 0 {
		rw.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(rw.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if rw.clen >= 0 && rw.written+int64(len(p)) > rw.clen {
		return 0, http.ErrContentLength
	}
	rw.written += int64(len(p))
	b := rw.take()
	if rw.chunked && len(p) > 0 {
		*b = appendChunk(*b, p)
	} else {
		*b = append(*b, p...)
	}
	if len(*b) >= maxUnflushed {
		if err := rw.FlushError(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Flush writes what is held; the first flush sends the status line and
// headers and starts a chunked body (unless the handler set
// Content-Length).
func (rw *Response) Flush() { _ = rw.FlushError() }

// FlushError is Flush, with the write's error (the client is gone).
func (rw *Response) FlushError() error {
	if rw.err != nil {
		return rw.err
	}
	if rw.closed {
		return http.ErrHijacked
	}
	if !rw.sent {
		rw.sendHeader(false)
	}
	return rw.writeOut()
}

// ErrBodyEnded is a Write after EndBody.
var ErrBodyEnded = errors.New("detach: write after the end of the body")

// EndBody writes what is held and the end of the body (a chunked body's
// last chunk) with one write, before the handler's work after the answer
// (the cache, the price) and Close: a stream's last event and its end go
// in the same system call, as its other events do, instead of the end in
// one of its own at Close. Write fails after it; Close then only hands
// the connection on.
func (rw *Response) EndBody() error {
	if rw.err != nil || rw.ended {
		return rw.err
	}
	if rw.closed {
		return http.ErrHijacked
	}
	rw.endBody()
	return rw.writeOut()
}

// endBody ends the body in the output held: the headers and the body with
// its length when none were sent, a chunked body's last chunk when they
// were.
func (rw *Response) endBody() {
	rw.ended = true
	if rw.status == 0 {
		rw.WriteHeader(http.StatusOK)
	}
	if !rw.sent {
		rw.sendHeader(true)
	} else if rw.chunked {
		b := rw.take()
		*b = append(*b, "0\r\n\r\n"...)
	}
}

// Abort keeps the connection from being reused: Close closes it (a
// response cut in the middle, a panic).
func (rw *Response) Abort() { rw.broken = true }

// Close ends the response: what is held is written, and a chunked body's
// end (unless EndBody wrote them). The connection then goes back to the
// server for the client's next request, or is closed when the response did
// not end cleanly, the client asked for it or is gone, or the server is
// shutting down. The context ends.
func (rw *Response) Close() {
	if rw.closed {
		return
	}
	if !rw.ended {
		rw.endBody()
		_ = rw.writeOut()
	}
	rw.closed = true
	rw.stopBase()
	rw.cancel(nil)
	reuse := rw.err == nil && !rw.broken && !rw.closeAfter && rw.d.ln != nil &&
		(rw.clen < 0 || rw.written == rw.clen)
	rw.mu.Lock()
	if reuse && rw.watching && len(rw.pre) == 0 {
		// The watcher's read goes on as the wait for the client's next
		// request, bounded by the idle timeout as net/http bounds a
		// keep-alive connection's, and hands the connection back when it
		// comes (net/http would bound a new connection's wait by its
		// header timeout). The deadline is set before the hand-over, while
		// the connection is still this Response's.
		waits := rw.d.ln.wait(rw.conn)
		if waits && rw.polled {
			// The poller's watch goes on; a timer bounds it.
			rw.idle = true
			if d := rw.d.ln.idle; d > 0 {
				rw.idleTimer = time.AfterFunc(d, rw.idleExpired)
			}
			rw.mu.Unlock()
			rw.d.done()
			return
		}
		if waits {
			var dl time.Time
			if rw.d.ln.idle > 0 {
				dl = time.Now().Add(rw.d.ln.idle)
			}
			if rw.conn.SetReadDeadline(dl) == nil {
				rw.idle = true
				rw.mu.Unlock()
				rw.d.done()
				return
			}
			rw.d.ln.unwait(rw.conn)
		}
		reuse = false
	}
	unwatch := false
	if rw.watching {
		rw.stopped = true
		if rw.polled {
			rw.watching, unwatch = false, true
		} else {
			// End the watch as net/http ends its background read: a read
			// deadline in the past.
			_ = rw.conn.SetReadDeadline(aLongTimeAgo)
		}
	}
	rw.mu.Unlock()
	if unwatch {
		rw.d.poll.unwatch(rw)
	}
	if !rw.polled {
		<-rw.watched
	}
	if reuse && !rw.gone && (rw.peeked || len(rw.pre) > 0) && rw.conn.SetReadDeadline(time.Time{}) == nil {
		rw.handBack()
	} else {
		_ = rw.conn.Close()
	}
	rw.d.done()
}

// handBack gives the connection back to the server with the bytes of the
// client's next request read so far.
func (rw *Response) handBack() {
	pre := rw.pre
	if rw.peeked && !rw.polled {
		pre = append(pre, rw.peek[0])
	}
	var c net.Conn = rw.conn
	if len(pre) > 0 {
		c = &prefixConn{Conn: rw.conn, pre: pre}
	}
	if !rw.d.ln.give(c) {
		_ = rw.conn.Close()
	}
}

// aLongTimeAgo is a read deadline that ends a pending read at once.
var aLongTimeAgo = time.Unix(1, 0)

// watch reads the client's next byte. While the response is written, a
// pipelined request's first byte is kept for the next request, and the end
// of the connection (the client is gone) ends the context. Once Close has
// handed the watch on (idle), the byte is the next request's: the
// connection goes back to the server; an error (the idle timeout, the
// client closing, the Listener closing) closes it.
func (rw *Response) watch() {
	n, err := rw.conn.Read(rw.peek[:])
	rw.mu.Lock()
	rw.watching = false
	idle := rw.idle
	switch {
	case n == 1:
		rw.peeked = true
	case !idle && !(rw.stopped && errors.Is(err, os.ErrDeadlineExceeded)):
		rw.gone = true
	}
	rw.mu.Unlock()
	if idle {
		rw.d.ln.unwait(rw.conn)
		if n == 1 && rw.conn.SetReadDeadline(time.Time{}) == nil {
			rw.handBack()
		} else {
			_ = rw.conn.Close()
		}
		return
	}
	if rw.gone {
		rw.cancel(nil)
	}
	close(rw.watched)
}

// readable is the poller's event for a polled response's socket: the
// client's next request began to arrive (it stays in the socket: net/http
// reads it), or the client is gone. While the response is written, the end
// of the connection ends the context; once Close has handed the watch on
// (idle), the connection goes back to the server, or is closed.
func (rw *Response) readable() {
	rw.mu.Lock()
	if !rw.watching {
		rw.mu.Unlock()
		return
	}
	switch peekByte(rw.fd) {
	case -1: // nothing after all
		rw.mu.Unlock()
		rw.d.poll.rearm(rw)
		return
	case 1:
		rw.peeked = true
	default:
		rw.gone = !rw.idle
	}
	rw.watching = false
	idle, t := rw.idle, rw.idleTimer
	rw.mu.Unlock()
	rw.d.poll.unwatch(rw)
	if idle {
		rw.endIdle(t, rw.peeked)
		return
	}
	if rw.gone {
		rw.cancel(nil)
	}
}

// endIdle ends a polled connection's wait for its client's next request:
// it goes back to the server when that request began to arrive (next),
// and is closed otherwise.
func (rw *Response) endIdle(t *time.Timer, next bool) {
	if t != nil {
		t.Stop()
	}
	rw.d.ln.unwait(rw.conn)
	if next {
		rw.handBack()
	} else {
		_ = rw.conn.Close()
	}
}

// idleExpired ends a polled connection's wait for its client's next
// request at the idle timeout.
func (rw *Response) idleExpired() {
	rw.mu.Lock()
	if !rw.watching || !rw.idle {
		rw.mu.Unlock()
		return
	}
	rw.watching = false
	rw.mu.Unlock()
	rw.d.poll.unwatch(rw)
	rw.endIdle(nil, false)
}

// pollerGone ends a polled watch when the poller stops (the server's
// hard stop): a connection waiting for its next request is closed; a
// response still written is no longer watched.
func (rw *Response) pollerGone() {
	rw.mu.Lock()
	if !rw.watching {
		rw.mu.Unlock()
		return
	}
	rw.watching = false
	idle, t := rw.idle, rw.idleTimer
	rw.mu.Unlock()
	if idle {
		rw.endIdle(t, false)
	}
}

func (rw *Response) take() *[]byte {
	if rw.out == nil {
		rw.out = rw.d.bufs.Get().(*[]byte)
	}
	return rw.out
}

// writeOut writes what is held and gives the buffer back.
func (rw *Response) writeOut() error {
	if rw.out == nil {
		return rw.err
	}
	b := rw.out
	rw.out = nil
	if len(*b) > 0 && rw.err == nil {
		if _, err := rw.conn.Write(*b); err != nil {
			rw.err = err
		}
	}
	if cap(*b) <= 4*maxUnflushed {
		*b = (*b)[:0]
		rw.d.bufs.Put(b)
	}
	return rw.err
}

// sendHeader puts the status line and headers before the body held so far
// (framed as the first chunk when the body is chunked). whole: the body is
// complete (Close), so it goes with its Content-Length.
func (rw *Response) sendHeader(whole bool) {
	rw.sent = true
	var body []byte
	if rw.out != nil {
		body = *rw.out
	}
	hb := rw.d.bufs.Get().(*[]byte)
	b := append((*hb)[:0], "HTTP/1.1 "...)
	b = appendStatus(b, rw.status)
	if v := rw.header["Content-Length"]; len(v) == 1 {
		if n, ok := parseLength(v[0]); ok {
			rw.clen = n
		}
	}
	hw := headerWriter{b: b}
	_ = rw.header.WriteSubset(&hw, excluded)
	b = hw.b
	if _, ok := rw.header["Date"]; !ok {
		b = append(b, "Date: "...)
		b = time.Now().UTC().AppendFormat(b, http.TimeFormat)
		b = append(b, "\r\n"...)
	}
	allowed := bodyAllowed(rw.status)
	if _, ok := rw.header["Content-Type"]; !ok && allowed && len(body) > 0 {
		b = append(b, "Content-Type: "...)
		b = append(b, http.DetectContentType(body)...)
		b = append(b, "\r\n"...)
	}
	// Sent: a stream's header map (a table once it holds more than eight
	// headers) is not held for the stream's life.
	rw.header = nil
	switch {
	case !allowed || rw.clen >= 0:
	case whole:
		b = append(b, "Content-Length: "...)
		b = appendInt(b, int64(len(body)))
		b = append(b, "\r\n"...)
	default:
		rw.chunked = true
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	}
	if rw.closeAfter {
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, "\r\n"...)
	if rw.chunked && len(body) > 0 {
		b = appendChunk(b, body)
	} else if allowed {
		b = append(b, body...)
	}
	*hb = b
	if rw.out != nil {
		*rw.out = (*rw.out)[:0]
		rw.d.bufs.Put(rw.out)
	}
	rw.out = hb
}

// excluded are the handler's headers the Response writes itself.
var excluded = map[string]bool{"Transfer-Encoding": true, "Connection": true, "Trailer": true}

func appendStatus(b []byte, code int) []byte {
	b = appendInt(b, int64(code))
	b = append(b, ' ')
	if t := http.StatusText(code); t != "" {
		b = append(b, t...)
	} else {
		b = append(b, "status code "...)
		b = appendInt(b, int64(code))
	}
	return append(b, "\r\n"...)
}

func appendChunk(b, p []byte) []byte {
	b = appendHex(b, uint64(len(p)))
	b = append(b, "\r\n"...)
	b = append(b, p...)
	return append(b, "\r\n"...)
}

func appendInt(b []byte, n int64) []byte {
	var d [20]byte
	i := len(d)
	for {
		i--
		d[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return append(b, d[i:]...)
}

func appendHex(b []byte, n uint64) []byte {
	const digits = "0123456789abcdef"
	var d [16]byte
	i := len(d)
	for {
		i--
		d[i] = digits[n&0xf]
		n >>= 4
		if n == 0 {
			break
		}
	}
	return append(b, d[i:]...)
}

func parseLength(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n, true
}

// bodyAllowed reports whether a response with status may have a body.
func bodyAllowed(status int) bool {
	return status != http.StatusNoContent && status != http.StatusNotModified && status >= 200
}

// headerWriter appends http.Header.WriteSubset's output to b without an
// allocation per string.
type headerWriter struct{ b []byte }

func (w *headerWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

func (w *headerWriter) WriteString(s string) (int, error) {
	w.b = append(w.b, s...)
	return len(s), nil
}

// prefixConn serves bytes the client sent early before reading on.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
