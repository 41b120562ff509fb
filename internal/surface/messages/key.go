package messages

import (
	"bytes"
	"slices"

	"github.com/edge-agent/edge-agent/internal/api"
	"github.com/tidwall/gjson"
)

var cacheControlKey = []byte(`"cache_control"`)

// KeyBody returns the request as it should be hashed for the cache key:
// body without the cache_control markers of its system blocks, tools,
// message content blocks and the blocks inside those (tool results). The
// markers tell Anthropic what to keep in its prompt cache and never change
// the answer, so two requests that differ only in them share an entry.
// Everything else stays, in place: system, tools, thinking, unknown fields
// and a tool schema property that happens to be named cache_control.
//
// A body without markers is returned as is, with no copy; otherwise the
// result is appended to dst. The cache's own canonical form takes care of
// whitespace and key order, and already leaves model, stream and metadata
// out.
func KeyBody(dst, body []byte) []byte {
	if !bytes.Contains(body, cacheControlKey) || !gjson.ValidBytes(body) {
		return body
	}
	type span struct{ start, end int }
	var spans []span
	add := func(v gjson.Result) {
		if v.IsObject() && hasMarker(v) {
			spans = append(spans, span{v.Index, v.Index + len(v.Raw)})
		}
	}
	root := gjson.Parse(api.View(body))
	root.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "system", "tools":
			v.ForEach(func(_, b gjson.Result) bool { add(b); return true })
		case "messages":
			v.ForEach(func(_, m gjson.Result) bool {
				m.Get("content").ForEach(func(_, b gjson.Result) bool { add(b); return true })
				return true
			})
		}
		return true
	})
	if len(spans) == 0 {
		return body
	}
	slices.SortFunc(spans, func(a, b span) int { return a.start - b.start })
	prev := 0
	for _, s := range spans {
		// gjson reports each value's offset in body; check it rather than
		// trust it, and hash the body unchanged if it is ever off.
		if s.start < prev || s.end > len(body) || s.start <= 0 {
			return body
		}
		dst = append(dst, body[prev:s.start]...)
		dst = appendUnmarked(dst, gjson.Parse(api.View(body[s.start:s.end])))
		prev = s.end
	}
	return append(dst, body[prev:]...)
}

// hasMarker reports whether block, or a block in its content array, has a
// cache_control member.
func hasMarker(block gjson.Result) bool {
	found := false
	block.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "cache_control":
			found = true
		case "content":
			v.ForEach(func(_, b gjson.Result) bool {
				found = b.IsObject() && b.Get("cache_control").Exists()
				return !found
			})
		}
		return !found
	})
	return found
}

// appendUnmarked writes block without its cache_control member and with
// the blocks of its content array written the same way.
func appendUnmarked(dst []byte, block gjson.Result) []byte {
	dst = append(dst, '{')
	n := 0
	block.ForEach(func(k, v gjson.Result) bool {
		if k.Str == "cache_control" {
			return true
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		dst = append(dst, k.Raw...)
		dst = append(dst, ':')
		if k.Str != "content" || !v.IsArray() {
			dst = append(dst, v.Raw...)
			return true
		}
		dst = append(dst, '[')
		j := 0
		v.ForEach(func(_, b gjson.Result) bool {
			if j > 0 {
				dst = append(dst, ',')
			}
			j++
			if b.IsObject() {
				dst = appendUnmarked(dst, b)
			} else {
				dst = append(dst, b.Raw...)
			}
			return true
		})
		dst = append(dst, ']')
		return true
	})
	return append(dst, '}')
}
