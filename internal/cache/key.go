package cache

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sync"

	"github.com/zeebo/xxh3"
)

// Key identifies a cached answer: the xxh3-128 hash of a request's canonical
// form (see the package documentation).
type Key [16]byte

// String returns the key as 32 lowercase hex digits, the form used in the
// X-Cache-Key header, the admin API and Redis keys.
func (k Key) String() string {
	var buf [32]byte
	return string(k.AppendHex(buf[:0]))
}

// AppendHex appends the 32 hex digits of String to dst.
func (k Key) AppendHex(dst []byte) []byte {
	return hex.AppendEncode(dst, k[:])
}

// ParseKey parses the 32 hex digit form returned by Key.String.
func ParseKey(s string) (Key, error) {
	var k Key
	if len(s) != 2*len(k) {
		return k, fmt.Errorf("cache key must be %d hex digits, got %d characters", 2*len(k), len(s))
	}
	if _, err := hex.Decode(k[:], []byte(s)); err != nil {
		return Key{}, fmt.Errorf("cache key: %w", err)
	}
	return k, nil
}

// ErrInvalidJSON is returned by ComputeKey for a body that is not a JSON
// object.
var ErrInvalidJSON = errors.New("cache key: request body is not a JSON object")

// maxDepth bounds nesting so that a hostile body cannot exhaust the stack.
const maxDepth = 256

// keyFormat is the first byte of every canonical encoding; changing the
// encoding means changing it (and the L2 prefix version).
const keyFormat = 1

// Tags of the canonical encoding. Each value starts with a distinct tag and
// each string carries its length, which makes the encoding prefix-free: two
// different documents never encode to the same bytes.
const (
	tagNull   = 'n'
	tagTrue   = 't'
	tagFalse  = 'f'
	tagNumber = 'd' // sign, significant digits, decimal exponent
	tagRawNum = 'r' // number whose exponent does not fit: hashed as written
	tagString = 's'
	tagKey    = 'k'
	tagArray  = 'a'
	tagArrEnd = ']'
	tagObject = 'o'
	tagObjEnd = '}'
)

// defaultIgnored are the top-level fields that do not change the answer.
// "model" is ignored too: the upstream model is hashed in its place.
var defaultIgnored = [...]string{"model", "stream", "stream_options", "user", "metadata", "store"}

// ComputeKey returns the cache key of a chat request body sent to model at
// provider within namespace. model is the upstream model after alias
// resolution; the body's own model field is not hashed.
func ComputeKey(namespace, provider, model string, body []byte) (Key, error) {
	return ComputeKeyIgnoring(namespace, provider, model, body, nil)
}

// ComputeKeyIgnoring is ComputeKey with extra top-level fields left out of
// the key, for gateway-only fields (such as fallbacks) that never reach the
// provider.
func ComputeKeyIgnoring(namespace, provider, model string, body []byte, ignore []string) (Key, error) {
	c := canonPool.Get().(*canon)
	defer c.release()
	c.ignore = ignore
	c.out = append(c.out, 'K', keyFormat)
	c.appendLP(namespace)
	c.appendLP(provider)
	c.appendLP(model)
	i := skipWS(body, 0)
	if i >= len(body) || body[i] != '{' {
		return Key{}, ErrInvalidJSON
	}
	i, err := c.object(body, i, 0, true)
	if err != nil {
		return Key{}, err
	}
	if skipWS(body, i) != len(body) {
		return Key{}, fmt.Errorf("%w: data after the object at offset %d", ErrInvalidJSON, i)
	}
	// The top-level members are hashed in sorted order where they lie,
	// sparing the copy that nested objects need.
	h := &c.hasher
	h.Reset()
	_, _ = h.Write(c.out[:c.topStart])
	for _, m := range c.members {
		_, _ = h.Write(c.out[m.start:m.end])
	}
	_, _ = h.Write([]byte{tagObjEnd})
	return Key(h.Sum128().Bytes()), nil
}

// canon is the scratch state of one canonicalisation, reused through
// canonPool so that a key costs no allocations once the pool is warm.
type canon struct {
	out     []byte   // canonical encoding being built
	members []member // object members awaiting sorting, a stack shared by all levels
	ignore  []string
	// topStart is where the top-level object's members start in out; they
	// are left in c.members, sorted, for ComputeKeyIgnoring to hash.
	topStart int
	hasher   xxh3.Hasher128
}

// member locates one encoded object member inside canon.out.
type member struct {
	start, keyStart, keyEnd, end int
}

var canonPool = sync.Pool{New: func() any {
	return &canon{out: make([]byte, 0, 4096), members: make([]member, 0, 64)}
}}

func (c *canon) release() {
	if cap(c.out) > 1<<20 { // do not pin the scratch of one huge request
		return
	}
	c.out, c.members, c.ignore = c.out[:0], c.members[:0], nil
	canonPool.Put(c)
}

func (c *canon) appendLP(s string) {
	c.out = binary.LittleEndian.AppendUint32(c.out, uint32(len(s)))
	c.out = append(c.out, s...)
}

func (c *canon) ignored(key []byte) bool {
	for _, s := range defaultIgnored {
		if string(key) == s {
			return true
		}
	}
	for _, s := range c.ignore {
		if string(key) == s {
			return true
		}
	}
	return false
}

func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

func syntaxErr(what string, i int) error {
	return fmt.Errorf("%w: %s at offset %d", ErrInvalidJSON, what, i)
}

// value encodes the JSON value starting at b[i] and returns the offset after it.
func (c *canon) value(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return i, syntaxErr("unexpected end", i)
	}
	switch ch := b[i]; {
	case ch == '{':
		return c.object(b, i, depth+1, false)
	case ch == '[':
		return c.array(b, i, depth+1)
	case ch == '"':
		c.out = append(c.out, tagString)
		return c.str(b, i)
	case ch == 't':
		return c.literal(b, i, "true", tagTrue)
	case ch == 'f':
		return c.literal(b, i, "false", tagFalse)
	case ch == 'n':
		return c.literal(b, i, "null", tagNull)
	case ch == '-' || ch >= '0' && ch <= '9':
		return c.number(b, i)
	default:
		return i, syntaxErr("unexpected character", i)
	}
}

func (c *canon) literal(b []byte, i int, lit string, tag byte) (int, error) {
	if !bytes.HasPrefix(b[i:], []byte(lit)) {
		return i, syntaxErr("invalid literal", i)
	}
	c.out = append(c.out, tag)
	return i + len(lit), nil
}

func (c *canon) array(b []byte, i, depth int) (int, error) {
	if depth > maxDepth {
		return i, syntaxErr("nesting too deep", i)
	}
	c.out = append(c.out, tagArray)
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == ']' {
		c.out = append(c.out, tagArrEnd)
		return i + 1, nil
	}
	for {
		var err error
		if i, err = c.value(b, skipWS(b, i), depth); err != nil {
			return i, err
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return i, syntaxErr("unterminated array", i)
		}
		switch b[i] {
		case ',':
			i++
		case ']':
			c.out = append(c.out, tagArrEnd)
			return i + 1, nil
		default:
			return i, syntaxErr("expected , or ] in array", i)
		}
	}
}

// object encodes members sorted by decoded key. Members are first encoded in
// document order, then, unless already sorted, copied in sorted order past
// the end of out and moved back: one pass over the input and a memmove per
// level, no per-member allocation.
func (c *canon) object(b []byte, i, depth int, top bool) (int, error) {
	if depth > maxDepth {
		return i, syntaxErr("nesting too deep", i)
	}
	c.out = append(c.out, tagObject)
	objStart := len(c.out)
	mark := len(c.members)
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		if top {
			// No members: the caller hashes out[:topStart] and the end tag.
			c.topStart = objStart
			return i + 1, nil
		}
		c.out = append(c.out, tagObjEnd)
		return i + 1, nil
	}
	for {
		i = skipWS(b, i)
		if i >= len(b) || b[i] != '"' {
			return i, syntaxErr("expected object key", i)
		}
		m := member{start: len(c.out)}
		c.out = append(c.out, tagKey)
		m.keyStart = len(c.out) + 4
		var err error
		if i, err = c.str(b, i); err != nil {
			return i, err
		}
		m.keyEnd = len(c.out)
		i = skipWS(b, i)
		if i >= len(b) || b[i] != ':' {
			return i, syntaxErr("expected : after object key", i)
		}
		if i, err = c.value(b, skipWS(b, i+1), depth); err != nil {
			return i, err
		}
		if top && c.ignored(c.out[m.keyStart:m.keyEnd]) {
			c.out = c.out[:m.start]
		} else {
			m.end = len(c.out)
			c.members = append(c.members, m)
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return i, syntaxErr("unterminated object", i)
		}
		if b[i] == ',' {
			i++
			continue
		}
		if b[i] != '}' {
			return i, syntaxErr("expected , or } in object", i)
		}
		i++
		break
	}
	if top {
		c.topStart = objStart
		c.sortKeys(c.members[mark:])
		return i, nil
	}
	c.sortMembers(objStart, c.members[mark:])
	c.members = c.members[:mark]
	c.out = append(c.out, tagObjEnd)
	return i, nil
}

func (c *canon) keyOf(m member) []byte { return c.out[m.keyStart:m.keyEnd] }

// sortKeys sorts ms by key and reports whether they were out of order.
func (c *canon) sortKeys(ms []member) bool {
	for j := 1; j < len(ms); j++ {
		if bytes.Compare(c.keyOf(ms[j-1]), c.keyOf(ms[j])) > 0 {
			// Stable, so duplicate keys keep their document order.
			slices.SortStableFunc(ms, func(x, y member) int { return bytes.Compare(c.keyOf(x), c.keyOf(y)) })
			return true
		}
	}
	return false
}

// sortMembers rewrites the members of the object starting at objStart in
// key order.
func (c *canon) sortMembers(objStart int, ms []member) {
	if !c.sortKeys(ms) {
		return
	}
	tail := len(c.out)
	for _, m := range ms {
		c.out = append(c.out, c.out[m.start:m.end]...)
	}
	copy(c.out[objStart:], c.out[tail:])
	c.out = c.out[:tail]
}

// str appends the decoded string starting at the quote b[i] as a 4-byte
// length and its bytes, and returns the offset after the closing quote.
// Control characters are not rejected: the gateway validates the body
// before keying it, and a raw control character means what its escape means.
func (c *canon) str(b []byte, i int) (int, error) {
	i++
	j := scanQuoteOrEscape(b, i)
	if j < 0 {
		return i, syntaxErr("unterminated string", i)
	}
	if b[j] == '"' { // the common case: nothing to decode
		c.out = binary.LittleEndian.AppendUint32(c.out, uint32(j-i))
		c.out = append(c.out, b[i:j]...)
		return j + 1, nil
	}
	lenAt := len(c.out)
	c.out = append(c.out, 0, 0, 0, 0)
	for {
		c.out = append(c.out, b[i:j]...)
		if b[j] == '"' {
			binary.LittleEndian.PutUint32(c.out[lenAt:], uint32(len(c.out)-lenAt-4))
			return j + 1, nil
		}
		if j+1 >= len(b) {
			return j, syntaxErr("unterminated escape", j)
		}
		i = j + 2
		switch e := b[j+1]; e {
		case '"', '\\', '/':
			c.out = append(c.out, e)
		case 'b':
			c.out = append(c.out, '\b')
		case 'f':
			c.out = append(c.out, '\f')
		case 'n':
			c.out = append(c.out, '\n')
		case 'r':
			c.out = append(c.out, '\r')
		case 't':
			c.out = append(c.out, '\t')
		case 'u':
			r, ok := hex4(b, i)
			if !ok {
				return i, syntaxErr("invalid \\u escape", j)
			}
			i += 4
			if r >= 0xD800 && r < 0xDC00 && i+1 < len(b) && b[i] == '\\' && b[i+1] == 'u' {
				if lo, ok := hex4(b, i+2); ok && lo >= 0xDC00 && lo < 0xE000 {
					r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
					i += 6
				}
			}
			c.out = appendWTF8(c.out, r)
		default:
			return j, syntaxErr("invalid escape", j)
		}
		if j = scanQuoteOrEscape(b, i); j < 0 {
			return i, syntaxErr("unterminated string", i)
		}
	}
}

// scanQuoteOrEscape returns the index of the first '"' or '\\' in b[i:], or
// -1. It tests eight bytes at a time (SWAR): strings in requests are mostly
// short, where a call to the vectorised bytes.IndexByte costs more than the
// search.
func scanQuoteOrEscape(b []byte, i int) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		q, e := x^(ones*'"'), x^(ones*'\\')
		// A byte of q or e is zero where x holds a quote or backslash. The
		// lowest flagged byte is exact; borrows only flag bytes above it.
		if m := ((q-ones)&^q | (e-ones)&^e) & highs; m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(b); i++ {
		if b[i] == '"' || b[i] == '\\' {
			return i
		}
	}
	return -1
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, ch := range b[i : i+4] {
		switch {
		case ch >= '0' && ch <= '9':
			r = r<<4 | rune(ch-'0')
		case ch >= 'a' && ch <= 'f':
			r = r<<4 | rune(ch-'a'+10)
		case ch >= 'A' && ch <= 'F':
			r = r<<4 | rune(ch-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// appendWTF8 is utf8.AppendRune except that a lone surrogate keeps its own
// three-byte form instead of becoming U+FFFD, so "\ud800" and "\ufffd" differ.
func appendWTF8(dst []byte, r rune) []byte {
	switch {
	case r < 0x80:
		return append(dst, byte(r))
	case r < 0x800:
		return append(dst, 0xC0|byte(r>>6), 0x80|byte(r)&0x3F)
	case r < 0x10000:
		return append(dst, 0xE0|byte(r>>12), 0x80|byte(r>>6)&0x3F, 0x80|byte(r)&0x3F)
	default:
		return append(dst, 0xF0|byte(r>>18), 0x80|byte(r>>12)&0x3F, 0x80|byte(r>>6)&0x3F, 0x80|byte(r)&0x3F)
	}
}

// number encodes a JSON number by exact decimal value: sign, significant
// digits without leading or trailing zeros, and the decimal exponent.
func (c *canon) number(b []byte, i int) (int, error) {
	start := i
	neg := b[i] == '-'
	if neg {
		i++
	}
	intStart := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	intEnd := i
	if intEnd == intStart || b[intStart] == '0' && intEnd-intStart > 1 {
		return i, syntaxErr("invalid number", start)
	}
	fracStart, fracEnd := i, i
	if i < len(b) && b[i] == '.' {
		i++
		fracStart = i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		fracEnd = i
		if fracEnd == fracStart {
			return i, syntaxErr("invalid number", start)
		}
	}
	var exp int64
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		expNeg := false
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			expNeg = b[i] == '-'
			i++
		}
		expStart := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			if i-expStart < 10 {
				exp = exp*10 + int64(b[i]-'0')
			}
			i++
		}
		if i == expStart {
			return i, syntaxErr("invalid number", start)
		}
		if i-expStart > 10 { // beyond ±1e10: no real parameter; keep the text
			c.out = append(c.out, tagRawNum)
			c.out = binary.LittleEndian.AppendUint32(c.out, uint32(i-start))
			c.out = append(c.out, b[start:i]...)
			return i, nil
		}
		if expNeg {
			exp = -exp
		}
	}
	tagAt := len(c.out)
	c.out = append(c.out, tagNumber, 0, 0, 0, 0, 0)
	digitsAt := len(c.out)
	for _, seg := range [2][]byte{b[intStart:intEnd], b[fracStart:fracEnd]} {
		for _, d := range seg {
			if d == '0' && len(c.out) == digitsAt {
				continue // leading zero
			}
			c.out = append(c.out, d)
		}
	}
	exp -= int64(fracEnd - fracStart)
	for len(c.out) > digitsAt && c.out[len(c.out)-1] == '0' {
		c.out = c.out[:len(c.out)-1]
		exp++
	}
	n := len(c.out) - digitsAt
	if n == 0 { // zero, whatever its sign and exponent
		neg, exp = false, 0
	}
	if neg {
		c.out[tagAt+1] = 1
	}
	binary.LittleEndian.PutUint32(c.out[tagAt+2:], uint32(n))
	c.out = binary.AppendVarint(c.out, exp)
	return i, nil
}
