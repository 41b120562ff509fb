package provider

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/api"
)

// TransportOptions tune the HTTP client of one provider.
type TransportOptions struct {
	ConnectTimeout        time.Duration // default 5s
	ResponseHeaderTimeout time.Duration // time to first byte; 0: none (deadline comes from the context); > 0 sends every call through http.Transport
	MaxIdleConnsPerHost   int           // default 512
	MaxConnsPerHost       int           // 0: unlimited; > 0 sends every call through http.Transport
	IdleConnTimeout       time.Duration // default 90s
	// StdOnly sends plain-http calls through http.Transport too, instead of
	// the direct HTTP/1.1 client.
	StdOnly bool
	// UserAgent is sent on every call that sets none ("edge-agent/VERSION");
	// "": Go's default.
	UserAgent string
}

// Transport is the http.RoundTripper of one provider. Calls to a plain
// http:// upstream go through the direct HTTP/1.1 client (see direct);
// https (HTTP/2 when the upstream offers it), calls through a proxy from
// the environment, and every call when StdOnly, MaxConnsPerHost or
// ResponseHeaderTimeout is set go through an http.Transport.
type Transport struct {
	std    *http.Transport
	direct *direct
	addrs  sync.Map // URL.Host -> dial address, or "" when a proxy applies
	ua     []string // shared: setting it allocates nothing
}

// NewTransport returns a Transport tuned for a gateway: a large keep-alive
// pool, HTTP/2 when the upstream offers it over TLS, no transparent gzip
// (we forward and parse bytes, and compression on loopback or a LAN costs
// more than it saves).
func NewTransport(o TransportOptions) *Transport {
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 5 * time.Second
	}
	if o.MaxIdleConnsPerHost <= 0 {
		o.MaxIdleConnsPerHost = 512
	}
	if o.IdleConnTimeout <= 0 {
		o.IdleConnTimeout = 90 * time.Second
	}
	d := &net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second}
	const bufSize = 32 << 10
	t := &Transport{std: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          o.MaxIdleConnsPerHost * 4,
		MaxIdleConnsPerHost:   o.MaxIdleConnsPerHost,
		MaxConnsPerHost:       o.MaxConnsPerHost,
		IdleConnTimeout:       o.IdleConnTimeout,
		TLSHandshakeTimeout:   o.ConnectTimeout,
		ResponseHeaderTimeout: o.ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		WriteBufferSize:       bufSize,
		ReadBufferSize:        bufSize,
	}}
	// The direct client takes its deadlines from the context only, and
	// does not bound connections per host.
	if !o.StdOnly && o.MaxConnsPerHost <= 0 && o.ResponseHeaderTimeout <= 0 {
		t.direct = &direct{dial: d.DialContext, maxIdle: o.MaxIdleConnsPerHost, idleTimeout: o.IdleConnTimeout}
	}
	if o.UserAgent != "" {
		t.ua = []string{o.UserAgent}
	}
	return t
}

// RoundTrip sends req through the direct client or the http.Transport.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.ua != nil && req.Header["User-Agent"] == nil {
		// The adapters build each request for this one call, so its
		// header map is ours to complete.
		req.Header["User-Agent"] = t.ua
	}
	if t.direct != nil && req.URL.Scheme == "http" {
		if addr := t.directAddr(req); addr != "" {
			return t.direct.roundTrip(req, addr)
		}
	}
	return t.std.RoundTrip(req)
}

// directAddr is the address to dial for req's host, or "" when the call
// must go through a proxy. The environment is read once per host, as
// http.ProxyFromEnvironment itself reads it once.
func (t *Transport) directAddr(req *http.Request) string {
	if a, ok := t.addrs.Load(req.URL.Host); ok {
		return a.(string)
	}
	addr := ""
	if p, err := http.ProxyFromEnvironment(req); err == nil && p == nil && req.URL.Hostname() != "" {
		port := req.URL.Port()
		if port == "" {
			port = "80"
		}
		addr = net.JoinHostPort(req.URL.Hostname(), port)
	}
	t.addrs.Store(req.URL.Host, addr)
	return addr
}

// MarkReplayable lets http.Transport send an upstream call again on
// another connection when the pooled one it took was closed by the server
// as the request reached it (EOF or a reset before any byte of the answer:
// a keep-alive timeout firing at that moment). The Transport does that on
// its own only for requests it deems idempotent, which a POST is when it
// carries an Idempotency-Key header; a nil one is never sent on the wire.
// A chat completion is safe to send twice (the router retries it on any
// 502 anyway, one attempt later and after a backoff), and its body can be
// rewound (GetBody, set for a bytes.Reader). The direct client does the
// same for its calls. A key the client sent is kept.
func MarkReplayable(h http.Header) {
	if _, ok := h["Idempotency-Key"]; !ok {
		h["Idempotency-Key"] = nil
	}
}

// CloseIdleConnections closes the idle upstream connections of both
// clients; those in use close when their answer ends.
func (t *Transport) CloseIdleConnections() {
	t.std.CloseIdleConnections()
	if t.direct != nil {
		t.direct.closeIdle()
	}
}

// TransportError maps a failure to reach the upstream (dial, TLS, timeout,
// reset) to a 502 or 504. The message names the provider, never the URL's
// credentials or a key.
func TransportError(ctx context.Context, provider string, err error) *api.Error {
	if ctx.Err() == context.Canceled {
		return api.FromError(context.Canceled)
	}
	var ne net.Error
	timeout := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
	if timeout {
		return &api.Error{Status: http.StatusGatewayTimeout, Type: api.TypeTimeout, Code: "upstream_timeout",
			Message: fmt.Sprintf("provider %s did not answer in time", provider), Err: stripURL(err)}
	}
	if OutOfDescriptors(err) {
		// The gateway's own limit, not the provider's failure: the router
		// does not count it against the deployment, and the client is told
		// to come back.
		return &api.Error{Status: http.StatusServiceUnavailable, Type: api.TypeOverloaded, Code: CodeOutOfDescriptors,
			Message:    "the gateway has no file descriptor left to reach the provider; retry shortly",
			RetryAfter: time.Second, Err: stripURL(err)}
	}
	code := "upstream_unavailable"
	if errors.Is(err, syscall.ECONNREFUSED) {
		code = "upstream_connection_refused"
	}
	return &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: code,
		Message: fmt.Sprintf("could not reach provider %s", provider), Err: stripURL(err)}
}

// CodeOutOfDescriptors is the code of a call the gateway could not make
// for want of a file descriptor (EMFILE, ENFILE).
const CodeOutOfDescriptors = "gateway_out_of_file_descriptors"

// OutOfDescriptors reports whether err is the process's or the system's
// file-descriptor limit.
func OutOfDescriptors(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// stripURL drops the *url.Error wrapper whose text repeats the request URL.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// UpstreamError maps a non-2xx provider answer to the error the client
// sees. 4xx are passed through with the provider's own message and type,
// except 401 and 403: those say the gateway's own credential for the
// provider was refused, which is no fault of the client's (its key was
// checked by the gateway), so they become a 502 upstream_auth_failed. 5xx
// become 502 (504 for a gateway timeout upstream). The message is read from
// OpenAI's {"error":{...}} and Anthropic's {"type":"error","error":{...}}.
// The caller scrubs the result with ScrubSecret.
func UpstreamError(provider string, status int, header http.Header, body []byte) *api.Error {
	msg := gjson.GetBytes(body, "error.message").String()
	typ := gjson.GetBytes(body, "error.type").String()
	code := gjson.GetBytes(body, "error.code").String()
	param := gjson.GetBytes(body, "error.param").String()
	if msg == "" {
		msg = strings.TrimSpace(string(body))
		if len(msg) > 512 || !gjson.Valid(msg) && strings.ContainsAny(msg, "<>") {
			msg = http.StatusText(status)
		}
	}
	e := &api.Error{UpstreamStatus: status, Message: msg, Type: typ, Code: code, Param: param,
		RetryAfter: ParseRetryAfter(header.Get("Retry-After"), time.Now())}
	switch {
	case status == http.StatusTooManyRequests:
		e.Status = status
		if e.Type == "" {
			e.Type = api.TypeRateLimit
		}
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		// The upstream's param and code describe the gateway's request to
		// it, not the client's: only its message is kept, after ours.
		a := AuthFailed(provider, status, msg)
		a.RetryAfter = e.RetryAfter
		return a
	case status >= 400 && status < 500:
		e.Status = status
		if e.Type == "" {
			e.Type = api.TypeInvalidRequest
		}
	case status == http.StatusGatewayTimeout:
		e.Status = http.StatusGatewayTimeout
		e.Type = api.TypeTimeout
		e.Message = fmt.Sprintf("provider %s timed out: %s", provider, msg)
	default:
		e.Status = http.StatusBadGateway
		if e.Type == "" || e.Type == "api_error" || e.Type == "server_error" {
			e.Type = api.TypeUpstream
		}
		e.Message = fmt.Sprintf("provider %s failed with status %d: %s", provider, status, msg)
		if e.Code == "" {
			e.Code = "upstream_error"
		}
	}
	return e
}

// CodeAuthFailed is the code of an upstream 401 or 403: the gateway's
// credential for the provider was rejected.
const CodeAuthFailed = "upstream_auth_failed"

// AuthFailed is the 502 for an upstream that refused the gateway's
// credential (status 401 or 403), with the upstream's message after ours.
func AuthFailed(provider string, status int, upstreamMsg string) *api.Error {
	m := fmt.Sprintf("the gateway's credential for provider %s was rejected (%d)", provider, status)
	if upstreamMsg != "" {
		m += ": " + upstreamMsg
	}
	return &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: CodeAuthFailed,
		UpstreamStatus: status, Message: m}
}

// IsAuthFailure reports an upstream that refused the gateway's credential.
func IsAuthFailure(e *api.Error) bool { return e != nil && e.Code == CodeAuthFailed }

// ErrorInBody maps a 200 answer whose body is an error ({"error":{...}})
// rather than a chat completion to the 502 it stands for.
func ErrorInBody(provider string, body []byte) *api.Error {
	msg := gjson.GetBytes(body, "error.message").String()
	if msg == "" {
		msg = "no message"
	}
	return &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_error",
		Message: fmt.Sprintf("provider %s answered 200 with an error instead of a completion: %s", provider, msg)}
}

// TooLarge is the 502 for a non-streamed answer over limit bytes.
func TooLarge(provider string, limit int64) *api.Error {
	return &api.Error{Status: http.StatusBadGateway, Type: api.TypeUpstream, Code: "upstream_response_too_large",
		Message: fmt.Sprintf("provider %s sent an answer larger than the gateway's limit of %d bytes", provider, limit)}
}

// keyLike matches what looks like a credential in an upstream's error text:
// the common API key shapes and the token of a Bearer header.
var keyLike = regexp.MustCompile(`\b(?:sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{16,}|(?:AKIA|ASIA)[0-9A-Z]{16}|AIza[0-9A-Za-z_\-]{35})|(?i:bearer\s+)[A-Za-z0-9._~+/=\-]{8,}`)

// ScrubSecret removes secret, and anything shaped like an API key, from
// every field of e the client or the logs see (message, type, param, code):
// some upstreams quote the key they rejected ("Incorrect API key provided:
// sk-..."), in the message or elsewhere, and e is passed through.
func ScrubSecret(e *api.Error, secret string) *api.Error {
	if e == nil {
		return nil
	}
	for _, f := range [...]*string{&e.Message, &e.Type, &e.Param, &e.Code} {
		*f = scrub(*f, secret)
	}
	return e
}

// Scrub is ScrubSecret for any error: an *api.Error is scrubbed in place,
// anything else is returned as is (its text is never sent to a client).
func Scrub(err error, secret string) error {
	var e *api.Error
	if errors.As(err, &e) {
		ScrubSecret(e, secret)
	}
	return err
}

func scrub(s, secret string) string {
	if s == "" {
		return s
	}
	if secret != "" && strings.Contains(s, secret) {
		s = strings.ReplaceAll(s, secret, "[redacted]")
	}
	if keyLike.MatchString(s) {
		s = keyLike.ReplaceAllString(s, "[redacted]")
	}
	return s
}

// ParseRetryAfter reads a Retry-After header in seconds or as an HTTP date.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(secs * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
