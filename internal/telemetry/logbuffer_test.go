package telemetry

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the flush timer's goroutine.
type syncBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Writes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}

func TestBufferedLoggerBatchesInfoLines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		out := &syncBuffer{}
		l, err := NewBufferedLogger(out, "text", "info", 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 50 {
			l.Info("Request completed", "i", i)
		}
		if got := out.String(); got != "" {
			t.Fatalf("info lines written before the interval: %q", got)
		}
		time.Sleep(99 * time.Millisecond)
		synctest.Wait()
		if out.Writes() != 0 {
			t.Fatal("flushed before the interval")
		}
		time.Sleep(2 * time.Millisecond)
		synctest.Wait()
		if n := strings.Count(out.String(), "Request completed"); n != 50 {
			t.Fatalf("after the interval %d lines, want 50", n)
		}
		if out.Writes() != 1 {
			t.Fatalf("%d writes for one batch, want 1", out.Writes())
		}
		// A new batch arms the timer again.
		l.Info("second")
		time.Sleep(101 * time.Millisecond)
		synctest.Wait()
		if !strings.Contains(out.String(), "msg=second") || out.Writes() != 2 {
			t.Fatalf("second batch not flushed: writes %d, %q", out.Writes(), out.String())
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestBufferedLoggerWritesWarningsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		out := &syncBuffer{}
		l, err := NewBufferedLogger(out, "json", "info", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		l.Info("first")
		l.Warn("upstream down", "provider", "openai")
		got := out.String()
		// The warning carries the lines before it, in order.
		if i, j := strings.Index(got, `"first"`), strings.Index(got, `"upstream down"`); i < 0 || j < i {
			t.Fatalf("warning not written at once after the earlier line: %q", got)
		}
		l.With("component", "cache").Error("l2 down")
		if !strings.Contains(out.String(), `"l2 down"`) {
			t.Fatalf("error from a derived logger not written at once: %q", out.String())
		}
		_ = l.Close()
	})
}

func TestBufferedLoggerCloseFlushesAndFullBatchWrites(t *testing.T) {
	out := &syncBuffer{}
	l, err := NewBufferedLogger(out, "text", "info", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 1000)
	for range 100 { // ~100 KiB: more than one batch
		l.Info("line", "v", long)
	}
	if out.Writes() == 0 {
		t.Fatal("a full batch was not written")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "msg=line"); n != 100 {
		t.Fatalf("%d lines after Close, want 100", n)
	}
	l.Info("after close")
	if !strings.Contains(out.String(), "after close") {
		t.Fatal("a line after Close was not written at once")
	}
}

func TestUnbufferedLoggerWritesEachLine(t *testing.T) {
	out := &syncBuffer{}
	l, err := NewLogger(out, "text", "info")
	if err != nil {
		t.Fatal(err)
	}
	l.Info("one")
	l.Info("two")
	if out.Writes() != 2 {
		t.Fatalf("%d writes, want 2", out.Writes())
	}
}

// TestBufferedLoggerKeepsOrderOfRequestAndOtherLines: request lines are
// queued unformatted, other lines formatted; the output keeps the order in
// which they were logged, and each request line is byte for byte what the
// unbuffered logger writes.
func TestBufferedLoggerKeepsOrderOfRequestAndOtherLines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, format := range []string{"json", "text"} {
			out := &syncBuffer{}
			l, err := NewBufferedLogger(out, format, "info", 100*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			ref := &syncBuffer{}
			lr, _ := NewLogger(ref, format, "info")
			ctx := context.Background()
			r := Record{RequestID: "req_1", Model: "gpt-4o", Provider: "openai", Cache: CacheMiss, Status: 200}
			l.LogRequest(ctx, &r)
			lr.LogRequest(ctx, &r)
			l.Info("between")
			r.RequestID, r.ErrorCode, r.Status = "req_2", "rate_limit_exceeded", 429
			l.LogRequest(ctx, &r)
			lr.LogRequest(ctx, &r)
			r.RequestID = "changed after logging"
			if out.Writes() != 0 {
				t.Fatalf("%s: written before the interval", format)
			}
			time.Sleep(101 * time.Millisecond)
			synctest.Wait()
			got := out.String()
			i1, ib, i2 := strings.Index(got, "req_1"), strings.Index(got, "between"), strings.Index(got, "req_2")
			if i1 < 0 || ib < i1 || i2 < ib || out.Writes() != 1 {
				t.Fatalf("%s: order or batching wrong (%d writes):\n%s", format, out.Writes(), got)
			}
			if strings.Contains(got, "changed after logging") {
				t.Fatalf("%s: the queued record was not a copy", format)
			}
			lines := strings.Split(strings.TrimSpace(got), "\n")
			want := strings.Split(strings.TrimSpace(ref.String()), "\n")
			// Timestamps differ by nothing under synctest's fake clock.
			if len(lines) != 3 || lines[0] != want[0] || lines[2] != want[1] {
				t.Fatalf("%s: request lines differ from the unbuffered logger's:\n%s\nwant\n%s", format, got, ref.String())
			}
			_ = l.Close()
		}
	})
}

func TestBufferedLoggerWritesAFullQueueSoon(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		out := &syncBuffer{}
		l, err := NewBufferedLogger(out, "json", "info", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		r := Record{RequestID: "req", Model: "m", Status: 200}
		for range queuedSoon {
			l.LogRequest(context.Background(), &r)
		}
		synctest.Wait() // the flush started by the full queue runs
		if n := strings.Count(out.String(), `"request_id":"req"`); n != queuedSoon {
			t.Fatalf("%d lines written after %d were queued, want all", n, queuedSoon)
		}
		_ = l.Close()
	})
}
