package api

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync/atomic"
)

// RequestIDs makes request ids: a random per-process prefix and a counter,
// unique across instances without a syscall or lock per request. The
// gateway and the server's other routes each own one.
type RequestIDs struct {
	prefix string
	n      atomic.Uint64
}

// NewRequestIDs returns a source with a fresh random prefix.
func NewRequestIDs() *RequestIDs {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &RequestIDs{prefix: "req_" + hex.EncodeToString(b[:]) + "_"}
}

// Next returns a new id.
func (s *RequestIDs) Next() string {
	var buf [48]byte
	out := append(buf[:0], s.prefix...)
	out = strconv.AppendUint(out, s.n.Add(1), 36)
	return string(out)
}

// ValidRequestID accepts a client's X-Request-Id only when it is short and
// printable, so it cannot inject into headers or logs.
func ValidRequestID(s string) bool {
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
