//go:build !linux

package detach

import (
	"context"
	"net"
)

// poller is Linux's (epoll); elsewhere every detached response's client is
// watched by a goroutine of its own.
type poller struct{}

func newPoller(context.Context) *poller { return nil }

func sockFD(net.Conn) (int, bool) { return 0, false }

func (p *poller) watch(*Response) bool { return false }
func (p *poller) rearm(*Response)      {}
func (p *poller) unwatch(*Response)    {}

func peekByte(int) int { return -1 }
