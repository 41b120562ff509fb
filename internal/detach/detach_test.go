package detach_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edge-agent/edge-agent/internal/detach"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// countingListener counts the connections the kernel accepted.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// server is an http.Server on a detach.Listener whose handler detaches
// every request whose path starts with /detach and answers it with answer,
// in a goroutine of its own; other paths are answered through net/http.
type server struct {
	url      string
	accepted *countingListener
	d        *detach.Detacher
	srv      *http.Server
	cancel   context.CancelCauseFunc
	errs     chan error // Detach's errors
}

// forEachWatch runs f with the clients watched by the poller (where there
// is one) and by a goroutine each; startServer reads which from the name.
func forEachWatch(t *testing.T, f func(t *testing.T)) {
	t.Run("poller", f)
	t.Run("goroutine", f)
}

func startServer(t *testing.T, answer func(rw *detach.Response, r *http.Request)) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base, cancel := context.WithCancelCause(context.Background())
	s := &server{url: "http://" + ln.Addr().String(), accepted: &countingListener{Listener: ln}, cancel: cancel,
		errs: make(chan error, 16)}
	dln := detach.NewListener(s.accepted, 2*time.Second)
	s.d = detach.New(base, dln)
	goroutines := strings.HasSuffix(t.Name(), "/goroutine")
	if goroutines {
		detach.WatchWithGoroutines(s.d)
	}
	s.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second,
		BaseContext: func(net.Listener) context.Context { return detach.NewContext(base, s.d) },
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("X-Before", "set before detaching")
			if !strings.HasPrefix(r.URL.Path, "/detach") {
				_, _ = io.WriteString(w, "through net/http "+r.URL.Path)
				return
			}
			rw, err := detach.FromContext(r.Context()).Detach(r.Context(), w, r)
			if err != nil {
				s.errs <- err
				http.Error(w, "not detached: "+err.Error(), http.StatusTeapot)
				return
			}
			if want := runtime.GOOS == "linux" && !goroutines; detach.Polled(rw) != want {
				t.Errorf("watched by the poller: %v, want %v", detach.Polled(rw), want)
			}
			go func() {
				defer rw.Close()
				answer(rw, r)
			}()
		})}
	done := make(chan struct{})
	go func() { defer close(done); _ = s.srv.Serve(dln) }()
	t.Cleanup(func() {
		ctx, stop := context.WithTimeout(context.Background(), 5*time.Second)
		defer stop()
		_ = s.srv.Shutdown(ctx)
		if err := s.d.Wait(ctx); err != nil {
			t.Errorf("detached responses still open after shutdown: %d", s.d.Active())
		}
		cancel(nil)
		<-done
	})
	return s
}

func streamAnswer(rw *detach.Response, r *http.Request) {
	rw.Header().Set("Content-Type", "text/event-stream")
	for i := range 3 {
		fmt.Fprintf(rw, "data: %d %s\n\n", i, r.URL.Path)
		rw.Flush()
	}
}

// TestDetachedStreamIsChunkedAndItsConnectionServesTheNextRequest: a
// detached response is chunked once flushed, carries the headers set before
// Detach and a Date, and its connection is handed back to the server, which
// serves the next requests on it (one TCP connection for all).
func TestDetachedStreamIsChunkedAndItsConnectionServesTheNextRequest(t *testing.T) {
	forEachWatch(t, func(t *testing.T) {
		s := startServer(t, streamAnswer)
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr}
		for i, path := range []string{"/detach/1", "/detach/2", "/plain", "/detach/3"} {
			var reused bool
			ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
				GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused }})
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.url+path, strings.NewReader(`{"stream":true}`))
			resp, err := c.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("%s: reading: %v", path, err)
			}
			if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Before") != "set before detaching" || resp.Header.Get("Date") == "" {
				t.Fatalf("%s: %d %v", path, resp.StatusCode, resp.Header)
			}
			if strings.HasPrefix(path, "/detach") {
				want := fmt.Sprintf("data: 0 %[1]s\n\ndata: 1 %[1]s\n\ndata: 2 %[1]s\n\n", path)
				if string(body) != want || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
					t.Fatalf("%s: body %q, transfer encoding %v", path, body, resp.TransferEncoding)
				}
				if resp.Header.Get("Content-Type") != "text/event-stream" {
					t.Errorf("%s: content type %q", path, resp.Header.Get("Content-Type"))
				}
			} else if string(body) != "through net/http "+path {
				t.Fatalf("%s: %q", path, body)
			}
			if i > 0 && !reused {
				t.Errorf("%s: a new connection; want the one the detached response handed back", path)
			}
		}
		if n := s.accepted.n.Load(); n != 1 {
			t.Errorf("%d connections accepted, want 1", n)
		}
	})
}

// TestAnswerWrittenWholeGoesWithContentLength: a response that never
// flushes is sent at Close with its Content-Length, not chunked; the status
// and a sniffed Content-Type are kept.
func TestAnswerWrittenWholeGoesWithContentLength(t *testing.T) {
	forEachWatch(t, func(t *testing.T) {
		s := startServer(t, func(rw *detach.Response, r *http.Request) {
			rw.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(rw, `{"error":"slow down"}`)
		})
		resp, err := http.Post(s.url+"/detach", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusTooManyRequests || string(body) != `{"error":"slow down"}` ||
			resp.ContentLength != int64(len(body)) || len(resp.TransferEncoding) != 0 {
			t.Fatalf("%d %q length %d encoding %v", resp.StatusCode, body, resp.ContentLength, resp.TransferEncoding)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("sniffed content type %q", ct)
		}
		http.DefaultClient.CloseIdleConnections()
	})
}

// TestHeadersSetAfterTheyWereSentChangeNothing: once the headers are on
// the wire the Response lets its header map go; what is set afterwards
// goes nowhere, as with net/http.
func TestHeadersSetAfterTheyWereSentChangeNothing(t *testing.T) {
	forEachWatch(t, func(t *testing.T) {
		s := startServer(t, func(rw *detach.Response, r *http.Request) {
			rw.Header().Set("X-Early", "sent")
			_, _ = io.WriteString(rw, "data: one\n\n")
			rw.Flush()
			if h := rw.Header(); len(h) != 0 {
				t.Errorf("after the flush, Header holds %v", h)
			}
			rw.Header().Set("X-Late", "dropped")
			_, _ = io.WriteString(rw, "data: two\n\n")
		})
		resp, err := http.Post(s.url+"/detach", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if string(body) != "data: one\n\ndata: two\n\n" || resp.Header.Get("X-Early") != "sent" ||
			resp.Header.Get("X-Late") != "" || resp.Trailer.Get("X-Late") != "" {
			t.Fatalf("body %q, headers %v, trailers %v", body, resp.Header, resp.Trailer)
		}
		http.DefaultClient.CloseIdleConnections()
	})
}

// TestHandlersContentLengthIsKept: a Content-Length the handler set is
// sent, the body is not chunked, and writing past it fails.
func TestHandlersContentLengthIsKept(t *testing.T) {
	forEachWatch(t, func(t *testing.T) {
		werr := make(chan error, 1)
		s := startServer(t, func(rw *detach.Response, r *http.Request) {
			rw.Header().Set("Content-Length", "5")
			_, _ = io.WriteString(rw, "hello")
			rw.Flush()
			_, err := io.WriteString(rw, "!")
			werr <- err
		})
		resp, err := http.Post(s.url+"/detach", "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "hello" || resp.ContentLength != 5 || len(resp.TransferEncoding) != 0 {
			t.Fatalf("%q length %d encoding %v", body, resp.ContentLength, resp.TransferEncoding)
		}
		if err := <-werr; !errors.Is(err, http.ErrContentLength) {
			t.Errorf("write past Content-Length: %v", err)
		}
		http.DefaultClient.CloseIdleConnections()
	})
}

// rawRequest is a request written by hand on its own connection.
func rawRequest(path, extra string) string {
	return "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n" + extra + "\r\n{}"
}

// TestPipelinedRequestIsServedAfterTheDetachedResponse: bytes of the next
// request read with the detached one are served, in order, on the handed
// back connection.
func TestPipelinedRequestIsServedAfterTheDetachedResponse(t *testing.T) {
	forEachWatch(t, func(t *testing.T) {
		s := startServer(t, streamAnswer)
		_, br := s.send(t, rawRequest("/detach/a", "")+rawRequest("/plain", "")+rawRequest("/detach/b", ""))
		for _, want := range []string{"data: 0 /detach/a", "through net/http /plain", "data: 0 /detach/b"} {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("waiting for %q: %v", want, err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || !strings.HasPrefix(string(body), want) {
				t.Fatalf("got %q (%v), want %q first", body, err, want)
			}
		}
	})
}

// TestClientLeavingEndsTheContext: the detached response's context ends,
// with context.Canceled, when the client closes its connection.
func TestClientLeavingEndsTheContext(t *testing.T) {
	forEachWatch(t, func(t *testing.T) {
		ended := make(chan error, 1)
		s := startServer(t, func(rw *detach.Response, r *http.Request) {
			select {
			case <-rw.Context().Done():
				ended <- context.Cause(rw.Context())
			case <-time.After(10 * time.Second):
				ended <- errors.New("the context did not end")
			}
		})
		conn, _ := s.send(t, rawRequest("/detach", ""))
		waitFor(t, func() bool { return s.d.Active() == 1 })
		conn.Close()
		if err := <-ended; !errors.Is(err, context.Canceled) {
			t.Fatalf("cause %v, want context.Canceled", err)
		}
	})
}

// TestBaseEndsTheContextWithItsCause: the server's hard stop reaches every
// detached response with its reason.
func TestBaseEndsTheContextWithItsCause(t *testing.T) {
	forEachWatch(t, func(t *testing.T) {
		stopped := errors.New("the gateway is shutting down")
		ended := make(chan error, 1)
		s := startServer(t, func(rw *detach.Response, r *http.Request) {
			<-rw.Context().Done()
			ended <- context.Cause(rw.Context())
			_, _ = io.WriteString(rw, "stopped")
		})
		res := make(chan string, 1)
		go func() {
			resp, err := http.Post(s.url+"/detach", "text/plain", strings.NewReader("x"))
			if err != nil {
				res <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			res <- string(b)
		}()
		waitFor(t, func() bool { return s.d.Active() == 1 })
		s.cancel(stopped)
		if err := <-ended; err != stopped {
			t.Fatalf("cause %v, want %v", err, stopped)
		}
		if got := <-res; got != "stopped" {
			t.Errorf("client read %q", got)
		}
		http.DefaultClient.CloseIdleConnections()
	})
}

// TestConnectionCloseIsHonored: a client that asked for Connection: close
// gets it said back, and the connection ends after the response.
func TestConnectionCloseIsHonored(t *testing.T) {
	forEachWatch(t, func(t *testing.T) {
		s := startServer(t, streamAnswer)
		_, br := s.send(t, rawRequest("/detach", "Connection: close\r\n"))
		resp := readWhole(t, br)
		if !resp.Close {
			t.Errorf("no Connection: close in %v", resp.Header)
		}
		if n, err := br.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Errorf("after the response: %d bytes, %v; want EOF", n, err)
		}
	})
}

// TestHTTP10IsNotDetached: an HTTP/1.0 request is answered through
// net/http, and Detach says why.
func TestHTTP10IsNotDetached(t *testing.T) {
	forEachWatch(t, func(t *testing.T) {
		s := startServer(t, streamAnswer)
		_, br := s.send(t, "POST /detach HTTP/1.0\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
		resp := readWhole(t, br)
		if resp.StatusCode != http.StatusTeapot {
			t.Errorf("status %d, want the handler's fallback", resp.StatusCode)
		}
		if err := <-s.errs; !errors.Is(err, detach.ErrNotHTTP11) {
			t.Errorf("Detach: %v, want ErrNotHTTP11", err)
		}
	})
}

// TestBodyNotReadToItsEndIsNotDetached: the bytes after an unread body are
// not the next request, so Detach refuses.
func TestBodyNotReadToItsEndIsNotDetached(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dln := detach.NewListener(ln, time.Minute)
	d := detach.New(context.Background(), dln)
	got := make(chan error, 1)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := d.Detach(r.Context(), w, r)
		got <- err
	})}
	go func() { _ = srv.Serve(dln) }()
	defer srv.Close()
	resp, err := http.Post("http://"+ln.Addr().String()+"/", "text/plain", strings.NewReader("unread body"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := <-got; !errors.Is(err, detach.ErrBodyNotAtEnd) {
		t.Fatalf("Detach: %v, want ErrBodyNotAtEnd", err)
	}
	http.DefaultClient.CloseIdleConnections()
}

// TestShutdownWaitsForDetachedResponsesAndClosesTheirConnections: after
// the server's Shutdown, Wait returns once the detached responses end, and
// their connections are closed, not handed back.
func TestShutdownWaitsForDetachedResponsesAndClosesTheirConnections(t *testing.T) {
	forEachWatch(t, func(t *testing.T) {
		release := make(chan struct{})
		s := startServer(t, func(rw *detach.Response, r *http.Request) {
			<-release
			streamAnswer(rw, r)
		})
		_, br := s.send(t, rawRequest("/detach", ""))
		waitFor(t, func() bool { return s.d.Active() == 1 })
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		short, stop := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer stop()
		if err := s.d.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Wait with a response open: %v", err)
		}
		close(release)
		if err := s.d.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		readWhole(t, br)
		if n, err := br.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Errorf("after shutdown: %d bytes, %v; want EOF", n, err)
		}
	})
}

// send writes raw on a new connection to s (closed when the test ends)
// and returns it with a reader of its answers, bounded by 10 s.
func (s *server) send(t *testing.T, raw string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	return conn, bufio.NewReader(conn)
}

// readWhole reads one response and its body.
func readWhole(t *testing.T, br *bufio.Reader) *http.Response {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatal(err)
	}
	return resp
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestShutdownDoesNotWaitForHandedBackConnections: a connection handed back
// after a detached response, waiting for its client's next request, is
// closed when the server shuts down, as an idle keep-alive connection is
// (net/http would wait 5 s for a new connection's first request).
func TestShutdownDoesNotWaitForHandedBackConnections(t *testing.T) {
	forEachWatch(t, func(t *testing.T) {
		s := startServer(t, streamAnswer)
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Post(s.url+"/detach", "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		waitFor(t, func() bool { return s.d.Active() == 0 })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		if err := s.srv.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Shutdown took %v with one handed-back connection idle", d)
		}
	})
}

// TestConnectionWaitingForItsNextRequestIsClosedAtTheIdleTimeout: after a
// detached response the connection waits for its client's next request as
// a keep-alive connection does, up to the listener's idle timeout (2 s
// here), then it is closed.
func TestConnectionWaitingForItsNextRequestIsClosedAtTheIdleTimeout(t *testing.T) {
	forEachWatch(t, func(t *testing.T) {
		s := startServer(t, streamAnswer)
		_, br := s.send(t, rawRequest("/detach", ""))
		readWhole(t, br)
		start := time.Now()
		if n, err := br.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Fatalf("waiting: %d bytes, %v; want EOF", n, err)
		}
		if d := time.Since(start); d < 1500*time.Millisecond || d > 6*time.Second {
			t.Errorf("closed after %v idle, want about 2 s", d)
		}
	})
}

// TestEndBodyEndsTheAnswerBeforeClose: EndBody puts the last bytes and a
// chunked body's end on the wire at once, so the client has its whole
// answer while the handler still works (the cache, the price); a Write
// after it fails, and Close only hands the connection on, which serves
// the next request.
func TestEndBodyEndsTheAnswerBeforeClose(t *testing.T) {
	forEachWatch(t, func(t *testing.T) {
		read := make(chan struct{})
		late := make(chan error, 1)
		s := startServer(t, func(rw *detach.Response, r *http.Request) {
			if r.URL.Path != "/detach/end" {
				streamAnswer(rw, r)
				return
			}
			_, _ = io.WriteString(rw, "data: first\n\n")
			rw.Flush()
			_, _ = io.WriteString(rw, "data: last\n\n")
			if err := rw.EndBody(); err != nil {
				late <- err
				return
			}
			<-read // Close waits for the client to have read the answer
			_, err := io.WriteString(rw, "data: late\n\n")
			late <- err
		})
		conn, br := s.send(t, rawRequest("/detach/end", ""))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		close(read)
		if err != nil || string(body) != "data: first\n\ndata: last\n\n" || len(resp.TransferEncoding) != 1 {
			t.Fatalf("body %q (%v), transfer encoding %v", body, err, resp.TransferEncoding)
		}
		if err := <-late; !errors.Is(err, detach.ErrBodyEnded) {
			t.Fatalf("a write after EndBody: %v, want ErrBodyEnded", err)
		}
		if _, err := io.WriteString(conn, rawRequest("/detach/next", "")); err != nil {
			t.Fatal(err)
		}
		if next := readWhole(t, br); next.StatusCode != http.StatusOK {
			t.Fatalf("the next request on the connection: %d", next.StatusCode)
		}
	})
}
