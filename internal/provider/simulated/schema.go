package simulated

import (
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
)

// maxSchemaDepth bounds the nesting of generated values: a recursive schema
// ($ref to itself) ends there with null.
const maxSchemaDepth = 24

// schemaGen writes deterministic JSON values that satisfy a JSON Schema,
// for structured outputs (response_format json_schema) and tool call
// arguments. It reads the schema in place, with gjson, and appends to a
// byte slice.
//
// Covered: type (one or a list; the first that is not "null" wins),
// properties, required, additionalProperties (false: only the declared
// properties are written; a schema: it types required names that are not
// declared), enum, const, items, prefixItems, minItems, maxItems, anyOf and
// oneOf (the first branch that is not null), allOf (object members are
// merged), $ref to any JSON pointer of the document ($defs, definitions),
// minLength, maxLength, minimum, maximum, exclusiveMinimum,
// exclusiveMaximum (draft 4 booleans too), multipleOf, and the formats
// date, date-time, time, email, uri, uuid, ipv4, ipv6, hostname and
// duration. Not covered: pattern, not, if/then/else, dependent schemas,
// uniqueItems beyond making items differ, minProperties.
type schemaGen struct {
	root gjson.Result // the document $ref points into
	text string       // the value of plain strings: what the user asked
}

// appendValue appends a value for schema s. variant makes the items of one
// array differ (uniqueItems) and picks among enum values.
func (g *schemaGen) appendValue(dst []byte, s gjson.Result, depth, variant int) []byte {
	if depth > maxSchemaDepth || s.Type == gjson.False {
		return append(dst, "null"...)
	}
	if !s.IsObject() { // true or absent: anything goes
		return g.appendString(dst, gjson.Result{}, variant)
	}
	if ref := s.Get(`\$ref`); ref.Exists() {
		if t, ok := g.resolve(ref.Str); ok {
			return g.appendValue(dst, t, depth+1, variant)
		}
		return g.appendString(dst, gjson.Result{}, variant)
	}
	if c := s.Get("const"); c.Exists() {
		return append(dst, c.Raw...)
	}
	if e := s.Get("enum"); e.IsArray() {
		if vals := e.Array(); len(vals) > 0 {
			return append(dst, vals[variant%len(vals)].Raw...)
		}
	}
	for _, k := range [...]string{"anyOf", "oneOf"} {
		if br := s.Get(k); br.IsArray() {
			if b, ok := g.firstBranch(br); ok {
				return g.appendValue(dst, b, depth+1, variant)
			}
		}
	}
	switch g.typeOf(s) {
	case "object":
		return g.appendObject(dst, s, depth, false)
	case "array":
		return g.appendArray(dst, s, depth)
	case "integer":
		return g.appendNumber(dst, s, variant, true)
	case "number":
		return g.appendNumber(dst, s, variant, false)
	case "boolean":
		if variant%2 == 1 {
			return append(dst, "false"...)
		}
		return append(dst, "true"...)
	case "null":
		return append(dst, "null"...)
	}
	return g.appendString(dst, s, variant)
}

// appendArgs appends tool call arguments for a parameters schema: always
// an object. A schema that declares no properties (or no schema) gets
// {"query": text}, the arguments a real model tends to invent.
func (g *schemaGen) appendArgs(dst []byte, s gjson.Result) []byte {
	if s.IsObject() {
		if ref := s.Get(`\$ref`); ref.Exists() {
			if t, ok := g.resolve(ref.Str); ok {
				s = t
			}
		}
	}
	if s.IsObject() && g.typeOf(s) == "object" || s.Get("type").Str == "object" {
		return g.appendObject(dst, s, 0, true)
	}
	return g.appendObject(dst, gjson.Result{}, 0, true)
}

// typeOf names the type to generate for s: its type keyword (the first one
// that is not "null"), or the type its other keywords imply.
func (g *schemaGen) typeOf(s gjson.Result) string {
	t := s.Get("type")
	if t.Type == gjson.String {
		return t.Str
	}
	if t.IsArray() {
		first := ""
		for _, v := range t.Array() {
			if first == "" {
				first = v.Str
			}
			if v.Str != "null" {
				return v.Str
			}
		}
		return first
	}
	switch {
	case s.Get("properties").Exists(), s.Get("required").Exists(), s.Get("additionalProperties").Exists(), s.Get("allOf").Exists():
		return "object"
	case s.Get("items").Exists(), s.Get("prefixItems").Exists(), s.Get("minItems").Exists():
		return "array"
	case s.Get("minimum").Exists(), s.Get("maximum").Exists(), s.Get("multipleOf").Exists():
		return "number"
	}
	return "string"
}

// firstBranch picks the first branch of anyOf or oneOf that is not the
// null type (Optional fields are written anyOf [X, null]), else the first.
func (g *schemaGen) firstBranch(branches gjson.Result) (gjson.Result, bool) {
	all := branches.Array()
	for _, b := range all {
		r := b
		if ref := b.Get(`\$ref`); ref.Exists() {
			if t, ok := g.resolve(ref.Str); ok {
				r = t
			}
		}
		if r.Get("type").Str != "null" {
			return b, true
		}
	}
	if len(all) > 0 {
		return all[0], true
	}
	return gjson.Result{}, false
}

// resolve follows a local JSON pointer ("#", "#/$defs/Step").
func (g *schemaGen) resolve(ref string) (gjson.Result, bool) {
	if ref == "#" || ref == "" {
		return g.root, g.root.Exists()
	}
	if !strings.HasPrefix(ref, "#/") {
		return gjson.Result{}, false // remote references are not fetched
	}
	cur := g.root
	for _, seg := range strings.Split(ref[2:], "/") {
		seg = strings.ReplaceAll(strings.ReplaceAll(seg, "~1", "/"), "~0", "~")
		var next gjson.Result
		switch {
		case cur.IsObject():
			cur.ForEach(func(k, v gjson.Result) bool {
				if k.Str == seg {
					next = v
					return false
				}
				return true
			})
		case cur.IsArray():
			if i, err := strconv.Atoi(seg); err == nil {
				next = cur.Get(strconv.Itoa(i))
			}
		}
		if !next.Exists() {
			return gjson.Result{}, false
		}
		cur = next
	}
	return cur, true
}

// objectPart is one schema whose object keywords count: s itself, and the
// members of its allOf.
func (g *schemaGen) objectParts(s gjson.Result, depth int, parts []gjson.Result) []gjson.Result {
	if !s.IsObject() || depth > maxSchemaDepth {
		return parts
	}
	if ref := s.Get(`\$ref`); ref.Exists() {
		if t, ok := g.resolve(ref.Str); ok {
			return g.objectParts(t, depth+1, parts)
		}
		return parts
	}
	parts = append(parts, s)
	if all := s.Get("allOf"); all.IsArray() {
		for _, m := range all.Array() {
			parts = g.objectParts(m, depth+1, parts)
		}
	}
	return parts
}

// appendObject writes the declared properties in schema order (past a few
// levels of nesting only the required ones, so recursive schemas end),
// then required names no property declares. args asks for {"query": text}
// when nothing was written and extra properties are allowed.
func (g *schemaGen) appendObject(dst []byte, s gjson.Result, depth int, args bool) []byte {
	parts := g.objectParts(s, 0, nil)
	dst = append(dst, '{')
	n := 0
	key := func(k string) {
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		dst = api.AppendString(dst, k)
		dst = append(dst, ':')
	}
	required := func(name string) bool {
		for _, p := range parts {
			found := false
			p.Get("required").ForEach(func(_, r gjson.Result) bool {
				found = r.Str == name
				return !found
			})
			if found {
				return true
			}
		}
		return false
	}
	declared := func(name string) (gjson.Result, bool) {
		for _, p := range parts {
			if v := p.Get("properties." + gjsonEscape(name)); v.Exists() {
				return v, true
			}
		}
		return gjson.Result{}, false
	}
	closed, extra := false, gjson.Result{}
	for i, p := range parts {
		if ap := p.Get("additionalProperties"); ap.Exists() {
			closed = closed || ap.Type == gjson.False
			if ap.IsObject() && !extra.Exists() {
				extra = ap
			}
		}
		p.Get("properties").ForEach(func(k, v gjson.Result) bool {
			for _, q := range parts[:i] { // merged allOf: a name once
				if q.Get("properties." + gjsonEscape(k.Str)).Exists() {
					return true
				}
			}
			if depth < 3 || required(k.Str) {
				key(k.Str)
				dst = g.appendValue(dst, v, depth+1, 0)
			}
			return true
		})
	}
	for _, p := range parts {
		p.Get("required").ForEach(func(_, r gjson.Result) bool {
			if _, ok := declared(r.Str); !ok {
				key(r.Str)
				dst = g.appendValue(dst, extra, depth+1, 0)
			}
			return true
		})
	}
	if n == 0 && args && !closed {
		key("query")
		dst = api.AppendString(dst, g.text)
	}
	return append(dst, '}')
}

// gjsonEscape escapes a property name for use in a gjson path.
func gjsonEscape(k string) string {
	if !strings.ContainsAny(k, `.*?|#@\!=<>%"`) {
		return k
	}
	var b strings.Builder
	for i := 0; i < len(k); i++ {
		if strings.IndexByte(`.*?|#@\!=<>%"`, k[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(k[i])
	}
	return b.String()
}

// appendArray writes minItems items (one when it is 0, near the top), the
// tuple's prefixItems first, each a different variant.
func (g *schemaGen) appendArray(dst []byte, s gjson.Result, depth int) []byte {
	items, prefix := s.Get("items"), s.Get("prefixItems")
	if items.IsArray() { // draft 4 tuples
		prefix, items = items, s.Get("additionalItems")
	}
	pre := prefix.Array()
	n := int(s.Get("minItems").Int())
	if n == 0 && depth < 3 {
		n = 1
	}
	n = max(n, len(pre))
	if mx := s.Get("maxItems"); mx.Exists() {
		n = min(n, int(mx.Int()))
	}
	if items.Type == gjson.False {
		n = min(n, len(pre))
	}
	dst = append(dst, '[')
	for i := range n {
		if i > 0 {
			dst = append(dst, ',')
		}
		if i < len(pre) {
			dst = g.appendValue(dst, pre[i], depth+1, i)
		} else {
			dst = g.appendValue(dst, items, depth+1, i)
		}
	}
	return append(dst, ']')
}

// appendString writes a string of the schema's format, or the request's
// text, within minLength and maxLength (counted in code points).
func (g *schemaGen) appendString(dst []byte, s gjson.Result, variant int) []byte {
	v := ""
	suffix := strconv.Itoa(variant + 1)
	switch s.Get("format").Str {
	case "date":
		v = "2025-01-0" + strconv.Itoa(variant%9+1)
	case "date-time":
		v = "2025-01-0" + strconv.Itoa(variant%9+1) + "T12:00:00Z"
	case "time":
		v = "12:00:0" + strconv.Itoa(variant%10) + "Z"
	case "email", "idn-email":
		v = "user" + suffix + "@example.com"
	case "uri", "url", "iri", "uri-reference", "iri-reference":
		v = "https://example.com/" + suffix
	case "uuid":
		v = "00000000-0000-4000-8000-" + strconv.Itoa(100000000000+variant)
	case "ipv4":
		v = "192.0.2." + strconv.Itoa(variant%254+1)
	case "ipv6":
		v = "2001:db8::" + strconv.Itoa(variant%9999+1)
	case "hostname", "idn-hostname":
		v = "host" + suffix + ".example.com"
	case "duration":
		v = "P" + suffix + "D"
	default:
		v = g.text
		if v == "" {
			v = "simulated"
		}
		if variant > 0 {
			v += " " + suffix
		}
	}
	if mn := int(s.Get("minLength").Int()); utf8.RuneCountInString(v) < mn {
		v += strings.Repeat("x", mn-utf8.RuneCountInString(v))
	}
	if mx := s.Get("maxLength"); mx.Exists() {
		n := 0
		for i := range v {
			if n == int(mx.Int()) {
				v = v[:i]
				break
			}
			n++
		}
	}
	return api.AppendString(dst, v)
}

// appendNumber writes 1 + variant moved into the schema's bounds and onto
// its multipleOf.
func (g *schemaGen) appendNumber(dst []byte, s gjson.Result, variant int, integer bool) []byte {
	v := float64(1 + variant)
	lo, hi := math.Inf(-1), math.Inf(1)
	loEx, hiEx := false, false
	if m := s.Get("minimum"); m.Exists() {
		lo = m.Float()
		loEx = s.Get("exclusiveMinimum").Type == gjson.True // draft 4
	}
	if m := s.Get("exclusiveMinimum"); m.Type == gjson.Number && m.Float() >= lo {
		lo, loEx = m.Float(), true
	}
	if m := s.Get("maximum"); m.Exists() {
		hi = m.Float()
		hiEx = s.Get("exclusiveMaximum").Type == gjson.True
	}
	if m := s.Get("exclusiveMaximum"); m.Type == gjson.Number && m.Float() <= hi {
		hi, hiEx = m.Float(), true
	}
	step := s.Get("multipleOf").Float()
	if step <= 0 && integer {
		step = 1
	}
	above := func(x float64) bool { return x > lo || (!loEx && x == lo) }
	below := func(x float64) bool { return x < hi || (!hiEx && x == hi) }
	if !above(v) {
		v = lo
		if loEx {
			switch {
			case step > 0:
				v = lo + step
			case !math.IsInf(hi, 1):
				v = lo + (hi-lo)/2
			default:
				v = lo + 1
			}
		}
	}
	if !below(v) {
		v = hi
		if hiEx {
			switch {
			case step > 0:
				v = hi - step
			case !math.IsInf(lo, -1):
				v = lo + (hi-lo)/2
			default:
				v = hi - 1
			}
		}
	}
	if step > 0 {
		q := math.Ceil(v/step) * step
		if !above(q) {
			q += step
		}
		if !below(q) {
			q = math.Floor(v/step) * step
		}
		v = q
	}
	if integer {
		return strconv.AppendInt(dst, int64(math.Round(v)), 10)
	}
	return strconv.AppendFloat(dst, v, 'f', -1, 64)
}
