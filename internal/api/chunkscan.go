package api

import "bytes"

// A stream's chunks are read with one validating pass over their bytes
// (chunkFields) and a second over the choices only, instead of a syntax
// check and a gjson ForEach per level (each of which scans what it holds
// again): every chunk of every open stream goes through here, and the
// gjson walk was a sixth of the gateway's CPU at 5000 streams
// (docs/benchmarks.md).

// valueEnd returns the index just past the JSON value that starts at b[i]
// (no whitespace before it), or -1 when it is not a valid one.
func valueEnd(b []byte, i int) int {
	var stackBuf [32]byte
	stack := stackBuf[:0] // the open containers: '{' or '['
	for {
		// A value starts at i.
		if i >= len(b) {
			return -1
		}
		switch c := b[i]; c {
		case '{', '[':
			stack = append(stack, c)
			i = skipWS(b, i+1)
			if i < len(b) && (b[i] == '}' && c == '{' || b[i] == ']' && c == '[') {
				stack = stack[:len(stack)-1]
				i++
				break
			}
			if c == '{' {
				if i = objectKey(b, i); i < 0 {
					return -1
				}
			}
			continue
		case '"':
			i = stringEnd(b, i)
		default:
			i = scalarEnd(b, i)
		}
		// After a value: close containers, or go on to the next value.
		for {
			if i < 0 {
				return -1
			}
			if len(stack) == 0 {
				return i
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return -1
			}
			top := stack[len(stack)-1]
			if b[i] == '}' && top == '{' || b[i] == ']' && top == '[' {
				stack = stack[:len(stack)-1]
				i++
				continue
			}
			if b[i] != ',' {
				return -1
			}
			i = skipWS(b, i+1)
			if top == '{' {
				i = objectKey(b, i)
			}
			break
		}
		if i < 0 {
			return -1
		}
	}
}

// objectKey reads `"key" :` at b[i] and returns where its value starts, or
// -1.
func objectKey(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	if i = stringEnd(b, i); i < 0 {
		return -1
	}
	i = skipWS(b, i)
	if i >= len(b) || b[i] != ':' {
		return -1
	}
	return skipWS(b, i+1)
}

// objectAt walks the object whose '{' is at b[i]: for each member it
// calls f with the key's literal (quotes included), the index of its
// opening quote and where the value starts; f returns the index past the
// value (having read it), or -1. It returns the index past the object, or
// -1 when it is not valid JSON.
func objectAt(b []byte, i int, f func(key []byte, at, v int) int) int {
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1
	}
	return membersFrom(b, i, f)
}

// membersFrom is objectAt from a member's key at b[i] on: after the
// object's '{' or a ','.
func membersFrom(b []byte, i int, f func(key []byte, at, v int) int) int {
	for {
		if i >= len(b) || b[i] != '"' {
			return -1
		}
		k := stringEnd(b, i)
		if k < 0 {
			return -1
		}
		j := skipWS(b, k)
		if j >= len(b) || b[j] != ':' {
			return -1
		}
		v := skipWS(b, j+1)
		e := f(b[i:k], i, v)
		if e < 0 {
			return -1
		}
		i = skipWS(b, e)
		if i >= len(b) {
			return -1
		}
		if b[i] == '}' {
			return i + 1
		}
		if b[i] != ',' {
			return -1
		}
		i = skipWS(b, i+1)
	}
}

// arrayAt walks the array whose '[' is at b[i], calling f with where each
// element starts; f returns the index past it, or -1. It returns the index
// past the array, or -1.
func arrayAt(b []byte, i int, f func(v int) int) int {
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1
	}
	for {
		e := f(i)
		if e < 0 {
			return -1
		}
		i = skipWS(b, e)
		if i >= len(b) {
			return -1
		}
		if b[i] == ']' {
			return i + 1
		}
		if b[i] != ',' {
			return -1
		}
		i = skipWS(b, i+1)
	}
}

// keyBuf bounds the decoded escaped keys keyName compares without
// allocating (a longer one allocates).
const keyBuf = 32

// keyName returns the name of the key literal k (quotes included): a view
// of k, or, when it is escaped, its decoded form in buf.
func keyName(k []byte, buf *[keyBuf]byte) []byte {
	k = k[1 : len(k)-1]
	if bytes.IndexByte(k, '\\') < 0 {
		return k
	}
	return appendUnescaped(buf[:0], k)
}

// stringValue returns the decoded string of the valid JSON string literal
// v, or false when v is another value. A literal without escapes is
// returned as a view of v.
func stringValue(v []byte) ([]byte, bool) {
	if len(v) < 2 || v[0] != '"' {
		return nil, false
	}
	s := v[1 : len(v)-1]
	if bytes.IndexByte(s, '\\') >= 0 {
		return appendUnescaped(make([]byte, 0, len(s)), s), true
	}
	return s, true
}
