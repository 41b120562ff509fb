package sse

import (
	"errors"
	"io"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
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

// TestPooledReaderGivesItsBufferBackWhenTheStreamEnds: a stream that ends
// (an error, the end of input, or Release after [DONE]) hands its buffer to
// the pool, and the Reader says so instead of reading on; a Reader made
// from the pool parses as NewReader's does, long lines included.
func TestPooledReaderGivesItsBufferBackWhenTheStreamEnds(t *testing.T) {
	long := strings.Repeat("x", 3*bufSize)
	cases := []struct {
		name    string
		in      io.Reader
		end     func(*Reader) error // how the caller ends the stream
		wantErr error
	}{
		{"end of input", strings.NewReader("data: a\n\ndata: " + long + "\n\n"), func(r *Reader) error {
			_, err := r.Next()
			return err
		}, io.EOF},
		{"broken connection", &failingReader{data: "data: a\n\ndata: " + long + "\n\n"}, func(r *Reader) error {
			_, err := r.Next()
			return err
		}, nil},
		{"released after [DONE]", strings.NewReader("data: a\n\ndata: " + long + "\n\ndata: [DONE]\n\ndata: more\n\n"), func(r *Reader) error {
			if ev, err := r.Next(); err != nil || string(ev.Data) != "[DONE]" {
				t.Fatalf("got %q %v, want [DONE]", ev.Data, err)
			}
			r.Release()
			r.Release() // twice is harmless
			return ErrReleased
		}, ErrReleased},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p Pool
			r := p.NewReader(c.in)
			if r.br.Size() != bufSize {
				t.Fatalf("read buffer of %d bytes, want %d", r.br.Size(), bufSize)
			}
			for _, want := range []string{"a", long} {
				ev, err := r.Next()
				if err != nil || string(ev.Data) != want {
					t.Fatalf("got %d bytes %v, want %d bytes", len(ev.Data), err, len(want))
				}
			}
			err := c.end(r)
			if err == nil || c.wantErr != nil && err != c.wantErr {
				t.Fatalf("the stream ended with %v, want %v", err, c.wantErr)
			}
			if r.br != nil {
				t.Fatal("the Reader still holds its buffer after the stream ended")
			}
			if _, again := r.Next(); again != err && !(c.wantErr == ErrReleased && again == ErrReleased) {
				t.Errorf("Next after the end returned %v, want %v again", again, err)
			}
			// The buffer went back: the pool hands it out again (sync.Pool
			// may drop it under the race detector; then a new one is made).
			next := p.NewReader(strings.NewReader("data: b\n\n"))
			if ev, err := next.Next(); err != nil || string(ev.Data) != "b" {
				t.Fatalf("a Reader from the pool read %q %v, want \"b\"", ev.Data, err)
			}
		})
	}
}

// TestReaderFromPoolAllocatesNoBuffer: once a stream has given its buffer
// back, the next one takes it instead of allocating one.
func TestReaderFromPoolAllocatesNoBuffer(t *testing.T) {
	var p Pool
	in := strings.NewReader("")
	p.NewReader(in).Release()
	const n = 2000
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		in.Reset("data: a\n\n")
		r := p.NewReader(in)
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
		r.Release()
	}
	runtime.ReadMemStats(&after)
	// Without the pool every stream allocates a bufSize buffer. Under the
	// race detector sync.Pool drops a quarter of what it is given back, so
	// about bufSize/4 per stream is allocated there, plus the detector's
	// own bookkeeping.
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > bufSize*3/4 {
		t.Errorf("a pooled stream allocated %d bytes, want under %d (no new buffer)", per, bufSize*3/4)
	}
}

func TestNextBufferedSeesOnlyAWholeEventWithData(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     bool // after the first event has been read
	}{
		{"nothing more", "data: a\n\n", false},
		{"a whole event", "data: a\n\ndata: b\n\n", true},
		{"a whole event after a comment", "data: a\n\n: ping\ndata: b\n\n", true},
		{"an event named, with data", "data: a\n\nevent: e\ndata: b\n\n", true},
		{"half an event", "data: a\n\ndata: b", false},
		{"an event without its blank line", "data: a\n\ndata: b\n", false},
		{"only a comment", "data: a\n\n: keep-alive\n\n", false},
		{"an event without data", "data: a\n\nevent: e\n\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The source hands over everything in one read, as a socket
			// with several events waiting does.
			r := NewReader(strings.NewReader(tc.in))
			if _, err := r.Next(); err != nil {
				t.Fatal(err)
			}
			if got := r.NextBuffered(); got != tc.want {
				t.Fatalf("NextBuffered = %v, want %v", got, tc.want)
			}
		})
	}
	r := NewReader(strings.NewReader("data: a\n\n"))
	for {
		if _, err := r.Next(); err != nil {
			break
		}
	}
	if !r.NextBuffered() {
		t.Fatal("a reader that has ended must report that Next will not wait")
	}
}

// waiter is a source that can wait; it records whether its Reader held a
// buffer while WaitRead ran.
type waiter struct {
	io.Reader
	r          *Reader
	waits      int
	heldBuffer bool
}

func (w *waiter) WaitRead() error {
	w.waits++
	if w.r.br != nil {
		w.heldBuffer = true
	}
	return nil
}

func TestPooledReaderWaitsForTheNextEventWithoutItsBuffer(t *testing.T) {
	var p Pool
	src := &waiter{Reader: iotest.OneByteReader(strings.NewReader("data: a\n\ndata: b\n\n"))}
	r := p.NewReader(src)
	src.r = r
	for _, want := range []string{"a", "b"} {
		ev, err := r.Next()
		if err != nil || string(ev.Data) != want {
			t.Fatalf("event %q, %v; want %q", ev.Data, err, want)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
	if src.waits != 3 {
		t.Errorf("WaitRead ran %d times, want 3: once before each event, once before the end", src.waits)
	}
	if src.heldBuffer {
		t.Error("the Reader held its buffer while it waited")
	}
}
