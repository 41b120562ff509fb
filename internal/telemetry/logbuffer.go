package telemetry

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// logBuffer serialises every write of the process logger (the slog
// handler's and the request line's fast path) so lines never interleave,
// and, when flushEvery > 0, batches them: a line goes into memory and
// reaches the underlying writer at most flushEvery later, or at once when
// the batch is full or a record at warn level or above is written. One
// write system call per request is the largest cost of a request log on a
// busy gateway; batching turns thousands of them into a few per second.
//
// With flushEvery == 0 every line is written at once (tests, and
// LOG_FLUSH_INTERVAL=0).
type logBuffer struct {
	mu         sync.Mutex
	w          io.Writer
	buf        []byte
	flushEvery time.Duration
	timer      *time.Timer // armed while buf holds lines; nil until first use
	closed     bool
}

// logBatchBytes bounds a batch: a full batch is written at once.
const logBatchBytes = 64 << 10

func (lb *logBuffer) Write(p []byte) (int, error) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if lb.flushEvery <= 0 || lb.closed {
		return lb.w.Write(p)
	}
	if len(lb.buf)+len(p) > logBatchBytes {
		if err := lb.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) > logBatchBytes {
			return lb.w.Write(p)
		}
	}
	if len(lb.buf) == 0 {
		lb.arm()
	}
	lb.buf = append(lb.buf, p...)
	return len(p), nil
}

// arm schedules the flush of the batch that is starting.
func (lb *logBuffer) arm() {
	if lb.timer == nil {
		lb.timer = time.AfterFunc(lb.flushEvery, func() { _ = lb.Flush() })
		return
	}
	lb.timer.Reset(lb.flushEvery)
}

// Flush writes the lines held in memory.
func (lb *logBuffer) Flush() error {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return lb.flushLocked()
}

func (lb *logBuffer) flushLocked() error {
	if len(lb.buf) == 0 {
		return nil
	}
	_, err := lb.w.Write(lb.buf)
	if cap(lb.buf) > 4*logBatchBytes {
		lb.buf = nil
	} else {
		lb.buf = lb.buf[:0]
	}
	return err
}

// Close flushes and turns batching off: later lines are written at once.
func (lb *logBuffer) Close() error {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	lb.closed = true
	if lb.timer != nil {
		lb.timer.Stop()
	}
	return lb.flushLocked()
}

// flushingHandler writes records at warn level and above through at once:
// a warning or an error must not wait for the next batch.
type flushingHandler struct {
	slog.Handler
	lb *logBuffer
}

func (h flushingHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Level >= slog.LevelWarn && h.lb.flushEvery > 0 {
		if ferr := h.lb.Flush(); err == nil {
			err = ferr
		}
	}
	return err
}

func (h flushingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return flushingHandler{h.Handler.WithAttrs(as), h.lb}
}

func (h flushingHandler) WithGroup(name string) slog.Handler {
	return flushingHandler{h.Handler.WithGroup(name), h.lb}
}
