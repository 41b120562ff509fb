package telemetry

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// logBuffer serialises every write of the process logger (the slog
// handler's and the request line's) so lines never interleave, and, when
// flushEvery > 0, batches them: a line reaches the underlying writer at
// most flushEvery after it was logged, or sooner when the batch is full or
// a record at warn level or above is written. One write system call per
// request was the largest cost of a request log on a busy gateway.
//
// Request lines are not even formatted on the request's path: the request
// queues a copy of its Record and the time, and the batch formats them when
// it is written. Order is kept: a line written through Write first formats
// the records queued before it.
//
// With flushEvery == 0 every line is formatted and written at once (tests,
// and LOG_FLUSH_INTERVAL=0).
type logBuffer struct {
	w          io.Writer
	json       bool // the request line's format
	flushEvery time.Duration

	flushMu sync.Mutex // one flush at a time: batches reach w in order

	mu      sync.Mutex
	buf     []byte       // formatted lines, older than every queued record
	pending []queuedLine // request lines not formatted yet
	spare   []queuedLine // the other half of pending's double buffer
	timer   *time.Timer  // armed while a batch is open; nil until first use
	closed  bool
}

type queuedLine struct {
	t time.Time
	r Record
}

const (
	// logBatchBytes bounds the formatted part of a batch.
	logBatchBytes = 64 << 10
	// A batch with this many queued request lines is written soon, by the
	// flush timer's goroutine; one with maxQueued is written at once by the
	// request that fills it (backpressure: memory stays bounded).
	queuedSoon = 1024
	maxQueued  = 16384
)

// enqueue queues r's request line, logged at t. It reports false when the
// logger writes every line at once: then the caller formats and writes.
func (lb *logBuffer) enqueue(t time.Time, r *Record) bool {
	if lb.flushEvery <= 0 {
		return false
	}
	lb.mu.Lock()
	if lb.closed {
		lb.mu.Unlock()
		return false
	}
	if len(lb.buf) == 0 && len(lb.pending) == 0 {
		lb.arm(lb.flushEvery)
	}
	lb.pending = append(lb.pending, queuedLine{t: t, r: *r})
	if r.ErrorCode != "" {
		// The only field that may come from a provider's answer.
		lb.pending[len(lb.pending)-1].r.ErrorCode = strings.Clone(r.ErrorCode)
	}
	n := len(lb.pending)
	if n == queuedSoon {
		lb.arm(0)
	}
	lb.mu.Unlock()
	if n >= maxQueued {
		_ = lb.Flush()
	}
	return true
}

func (lb *logBuffer) Write(p []byte) (int, error) {
	lb.mu.Lock()
	if lb.flushEvery <= 0 || lb.closed {
		defer lb.mu.Unlock()
		return lb.w.Write(p)
	}
	// Lines queued before this one are formatted first, to keep the order.
	for i := range lb.pending {
		lb.buf = appendRequestLine(lb.buf, lb.json, lb.pending[i].t, &lb.pending[i].r)
	}
	lb.pending = lb.pending[:0]
	if len(lb.buf) == 0 {
		lb.arm(lb.flushEvery)
	}
	lb.buf = append(lb.buf, p...)
	full := len(lb.buf) >= logBatchBytes
	lb.mu.Unlock()
	if full {
		if err := lb.Flush(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// arm schedules the batch's flush after d.
func (lb *logBuffer) arm(d time.Duration) {
	if lb.timer == nil {
		lb.timer = time.AfterFunc(d, func() { _ = lb.Flush() })
		return
	}
	lb.timer.Reset(d)
}

// Flush formats the queued request lines and writes the batch.
func (lb *logBuffer) Flush() error {
	lb.flushMu.Lock()
	defer lb.flushMu.Unlock()
	lb.mu.Lock()
	out, queued := lb.buf, lb.pending
	lb.buf, lb.pending, lb.spare = nil, lb.spare[:0], nil
	lb.mu.Unlock()
	if len(out) == 0 && len(queued) == 0 {
		lb.mu.Lock()
		if lb.buf == nil {
			lb.buf = out
		}
		lb.spare = queued
		lb.mu.Unlock()
		return nil
	}
	// Formatting happens here, outside mu: requests keep queueing.
	for i := range queued {
		out = appendRequestLine(out, lb.json, queued[i].t, &queued[i].r)
	}
	_, err := lb.w.Write(out)
	clear(queued) // drop the strings the records point to
	lb.mu.Lock()
	if lb.buf == nil && cap(out) <= 1<<20 { // a full queue formats to ~400 KiB
		lb.buf = out[:0]
	}
	if cap(queued) <= 2*maxQueued {
		lb.spare = queued[:0]
	}
	lb.mu.Unlock()
	return err
}

// Close writes what is left and turns batching off: later lines are
// written at once.
func (lb *logBuffer) Close() error {
	lb.mu.Lock()
	lb.closed = true
	if lb.timer != nil {
		lb.timer.Stop()
	}
	lb.mu.Unlock()
	return lb.Flush()
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
