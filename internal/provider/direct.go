package provider

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/edge-agent/edge-agent/internal/stack"
)

// direct is the HTTP/1.1 client for plain-http upstreams (vLLM, Ollama, LM
// Studio, a mirror on the LAN, the simulated provider). It writes the
// request and reads the answer on the caller's goroutine over a pooled
// keep-alive connection. http.Transport spends two goroutines per
// connection (a writer and a reader that hand every request and answer
// over channels); on a proxy that is a large share of a call (up to 27 %
// of the gateway's CPU per proxied call, docs/benchmarks.md), and each
// hand-off is a wake-up that a single caller waits for. The parsing and
// writing are net/http's own (Request.Write, http.ReadResponse), so the
// bytes on the wire are the ones http.Transport sends.
//
// What http.Transport's reader goroutine does in the background is done
// when a connection is taken from the pool: a connection the server closed
// while it was idle (a keep-alive timeout) is seen there, with one
// non-blocking peek, and dropped. A context that ends (client gone, a
// deadline) sets the connection's deadline in the past, which unblocks the
// read or write at once; the connection is then closed, which the upstream
// sees as the call being cancelled.
//
// Buffers are sized and lent for what a call needs, because a gateway
// holds thousands of long streams at once, each on its own connection: a
// connection has a read buffer only while a call is on it (an idle one
// gives it back), and a write buffer only while the request is written.
// Both come from pools of this client.
type direct struct {
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	maxIdle     int
	idleTimeout time.Duration

	readers sync.Pool // *bufio.Reader of directBufSize, reset to no connection
	writers sync.Pool // *bufio.Writer of directBufSize, reset to no connection

	mu     sync.Mutex
	idle   map[string][]*dconn // by host:port; the newest last
	sweep  *time.Timer         // closes connections idle past idleTimeout
	closed bool                // set by CloseIdleConnections; reopened on use
}

// directBufSize is the size of the direct client's read and write buffers.
// A request's headers and a typical chat body fit in one write; an answer
// is read in pieces of what arrived (a stream event is a few hundred
// bytes), and reads larger than the buffer (a long non-streamed answer)
// bypass it. 32 KiB each made up most of a stream's memory at thousands of
// concurrent streams (docs/benchmarks.md).
const directBufSize = 4 << 10

// dconn is one upstream connection. br is set while a call is on it.
type dconn struct {
	c      net.Conn
	cr     connReader // what br reads
	peek   peeker     // here, not beside: a stream's every wait reads both
	br     *bufio.Reader
	spare  *bufio.Reader // an empty Reader that takes br's buffer to the pool at park
	parked bool          // br's buffer is in the pool (await): a read takes one back
	t      *direct
	try    func(fd uintptr) bool // tryRead, for peek.wait; made once
	addr   string
	idleAt time.Time
	reused bool
}

// connReader is the connection as dc.br reads it: in turn, while await
// tries a read that must not block, a non-blocking read of its socket.
type connReader struct {
	c        net.Conn
	fd       int
	nonblock bool
}

// errWouldBlock is a non-blocking read that found nothing.
var errWouldBlock = errors.New("provider: nothing to read yet")

func (cr *connReader) Read(p []byte) (int, error) {
	if !cr.nonblock {
		return cr.c.Read(p)
	}
	for {
		n, err := syscall.Read(cr.fd, p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
			return 0, errWouldBlock
		case err != nil:
			return 0, &net.OpError{Op: "read", Net: "tcp", Source: cr.c.LocalAddr(), Addr: cr.c.RemoteAddr(), Err: os.NewSyscallError("read", err)}
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// await returns once dc has something to read (bytes, the end, an error).
// What is there already is read into a pooled buffer at once, with the one
// system call a Read makes; otherwise the buffer goes back to the pool,
// and the runtime's poller waits, as inside a Read: a stream spends most of
// its life waiting for its next event, and at thousands of streams the
// buffers they would hold are a large share of the gateway's memory
// (docs/benchmarks.md). When the poller wakes it, the same non-blocking
// read takes a buffer back and reads what woke it, so the wait returns
// with it read (a wake that finds nothing waits again), and the Read that
// follows is a copy. The connection's deadline bounds the wait (a
// context that ends sets it in the past), and its error is a Read's. A
// connection that cannot be waited on returns at once, and its Read waits.
func (t *direct) await(dc *dconn) error {
	if !dc.peek.canWait() || (!dc.parked && dc.br.Buffered() > 0) {
		return nil
	}
	return dc.peek.wait(dc.try)
}

// tryRead is await's read that must not block, on the socket fd; it
// reports whether something was there.
func (dc *dconn) tryRead(fd uintptr) bool {
	if dc.parked {
		dc.t.unpark(dc)
	}
	dc.cr.fd, dc.cr.nonblock = int(fd), true
	_, err := dc.br.Peek(1) // a read error is read again by the next Read
	dc.cr.nonblock = false
	if err == errWouldBlock {
		dc.t.park(dc)
		return false
	}
	return true
}

// errServerClosedIdle marks a pooled connection that turned out dead: the
// write failed, or the server closed it (EOF or a reset before any byte of
// an answer) as the request reached it, which is what a keep-alive timeout
// firing at that moment looks like. The request is sent again on another
// connection; a fresh one is never retried, so the loop ends. A chat
// completion is safe to send twice (the router retries it on any 502).
var errServerClosedIdle = errors.New("provider: server closed the idle connection")

// roundTrip sends req to addr (host:port) over a pooled connection.
func (t *direct) roundTrip(req *http.Request, addr string) (*http.Response, error) {
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		closeBody(req)
		return nil, err
	}
	for {
		dc, err := t.get(ctx, addr)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		resp, err := t.send(ctx, dc, req)
		if err == errServerClosedIdle && req.GetBody != nil {
			// Nothing was sent; send it again on another connection.
			body, gerr := req.GetBody()
			if gerr != nil {
				return nil, gerr
			}
			r2 := *req
			r2.Body = body
			req = &r2
			continue
		}
		return resp, err
	}
}

// send writes req on dc and reads the answer's header. The body, when
// there is one, gives the connection back to the pool once it has been
// read to the end.
func (t *direct) send(ctx context.Context, dc *dconn, req *http.Request) (*http.Response, error) {
	stop := context.AfterFunc(ctx, func() { _ = dc.c.SetDeadline(aLongTimeAgo) })
	fail := func(err error) (*http.Response, error) {
		stop()
		_ = dc.c.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	bw := t.writer(dc.c)
	err := req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	t.putWriter(bw)
	if err != nil {
		// A write fails only before the whole request reached the server,
		// which cannot act on part of one: on a connection from the pool
		// that is the server having closed it, and the request can go again.
		if dc.reused && ctx.Err() == nil {
			return fail(errServerClosedIdle)
		}
		// A server may answer before it has read the whole request (413 for
		// a body over its limit) and close the connection: the answer is
		// then already in the socket's buffer, and is what the caller needs.
		if ctx.Err() == nil {
			if resp, rerr := http.ReadResponse(dc.br, req); rerr == nil && resp.StatusCode >= 300 {
				resp.Close = true
				return t.wrap(dc, req, resp, stop), nil
			}
		}
		return fail(err)
	}
	// The answer is awaited with the read buffer in the pool: the time to
	// a model's first token is most of a stream's life, and all of a
	// non-streamed call's. An error here is the read's, below.
	_ = t.await(dc)
	if dc.parked {
		t.unpark(dc)
	}
	if dc.reused {
		// Peek waits for the first byte as ReadResponse would, and leaves it
		// in the buffer for it.
		if _, perr := dc.br.Peek(1); perr != nil && ctx.Err() == nil &&
			(errors.Is(perr, io.EOF) || errors.Is(perr, syscall.ECONNRESET)) {
			return fail(errServerClosedIdle)
		}
	}
	var resp *http.Response
	for {
		resp, err = http.ReadResponse(dc.br, req)
		if err != nil {
			return fail(err)
		}
		// 1xx answers (103 Early Hints) precede the real one.
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	return t.wrap(dc, req, resp, stop), nil
}

// wrap gives resp a body that hands dc back to the pool, or closes it, when
// the answer ends.
func (t *direct) wrap(dc *dconn, req *http.Request, resp *http.Response, stop func() bool) *http.Response {
	b := &directBody{t: t, dc: dc, body: resp.Body, stop: stop, keep: !resp.Close && !req.Close}
	if resp.Body == http.NoBody {
		b.finish(true)
		return resp
	}
	if len(resp.TransferEncoding) == 1 && resp.TransferEncoding[0] == "chunked" {
		// A stream is read with net/http's chunked reader straight from
		// the connection's buffer, not through the body reader
		// ReadResponse put over it (a lock and a struct more for every
		// event, which directBody keeps itself); its trailer, which no
		// caller reads, is read past at the end.
		b.chunks = httputil.NewChunkedReader(dc.br)
	}
	resp.Body = b
	return resp
}

// aLongTimeAgo is a deadline in the past: it makes a blocked read or write
// return at once.
var aLongTimeAgo = time.Unix(1, 0)

// directBody is an answer's body: read to its end, it gives the connection
// back; closed before, it closes the connection. Close may be called from
// another goroutine while Read is blocked (a stream being aborted).
type directBody struct {
	t      *direct
	dc     *dconn
	body   io.ReadCloser
	chunks io.Reader // a chunked body's chunks, read instead of body
	stop   func() bool
	keep   bool

	ready bool // WaitRead saw something to read since the last Read

	mu   sync.Mutex
	done bool
	err  error // what Read returns once done: io.EOF, or ErrBodyReadAfterClose
}

// WaitRead returns once a Read would not block (sse.Waiter), with the
// connection's read buffer in the pool while it waits (await).
func (b *directBody) WaitRead() error {
	if b.ready {
		return nil
	}
	b.mu.Lock()
	done := b.done
	b.mu.Unlock()
	if done { // the buffer may be back in the pool: Read saw the end
		return nil
	}
	err := b.t.await(b.dc)
	b.ready = err == nil
	return err
}

func (b *directBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	done, derr := b.done, b.err
	b.mu.Unlock()
	if done {
		return 0, derr
	}
	if b.dc.parked {
		b.t.unpark(b.dc)
	}
	b.ready = false
	var (
		n   int
		err error
	)
	if b.chunks != nil {
		n, err = b.chunks.Read(p)
		if err == io.EOF {
			if terr := readTrailer(b.dc.br); terr != nil {
				err = terr
			}
		}
	} else {
		n, err = b.body.Read(p)
	}
	if err != nil {
		b.finish(err == io.EOF)
	}
	return n, err
}

// errLongTrailer is a chunked body's trailer longer than the read buffer.
var errLongTrailer = errors.New("provider: chunked body's trailer too long")

// readTrailer reads what follows a chunked body's last chunk: trailer
// fields, if any, through the blank line that ends the body. Like
// net/http, it bounds them by the read buffer.
func readTrailer(br *bufio.Reader) error {
	for read := 0; ; {
		line, err := br.ReadSlice('\n')
		read += len(line)
		switch {
		case err == bufio.ErrBufferFull || read > directBufSize:
			return errLongTrailer
		case err == io.EOF:
			return io.ErrUnexpectedEOF
		case err != nil:
			return err
		case string(line) == "\r\n":
			return nil
		}
	}
}

func (b *directBody) Close() error {
	b.finish(false)
	return nil
}

// finish ends the answer once: the connection goes back to the pool when
// the whole body was read, nothing follows it and the context did not end;
// otherwise it is closed.
func (b *directBody) finish(complete bool) {
	b.mu.Lock()
	if b.done {
		b.mu.Unlock()
		return
	}
	b.done = true
	b.err = http.ErrBodyReadAfterClose
	if complete {
		b.err = io.EOF
	}
	b.mu.Unlock()
	// stop is false when the context ended and the deadline was (or is
	// being) set: the connection cannot be trusted.
	if b.stop() && complete && b.keep && b.dc.br.Buffered() == 0 {
		b.t.put(b.dc)
		return
	}
	_ = b.dc.c.Close()
	if complete {
		// Read saw the end, and no other Read runs: the buffer is free.
		b.t.putReader(b.dc)
	}
}

// get takes the newest idle connection to addr that is still open, or dials
// a new one.
func (t *direct) get(ctx context.Context, addr string) (*dconn, error) {
	now := time.Now()
	for {
		t.mu.Lock()
		t.closed = false
		list := t.idle[addr]
		if len(list) == 0 {
			t.mu.Unlock()
			break
		}
		dc := list[len(list)-1]
		list[len(list)-1] = nil
		t.idle[addr] = list[:len(list)-1]
		t.mu.Unlock()
		if now.Sub(dc.idleAt) < t.idleTimeout && dc.peek.alive() {
			dc.reused = true
			dc.br = t.reader(&dc.cr)
			return dc, nil
		}
		_ = dc.c.Close()
	}
	c, err := t.dialAside(ctx, addr)
	if err != nil {
		return nil, err
	}
	dc := &dconn{c: c, cr: connReader{c: c}, t: t, addr: addr}
	dc.peek.init(c)
	dc.br = t.reader(&dc.cr)
	dc.try = dc.tryRead
	return dc, nil
}

// reader lends a read buffer for c.
func (t *direct) reader(c io.Reader) *bufio.Reader {
	if br, ok := t.readers.Get().(*bufio.Reader); ok {
		br.Reset(c)
		return br
	}
	return bufio.NewReaderSize(c, directBufSize)
}

// writer lends a write buffer for c; putWriter takes it back.
func (t *direct) writer(c net.Conn) *bufio.Writer {
	if bw, ok := t.writers.Get().(*bufio.Writer); ok {
		bw.Reset(c)
		return bw
	}
	return bufio.NewWriterSize(c, directBufSize)
}

// park moves dc.br's buffer, with nothing in it, to the pool, and leaves
// dc.br empty; unpark moves a pooled buffer in before dc.br is read again.
// dc.br itself stays, because net/http's body reader holds it. The buffer
// goes over inside a bufio.Reader value (the package has no other way to
// hand a Reader a buffer): dc.spare is the empty Reader that carries it.
func (t *direct) park(dc *dconn) {
	carrier := dc.spare
	if carrier == nil {
		carrier = new(bufio.Reader)
	}
	*carrier, *dc.br = *dc.br, bufio.Reader{}
	carrier.Reset(nil)
	t.readers.Put(carrier)
	dc.spare = nil
	dc.parked = true
}

func (t *direct) unpark(dc *dconn) {
	src := t.reader(&dc.cr)
	*dc.br, *src = *src, bufio.Reader{}
	dc.spare = src
	dc.parked = false
}

// putReader takes dc's read buffer back; dc is not read from again.
func (t *direct) putReader(dc *dconn) {
	dc.br.Reset(nil)
	t.readers.Put(dc.br)
	dc.br = nil
}

func (t *direct) putWriter(bw *bufio.Writer) {
	bw.Reset(nil)
	t.writers.Put(bw)
}

// put returns dc to the pool, or closes it when the pool is full or closed.
// Its read buffer, empty (finish checked), goes back to the buffer pool: an
// idle connection holds none.
func (t *direct) put(dc *dconn) {
	t.putReader(dc)
	dc.idleAt = time.Now()
	t.mu.Lock()
	list := t.idle[dc.addr]
	if t.closed || len(list) >= t.maxIdle {
		t.mu.Unlock()
		_ = dc.c.Close()
		return
	}
	if t.idle == nil {
		t.idle = make(map[string][]*dconn)
	}
	t.idle[dc.addr] = append(list, dc)
	if t.sweep == nil {
		t.sweep = time.AfterFunc(t.idleTimeout, t.sweepIdle)
	}
	t.mu.Unlock()
}

// sweepIdle closes the connections idle for longer than idleTimeout (the
// oldest are first in each list), and comes back while some remain.
func (t *direct) sweepIdle() {
	cutoff := time.Now().Add(-t.idleTimeout)
	var stale []*dconn
	t.mu.Lock()
	left := 0
	for addr, list := range t.idle {
		i := 0
		for i < len(list) && !list[i].idleAt.After(cutoff) {
			stale = append(stale, list[i])
			i++
		}
		if i > 0 {
			rest := append(list[:0], list[i:]...)
			clear(list[len(rest):])
			list = rest
			t.idle[addr] = list
		}
		left += len(list)
	}
	switch {
	case left == 0:
		t.sweep = nil
	case t.sweep == nil: // closeIdle stopped it, and put filled the pool again
		t.sweep = time.AfterFunc(t.idleTimeout/2, t.sweepIdle)
	default:
		t.sweep.Reset(t.idleTimeout / 2)
	}
	t.mu.Unlock()
	for _, dc := range stale {
		_ = dc.c.Close()
	}
}

// closeIdle closes every idle connection; connections in use are closed
// when their answer ends.
func (t *direct) closeIdle() {
	t.mu.Lock()
	all := t.idle
	t.idle = nil
	t.closed = true
	if t.sweep != nil {
		t.sweep.Stop()
		t.sweep = nil
	}
	t.mu.Unlock()
	for _, list := range all {
		for _, dc := range list {
			_ = dc.c.Close()
		}
	}
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// dialAside dials on a goroutine of its own. A dial goes some 4 KiB deep
// (the resolver, the socket calls); made on the caller's goroutine, which
// stays parked on the answer for a whole stream, it would grow that
// goroutine's stack from 8 to 16 KiB for good (at 5000 streams, 40 MB of
// stacks: docs/benchmarks.md). A new connection costs one short goroutine;
// a pooled one nothing.
func (t *direct) dialAside(ctx context.Context, addr string) (net.Conn, error) {
	type dialed struct {
		c   net.Conn
		err error
	}
	ch := make(chan dialed, 1)
	go func() {
		stack.Grow8K()
		c, err := t.dial(ctx, "tcp", addr)
		ch <- dialed{c, err}
	}()
	d := <-ch
	return d.c, d.err
}
