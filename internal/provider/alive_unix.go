//go:build unix

package provider

import (
	"net"
	"syscall"
)

// peeker tells whether a pooled connection is still open: a non-blocking
// peek sees the FIN (or RST) of a server that closed it while it was idle,
// and bytes nobody asked for (which make it unusable too). It is made once
// per connection, so a check allocates nothing.
type peeker struct {
	rc  syscall.RawConn
	buf [1]byte
	ok  bool
	fn  func(fd uintptr) bool

	try    func(fd int) bool // wait's: a read that must not block; true: something was there
	waitFn func(fd uintptr) bool
}

func newPeeker(c net.Conn) *peeker {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	p := &peeker{rc: rc}
	p.fn = func(fd uintptr) bool {
		// 0 bytes: closed; a byte: data nobody asked for; EAGAIN: open and quiet.
		_, _, err := syscall.Recvfrom(int(fd), p.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		p.ok = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		return true // never wait for readability
	}
	// The first call tries at once; each later one follows the poller
	// seeing the socket readable, and reads what is there, so the wait
	// returns with it read (a spurious wake finds nothing, and waits again).
	p.waitFn = func(fd uintptr) bool { return p.try(int(fd)) }
	return p
}

// canWait reports whether wait can wait.
func (p *peeker) canWait() bool { return p != nil }

// wait calls try with the socket; when it finds nothing to read, wait
// returns once the runtime's poller sees the socket readable, as it does
// inside a Read (try runs under the connection's read lock, after the
// poller's last readiness was cleared, so bytes that arrive after it wake
// the wait). The connection's deadline bounds it as it bounds a Read.
func (p *peeker) wait(try func(fd int) bool) error {
	p.try = try
	err := p.rc.Read(p.waitFn)
	p.try = nil
	return err
}

// alive reports whether the connection can carry another request; a
// connection that cannot be checked is taken as open (a write to it that
// fails sends the request again on a new one).
func (p *peeker) alive() bool {
	if p == nil {
		return true
	}
	p.ok = false
	err := p.rc.Read(p.fn)
	return err == nil && p.ok
}
