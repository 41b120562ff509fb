package detach

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
)

// poller watches the clients of detached responses from one goroutine, with
// an epoll set of its own, instead of a goroutine per connection blocked in
// a 1-byte read: at thousands of open streams those goroutines' stacks
// (4 KiB each, the runtime's starting size once its average stack passed
// 2 KiB) were a tenth of the gateway's memory (docs/benchmarks.md). Each
// connection is watched once at a time (EPOLLONESHOT, level-triggered), so
// an event is handed to its Response once, and the Response looks at the
// socket itself (a non-blocking peek) before acting on it: an event that
// arrives late, after the connection was let go and its descriptor reused,
// finds nothing to act on.
type poller struct {
	epfd, wake int      // the epoll set; an eventfd that ends the loop
	ep         *os.File // epfd, waited on by the runtime's poller

	mu      sync.Mutex
	watched map[int32]*Response // by file descriptor
	stopped bool
}

// newPoller starts a poller that stops when base ends, or returns nil when
// the system has none to give (the goroutine watch is used then). Its
// goroutine does not block a thread in epoll_wait: the epoll set is itself
// readable when it holds events, so the runtime's own poller waits for it,
// as for a socket, and the loop takes the events without waiting.
func newPoller(base context.Context) *poller {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil
	}
	wake, _, errno := syscall.Syscall(syscall.SYS_EVENTFD2, 0, syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if errno != 0 {
		_ = syscall.Close(epfd)
		return nil
	}
	p := &poller{epfd: epfd, wake: int(wake), watched: make(map[int32]*Response)}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(p.wake)}
	if syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, p.wake, &ev) != nil || syscall.SetNonblock(epfd, true) != nil {
		_ = syscall.Close(epfd)
		_ = syscall.Close(p.wake)
		return nil
	}
	p.ep = os.NewFile(uintptr(epfd), "detach-epoll")
	rc, err := p.ep.SyscallConn()
	if err != nil {
		_ = p.ep.Close()
		_ = syscall.Close(p.wake)
		return nil
	}
	go p.loop(rc)
	context.AfterFunc(base, p.stop)
	return p
}

// sockFD is c's socket, when the poller can watch c: a plain TCP
// connection (a TLS one's bytes need the TLS layer to read).
func sockFD(c net.Conn) (int, bool) {
	if pc, ok := c.(*prefixConn); ok && len(pc.pre) == 0 {
		c = pc.Conn
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return 0, false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return 0, false
	}
	fd := -1
	if rc.Control(func(s uintptr) { fd = int(s) }) != nil || fd < 0 {
		return 0, false
	}
	return fd, true
}

// watch arms rw's socket: its next readiness calls rw.readable once.
func (p *poller) watch(rw *Response) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return false
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: int32(rw.fd)}
	op := syscall.EPOLL_CTL_ADD
	if p.watched[int32(rw.fd)] != nil { // a registration left by a descriptor closed and reused
		op = syscall.EPOLL_CTL_MOD
	}
	if err := syscall.EpollCtl(p.epfd, op, rw.fd, &ev); err != nil {
		if op == syscall.EPOLL_CTL_ADD || syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, rw.fd, &ev) != nil {
			return false
		}
	}
	p.watched[int32(rw.fd)] = rw
	return true
}

// rearm watches rw's socket again after an event that found nothing.
func (p *poller) rearm(rw *Response) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped || p.watched[int32(rw.fd)] != rw {
		return
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: int32(rw.fd)}
	_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_MOD, rw.fd, &ev)
}

// unwatch ends rw's watch, before its connection is closed or handed on.
func (p *poller) unwatch(rw *Response) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.watched[int32(rw.fd)] != rw {
		return
	}
	delete(p.watched, int32(rw.fd))
	if !p.stopped {
		_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, rw.fd, nil)
	}
}

func (p *poller) loop(rc syscall.RawConn) {
	events := make([]syscall.EpollEvent, 256)
	done := false
	take := func(uintptr) bool {
		for !done {
			n, err := syscall.EpollWait(p.epfd, events, 0)
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			if err != nil {
				done = true // the set is broken: the watched end as they end
				return true
			}
			if n <= 0 {
				return false // nothing more: wait for the set to be readable again
			}
			for i := range n {
				fd := events[i].Fd
				if int(fd) == p.wake {
					done = true
					break
				}
				p.mu.Lock()
				rw := p.watched[fd]
				p.mu.Unlock()
				if rw != nil {
					rw.readable()
				}
			}
		}
		return true
	}
	for !done {
		if rc.Read(take) != nil {
			break
		}
	}
	p.close()
}

// stop ends the loop; the responses still watched end their watch as
// they end.
func (p *poller) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	p.stopped = true
	one := [8]byte{1}
	_, _ = syscall.Write(p.wake, one[:])
}

// close releases the poller's descriptors, from the loop, once it ends.
func (p *poller) close() {
	p.mu.Lock()
	p.stopped = true
	watched := p.watched
	p.watched = map[int32]*Response{}
	p.mu.Unlock()
	_ = p.ep.Close()
	_ = syscall.Close(p.wake)
	// Connections waiting for their next request are closed, as the
	// Listener closes them at shutdown; responses still written end their
	// watch at Close.
	for _, rw := range watched {
		rw.pollerGone()
	}
}

// peekByte looks at the socket fd without blocking: 1, a byte is there; 0,
// the client closed it; -1, nothing yet.
func peekByte(fd int) int {
	var b [1]byte
	n, _, err := syscall.Recvfrom(fd, b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	switch {
	case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK || err == syscall.EINTR:
		return -1
	case err != nil || n == 0:
		return 0
	}
	return 1
}
