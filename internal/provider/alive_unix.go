//go:build unix

package provider

import (
	"net"
	"syscall"
)

// peeker tells whether a pooled connection is still open: a non-blocking
// peek sees the FIN (or RST) of a server that closed it while it was idle,
// and bytes nobody asked for (which make it unusable too). It lives in its
// connection (dconn) and is set up once, so a check allocates nothing.
type peeker struct {
	rc  syscall.RawConn
	buf [1]byte
	ok  bool
	fn  func(fd uintptr) bool
}

// init sets p up for c; a connection that is not a socket is left without
// (canWait is false, alive true).
func (p *peeker) init(c net.Conn) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	p.rc = rc
	p.fn = func(fd uintptr) bool {
		// 0 bytes: closed; a byte: data nobody asked for; EAGAIN: open and quiet.
		_, _, err := syscall.Recvfrom(int(fd), p.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		p.ok = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		return true // never wait for readability
	}
}

// canWait reports whether wait can wait.
func (p *peeker) canWait() bool { return p.rc != nil }

// wait calls try with the socket at once and, each time it finds nothing
// to read, again when the runtime's poller sees the socket readable, as a
// Read does (try runs under the connection's read lock, after the poller's
// last readiness was cleared, so bytes that arrive after it wake the
// wait); try reads what is there, so wait returns with it read (a
// spurious wake finds nothing, and waits again). The connection's
// deadline bounds it as it bounds a Read.
func (p *peeker) wait(try func(fd uintptr) bool) error {
	return p.rc.Read(try)
}

// alive reports whether the connection can carry another request; a
// connection that cannot be checked is taken as open (a write to it that
// fails sends the request again on a new one).
func (p *peeker) alive() bool {
	if p.rc == nil {
		return true
	}
	p.ok = false
	err := p.rc.Read(p.fn)
	return err == nil && p.ok
}
