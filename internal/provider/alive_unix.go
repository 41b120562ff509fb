//go:build unix

package provider

import (
	"net"
	"syscall"
)

// alive reports whether a pooled connection is still open: a non-blocking
// peek sees the FIN (or RST) of a server that closed it while it was idle,
// and bytes nobody asked for (which make it unusable too).
func alive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	ok = false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		// 0 bytes: closed; a byte: data nobody asked for; EAGAIN: open and quiet.
		_, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ok = rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK
		return true // never wait for readability
	})
	return err == nil && ok
}
