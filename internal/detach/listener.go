package detach

import (
	"net"
	"sync"
	"time"
)

// Listener is the http.Server's listener: the connections it accepts, and
// those of detached responses that ended cleanly, which the server then
// serves as new connections (their next request, keep-alive kept). A
// connection is handed back once its client's next request begins to
// arrive; until then it waits, for at most the idle timeout, on a 1-byte
// read of its own (no net/http buffers), and Close closes it as net/http's
// Shutdown closes an idle keep-alive connection.
type Listener struct {
	net.Listener
	idle     time.Duration
	accepted chan accepted
	back     chan net.Conn
	done     chan struct{}
	start    sync.Once

	mu      sync.Mutex
	closed  bool
	waiting map[net.Conn]struct{} // waiting for their client's next request
}

type accepted struct {
	c   net.Conn
	err error
}

// backlog bounds the connections handed back and not yet accepted again;
// past it one is closed (its client opens another).
const backlog = 1024

// NewListener wraps inner. idle bounds how long a connection waits for its
// client's next request after a detached response (the server's
// IdleTimeout; 0: no bound).
func NewListener(inner net.Listener, idle time.Duration) *Listener {
	return &Listener{Listener: inner, idle: idle, accepted: make(chan accepted), back: make(chan net.Conn, backlog),
		done: make(chan struct{})}
}

// Accept returns the next connection: a new one, or one handed back.
func (l *Listener) Accept() (net.Conn, error) {
	l.start.Do(func() { go l.acceptLoop() })
	select {
	case c := <-l.back:
		return c, nil
	case a := <-l.accepted:
		return a.c, a.err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// acceptLoop accepts from the inner listener until it fails for good or
// the Listener is closed. Its channel is unbuffered, so a server that backs
// off after a temporary error (too many open files) slows it too.
func (l *Listener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		select {
		case l.accepted <- accepted{c, err}:
		case <-l.done:
			if c != nil {
				_ = c.Close()
			}
			return
		}
		if te, ok := err.(interface{ Temporary() bool }); err != nil && (!ok || !te.Temporary()) {
			return
		}
	}
}

// Close closes the inner listener and the connections handed back and not
// yet served; connections handed back later are closed.
func (l *Listener) Close() error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.done)
	}
	waiting := l.waiting
	l.waiting = nil
	l.mu.Unlock()
	err := l.Listener.Close()
	for c := range waiting {
		_ = c.Close()
	}
	for {
		select {
		case c := <-l.back:
			_ = c.Close()
		default:
			return err
		}
	}
}

// wait records c as waiting for its client's next request; false once the
// Listener is closed.
func (l *Listener) wait(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	if l.waiting == nil {
		l.waiting = make(map[net.Conn]struct{})
	}
	l.waiting[c] = struct{}{}
	return true
}

func (l *Listener) unwait(c net.Conn) {
	l.mu.Lock()
	delete(l.waiting, c)
	l.mu.Unlock()
}

// give hands c back to the server; false (the caller closes c) once the
// Listener is closed or its backlog is full.
func (l *Listener) give(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	select {
	case l.back <- c:
		return true
	default:
		return false
	}
}
