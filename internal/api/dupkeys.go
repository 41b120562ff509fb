package api

import (
	"bytes"
	"math"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// CheckDuplicateKeys reports the first object key that appears twice in the
// same object of body, at any depth, as a 400 whose Param is the key's path
// (messages[0].content). Keys are compared as decoded strings, so "a" and
// "\u0061" are the same key.
//
// Every surface's parser calls it before reading anything: with a repeated
// key, the gateway (gjson takes the first occurrence) and the provider (most
// JSON decoders take the last) would read different requests, and whatever
// the gateway checked or redacted would not be what the provider acts on.
//
// It checks the JSON syntax on the way (a body that is not valid JSON is a
// 400 "not valid JSON", param ""), so a parser needs no second walk for
// that; UTF-8 it leaves to the caller. It walks body once and allocates
// nothing for bodies whose objects have at most smallObject keys, whose
// escaped keys fit in 128 bytes and that nest at most 12 deep.
func CheckDuplicateKeys(body []byte) *Error {
	if len(body) > math.MaxInt32 {
		return InvalidRequest("", "request body is too large")
	}
	// The scan state lives in local slices over local arrays, passed to
	// and returned from helpers, so that it stays on the stack.
	var (
		frameBuf [12]dkFrame
		keyBuf   [32]dkKey
		arenaBuf [128]byte
	)
	frames, keys, arena := frameBuf[:0], keyBuf[:0], arenaBuf[:0]
	b := body
	i := skipWS(b, 0)
	var err *Error
	var bigs []map[string]struct{} // key sets of objects with many keys
	for {
		// A value starts at i.
		if i >= len(b) {
			return invalidJSON()
		}
		switch b[i] {
		case '{':
			frames = append(frames, dkFrame{obj: true, keysFrom: int32(len(keys)), arenaAt: int32(len(arena))})
			i = skipWS(b, i+1)
			if i < len(b) && b[i] == '}' {
				frames, keys, arena = dkPop(frames, keys, arena)
				i++
				break
			}
			if i, keys, arena, err = dkKeyAt(b, i, frames, keys, arena, &bigs); err != nil {
				return err
			}
			continue
		case '[':
			frames = append(frames, dkFrame{})
			i = skipWS(b, i+1)
			if i < len(b) && b[i] == ']' {
				frames, keys, arena = dkPop(frames, keys, arena)
				i++
				break
			}
			continue
		case '"':
			end := stringEnd(b, i)
			if end < 0 {
				return invalidJSON()
			}
			i = end
		default:
			i = scalarEnd(b, i)
		}
		if i < 0 {
			return invalidJSON()
		}
		// The value ended at i: close containers until one has a next item.
		for {
			i = skipWS(b, i)
			if len(frames) == 0 {
				if i != len(b) {
					return invalidJSON()
				}
				return nil
			}
			if i >= len(b) {
				return invalidJSON()
			}
			f := &frames[len(frames)-1]
			if b[i] == ',' {
				i = skipWS(b, i+1)
				if !f.obj {
					f.index++
				} else if i, keys, arena, err = dkKeyAt(b, i, frames, keys, arena, &bigs); err != nil {
					return err
				}
				break
			}
			if (f.obj && b[i] != '}') || (!f.obj && b[i] != ']') {
				return invalidJSON()
			}
			frames, keys, arena = dkPop(frames, keys, arena)
			i++
		}
	}
}

// smallObject is how many keys an object may have before its keys go into a
// map: a linear search is faster below it and quadratic above it.
const smallObject = 24

// dkKey is one key of an open object: its decoded bytes are body[s:e], or
// arena[s:e] when the key had escapes.
type dkKey struct {
	s, e    int32
	inArena bool
}

func (k dkKey) bytes(body, arena []byte) []byte {
	if k.inArena {
		return arena[k.s:k.e]
	}
	return body[k.s:k.e]
}

// dkFrame is one open object or array.
type dkFrame struct {
	obj      bool
	index    int32 // arrays: index of the element being read
	keysFrom int32 // objects: where this object's keys start in keys
	arenaAt  int32 // objects: len(arena) when the object opened
	nkeys    int32 // objects: keys seen so far
	cur      dkKey // objects: the key whose value is being read
	big      int32 // objects with many keys: 1 + their index in bigs
}

func invalidJSON() *Error { return InvalidRequest("", "request body is not valid JSON") }

func dkPop(frames []dkFrame, keys []dkKey, arena []byte) ([]dkFrame, []dkKey, []byte) {
	f := &frames[len(frames)-1]
	if f.obj {
		keys, arena = keys[:f.keysFrom], arena[:f.arenaAt]
	}
	return frames[:len(frames)-1], keys, arena
}

// dkKeyAt reads `"key" :` at b[i] in the innermost object, checks it against
// the object's other keys and returns where its value starts.
func dkKeyAt(b []byte, i int, frames []dkFrame, keys []dkKey, arena []byte, bigs *[]map[string]struct{}) (int, []dkKey, []byte, *Error) {
	if i >= len(b) || b[i] != '"' {
		return 0, keys, arena, invalidJSON()
	}
	end := stringEnd(b, i)
	if end < 0 {
		return 0, keys, arena, invalidJSON()
	}
	raw := b[i+1 : end-1]
	k := dkKey{s: int32(i + 1), e: int32(end - 1)}
	if bytes.IndexByte(raw, '\\') >= 0 {
		at := len(arena)
		arena = appendUnescaped(arena, raw)
		k = dkKey{s: int32(at), e: int32(len(arena)), inArena: true}
	}
	f := &frames[len(frames)-1]
	f.cur = k
	name := k.bytes(b, arena)
	dup := false
	switch {
	case f.big > 0:
		big := (*bigs)[f.big-1]
		_, dup = big[string(name)]
		if !dup {
			big[string(name)] = struct{}{}
		}
	case f.nkeys < smallObject:
		for _, o := range keys[f.keysFrom:] {
			if o.e-o.s == k.e-k.s && bytes.Equal(o.bytes(b, arena), name) {
				dup = true
				break
			}
		}
		if !dup {
			keys = append(keys, k)
		}
	default:
		big := make(map[string]struct{}, 2*smallObject)
		*bigs = append(*bigs, big)
		f.big = int32(len(*bigs))
		for _, o := range keys[f.keysFrom:] {
			big[string(o.bytes(b, arena))] = struct{}{}
		}
		_, dup = big[string(name)]
		big[string(name)] = struct{}{}
		keys = keys[:f.keysFrom]
	}
	if dup {
		p := dkPath(b, frames, arena)
		return 0, keys, arena, InvalidRequest(p, "duplicate key %s in the request body: each key may appear only once in an object", p)
	}
	f.nkeys++
	i = skipWS(b, end)
	if i >= len(b) || b[i] != ':' {
		return 0, keys, arena, invalidJSON()
	}
	return skipWS(b, i+1), keys, arena, nil
}

// maxPathKey bounds how much of one key the path in an error repeats.
const maxPathKey = 64

// dkPath renders where the scan is: messages[0].content, or
// tools[1]["odd key"] for keys that are not identifiers.
func dkPath(body []byte, frames []dkFrame, arena []byte) string {
	var p []byte
	for i := range frames {
		f := &frames[i]
		if !f.obj {
			p = append(p, '[')
			p = append(p, itoa(int(f.index))...)
			p = append(p, ']')
			continue
		}
		name := f.cur.bytes(body, arena)
		if len(name) > maxPathKey {
			n := maxPathKey
			for n > 0 && !utf8.RuneStart(name[n]) {
				n--
			}
			name = append(name[:n:n], "..."...)
		}
		if identifier(name) {
			if len(p) > 0 {
				p = append(p, '.')
			}
			p = append(p, name...)
			continue
		}
		p = append(p, '[')
		p = AppendString(p, string(name))
		p = append(p, ']')
	}
	return string(p)
}

func identifier(s []byte) bool {
	if len(s) == 0 {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '-'):
		default:
			return false
		}
	}
	return true
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// scalarEnd returns the index past the literal (true, false, null) or
// number at b[i], or -1.
func scalarEnd(b []byte, i int) int {
	switch b[i] {
	case 't':
		return literal(b, i, "true")
	case 'f':
		return literal(b, i, "false")
	case 'n':
		return literal(b, i, "null")
	}
	return numberEnd(b, i)
}

// literal returns the index past word at b[i], or -1.
func literal(b []byte, i int, word string) int {
	if len(b)-i < len(word) || string(b[i:i+len(word)]) != word {
		return -1
	}
	return i + len(word)
}

// numberEnd returns the index past the JSON number at b[i], or -1.
func numberEnd(b []byte, i int) int {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return -1
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		i = digitsEnd(b, i+1)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		j := digitsEnd(b, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digitsEnd(b, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func digitsEnd(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// plainStringByte marks the bytes a string literal holds as they are: not
// the quote, the backslash or a control character.
var plainStringByte = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// stringEnd returns the index just past the string literal whose opening
// quote is at b[i], or -1 if it is not a valid one (unclosed, a control
// character, a bad escape).
func stringEnd(b []byte, i int) int {
	j := i + 1
	for {
		for j < len(b) && plainStringByte[b[j]] {
			j++
		}
		if j >= len(b) {
			return -1
		}
		switch b[j] {
		case '"':
			return j + 1
		case '\\':
			if j+1 >= len(b) {
				return -1
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				if hex4(b[j+2:]) < 0 {
					return -1
				}
				j += 6
			default:
				return -1
			}
		default: // a control character
			return -1
		}
	}
}

// appendUnescaped appends the decoded form of the inside of a JSON string,
// as encoding/json decodes it: a lone or mismatched surrogate becomes
// U+FFFD.
func appendUnescaped(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			dst = append(dst, c)
			i++
			continue
		}
		switch e := s[i+1]; e {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(s[i+2:])
			if r < 0 {
				dst = append(dst, s[i:i+2]...)
				break
			}
			i += 6
			if utf16.IsSurrogate(r) {
				if len(s) >= i+6 && s[i] == '\\' && s[i+1] == 'u' {
					if r2 := hex4(s[i+2:]); r2 >= 0 {
						if dec := utf16.DecodeRune(r, r2); dec != unicode.ReplacementChar {
							dst = utf8.AppendRune(dst, dec)
							i += 6
							continue
						}
					}
				}
				r = unicode.ReplacementChar
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // '"', '\\', '/'
			dst = append(dst, e)
		}
		i += 2
	}
	return dst
}

// hex4 decodes the four hex digits at the start of s, or returns -1.
func hex4(s []byte) rune {
	if len(s) < 4 {
		return -1
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}
