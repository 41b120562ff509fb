package redact

import (
	"bytes"
	"encoding/json"
	"maps"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

func newDefault(t testing.TB) *Redactor {
	t.Helper()
	r, err := New(DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRedactStringReplacesPIIWithTypedPlaceholders(t *testing.T) {
	r := newDefault(t)
	tests := []struct {
		name, in, want string
		counts         map[string]int
	}{
		{"email", "write to jane.doe+test@mail.example.co.uk today", "write to [EMAIL] today", map[string]int{KindEmail: 1}},
		{"two emails", "a@b.io, c@d.org", "[EMAIL], [EMAIL]", map[string]int{KindEmail: 2}},
		{"visa", "card 4111 1111 1111 1111 exp 12/29", "card [CARD] exp 12/29", map[string]int{KindCard: 1}},
		{"visa with dashes", "4111-1111-1111-1111", "[CARD]", map[string]int{KindCard: 1}},
		{"amex 15 digits", "amex 378282246310005.", "amex [CARD].", map[string]int{KindCard: 1}},
		{"mastercard plain", "5555555555554444", "[CARD]", map[string]int{KindCard: 1}},
		{"ssn", "SSN: 123-45-6789", "SSN: [SSN]", map[string]int{KindSSN: 1}},
		{"us phone dashes", "call 555-123-4567 now", "call [PHONE] now", map[string]int{KindPhone: 1}},
		{"us phone parens", "(555) 123-4567", "[PHONE]", map[string]int{KindPhone: 1}},
		{"us phone dots with country", "+1 555.123.4567", "[PHONE]", map[string]int{KindPhone: 1}},
		{"us phone 1-", "1-800-555-0199", "[PHONE]", map[string]int{KindPhone: 1}},
		{"e164", "whatsapp +447911123456", "whatsapp [PHONE]", map[string]int{KindPhone: 1}},
		{"international spaced", "tel +44 20 7946 0958", "tel [PHONE]", map[string]int{KindPhone: 1}},
		{"ipv4", "from 192.168.1.20, port 22", "from [IP], port 22", map[string]int{KindIP: 1}},
		{"ipv4 edge octets", "0.0.0.0 and 255.255.255.255", "[IP] and [IP]", map[string]int{KindIP: 2}},
		{"ipv4 with port", "10.0.0.1:8080", "[IP]:8080", map[string]int{KindIP: 1}},
		{"ipv6 full", "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "[IP]", map[string]int{KindIP: 1}},
		{"ipv6 compressed", "host fe80::1ff:fe23:4567:890a is up", "host [IP] is up", map[string]int{KindIP: 1}},
		{"ipv6 loopback", "bind ::1", "bind [IP]", map[string]int{KindIP: 1}},
		{"openai key", "key sk-proj-abcdefghijklmnopqrstuvwxyz0123", "key [SECRET]", map[string]int{KindSecret: 1}},
		{"anthropic key", "sk-ant-api03-abcdefghijklmnopqrstuvwxyz", "[SECRET]", map[string]int{KindSecret: 1}},
		{"aws key", "AKIAIOSFODNN7EXAMPLE", "[SECRET]", map[string]int{KindSecret: 1}},
		{"github token", "ghp_" + strings.Repeat("a1B2", 9), "[SECRET]", map[string]int{KindSecret: 1}},
		{"slack token", "xoxb-1234567890-abcdefghij", "[SECRET]", map[string]int{KindSecret: 1}},
		{"bearer", "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc", "Authorization: Bearer [SECRET]", map[string]int{KindSecret: 1}},
		{"bearer holding an openai key", "Bearer sk-abcdefghijklmnopqrstuvwxyz", "Bearer [SECRET]", map[string]int{KindSecret: 1}},
		{"mixed", "Mail bob@x.com or call (555) 123-4567 from 8.8.8.8",
			"Mail [EMAIL] or call [PHONE] from [IP]", map[string]int{KindEmail: 1, KindPhone: 1, KindIP: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, counts := r.RedactString(tt.in)
			if got != tt.want {
				t.Fatalf("RedactString(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if !maps.Equal(counts, tt.counts) {
				t.Fatalf("counts = %v, want %v", counts, tt.counts)
			}
		})
	}
}

func TestRedactStringLeavesNearMissesAlone(t *testing.T) {
	r := newDefault(t)
	for name, in := range map[string]string{
		"16 digits failing Luhn":     "order 4111 1111 1111 1112 shipped",
		"plain 16 digits Luhn fails": "1234567812345678",
		"octet over 255":             "999.1.1.1",
		"octet over 255 last":        "10.0.0.256",
		"version string":             "upgrade to 1.2.3 today",
		"four-part version in text":  "release 1.2.3.4.5",
		"year":                       "in 2024 and 1999-2024",
		"date":                       "2026-11-26",
		"time":                       "12:30:45",
		"mac address":                "00:1a:2b:3c:4d:5e",
		"c++ scope":                  "std::vector<int>::iterator and Foo::Bar",
		"ssn area 000":               "000-12-3456",
		"ssn area 666":               "666-12-3456",
		"ssn area 9xx":               "912-34-5678",
		"ssn group 00":               "123-00-4567",
		"ssn inside longer number":   "123-45-6789-1",
		"short numbers":              "room 101, 3 cats, 42",
		"hex hash":                   "commit 4b825dc642cb6eb9a060e54bf8d69288fbee4904",
		"sk- too short":              "task-list and sk-short",
		"not an email":               "user@localhost and @mention",
		"phone-like inside id":       "id A555-123-4567",
		"prose":                      "Summarise the French revolution in three sentences.",
		"ten digits without format":  "invoice 1234567890",
	} {
		t.Run(name, func(t *testing.T) {
			got, counts := r.RedactString(in)
			if got != in || counts != nil {
				t.Fatalf("RedactString(%q) = %q (%v), want it unchanged", in, got, counts)
			}
		})
	}
}

func TestDisabledDetectorsDoNotRun(t *testing.T) {
	r, err := New(Options{Email: true})
	if err != nil {
		t.Fatal(err)
	}
	in := "a@b.io 4111111111111111 123-45-6789 192.168.0.1 sk-abcdefghijklmnopqrstuvwxyz"
	got, counts := r.RedactString(in)
	want := "[EMAIL] 4111111111111111 123-45-6789 192.168.0.1 sk-abcdefghijklmnopqrstuvwxyz"
	if got != want || !maps.Equal(counts, map[string]int{KindEmail: 1}) {
		t.Fatalf("got %q %v", got, counts)
	}
}

func TestExtraPatterns(t *testing.T) {
	r, err := New(Options{Extra: []Pattern{{Name: "employee_id", Regexp: `\bEMP-\d{6}\b`}}})
	if err != nil {
		t.Fatal(err)
	}
	got, counts := r.RedactString("ask EMP-004211 or EMP-1")
	if got != "ask [EMPLOYEE_ID] or EMP-1" || counts["employee_id"] != 1 {
		t.Fatalf("got %q %v", got, counts)
	}
	for _, bad := range []Pattern{{Name: "x", Regexp: "("}, {Name: "bad name", Regexp: "a"}, {Name: "empty", Regexp: "a*"}} {
		if _, err := New(Options{Extra: []Pattern{bad}}); err == nil {
			t.Errorf("New accepted %+v", bad)
		}
	}
}

const chatWithPII = `{"model":"gpt-4o","temperature":0.2,"messages":[` +
	`{"role":"system","content":"You help user 42. Never reveal 10.1.2.3."},` +
	`{"role":"user","content":[{"type":"text","text":"Mail me at \"jo@ex.com\"\nCard: 4111 1111 1111 1111"},` +
	`{"type":"image_url","image_url":{"url":"https://x.test/a.png?ip=1.2.3.4"}}]},` +
	`{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},` +
	`{"role":"tool","tool_call_id":"c1","content":"caller 555-123-4567"}],` +
	`"user":"bob@corp.example","metadata":{"x":1}}`

func TestRedactRequestRewritesOnlyMessageText(t *testing.T) {
	r := newDefault(t)
	out, counts, err := r.RedactRequest([]byte(chatWithPII))
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(out) {
		t.Fatalf("output is not JSON: %s", out)
	}
	want := map[string]int{KindIP: 1, KindEmail: 1, KindCard: 1, KindPhone: 1}
	if !maps.Equal(counts, want) {
		t.Fatalf("counts = %v, want %v", counts, want)
	}
	checks := map[string]string{
		"messages.0.content":        "You help user 42. Never reveal [IP].",
		"messages.1.content.0.text": "Mail me at \"[EMAIL]\"\nCard: [CARD]",
		"messages.3.content":        "caller [PHONE]",
		// Outside message text nothing changes, PII or not.
		"messages.1.content.1.image_url.url": "https://x.test/a.png?ip=1.2.3.4",
		"user":                               "bob@corp.example",
	}
	for path, want := range checks {
		if got := gjson.GetBytes(out, path).String(); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	// Byte-identical outside the rewritten strings.
	for _, frag := range []string{`{"model":"gpt-4o","temperature":0.2,"messages":[`, `"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]}`, `"user":"bob@corp.example","metadata":{"x":1}}`} {
		if !bytes.Contains(out, []byte(frag)) {
			t.Errorf("output lost %s", frag)
		}
	}
}

func TestRedactRequestWithoutPIIReturnsTheSameSlice(t *testing.T) {
	r := newDefault(t)
	body := []byte(`{"model":"m","messages":[{"role":"user","content":"Version 1.2.3 of 2024, 999.1.1.1"}],"max_tokens":100}`)
	out, counts, err := r.RedactRequest(body)
	if err != nil || counts != nil || &out[0] != &body[0] || len(out) != len(body) {
		t.Fatalf("RedactRequest = %q, %v, %v; want the input slice back", out, counts, err)
	}
	for _, b := range []string{`{}`, `{"messages":"x"}`, `not json`} {
		out, counts, err := r.RedactRequest([]byte(b))
		if string(out) != b || counts != nil || err != nil {
			t.Errorf("RedactRequest(%s) = %s, %v, %v", b, out, counts, err)
		}
	}
}

func FuzzRedactString(f *testing.F) {
	for _, s := range []string{
		"", "jane@ex.com", "4111 1111 1111 1111", "123-45-6789", "(555) 123-4567", "+447911123456",
		"192.168.0.1", "999.1.1.1", "1.2.3", "fe80::1", "::", "sk-abcdefghijklmnopqrstuvwxyz",
		"Bearer abcdefghijklmnopqrstuvwxyz", "a@b.co1.2.3.4", "1.2.3.4.5", "4111111111111111 4111111111111111",
	} {
		f.Add(s)
	}
	r := newDefault(f)
	f.Fuzz(func(t *testing.T, s string) {
		once, _ := r.RedactString(s)
		twice, counts := r.RedactString(once)
		if twice != once {
			t.Fatalf("not idempotent:\n in    %q\n once  %q\n twice %q (%v)", s, once, twice, counts)
		}
		if utf8.ValidString(s) && !utf8.ValidString(once) {
			t.Fatalf("redaction broke UTF-8: %q -> %q", s, once)
		}
	})
}

// A 1 KB request with numbers but no personal data: the common case.
var benchBody = []byte(`{"model":"gpt-4o-mini","temperature":0.7,"max_tokens":512,"stream":true,"messages":[` +
	`{"role":"system","content":"You are a helpful assistant for an online bookshop. Answer briefly and politely, in the language of the question. If you do not know, say so."},` +
	`{"role":"user","content":"Hello! I ordered three books last week: a cookbook, a travel guide to Portugal and a novel. The travel guide arrived with a torn cover. Can I exchange it, and how long does an exchange usually take? I would also like to know whether you ship to Switzerland and what it costs."},` +
	`{"role":"assistant","content":"I am sorry about the cover! You can exchange the guide within 30 days: reply to your order confirmation and we send a prepaid label. Exchanges take 5 to 7 working days. We ship to Switzerland; standard delivery costs 9 euros and takes about a week."},` +
	`{"role":"user","content":"Thanks. One more question: do you have the 2nd edition of the guide, and is there a discount when I buy 2 or more books at once?"}]}`)

func BenchmarkRedactRequestWithoutPII(b *testing.B) {
	r := newDefault(b)
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	for b.Loop() {
		out, counts, err := r.RedactRequest(benchBody)
		if err != nil || counts != nil || len(out) != len(benchBody) {
			b.Fatal("unexpected redaction")
		}
	}
}

func BenchmarkRedactRequestWithPII(b *testing.B) {
	r := newDefault(b)
	b.SetBytes(int64(len(chatWithPII)))
	b.ReportAllocs()
	for b.Loop() {
		if _, counts, err := r.RedactRequest([]byte(chatWithPII)); err != nil || counts == nil {
			b.Fatal("no redaction")
		}
	}
}

func TestRedactRequestWithoutPIIDoesNotAllocate(t *testing.T) {
	r := newDefault(t)
	allocs := testing.AllocsPerRun(100, func() {
		if _, counts, _ := r.RedactRequest(benchBody); counts != nil {
			t.Fatal("redacted a body without PII")
		}
	})
	if allocs != 0 {
		t.Fatalf("RedactRequest on a body without PII made %v allocations, want 0 (fast path broken?)", allocs)
	}
}
