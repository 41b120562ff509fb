package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/sse"
)

// Run sends load as cfg describes and returns what it measured. When ctx
// is cancelled during the measured phase, Run stops, discards the requests
// cut short and returns the partial result marked Interrupted.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.RunID == "" {
		cfg.RunID = newRunID()
	}
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	bs, err := newBodies(&cfg)
	if err != nil {
		return nil, err
	}
	tmpl, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("--url: %w", err)
	}
	tmpl.Header = http.Header{"Content-Type": {"application/json"}}
	for k, vs := range cfg.Header {
		if http.CanonicalHeaderKey(k) == "Host" && len(vs) > 0 {
			tmpl.Host = vs[0]
			continue
		}
		tmpl.Header[http.CanonicalHeaderKey(k)] = append([]string(nil), vs...)
	}
	rt := cfg.Transport
	if rt == nil {
		t := newTransport(cfg.Concurrency)
		defer t.CloseIdleConnections()
		rt = t
	}
	r := &runner{
		cfg:    &cfg,
		bodies: bs,
		tmpl:   tmpl,
		client: &http.Client{Transport: rt, Timeout: cfg.Timeout},
	}
	if cfg.Warmup > 0 {
		if _, err := r.phase(ctx, "warmup", cfg.Warmup, 0); err != nil {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("warmup: %w", context.Cause(ctx))
		}
	}
	return r.phase(ctx, "", cfg.Duration, cfg.Requests)
}

// newTransport is an HTTP/1.1 transport that keeps one connection per
// worker alive and leaves bodies compressed as the server sent them.
func newTransport(conns int) *http.Transport {
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          conns * 2,
		MaxIdleConnsPerHost:   conns,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		WriteBufferSize:       16 << 10,
		ReadBufferSize:        16 << 10,
	}
}

type runner struct {
	cfg    *Config
	bodies *bodies
	tmpl   *http.Request
	client *http.Client
	events sse.Pool // read buffers of the streams being read
}

// phase is one stretch of load: the warmup or the measured run.
type phase struct {
	ctx      context.Context
	r        *runner
	start    time.Time
	end      time.Time // zero: no time limit
	limit    int64     // 0: no count limit
	issued   atomic.Int64
	stopped  atomic.Bool // the caller's context ended
	period   float64     // open loop: nanoseconds between due times
	interval time.Duration
	// uniqueBase numbers this phase's unique prompts: request i of the
	// phase uses id uniqueBase+i, so a run replayed with the same --run-id
	// sends the same prompts whatever the concurrency, and warmup prompts
	// never repeat in the measured run.
	uniqueBase int64
}

func (r *runner) phase(ctx context.Context, name string, d time.Duration, n int64) (*Result, error) {
	cfg := r.cfg
	p := &phase{ctx: ctx, r: r, limit: n, interval: cfg.Interval}
	if name == "warmup" {
		p.uniqueBase = 1 << 40
	}
	if cfg.Rate > 0 {
		p.period = float64(time.Second) / cfg.Rate
	}
	stop := context.AfterFunc(ctx, func() { p.stopped.Store(true) })
	defer stop()

	workers := make([]*worker, cfg.Concurrency)
	for i := range workers {
		workers[i] = newWorker(p, i)
	}
	p.start = time.Now()
	if d > 0 {
		p.end = p.start.Add(d)
	}

	var progressDone chan struct{}
	progressCtx, cancelProgress := context.WithCancel(ctx)
	if cfg.Progress != nil {
		progressDone = make(chan struct{})
		go func() {
			defer close(progressDone)
			p.progress(progressCtx, name, workers)
		}()
	}
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(w.run)
	}
	wg.Wait()
	cancelProgress()
	if progressDone != nil {
		<-progressDone
	}
	return p.result(workers), nil
}

// cutShort reports whether the caller's context ended, which makes a
// failed request an interruption rather than an error. It reads the context
// itself: the stopped flag is set by an AfterFunc goroutine that may run
// after the failed request returns.
func (p *phase) cutShort() bool { return p.stopped.Load() || p.ctx.Err() != nil }

// next claims the next request. It returns when it is due (open loop) and
// false when the phase is over.
func (p *phase) next(timer *time.Timer) (due time.Time, seq uint64, ok bool) {
	if p.stopped.Load() {
		return time.Time{}, 0, false
	}
	i := p.issued.Add(1)
	seq = uint64(p.uniqueBase + i)
	if p.limit > 0 && i > p.limit {
		return time.Time{}, 0, false
	}
	if p.period == 0 {
		now := time.Now()
		if !p.end.IsZero() && !now.Before(p.end) {
			return time.Time{}, 0, false
		}
		return now, seq, true
	}
	due = p.start.Add(time.Duration(float64(i-1) * p.period))
	if !p.end.IsZero() && !due.Before(p.end) {
		return time.Time{}, 0, false
	}
	if wait := time.Until(due); wait > 0 {
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-p.ctx.Done():
			return time.Time{}, 0, false
		}
	}
	return due, seq, true
}

// worker owns its statistics so the hot path takes no locks; the phase
// merges them at the end.
type worker struct {
	p    *phase
	id   int
	rng  *rand.Rand
	buf  []byte
	last time.Time // when the last counted request finished

	lat, ttft, over *histogram
	status          [600]int64
	statusOther     int64
	errs            int64 // requests that failed in any way
	transport       int64
	streamErrs      int64
	streams         int64
	dropped         int64
	tiers           Tiers
	series          []slot

	// live totals for the progress line
	liveReqs, liveErrs, liveHits atomic.Int64
}

type slot struct {
	reqs, errs, hits int64
	lat              time.Duration
}

func newWorker(p *phase, id int) *worker {
	return &worker{
		p:    p,
		id:   id,
		rng:  rand.New(rand.NewPCG(p.r.cfg.Seed, uint64(id))),
		lat:  newHistogram(),
		ttft: newHistogram(),
		over: newHistogram(),
	}
}

func (w *worker) run() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	cfg := w.p.r.cfg
	for {
		due, seq, ok := w.p.next(timer)
		if !ok {
			return
		}
		if w.p.period > 0 && time.Since(due) > cfg.Timeout {
			// Due so long ago it would have timed out waiting for a free
			// worker: count it rather than queue without bound.
			w.dropped++
			continue
		}
		stream := cfg.StreamShare > 0 && w.rng.Float64() < cfg.StreamShare
		w.do(w.p.r.bodies.pick(w.rng, stream, 0, seq), stream, due)
	}
}

type outcome struct {
	err, hit bool
	// counted is false for requests cut short by the caller's context.
	counted bool
}

func (w *worker) do(body []byte, stream bool, start time.Time) {
	o := w.exchange(body, stream, start)
	if !o.counted {
		return
	}
	now := time.Now()
	lat := now.Sub(start)
	w.last = now
	w.lat.record(lat)
	w.liveReqs.Add(1)
	if o.err {
		w.errs++
		w.liveErrs.Add(1)
	}
	if o.hit {
		w.liveHits.Add(1)
	}
	if w.p.interval > 0 {
		i := int(now.Sub(w.p.start) / w.p.interval)
		for len(w.series) <= i {
			w.series = append(w.series, slot{})
		}
		s := &w.series[i]
		s.reqs++
		s.lat += lat
		if o.err {
			s.errs++
		}
		if o.hit {
			s.hits++
		}
	}
}

func (w *worker) exchange(body []byte, stream bool, start time.Time) outcome {
	// One allocation for the request and its body reader. The body is a
	// NopCloser around a *bytes.Reader because the transport recognises
	// that pair as in-memory and sends headers and body in one write.
	type request struct {
		req http.Request
		br  bytes.Reader
	}
	rq := &request{req: *w.p.r.tmpl}
	rq.br.Reset(body)
	rq.req.Body = io.NopCloser(&rq.br)
	rq.req.ContentLength = int64(len(body))
	rq.req.GetBody = func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(body)), nil
	}
	resp, err := w.p.r.client.Do(&rq.req)
	if err != nil {
		if w.p.cutShort() {
			return outcome{}
		}
		w.transport++
		w.tiers.None++
		return outcome{err: true, counted: true}
	}
	o := outcome{counted: true}
	code := resp.StatusCode
	if code >= 0 && code < len(w.status) {
		w.status[code]++
	} else {
		w.statusOther++
	}
	ok := code >= 200 && code < 300
	o.err = !ok
	h := resp.Header
	switch headerValue(h, "X-Cache-Status") {
	case "HIT":
		o.hit = true
		switch headerValue(h, "X-Cache-Layer") {
		case "L1":
			w.tiers.L1++
		case "L2":
			w.tiers.L2++
		default:
			w.tiers.HitOther++
		}
	case "MISS":
		w.tiers.Miss++
	case "BYPASS":
		w.tiers.Bypass++
	default:
		w.tiers.None++
	}
	if v := headerValue(h, "X-Edge-Overhead-Ms"); v != "" {
		if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 {
			w.over.record(time.Duration(f * float64(time.Millisecond)))
		}
	}
	var readErr error
	if stream && ok && isEventStream(h) {
		w.streams++
		var complete bool
		complete, readErr = w.readStream(resp.Body, start)
		if readErr == nil && !complete {
			w.streamErrs++
			o.err = true
		}
	} else {
		readErr = w.drain(resp.Body)
	}
	resp.Body.Close()
	if readErr != nil {
		if w.p.cutShort() {
			return outcome{}
		}
		w.transport++
		o.err = true
	}
	return o
}

func headerValue(h http.Header, key string) string {
	if vs := h[key]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

func isEventStream(h http.Header) bool {
	ct := headerValue(h, "Content-Type")
	return len(ct) >= 17 && ct[:17] == "text/event-stream"
}

// drain reads the body to its end so the connection goes back to the pool.
// The buffer is made on first use: a worker that only reads streams (tens
// of thousands of them in a streams benchmark) never needs it.
func (w *worker) drain(body io.Reader) error {
	if w.buf == nil {
		w.buf = make([]byte, 32<<10)
	}
	for {
		_, err := body.Read(w.buf)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// readStream reads an event stream to its end, recording the time to the
// first event that carries content. complete reports whether [DONE] came.
func (w *worker) readStream(body io.Reader, start time.Time) (complete bool, err error) {
	rd := w.p.r.events.NewReader(body)
	first := true
	for {
		ev, err := rd.Next()
		if err == io.EOF {
			return complete, nil
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return false, nil
			}
			return false, err
		}
		if bytes.Equal(ev.Data, sse.Done) {
			complete = true
			continue
		}
		if first && gjson.GetBytes(ev.Data, "choices.0.delta.content").String() != "" {
			first = false
			w.ttft.record(time.Since(start))
		}
	}
}
