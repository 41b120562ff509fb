//go:build !unix

package provider

import "net"

// peeker cannot peek at a socket here: a connection the server closed
// while idle fails on its next write, and the request is sent again.
type peeker struct{}

func (p *peeker) init(net.Conn) {}

func (p *peeker) alive() bool { return true }

func (p *peeker) canWait() bool { return false }

func (p *peeker) wait(func(fd uintptr) bool) error { return nil }
