package sse

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestReaderParsesEvents(t *testing.T) {
	in := ": comment\n" +
		"event: message_start\ndata: {\"a\":1}\n\n" +
		"data: line1\r\ndata: line2\r\n\r\n" +
		"id: 7\ndata:nospace\n\n" +
		"event: ping\n\n" +
		"data: [DONE]\n\n"
	r := NewReader(strings.NewReader(in))
	want := []struct{ event, data string }{
		{"message_start", `{"a":1}`}, {"", "line1\nline2"}, {"", "nospace"}, {"ping", ""}, {"", "[DONE]"},
	}
	for i, w := range want {
		ev, err := r.Next()
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if string(ev.Event) != w.event || string(ev.Data) != w.data {
			t.Fatalf("event %d: got (%q,%q) want (%q,%q)", i, ev.Event, ev.Data, w.event, w.data)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("got %v, want io.EOF", err)
	}
}

func TestReaderDeliversFinalEventWithoutBlankLine(t *testing.T) {
	r := NewReader(strings.NewReader("data: last"))
	ev, err := r.Next()
	if err != nil || string(ev.Data) != "last" {
		t.Fatalf("got %q %v", ev.Data, err)
	}
}

func TestReaderHandlesLinesLongerThanItsBuffer(t *testing.T) {
	long := strings.Repeat("x", 100_000)
	r := NewReader(strings.NewReader("data: " + long + "\n\n"))
	ev, err := r.Next()
	if err != nil || string(ev.Data) != long {
		t.Fatalf("long line: len %d err %v", len(ev.Data), err)
	}
}

type failingReader struct{ data string }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.data == "" {
		return 0, errors.New("connection reset")
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestReaderReportsReadErrors(t *testing.T) {
	r := NewReader(&failingReader{data: "data: a\n\ndata: b"})
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err == nil || err == io.EOF {
		t.Fatalf("a broken connection must not look like a clean end, got %v", err)
	}
}

func TestWriterWritesAndFlushes(t *testing.T) {
	rec := httptest.NewRecorder()
	w := NewWriter(rec)
	_ = w.Event("ping", []byte("{}"))
	_ = w.Data([]byte("x"))
	_ = w.Flush()
	if got := rec.Body.String(); got != "event: ping\ndata: {}\n\ndata: x\n\n" {
		t.Fatalf("got %q", got)
	}
	if !rec.Flushed {
		t.Fatal("not flushed")
	}
}

func BenchmarkReader(b *testing.B) {
	var sb strings.Builder
	for range 100 {
		sb.WriteString(`data: {"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"content":"Hello world "},"finish_reason":null}]}` + "\n\n")
	}
	in := sb.String()
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		r := NewReader(strings.NewReader(in))
		for {
			if _, err := r.Next(); err != nil {
				break
			}
		}
	}
}
