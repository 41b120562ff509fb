package gateway

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/provider"
	"github.com/edge-agent/edge-agent/internal/route"
)

const smallChat = `{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}`

func TestBodyBudgetRefusesPastItsLimitAndCountsIt(t *testing.T) {
	b := NewBodyBudget(100)
	if !b.reserve(60) || !b.reserve(40) {
		t.Fatal("reservations within the limit refused")
	}
	if b.reserve(1) {
		t.Fatal("a reservation past the limit was granted")
	}
	if b.Used() != 100 || b.Rejected() != 1 {
		t.Fatalf("used %d rejected %d, want 100 and 1", b.Used(), b.Rejected())
	}
	b.release(60)
	if !b.reserve(50) {
		t.Fatal("released bytes are not available again")
	}
	b.release(90)
	if b.Used() != 0 {
		t.Fatalf("used %d after releasing everything", b.Used())
	}
	if NewBodyBudget(0).Limit() != DefaultBodyMemory {
		t.Fatal("a zero limit is not the default budget")
	}
}

// trickle returns its data in pieces of at most size bytes per Read, as a
// slow client's body arrives.
type trickle struct {
	data []byte
	size int
	err  error // returned once data is exhausted; nil: io.EOF
}

func (s *trickle) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), s.size)], s.data)
	s.data = s.data[n:]
	return n, nil
}

func TestAnnouncedContentLengthReservesNothingBeforeBytesArrive(t *testing.T) {
	// The attack: announce 10 MB, send a little, trickle. Memory follows
	// the bytes that came, not the announcement.
	var buf bytes.Buffer
	budget := NewBodyBudget(DefaultBodyMemory)
	var held int64
	_, err := readBounded(&buf, &trickle{data: []byte(smallChat), size: 1, err: os.ErrDeadlineExceeded},
		10_000_000, 10<<20, budget, &held)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
	if buf.Cap() >= 2*maxInitialGrow {
		t.Fatalf("buffer capacity %d for %d bytes received", buf.Cap(), buf.Len())
	}
	if held != int64(len(smallChat)) || budget.Used() != held {
		t.Fatalf("held %d, budget used %d, want %d", held, budget.Used(), len(smallChat))
	}
}

func TestBodyIsReadWhateverTheReadSizes(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789"), 20_000) // 200 kB, past the initial grow
	for _, c := range []struct {
		name          string
		size          int
		contentLength int64
	}{
		{"one byte per read, length announced", 1, int64(len(body))},
		{"one byte per read, chunked", 1, -1},
		{"uneven pieces", 4093, -1},
		{"large pieces", 1 << 20, int64(len(body))},
	} {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			var held int64
			got, err := readBounded(&buf, &trickle{data: body, size: c.size}, c.contentLength, 10<<20, NewBodyBudget(0), &held)
			if err != nil || !bytes.Equal(got, body) || held != int64(len(body)) {
				t.Fatalf("err %v, got %d bytes, held %d", err, len(got), held)
			}
		})
	}
}

// serve sends one request through a gateway and returns the recorder.
func serve(g *Gateway, body io.Reader, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", body)
	for _, h := range header {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Add(k, strings.TrimSpace(v))
	}
	rec := httptest.NewRecorder()
	g.ServeHTTP(rec, req)
	return rec
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func zlibbed(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw := zlib.NewWriter(&out)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// timeoutError is a net.Error that timed out, as some connections report
// their deadline.
type timeoutError struct{}

func (timeoutError) Error() string   { return "read: i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func TestRequestBodiesAnswerWithTheirOwnStatus(t *testing.T) {
	bomb := gzipped(t, append([]byte(`{"model":"gpt-4o","messages":[{"role":"user","content":"`), bytes.Repeat([]byte("a"), 11<<20)...))
	for _, c := range []struct {
		name   string
		body   func() io.Reader
		header []string
		budget int64
		status int
		code   string
	}{
		{"identity", func() io.Reader { return strings.NewReader(smallChat) }, []string{"Content-Encoding: identity"}, 0, 200, ""},
		{"gzip", func() io.Reader { return bytes.NewReader(gzipped(t, []byte(smallChat))) }, []string{"Content-Encoding: gzip"}, 0, 200, ""},
		{"x-gzip", func() io.Reader { return bytes.NewReader(gzipped(t, []byte(smallChat))) }, []string{"Content-Encoding: X-Gzip"}, 0, 200, ""},
		{"deflate", func() io.Reader { return bytes.NewReader(zlibbed(t, []byte(smallChat))) }, []string{"Content-Encoding: deflate"}, 0, 200, ""},
		{"gzip after identity", func() io.Reader { return bytes.NewReader(gzipped(t, []byte(smallChat))) },
			[]string{"Content-Encoding: identity", "Content-Encoding: gzip"}, 0, 200, ""},
		{"gzip bomb", func() io.Reader { return bytes.NewReader(bomb) }, []string{"Content-Encoding: gzip"}, 0, 413, "request_too_large"},
		{"not gzip", func() io.Reader { return strings.NewReader(smallChat) }, []string{"Content-Encoding: gzip"}, 0, 400, ""},
		{"truncated gzip", func() io.Reader { g := gzipped(t, []byte(smallChat)); return bytes.NewReader(g[:len(g)-6]) },
			[]string{"Content-Encoding: gzip"}, 0, 400, ""},
		{"brotli", func() io.Reader { return strings.NewReader(smallChat) }, []string{"Content-Encoding: br"}, 0, 415, "unsupported_content_encoding"},
		{"gzip twice", func() io.Reader { return strings.NewReader(smallChat) }, []string{"Content-Encoding: gzip, gzip"}, 0, 415, "unsupported_content_encoding"},
		{"past the memory budget", func() io.Reader { return strings.NewReader(smallChat) }, nil, 16, 503, "body_memory_exhausted"},
		{"deadline", func() io.Reader { return &trickle{data: []byte(`{"model"`), size: 1, err: os.ErrDeadlineExceeded} }, nil, 0, 408, "request_timeout"},
		{"net.Error timeout", func() io.Reader {
			return &trickle{data: []byte(`{"model"`), size: 3, err: &net.OpError{Op: "read", Net: "tcp", Err: timeoutError{}}}
		}, nil, 0, 408, "request_timeout"},
		{"client went away", func() io.Reader { return &trickle{data: []byte(`{"model"`), size: 3, err: io.ErrUnexpectedEOF} }, nil, 0, 400, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			budget := NewBodyBudget(c.budget)
			g := New(Options{Router: &echoRouter{}, BodyBudget: budget})
			rec := serve(g, c.body(), c.header...)
			if rec.Code != c.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, c.status, rec.Body)
			}
			if c.status != 200 {
				env := gjson.Parse(rec.Body.String())
				if !env.Get("error.message").Exists() || env.Get("error.code").String() != c.code {
					t.Fatalf("envelope %s, want code %q", rec.Body, c.code)
				}
			}
			switch c.status {
			case 408:
				if rec.Header().Get("Connection") != "close" {
					t.Fatal("a 408 must close the connection: the client may still be sending")
				}
			case 415:
				if rec.Header().Get("Accept-Encoding") != "gzip, deflate" {
					t.Fatalf("Accept-Encoding %q on a 415", rec.Header().Get("Accept-Encoding"))
				}
			case 503:
				if rec.Header().Get("Retry-After") == "" || budget.Rejected() != 1 {
					t.Fatalf("Retry-After %q, rejected %d", rec.Header().Get("Retry-After"), budget.Rejected())
				}
			}
			if budget.Used() != 0 {
				t.Fatalf("%d bytes still held by the budget after the answer", budget.Used())
			}
		})
	}
}

func TestBudgetIsHeldUntilTheAnswerIsFinished(t *testing.T) {
	budget := NewBodyBudget(0)
	var during int64
	r := &probeRouter{probe: func() { during = budget.Used() }}
	g := New(Options{Router: r, BodyBudget: budget})
	if rec := serve(g, strings.NewReader(smallChat)); rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if during != int64(len(smallChat)) {
		t.Fatalf("budget held %d bytes during the upstream call, want %d", during, len(smallChat))
	}
	if budget.Used() != 0 {
		t.Fatalf("budget holds %d bytes after the answer", budget.Used())
	}
}

// probeRouter is echoRouter calling probe during the upstream call.
type probeRouter struct {
	echoRouter
	probe func()
}

func (p *probeRouter) ChatCompletion(ctx context.Context, t route.Target, req *provider.Request, f []string) (*provider.Response, error) {
	p.probe()
	return p.echoRouter.ChatCompletion(ctx, t, req, f)
}

func TestContentCodingNamesTheRefusedCoding(t *testing.T) {
	for _, c := range []struct {
		values []string
		want   string
		refuse string
	}{
		{nil, "", ""},
		{[]string{""}, "", ""},
		{[]string{"identity"}, "", ""},
		{[]string{" GZIP "}, "gzip", ""},
		{[]string{"identity, deflate"}, "deflate", ""},
		{[]string{"zstd"}, "", `"zstd"`},
		{[]string{"gzip", "deflate"}, "", `"gzip, deflate"`},
		{[]string{strings.Repeat("x", 100)}, "", `"` + strings.Repeat("x", 32) + `..."`},
	} {
		got, err := contentCoding(c.values)
		if c.refuse != "" {
			if err == nil || !strings.Contains(err.Error(), c.refuse) {
				t.Errorf("%q: err %v, want one naming %s", c.values, err, c.refuse)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: %q %v, want %q", c.values, got, err, c.want)
		}
	}
}

// FuzzReadBody feeds bodies through readBounded in pieces of fuzzed sizes,
// as clients send them: whatever the pieces, the body read is the body
// sent, or a 413 past the limit, and the budget ends where it began.
func FuzzReadBody(f *testing.F) {
	const limit = 1024
	f.Add([]byte(smallChat), []byte{1}, int64(len(smallChat)))        // a slow client: one byte per read
	f.Add(bytes.Repeat([]byte("a"), limit+1), []byte{255}, int64(-1)) // oversized, chunked
	f.Add(bytes.Repeat([]byte("a"), 3*limit), []byte{7, 200}, int64(10_000_000))
	f.Add([]byte{}, []byte{}, int64(0))
	f.Fuzz(func(t *testing.T, body, pieces []byte, contentLength int64) {
		src := &pieceReader{data: body, pieces: pieces}
		budget := NewBodyBudget(4 * limit)
		var buf bytes.Buffer
		var held int64
		got, err := readBounded(&buf, src, contentLength, limit, budget, &held)
		var mbe *http.MaxBytesError
		switch {
		case len(body) > 4*limit && errors.Is(err, errBodyMemory):
		case len(body) > limit:
			if !errors.As(err, &mbe) {
				t.Fatalf("%d bytes past a limit of %d: err %v", len(body), limit, err)
			}
		case err != nil || !bytes.Equal(got, body):
			t.Fatalf("%d bytes: err %v, read %d bytes", len(body), err, len(got))
		}
		if held != budget.Used() || held > int64(len(body)) {
			t.Fatalf("held %d, budget %d, body %d", held, budget.Used(), len(body))
		}
		if buf.Cap() > 2*max(len(body), limit)+maxInitialGrow+minRead+1 {
			t.Fatalf("buffer of %d bytes for a %d-byte body", buf.Cap(), len(body))
		}
		budget.release(held)
		if budget.Used() != 0 {
			t.Fatal(fmt.Sprint("budget not back to 0: ", budget.Used()))
		}
	})
}

// pieceReader returns data in reads whose sizes cycle through pieces (a
// 0 is a read of nothing, never twice in a row).
type pieceReader struct {
	data   []byte
	pieces []byte
	i      int
	empty  bool // the last read returned nothing
}

func (p *pieceReader) Read(b []byte) (int, error) {
	if len(p.data) == 0 {
		return 0, io.EOF
	}
	size := len(p.data)
	if len(p.pieces) > 0 {
		size = int(p.pieces[p.i%len(p.pieces)])
		p.i++
	}
	if size == 0 && p.empty {
		size = 1
	}
	p.empty = size == 0
	n := copy(b[:min(len(b), size)], p.data)
	p.data = p.data[n:]
	return n, nil
}
