package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync/atomic"
)

// idSource makes request ids: a random per-process prefix and a counter,
// unique across instances without a syscall or lock per request.
type idSource struct {
	prefix string
	n      atomic.Uint64
}

func newIDSource() *idSource {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &idSource{prefix: "req_" + hex.EncodeToString(b[:]) + "_"}
}

func (s *idSource) next() string {
	var buf [48]byte
	out := append(buf[:0], s.prefix...)
	out = strconv.AppendUint(out, s.n.Add(1), 36)
	return string(out)
}

// validRequestID accepts a client's X-Request-Id only when it is short and
// printable, so it cannot inject into headers or logs.
func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}
