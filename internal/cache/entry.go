package cache

import (
	"encoding/binary"
	"errors"
	"math"
	"time"

	"github.com/zeebo/xxh3"
)

// Entry is one cached answer.
type Entry struct {
	Body             []byte    // complete OpenAI chat.completion JSON, without gateway metadata
	Provider         string    // provider that produced it
	Model            string    // upstream model
	StoredAt         time.Time // when the answer was stored, for max-age
	PromptTokens     int
	CompletionTokens int
	CostUSD          float64 // cost of the original call, NaN when unknown; what a hit saves

	// ExpiresAt is when the entry stops being valid, set by Tiered.Set; zero
	// means unknown. It lets an L1 filled from L2 expire when the L2 copy
	// does, instead of living a full L1 TTL past it.
	ExpiresAt time.Time
}

// entryOverhead approximates the bytes an entry costs beyond its variable
// fields: the Entry struct, the L1 node and key, and map bookkeeping.
const entryOverhead = 200

// Size is the approximate memory an entry holds, used to bound L1 by bytes.
func (e *Entry) Size() int {
	return entryOverhead + len(e.Body) + len(e.Provider) + len(e.Model)
}

// Cacheable reports whether an answer that ended with finishReason may be
// stored (see the package documentation for the policy).
func Cacheable(finishReason string) bool {
	switch finishReason {
	case "stop", "tool_calls", "function_call", "length":
		return true
	default:
		return false
	}
}

// ErrCorrupt is returned by DecodeEntry for bytes that are not an entry of a
// known format: truncated, damaged, or written by another format version.
var ErrCorrupt = errors.New("cache: corrupt or unknown entry encoding")

// Entry encoding, version 1:
//
//	magic 0xCE, version 1, flags (0: body stored raw)
//	varint  StoredAt as Unix nanoseconds (0: zero time)
//	varint  ExpiresAt as Unix nanoseconds (0: zero time)
//	varint  PromptTokens, CompletionTokens
//	8 bytes CostUSD, IEEE 754 little endian (NaN survives)
//	uvarint length + bytes of Provider, Model, Body
//	8 bytes xxh3-64 of everything before, little endian
//
// The body is stored raw: answers are a few KB, Redis holds them cheaply, and
// compressing would cost more CPU on the hot L2 hit path than it saves in
// transfer over a local network. The flags byte leaves room for a compressed
// body in a later version without a format change.
const (
	entryMagic   = 0xCE
	entryVersion = 1
	checksumLen  = 8
)

// EncodeEntry appends the binary encoding of e to dst.
func EncodeEntry(dst []byte, e *Entry) []byte {
	start := len(dst)
	dst = append(dst, entryMagic, entryVersion, 0)
	dst = binary.AppendVarint(dst, unixNano(e.StoredAt))
	dst = binary.AppendVarint(dst, unixNano(e.ExpiresAt))
	dst = binary.AppendVarint(dst, int64(e.PromptTokens))
	dst = binary.AppendVarint(dst, int64(e.CompletionTokens))
	dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(e.CostUSD))
	dst = appendBytes(dst, e.Provider)
	dst = appendBytes(dst, e.Model)
	dst = appendBytes(dst, e.Body)
	return binary.LittleEndian.AppendUint64(dst, xxh3.Hash(dst[start:]))
}

func appendBytes[T string | []byte](dst []byte, s T) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// DecodeEntry decodes what EncodeEntry wrote. The returned entry's Body
// aliases b, so b must not be modified afterwards. Any damage yields an error
// wrapping ErrCorrupt; DecodeEntry never panics.
func DecodeEntry(b []byte) (*Entry, error) {
	if len(b) < 3+checksumLen || b[0] != entryMagic || b[1] != entryVersion || b[2] != 0 {
		return nil, ErrCorrupt
	}
	payload := b[:len(b)-checksumLen]
	if xxh3.Hash(payload) != binary.LittleEndian.Uint64(b[len(payload):]) {
		return nil, ErrCorrupt
	}
	d := decoder{b: payload, i: 3}
	e := &Entry{
		StoredAt:         fromUnixNano(d.varint()),
		ExpiresAt:        fromUnixNano(d.varint()),
		PromptTokens:     int(d.varint()),
		CompletionTokens: int(d.varint()),
		CostUSD:          math.Float64frombits(d.uint64()),
	}
	e.Provider = string(d.bytes())
	e.Model = string(d.bytes())
	e.Body = d.bytes()
	if d.bad || d.i != len(payload) {
		return nil, ErrCorrupt
	}
	return e, nil
}

// decoder reads fields and remembers the first failure, so DecodeEntry checks
// once at the end instead of after every field.
type decoder struct {
	b   []byte
	i   int
	bad bool
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b[min(d.i, len(d.b)):])
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.i += n
	return v
}

func (d *decoder) uint64() uint64 {
	if d.bad || len(d.b)-d.i < 8 {
		d.bad = true
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b[d.i:])
	d.i += 8
	return v
}

func (d *decoder) bytes() []byte {
	if d.bad {
		return nil
	}
	n, k := binary.Uvarint(d.b[d.i:])
	if k <= 0 || n > uint64(len(d.b)-d.i-k) {
		d.bad = true
		return nil
	}
	d.i += k
	v := d.b[d.i : d.i+int(n) : d.i+int(n)]
	d.i += int(n)
	return v
}
