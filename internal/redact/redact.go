// Package redact replaces personal data and secrets in prompts with typed
// placeholders before they leave for a provider or reach the cache key.
package redact

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// Kinds of built-in detectors, as used in the counts (and metric labels).
const (
	KindSecret = "secret"
	KindEmail  = "email"
	KindCard   = "card"
	KindSSN    = "ssn"
	KindPhone  = "phone"
	KindIP     = "ip"
)

// Pattern is a configured extra detector: matches of Regexp become
// "[NAME]" and are counted under name in lower case.
type Pattern struct {
	Name   string `yaml:"name"`
	Regexp string `yaml:"regexp"`
}

// Options choose the detectors. Use DefaultOptions for all built-ins on.
type Options struct {
	Email, Phone, Card, SSN, IP, Secret bool
	Extra                               []Pattern
}

// DefaultOptions enables every built-in detector.
func DefaultOptions() Options {
	return Options{Email: true, Phone: true, Card: true, SSN: true, IP: true, Secret: true}
}

// Redactor applies the chosen detectors. It is safe for concurrent use.
type Redactor struct {
	detectors []detector
}

// detector finds one kind of data. need is a cheap test on the text's
// statistics that must pass before the regular expression runs at all.
type detector struct {
	kind        string
	placeholder string
	re          *regexp.Regexp
	group       int // submatch to replace; 0 for the whole match
	need        func(stats) bool
	valid       func(s string, start, end int) bool // nil: every match counts
}

// The order matters: secrets and e-mail addresses contain digits the
// number detectors must not see, and cards come before phone numbers.
var (
	secretRe = regexp.MustCompile(`\b(?:sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{20,}|(?:AKIA|ASIA)[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}|xox[abprs]-[A-Za-z0-9\-]{10,}|AIza[0-9A-Za-z_\-]{35})`)
	bearerRe = regexp.MustCompile(`(?i)\bbearer\s+([A-Za-z0-9\-._~+/]{20,}=*)`)
	emailRe  = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}`)
	cardRe   = regexp.MustCompile(`\b\d(?:[ \-]?\d){12,18}\b`)
	ssnRe    = regexp.MustCompile(`\b\d{3}-\d{2}-\d{4}\b`)
	phoneRe  = regexp.MustCompile(`(?:\+?1[ .\-]?)?(?:\(\d{3}\) ?|\d{3}[ .\-])\d{3}[ .\-]\d{4}|\+[1-9]\d{7,14}|\+[1-9]\d{0,3}(?:[ .\-]\(?\d{1,5}\)?){2,5}`)
	ipv4Re   = regexp.MustCompile(`\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}`)
	ipv6Re   = regexp.MustCompile(`[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}`)
	nameRe   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,31}$`)
)

// New builds a Redactor from o.
func New(o Options) (*Redactor, error) {
	r := &Redactor{}
	add := func(on bool, d detector) {
		if on {
			d.placeholder = "[" + strings.ToUpper(d.kind) + "]"
			r.detectors = append(r.detectors, d)
		}
	}
	add(o.Secret, detector{kind: KindSecret, re: secretRe, need: func(st stats) bool { return st.secretPrefix }})
	add(o.Secret, detector{kind: KindSecret, re: bearerRe, group: 1, need: func(st stats) bool { return st.secretPrefix }})
	add(o.Email, detector{kind: KindEmail, re: emailRe, need: func(st stats) bool { return st.at }})
	add(o.Card, detector{kind: KindCard, re: cardRe, need: func(st stats) bool { return st.digits >= 13 }, valid: validCard})
	add(o.SSN, detector{kind: KindSSN, re: ssnRe, need: func(st stats) bool { return st.digits >= 9 && st.dashes >= 2 }, valid: validSSN})
	add(o.Phone, detector{kind: KindPhone, re: phoneRe, need: func(st stats) bool { return st.digits >= 8 }, valid: validPhone})
	add(o.IP, detector{kind: KindIP, re: ipv6Re, need: func(st stats) bool { return st.hexColons >= 2 }, valid: validIPv6})
	add(o.IP, detector{kind: KindIP, re: ipv4Re, need: func(st stats) bool { return st.digitDots >= 3 }, valid: validIPv4})
	for _, p := range o.Extra {
		if !nameRe.MatchString(p.Name) {
			return nil, fmt.Errorf("redact pattern %q: name must be a letter then letters, digits or '_' (at most 32)", p.Name)
		}
		re, err := regexp.Compile(p.Regexp)
		if err != nil {
			return nil, fmt.Errorf("redact pattern %q: %w", p.Name, err)
		}
		if re.MatchString("") {
			return nil, fmt.Errorf("redact pattern %q: %w", p.Name, errors.New("matches the empty string"))
		}
		r.detectors = append(r.detectors, detector{
			kind: strings.ToLower(p.Name), placeholder: "[" + strings.ToUpper(p.Name) + "]", re: re,
		})
	}
	return r, nil
}

// stats are what the fast path learns about a text in one pass.
type stats struct {
	digits, dashes int
	digitDots      int // '.' between two digits, as in 10.0.0.1
	hexColons      int // ':' next to a hex digit or ':', as in fe80::1
	at             bool
	secretPrefix   bool
}

func isHex(c byte) bool { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// Byte classes for scan; a table keeps the loop to one load and one
// branch for the letters and spaces that make up most prompts.
const (
	clDigit = iota + 1
	clDash
	clDot
	clColon
	clAt
	clSecret // a letter a secret prefix starts with
)

var byteClass = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] = clDigit
	}
	t['-'], t['.'], t[':'], t['@'] = clDash, clDot, clColon, clAt
	for _, c := range "sAgxBb" {
		t[c] = clSecret
	}
	return t
}()

func scan(s string) stats {
	var st stats
	for i := 0; i < len(s); i++ {
		switch byteClass[s[i]] {
		case 0:
		case clDigit:
			st.digits++
		case clDash:
			st.dashes++
		case clDot:
			if i > 0 && i+1 < len(s) && isDigit(s[i-1]) && isDigit(s[i+1]) {
				st.digitDots++
			}
		case clColon:
			if i+1 < len(s) && (isHex(s[i+1]) || s[i+1] == ':') || i > 0 && (isHex(s[i-1]) || s[i-1] == ':') {
				st.hexColons++
			}
		case clAt:
			st.at = true
		case clSecret:
			if !st.secretPrefix && secretAt(s[i:]) {
				st.secretPrefix = true
			}
		}
	}
	return st
}

// secretAt reports whether s starts like one of the secrets secretRe and
// bearerRe find.
func secretAt(s string) bool {
	switch s[0] {
	case 's':
		return strings.HasPrefix(s, "sk-")
	case 'A':
		return strings.HasPrefix(s, "AKIA") || strings.HasPrefix(s, "ASIA") || strings.HasPrefix(s, "AIza")
	case 'g':
		return len(s) > 3 && s[1] == 'h' && s[3] == '_' && strings.IndexByte("pousr", s[2]) >= 0 ||
			strings.HasPrefix(s, "github_pat_")
	case 'x':
		return strings.HasPrefix(s, "xox")
	case 'B', 'b':
		return len(s) >= 6 && strings.EqualFold(s[:6], "bearer")
	}
	return false
}

// RedactString returns s with every detected item replaced by its
// placeholder, and how many of each kind were replaced (nil for none).
// When nothing matched it returns s itself.
//
// A replacement can expose a neighbour that was part of a longer token
// before (a phone number glued to an IP address), so the text is redacted
// again until it no longer changes; that also makes redaction idempotent.
func (r *Redactor) RedactString(s string) (string, map[string]int) {
	var counts map[string]int
	var buf []byte
	for range maxRounds {
		var changed bool
		s, changed, buf = r.round(s, buf, &counts)
		if !changed {
			break
		}
	}
	return s, counts
}

const maxRounds = 4

func (r *Redactor) round(s string, buf []byte, counts *map[string]int) (string, bool, []byte) {
	st := scan(s)
	changed := false
	for i := range r.detectors {
		d := &r.detectors[i]
		if d.need != nil && !d.need(st) {
			continue
		}
		var n int
		s, n, buf = d.replace(s, buf)
		if n > 0 {
			if *counts == nil {
				*counts = make(map[string]int, 2)
			}
			(*counts)[d.kind] += n
			changed = true
		}
	}
	return s, changed, buf
}

func (d *detector) replace(s string, buf []byte) (string, int, []byte) {
	matches := d.re.FindAllStringSubmatchIndex(s, -1)
	if matches == nil {
		return s, 0, buf
	}
	buf = buf[:0]
	last, n := 0, 0
	for _, m := range matches {
		start, end := m[2*d.group], m[2*d.group+1]
		if start < 0 || s[start:end] == d.placeholder {
			continue
		}
		if d.valid != nil && !d.valid(s, start, end) {
			continue
		}
		buf = append(buf, s[last:start]...)
		buf = append(buf, d.placeholder...)
		last = end
		n++
	}
	if n == 0 {
		return s, 0, buf
	}
	buf = append(buf, s[last:]...)
	return string(buf), n, buf
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isAlnum(c byte) bool {
	return isDigit(c) || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
}

// embedded reports whether s[start:end] is part of a longer run of numbers
// joined by separators, such as a version string or a longer identifier.
func embedded(s string, start, end int, seps string) bool {
	if start > 0 {
		p := s[start-1]
		if isAlnum(p) || strings.IndexByte(seps, p) >= 0 && start > 1 && isAlnum(s[start-2]) {
			return true
		}
	}
	if end < len(s) {
		n := s[end]
		if isAlnum(n) || strings.IndexByte(seps, n) >= 0 && end+1 < len(s) && isAlnum(s[end+1]) {
			return true
		}
	}
	return false
}

// validCard applies the Luhn checksum to the digits of s[start:end].
func validCard(s string, start, end int) bool {
	if embedded(s, start, end, "-.") {
		return false
	}
	sum, double := 0, false
	for i := end - 1; i >= start; i-- {
		c := s[i]
		if !isDigit(c) {
			continue
		}
		d := int(c - '0')
		if double {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// validSSN excludes numbers the SSA never issues: area 000, 666 or 9xx,
// group 00, serial 0000.
func validSSN(s string, start, end int) bool {
	if embedded(s, start, end, "-.") {
		return false
	}
	v := s[start:end]
	area, group, serial := v[0:3], v[4:6], v[7:11]
	return area != "000" && area != "666" && area[0] != '9' && group != "00" && serial != "0000"
}

func validPhone(s string, start, end int) bool {
	if embedded(s, start, end, "-.") {
		return false
	}
	digits := 0
	for i := start; i < end; i++ {
		if isDigit(s[i]) {
			digits++
		}
	}
	return digits >= 8 && digits <= 15
}

func validIPv4(s string, start, end int) bool {
	if embedded(s, start, end, ".") {
		return false
	}
	octet := 0
	for i := start; i <= end; i++ {
		if i == end || s[i] == '.' {
			if octet > 255 {
				return false
			}
			octet = 0
			continue
		}
		octet = octet*10 + int(s[i]-'0')
	}
	return true
}

func validIPv6(s string, start, end int) bool {
	if start > 0 && (isAlnum(s[start-1]) || s[start-1] == ':' || s[start-1] == '.') {
		return false
	}
	if end < len(s) && (isAlnum(s[end]) || s[end] == ':' || s[end] == '.' && end+1 < len(s) && isDigit(s[end+1])) {
		return false
	}
	v := s[start:end]
	if strings.Count(v, ":") < 7 && !strings.Contains(v, "::") {
		return false
	}
	if strings.Trim(v, ":") == "" {
		return false
	}
	a, err := netip.ParseAddr(v)
	return err == nil && a.Is6()
}
