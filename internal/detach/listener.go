package detach

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// Listener is the http.Server's listener: the connections it accepts, and
// those of detached responses that ended cleanly, which the server then
// serves as new connections (their next request, keep-alive kept).
//
// The server takes a connection handed back for a new one, and its
// Shutdown waits up to 5 s for a new connection's first request, where it
// closes an idle keep-alive connection at once. So that shutdown does not
// wait on them, the Listener closes, when it is closed, the connections it
// handed back whose next request has not begun: ConnState must be the
// server's ConnState hook.
type Listener struct {
	net.Listener
	accepted chan accepted
	back     chan net.Conn
	done     chan struct{}
	start    sync.Once

	mu      sync.Mutex
	closed  bool
	waiting map[net.Conn]struct{} // handed back, no request begun on them yet
	nwait   atomic.Int64          // len(waiting), read without the lock
}

type accepted struct {
	c   net.Conn
	err error
}

// backlog bounds the connections handed back and not yet accepted again;
// past it one is closed (its client opens another).
const backlog = 1024

// NewListener wraps inner.
func NewListener(inner net.Listener) *Listener {
	return &Listener{Listener: inner, accepted: make(chan accepted), back: make(chan net.Conn, backlog),
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
	l.nwait.Store(0)
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

// ConnState is the server's http.Server.ConnState: a connection handed
// back stops waiting once a request begins on it (or it ends).
func (l *Listener) ConnState(c net.Conn, s http.ConnState) {
	if s == http.StateNew || s == http.StateIdle || l.nwait.Load() == 0 {
		return
	}
	l.mu.Lock()
	if _, ok := l.waiting[c]; ok {
		delete(l.waiting, c)
		l.nwait.Add(-1)
	}
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
	default:
		return false
	}
	if l.waiting == nil {
		l.waiting = make(map[net.Conn]struct{})
	}
	l.waiting[c] = struct{}{}
	l.nwait.Add(1)
	return true
}
