package gateway

// Reading a request body under the gateway's bounds: its size
// (MaxBodyBytes, 413), the server-wide memory budget (503), the read
// deadline (408), and its Content-Encoding (gzip and deflate decoded
// within the size bound, anything else 415).

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/edge-agent/edge-agent/internal/api"
)

// DefaultBodyMemory is the body memory budget when none is configured.
const DefaultBodyMemory = 256 << 20

// DefaultBodyReadTimeout is the body read deadline when none is configured.
const DefaultBodyReadTimeout = 30 * time.Second

const (
	// maxInitialGrow caps what a Content-Length makes readBody allocate
	// before any byte arrived: the header is the client's word, the bytes
	// are not here yet. 16 KiB holds most chat requests in one buffer and
	// is about what net/http already spends on each connection.
	maxInitialGrow = 16 << 10
	minRead        = 4096
	// bodyRetryAfter is the Retry-After of a 503 for an exhausted budget:
	// bodies are read in seconds, so the budget frees up in about that.
	bodyRetryAfter = time.Second
)

// BodyBudget bounds the request-body bytes the gateway holds in memory at
// once, across all requests: bytes count from the moment they are read
// until the request's answer is finished (the body is forwarded upstream
// and kept for the cache key until then). Buffers grow by doubling, so the
// heap they take is at most about twice the bytes counted.
type BodyBudget struct {
	limit    int64
	used     atomic.Int64
	rejected atomic.Uint64
}

// NewBodyBudget returns a budget of limit bytes (DefaultBodyMemory if
// limit <= 0).
func NewBodyBudget(limit int64) *BodyBudget {
	if limit <= 0 {
		limit = DefaultBodyMemory
	}
	return &BodyBudget{limit: limit}
}

// Limit is the budget's size in bytes.
func (b *BodyBudget) Limit() int64 { return b.limit }

// Used is the number of body bytes held now.
func (b *BodyBudget) Used() int64 { return b.used.Load() }

// Rejected counts the requests refused because the budget was spent.
func (b *BodyBudget) Rejected() uint64 { return b.rejected.Load() }

// reserve takes n bytes from the budget, or nothing and false when they
// would not fit (and counts the refusal).
func (b *BodyBudget) reserve(n int64) bool {
	if b.used.Add(n) > b.limit {
		b.used.Add(-n)
		b.rejected.Add(1)
		return false
	}
	return true
}

func (b *BodyBudget) release(n int64) {
	if n != 0 {
		b.used.Add(-n)
	}
}

// errBodyMemory is the answer to a body past the budget. It is shared: an
// *api.Error is never modified once made.
var errBodyMemory = &api.Error{Status: http.StatusServiceUnavailable, Type: api.TypeOverloaded, Code: "body_memory_exhausted",
	Message: "the gateway is holding as many request bodies as its memory budget allows; retry shortly", RetryAfter: bodyRetryAfter}

// readBody reads x's request body into buf. On success it also returns
// the bytes it took from the budget, which the caller gives back when the
// answer is finished (putBuffer); on an error it has given them back.
func (x *exchange) readBody(buf *bytes.Buffer) (body []byte, held int64, err error) {
	g, r := x.g, x.r
	limit := g.o.MaxBodyBytes
	if r.ContentLength > limit {
		return nil, 0, &http.MaxBytesError{Limit: limit}
	}
	// The deadline covers the whole body, the decoder's header included,
	// and nothing after it: it is cleared once the body is in, so that a
	// long answer is never cut by it (net/http's HTTP/1 server also clears
	// it when it starts watching the connection after the body; this does
	// not rely on that). On an error it stays, so that net/http's discard
	// of the rest of the body cannot hang either.
	var rc *http.ResponseController
	if d := g.o.BodyReadTimeout; d > 0 {
		rc = http.NewResponseController(x.w)
		if rc.SetReadDeadline(time.Now().Add(d)) != nil {
			rc = nil // not a connection (a recorder in tests): no deadline to keep
		}
	}
	src, err := x.bodySource()
	if err == nil {
		body, err = readBounded(buf, src, r.ContentLength, limit, g.o.BodyBudget, &held)
	}
	if err != nil {
		g.o.BodyBudget.release(held)
		return nil, 0, x.bodyError(err)
	}
	if rc != nil {
		_ = rc.SetReadDeadline(time.Time{})
	}
	return body, held, nil
}

// bodySource is the request body as the gateway reads it: decoded when it
// came with Content-Encoding gzip or deflate. An encoded body is bounded
// on the wire too (MaxBodyBytes, as the decoded one), so that a stream of
// empty gzip members cannot keep the reader busy.
func (x *exchange) bodySource() (io.Reader, error) {
	ce := x.r.Header["Content-Encoding"]
	if len(ce) == 0 {
		return x.r.Body, nil
	}
	coding, err := contentCoding(ce)
	if err != nil {
		x.w.Header().Set("Accept-Encoding", "gzip, deflate") // RFC 9110 15.5.16: what a 415 would accept
		return nil, err
	}
	if coding == "" {
		return x.r.Body, nil
	}
	wire := http.MaxBytesReader(x.w, x.r.Body, x.g.o.MaxBodyBytes)
	if coding == "gzip" {
		zr, err := gzip.NewReader(wire)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, nil
	}
	zr, err := zlib.NewReader(wire)
	if err != nil {
		return nil, fmt.Errorf("deflate: %w", err)
	}
	return zr, nil
}

// contentCoding reads the Content-Encoding header lines: "" for identity,
// "gzip" or "deflate", or a 415 for any other coding or a stack of them.
func contentCoding(values []string) (string, error) {
	coding := ""
	for _, v := range values {
		for c := range strings.SplitSeq(v, ",") {
			c = strings.ToLower(strings.TrimSpace(c))
			switch c {
			case "", "identity":
				continue
			case "gzip", "x-gzip":
				c = "gzip"
			case "deflate":
			default:
				return "", unsupportedEncoding(c)
			}
			if coding != "" {
				return "", unsupportedEncoding(coding + ", " + c)
			}
			coding = c
		}
	}
	return coding, nil
}

func unsupportedEncoding(c string) *api.Error {
	if len(c) > 32 {
		c = c[:32] + "..."
	}
	return &api.Error{Status: http.StatusUnsupportedMediaType, Type: api.TypeInvalidRequest, Code: "unsupported_content_encoding",
		Message: fmt.Sprintf("Content-Encoding %q is not supported; send the body as identity, gzip or deflate", c)}
}

// readBounded reads src into buf as its bytes arrive: contentLength (the
// client's announcement, -1 if none) only sizes the first read, up to
// maxInitialGrow. Past limit bytes it fails with *http.MaxBytesError;
// every byte read is taken from budget first and added to *held.
func readBounded(buf *bytes.Buffer, src io.Reader, contentLength, limit int64, budget *BodyBudget, held *int64) ([]byte, error) {
	first := minRead // the pooled buffers also carry the answers: keep them this big
	if contentLength > 0 {
		// +1: room for the read that reports EOF, so a body of the
		// announced size needs no second buffer.
		first = max(first, int(min(contentLength, maxInitialGrow))+1)
	}
	buf.Grow(first)
	for {
		if buf.Available() == 0 {
			buf.Grow(minRead)
		}
		b := buf.AvailableBuffer()
		n, err := src.Read(b[:cap(b)])
		if n > 0 {
			if !budget.reserve(int64(n)) {
				return nil, errBodyMemory
			}
			*held += int64(n)
			buf.Write(b[:n])
			if int64(buf.Len()) > limit {
				return nil, &http.MaxBytesError{Limit: limit}
			}
		}
		if err == io.EOF {
			return buf.Bytes(), nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// bodyError turns a failed body read into the client's answer. A body
// that missed its deadline is a 408 on a connection that is then closed:
// the client may still be sending it.
func (x *exchange) bodyError(err error) error {
	var ae *api.Error
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae), errors.As(err, &mbe):
		return err
	case isTimeout(err):
		x.w.Header().Set("Connection", "close")
		return &api.Error{Status: http.StatusRequestTimeout, Type: api.TypeInvalidRequest, Code: "request_timeout",
			Message: fmt.Sprintf("the request body did not arrive within %s", x.g.o.BodyReadTimeout), Err: err}
	}
	return api.InvalidRequest("", "could not read the request body: %v", err)
}

// isTimeout reports a read deadline: os.ErrDeadlineExceeded from HTTP/1
// and HTTP/2 alike, or any net.Error that says it timed out.
func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
