package simulated

import (
	"context"
	"crypto/rsa"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
)

// Options shape the simulated provider's answers, latency and faults.
type Options struct {
	TTFT         time.Duration // delay before the first byte of the answer
	Jitter       time.Duration // uniform +/- jitter added to TTFT
	ChunkDelay   time.Duration // delay between stream events
	ErrorRate500 float64       // fraction of requests answered 500
	ErrorRate429 float64       // fraction of requests answered 429
	RetryAfter   time.Duration // Retry-After of 429 answers; default 1s
	Words        int           // answer length in words; default 24
	APIKey       string        // when set, requests must carry it (Bearer or x-api-key)
	Models       []string      // served by GET /v1/models
	// GoogleTokenKey, when set, is the public key of the service account
	// whose JWTs the OAuth2 token endpoint (/oauth2/token) accepts: it then
	// checks their signatures too.
	GoogleTokenKey *rsa.PublicKey
	// Headers are added to every chat answer. Benchmarks use them to give
	// the provider's answers the gateway's response shape (its nine
	// headers), to measure what that shape alone costs.
	Headers http.Header
}

// Defaults used for zero Options fields.
const (
	DefaultWords      = 24
	DefaultRetryAfter = time.Second
)

// DefaultModels are listed by GET /v1/models when Options.Models is empty.
func DefaultModels() []string {
	return []string{"gpt-4o", "gpt-4o-mini", "gpt-4.1", "claude-sonnet-4-5", "claude-haiku-4-5"}
}

const (
	maxBody  = 32 << 20 // a request body larger than this is refused with 413
	maxWords = 100_000  // bound on SIM_WORDS_<n> and Options.Words
)

// config is an Options snapshot with everything derived from it computed
// once, so the request path only loads one pointer.
type config struct {
	Options
	retryAfter      []string
	modelsOpenAI    []byte
	modelsAnthropic []byte
	apiKey          []byte
}

// Server is the simulated provider. It is an http.Handler.
type Server struct {
	cfg   atomic.Pointer[config]
	calls atomic.Int64
	seq   atomic.Uint64 // drives the fault and jitter draws
	pool  sync.Pool     // *exchange

	google googleAuth // the OAuth2 token endpoint's issued tokens

	lastMu     sync.Mutex
	lastPath   string
	lastHeader http.Header
	lastBody   []byte

	// Header values shared by every answer; net/http only reads them.
	ctJSON, ctSSE, noCache []string
}

// New returns a Server serving o.
func New(o Options) *Server {
	s := &Server{
		ctJSON:  []string{"application/json"},
		ctSSE:   []string{"text/event-stream; charset=utf-8"},
		noCache: []string{"no-cache"},
	}
	s.pool.New = func() any { return newExchange() }
	s.SetOptions(o)
	return s
}

// SetOptions replaces the options; requests already waiting keep the old ones.
func (s *Server) SetOptions(o Options) {
	c := &config{Options: o}
	if c.Words <= 0 {
		c.Words = DefaultWords
	}
	c.Words = min(c.Words, maxWords)
	if c.RetryAfter <= 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	if len(c.Models) == 0 {
		c.Models = DefaultModels()
	}
	c.Models = append([]string(nil), c.Models...)
	c.Jitter = max(c.Jitter, 0)
	if len(c.Headers) > 0 {
		h := make(http.Header, len(c.Headers))
		for k, v := range c.Headers {
			ck := http.CanonicalHeaderKey(k)
			h[ck] = append(h[ck], v...) // "x-a" and "X-A" are one header
		}
		c.Headers = h
	}
	c.retryAfter = []string{strconv.FormatInt(int64((c.RetryAfter+time.Second-1)/time.Second), 10)}
	c.modelsOpenAI = appendModelsOpenAI(nil, c.Models)
	c.modelsAnthropic = appendModelsAnthropic(nil, c.Models)
	if c.APIKey != "" {
		c.apiKey = []byte(c.APIKey)
	}
	s.cfg.Store(c)
}

// Calls is the number of chat requests received since the start or the
// last ResetCalls, whatever their outcome.
func (s *Server) Calls() int64 { return s.calls.Load() }

// ResetCalls sets Calls back to zero.
func (s *Server) ResetCalls() { s.calls.Store(0) }

// LastRequest returns a copy of the last chat request received.
func (s *Server) LastRequest() (path string, header http.Header, body []byte) {
	s.lastMu.Lock()
	defer s.lastMu.Unlock()
	return s.lastPath, s.lastHeader.Clone(), append([]byte(nil), s.lastBody...)
}

// record keeps the last request. The header and body are copied into maps
// and buffers reused across requests, so recording allocates nothing once
// warm; header values are immutable strings and can be shared.
func (s *Server) record(r *http.Request, body []byte) {
	s.lastMu.Lock()
	defer s.lastMu.Unlock()
	s.lastPath = r.URL.Path
	if s.lastHeader == nil {
		s.lastHeader = make(http.Header, len(r.Header))
	}
	for k := range s.lastHeader {
		if _, ok := r.Header[k]; !ok {
			delete(s.lastHeader, k)
		}
	}
	for k, v := range r.Header {
		s.lastHeader[k] = append(s.lastHeader[k][:0], v...)
	}
	s.lastBody = append(s.lastBody[:0], body...)
}

// ServeHTTP routes to the OpenAI, Anthropic and models endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/v1/chat/completions":
		s.chat(w, r, dialectOpenAI)
	case "/v1/messages":
		s.chat(w, r, dialectAnthropic)
	case "/v1/messages/count_tokens":
		s.countTokens(w, r)
	case "/v1/models":
		s.models(w, r)
	default:
		if strings.HasPrefix(r.URL.Path, "/openai/") {
			s.azure(w, r) // Azure OpenAI: azure.go
			return
		}
		if strings.HasPrefix(r.URL.Path, "/model/") { // Bedrock: /model/{modelId}/converse, ...
			s.bedrock(w, r)
			return
		}
		if s.serveGoogle(w, r) {
			return
		}
		d := dialectOpenAI
		if len(r.Header["Anthropic-Version"]) > 0 {
			d = dialectAnthropic
		}
		s.writeError(w, d, &simError{kind: kindNotFound, msg: "Invalid URL (" + r.Method + " " + r.URL.Path + ")"})
	}
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	anthropic := len(r.Header["Anthropic-Version"]) > 0
	d := dialectOpenAI
	if anthropic {
		d = dialectAnthropic
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		s.writeError(w, d, &simError{kind: kindMethod, msg: "Method " + r.Method + " is not allowed on " + r.URL.Path})
		return
	}
	c := s.cfg.Load()
	if key := c.apiKey; key != nil && !authorized(r.Header, d, key) {
		s.writeError(w, d, errUnauthorized(d))
		return
	}
	body := c.modelsOpenAI
	if anthropic {
		body = c.modelsAnthropic
	}
	h := w.Header()
	h["Content-Type"] = s.ctJSON
	h.Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

func (s *Server) chat(w http.ResponseWriter, r *http.Request, d dialect) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		s.writeError(w, d, &simError{kind: kindMethod, msg: "Method " + r.Method + " is not allowed on " + r.URL.Path})
		return
	}
	s.calls.Add(1)
	c := s.cfg.Load()
	if len(c.Headers) > 0 {
		h := w.Header()
		for k, v := range c.Headers {
			h[k] = v
		}
	}
	x := s.pool.Get().(*exchange)
	defer s.release(x)

	body, err := x.readBody(r.Body, r.ContentLength)
	if err != nil {
		s.writeError(w, d, err)
		return
	}
	s.record(r, body)
	if c.apiKey != nil && !authorized(r.Header, d, c.apiKey) {
		s.writeError(w, d, errUnauthorized(d))
		return
	}
	if d == dialectAnthropic && len(r.Header["Anthropic-Version"]) == 0 {
		s.writeError(w, d, &simError{kind: kindBadRequest, msg: "anthropic-version: header is required"})
		return
	}
	if err := x.parse(d, body); err != nil {
		s.writeError(w, d, err)
		return
	}
	req := &x.req
	if err := s.fault(c, req); err != nil {
		s.writeError(w, d, err)
		return
	}

	ctx := r.Context()
	delay := req.slow
	if delay < 0 {
		delay = s.ttft(c)
	}
	if !req.stream && req.magic&magicStall != 0 {
		<-ctx.Done()
		return
	}
	if !sleep(ctx, delay) {
		return
	}
	x.c = c
	switch {
	case d == dialectOpenAI && req.stream:
		x.streamOpenAI(ctx, w, s)
	case d == dialectOpenAI:
		x.writeOpenAI(w, s)
	case req.stream:
		x.streamAnthropic(ctx, w, s)
	default:
		x.writeAnthropic(w, s)
	}
}

func (s *Server) release(x *exchange) {
	if x.reset() {
		s.pool.Put(x)
	}
}

// fault returns the error a magic word or the configured error rates ask
// for, nil for a normal answer.
func (s *Server) fault(c *config, req *request) *simError {
	switch {
	case req.magic&magicError400 != 0:
		return &simError{kind: kindBadRequest, msg: "SIM_ERROR_400: the simulated provider was asked to reject this request"}
	case req.magic&magicError429 != 0:
		return errRateLimited()
	case req.magic&magicError500 != 0:
		return errServer()
	}
	if c.ErrorRate429 <= 0 && c.ErrorRate500 <= 0 {
		return nil
	}
	u := s.uniform()
	switch {
	case u < c.ErrorRate429:
		return errRateLimited()
	case u < c.ErrorRate429+c.ErrorRate500:
		return errServer()
	}
	return nil
}

// ttft draws this request's time to first byte.
func (s *Server) ttft(c *config) time.Duration {
	d := c.TTFT
	if c.Jitter > 0 {
		d += time.Duration((2*s.uniform() - 1) * float64(c.Jitter))
	}
	return max(d, 0)
}

// uniform returns a number in [0, 1) from a splitmix64 sequence: lock-free,
// safe for concurrent use and reproducible for a given request order.
func (s *Server) uniform() float64 {
	return float64(mix64(s.seq.Add(0x9e3779b97f4a7c15))>>11) * 0x1p-53
}

func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// sleep waits d or until ctx ends; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// authorized checks the provider's key header in constant time.
func authorized(h http.Header, d dialect, key []byte) bool {
	var got string
	if d == dialectAnthropic {
		if v := h["X-Api-Key"]; len(v) > 0 {
			got = v[0]
		}
	} else if v := h["Authorization"]; len(v) > 0 {
		const prefix = "Bearer "
		if len(v[0]) > len(prefix) && v[0][:len(prefix)] == prefix {
			got = v[0][len(prefix):]
		}
	}
	return subtle.ConstantTimeCompare([]byte(got), key) == 1
}

func appendModelsOpenAI(dst []byte, models []string) []byte {
	dst = append(dst, `{"object":"list","data":[`...)
	for i, m := range models {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"id":`...)
		dst = api.AppendString(dst, m)
		dst = append(dst, `,"object":"model","created":1700000000,"owned_by":"simulated"}`...)
	}
	return append(dst, "]}"...)
}

func appendModelsAnthropic(dst []byte, models []string) []byte {
	dst = append(dst, `{"data":[`...)
	for i, m := range models {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"type":"model","id":`...)
		dst = api.AppendString(dst, m)
		dst = append(dst, `,"display_name":`...)
		dst = api.AppendString(dst, m)
		dst = append(dst, `,"created_at":"2025-01-01T00:00:00Z"}`...)
	}
	dst = append(dst, `],"has_more":false,"first_id":`...)
	if len(models) > 0 {
		dst = api.AppendString(dst, models[0])
		dst = append(dst, `,"last_id":`...)
		dst = api.AppendString(dst, models[len(models)-1])
	} else {
		dst = append(dst, `null,"last_id":null`...)
	}
	return append(dst, '}')
}

// Run serves a Server for o on addr until ctx ends, then shuts down
// gracefully.
func Run(ctx context.Context, addr string, o Options, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("simulated: listen %s: %w", addr, err)
	}
	return Serve(ctx, ln, New(o), logger)
}

// shutdownGrace bounds how long Serve waits for answers in flight; streams
// stalled on purpose (SIM_STALL) are then cancelled.
const shutdownGrace = 5 * time.Second

// Serve serves h on ln until ctx ends, then lets answers in flight finish
// for up to a few seconds before cancelling them. It closes ln.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	base, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("simulated provider listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc:
		return fmt.Errorf("simulated: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		cancelBase()
		_ = srv.Close()
	}
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) {
		return fmt.Errorf("simulated: serve: %w", serr)
	}
	logger.Info("simulated provider stopped")
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("simulated: shutdown: %w", err)
	}
	return nil
}

// countTokens answers POST /v1/messages/count_tokens with
// {"input_tokens":N}, N a deterministic count of the request's bytes (one
// token per four, as the gateway's estimate). The request is recorded
// (LastRequest) but not counted in Calls: it is not a chat request.
func (s *Server) countTokens(w http.ResponseWriter, r *http.Request) {
	d := dialectAnthropic
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		s.writeError(w, d, &simError{kind: kindMethod, msg: "Method " + r.Method + " is not allowed on " + r.URL.Path})
		return
	}
	c := s.cfg.Load()
	x := s.pool.Get().(*exchange)
	defer s.release(x)
	body, err := x.readBody(r.Body, r.ContentLength)
	if err != nil {
		s.writeError(w, d, err)
		return
	}
	s.record(r, body)
	if c.apiKey != nil && !authorized(r.Header, d, c.apiKey) {
		s.writeError(w, d, errUnauthorized(d))
		return
	}
	if len(r.Header["Anthropic-Version"]) == 0 {
		s.writeError(w, d, &simError{kind: kindBadRequest, msg: "anthropic-version: header is required"})
		return
	}
	if !gjson.ValidBytes(body) || !gjson.GetBytes(body, "messages").IsArray() {
		s.writeError(w, d, &simError{kind: kindBadRequest, msg: "messages: Field required"})
		return
	}
	out := append([]byte(`{"input_tokens":`), strconv.Itoa((len(body)+3)/4)...)
	out = append(out, "}"...)
	h := w.Header()
	h["Content-Type"] = s.ctJSON
	h.Set("Content-Length", strconv.Itoa(len(out)))
	_, _ = w.Write(out)
}
