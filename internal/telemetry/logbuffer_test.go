package telemetry

import (
	"bytes"
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
