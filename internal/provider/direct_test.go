package provider

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// countingServer is an httptest server that counts the connections it
// accepted (unless an option replaces its ConnState).
func countingServer(t *testing.T, h http.HandlerFunc, opts ...func(*http.Server)) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	for _, o := range opts {
		o(srv.Config)
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func newDirectClient(t *testing.T) (*http.Client, *Transport) {
	t.Helper()
	tr := NewTransport(TransportOptions{ConnectTimeout: 2 * time.Second})
	if tr.direct == nil {
		t.Fatal("the direct client is not enabled by default")
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}, tr
}

// waitGone reads the request and waits until the server sees the client
// go (net/http notices only once the body was read), or 10 s.
func waitGone(r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	select {
	case <-r.Context().Done():
	case <-time.After(10 * time.Second):
	}
}

func echo(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Method", r.Method)
	_, _ = w.Write(b)
}

func post(t *testing.T, ctx context.Context, c *http.Client, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp.StatusCode, string(b)
}

func TestDirectReusesConnections(t *testing.T) {
	srv, conns := countingServer(t, echo)
	c, _ := newDirectClient(t)
	for i := range 50 {
		body := strings.Repeat("x", i*100)
		if code, got := post(t, t.Context(), c, srv.URL, body); code != 200 || got != body {
			t.Fatalf("request %d: status %d, body of %d bytes, want 200 and %d bytes", i, code, len(got), len(body))
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("50 sequential calls opened %d connections, want 1", n)
	}

	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 25 {
				body := strings.Repeat(string(rune('a'+g)), 10+i)
				req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(body))
				resp, err := c.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != body {
					t.Errorf("goroutine %d got %q, want %q: answers crossed", g, b, body)
				}
			}
		})
	}
	wg.Wait()
	if n := conns.Load(); n > 1+8 {
		t.Errorf("8 concurrent callers opened %d connections, want at most 9", n)
	}
}

func TestDirectServerClosedIdleConnection(t *testing.T) {
	srv, conns := countingServer(t, echo, func(s *http.Server) { s.IdleTimeout = 20 * time.Millisecond })
	c, _ := newDirectClient(t)
	for i := range 3 {
		if code, got := post(t, t.Context(), c, srv.URL, "hello"); code != 200 || got != "hello" {
			t.Fatalf("request %d: %d %q", i, code, got)
		}
		// The server closes the connection while it is in our pool; the next
		// call must see that and not fail.
		time.Sleep(100 * time.Millisecond)
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("opened %d connections, want 3 (one per idle timeout)", n)
	}
	srv.CloseClientConnections()
	if code, got := post(t, t.Context(), c, srv.URL, "again"); code != 200 || got != "again" {
		t.Fatalf("after the server closed every connection: %d %q", code, got)
	}
}

func TestDirectCancelClosesUpstream(t *testing.T) {
	started := make(chan struct{})
	upstreamDone := make(chan struct{})
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		close(started)
		waitGone(r)
		if r.Context().Err() != nil { // the connection closing ended it
			close(upstreamDone)
		}
	})
	c, _ := newDirectClient(t)
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader("{}"))
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-started
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the call did not return after its context was cancelled")
	}
	select {
	case <-upstreamDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream did not see the call cancelled")
	}
}

func TestDirectStreamsAsSent(t *testing.T) {
	release := make(chan struct{})
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		<-release
		_, _ = io.WriteString(w, "data: two\n\ndata: [DONE]\n\n")
	})
	c, _ := newDirectClient(t)
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("{}"))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ContentLength != -1 || len(resp.TransferEncoding) == 0 {
		t.Fatalf("want a chunked answer, got length %d, encoding %v", resp.ContentLength, resp.TransferEncoding)
	}
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: one\n" {
		t.Fatalf("first event: %q, %v (it must arrive before the server sends the next)", line, err)
	}
	close(release)
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "\ndata: two\n\ndata: [DONE]\n\n" {
		t.Fatalf("rest: %q, %v", rest, err)
	}
	if n, err := resp.Body.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Fatalf("read after the end: %d, %v; want 0, EOF", n, err)
	}
	resp.Body.Close()
	if code, got := post(t, t.Context(), c, srv.URL, "x"); code != 200 || got != "data: one\n\ndata: two\n\ndata: [DONE]\n\n" {
		t.Fatalf("next call: %d %q", code, got)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("opened %d connections, want 1: a stream read to its end gives its connection back", n)
	}
}

func TestDirectEarlyCloseDropsConnection(t *testing.T) {
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(bytes.Repeat([]byte("y"), 1<<20))
	})
	c, _ := newDirectClient(t)
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("{}"))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := resp.Body.Read(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, err := resp.Body.Read(make([]byte, 100)); !errors.Is(err, http.ErrBodyReadAfterClose) {
		t.Fatalf("read after Close: %v, want ErrBodyReadAfterClose", err)
	}
	code, got := post(t, t.Context(), c, srv.URL, "")
	if code != 200 || len(got) != 1<<20 {
		t.Fatalf("next call: %d, %d bytes", code, len(got))
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("opened %d connections, want 2: a half-read answer must not be reused", n)
	}
}

func TestDirectCloseWhileReading(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-hold:
		case <-r.Context().Done():
		}
	})
	c, _ := newDirectClient(t)
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("{}"))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if _, err := resp.Body.Read(buf); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := resp.Body.Read(buf) // blocks: the server sends nothing more
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	resp.Body.Close()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("a Read blocked when the body was closed returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock a Read")
	}
}

func TestDirectAnswerBeforeTheWholeRequest(t *testing.T) {
	// The server refuses a body over its limit without reading it, and
	// closes the connection: the client's write fails, and the 413 must
	// still reach the caller (not a "could not reach" error).
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		http.Error(w, `{"error":{"message":"body too large"}}`, http.StatusRequestEntityTooLarge)
	})
	c, _ := newDirectClient(t)
	body := bytes.Repeat([]byte("z"), 32<<20)
	req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("got %v, want the server's 413", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "body too large") {
		t.Fatalf("got %d %q, want 413 and the server's message", resp.StatusCode, b)
	}
}

func TestDirectConnectionClose(t *testing.T) {
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		_, _ = io.WriteString(w, "bye")
	})
	c, _ := newDirectClient(t)
	for range 3 {
		if code, got := post(t, t.Context(), c, srv.URL, ""); code != 200 || got != "bye" {
			t.Fatalf("%d %q", code, got)
		}
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("opened %d connections, want 3: the server asked to close each", n)
	}
}

// rawServer answers every request on a connection with the bytes reply
// returns for it, and counts connections.
func rawServer(t *testing.T, reply func(i int) string) (string, *atomic.Int64) {
	t.Helper()
	return rawServerClosing(t, reply, false)
}

// rawServerClosing is rawServer; closeAfter: it closes each connection
// after its first answer.
func rawServerClosing(t *testing.T, reply func(i int) string, closeAfter bool) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int64
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	var mu sync.Mutex
	var open []net.Conn
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range open {
			c.Close()
		}
	})
	wg.Go(func() {
		for i := 0; ; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			wg.Go(func() {
				br := bufio.NewReader(c)
				for j := 0; ; j++ {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					if _, err := io.WriteString(c, reply(j)); err != nil || closeAfter {
						c.Close()
						return
					}
				}
			})
		}
	})
	return "http://" + ln.Addr().String(), &conns
}

func TestDirectWireCases(t *testing.T) {
	tests := []struct {
		name      string
		reply     string
		wantBody  string
		wantConns int64 // after two calls
	}{
		{"early hints before the answer", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "ok", 1},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n3\r\n!!!\r\n0\r\n\r\n", "ok!!!", 1},
		{"chunked with a trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n2\r\nok\r\n0\r\nX-Sum: 2\r\nX-More: 3\r\n\r\n", "ok", 1},
		{"bytes after the answer", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokJUNK", "ok", 2},
		{"no body", "HTTP/1.1 204 No Content\r\n\r\n", "", 1},
		{"HTTP/1.0 without keep-alive", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", "ok", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, conns := rawServer(t, func(int) string { return tt.reply })
			c, _ := newDirectClient(t)
			for i := range 2 {
				if _, got := post(t, t.Context(), c, url, "{}"); got != tt.wantBody {
					t.Fatalf("call %d: body %q, want %q", i, got, tt.wantBody)
				}
			}
			if n := conns.Load(); n != tt.wantConns {
				t.Errorf("opened %d connections, want %d", n, tt.wantConns)
			}
		})
	}
}

// TestDirectChunkedBodyThatDoesNotEndCleanly: a chunked body cut inside
// its trailer, or with a trailer past the read buffer, is an error to its
// reader, and its connection is not used again.
func TestDirectChunkedBodyThatDoesNotEndCleanly(t *testing.T) {
	head := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"
	tests := []struct {
		name, reply string
		want        error
	}{
		{"cut in the trailer", head + "X-Sum: 2\r\n", io.ErrUnexpectedEOF},
		{"trailer past the buffer", head + "X-Long: " + strings.Repeat("a", directBufSize) + "\r\n\r\n", errLongTrailer},
		{"many trailer lines past the buffer", head + strings.Repeat("X-A: 1\r\n", directBufSize/8) + "\r\n", errLongTrailer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A body cut short is one whose connection closes.
			url, conns := rawServerClosing(t, func(int) string { return tt.reply }, tt.want == io.ErrUnexpectedEOF)
			c, _ := newDirectClient(t)
			for i := range 2 {
				req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader("{}"))
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if !errors.Is(err, tt.want) || string(b) != "ok" {
					t.Fatalf("call %d: %q, %v; want ok and %v", i, b, err, tt.want)
				}
			}
			if n := conns.Load(); n != 2 {
				t.Errorf("opened %d connections, want 2 (none used again)", n)
			}
		})
	}
}

func TestDirectMalformedAnswer(t *testing.T) {
	url, _ := rawServer(t, func(int) string { return "NOT HTTP\r\n\r\n" })
	c, _ := newDirectClient(t)
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader("{}"))
	resp, err := c.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatal("a malformed answer was accepted")
	}
}

func TestDirectConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	c, _ := newDirectClient(t)
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader("{}"))
	_, err = c.Do(req)
	if err == nil {
		t.Fatal("a call to a closed port succeeded")
	}
	if e := TransportError(t.Context(), "local", err); e.Status != http.StatusBadGateway || e.Code != "upstream_connection_refused" {
		t.Errorf("mapped to %d %s, want 502 upstream_connection_refused", e.Status, e.Code)
	}
}

func TestDirectDeadline(t *testing.T) {
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) { waitGone(r) })
	c, _ := newDirectClient(t)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader("{}"))
	_, err := c.Do(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want DeadlineExceeded", err)
	}
	if e := TransportError(ctx, "local", err); e.Status != http.StatusGatewayTimeout {
		t.Errorf("mapped to %d, want 504", e.Status)
	}
}

func TestStdOnlyAndHTTPS(t *testing.T) {
	srv, _ := countingServer(t, echo)
	tr := NewTransport(TransportOptions{StdOnly: true})
	defer tr.CloseIdleConnections()
	if tr.direct != nil {
		t.Fatal("StdOnly left the direct client on")
	}
	c := &http.Client{Transport: tr}
	if code, got := post(t, t.Context(), c, srv.URL, "std"); code != 200 || got != "std" {
		t.Fatalf("%d %q", code, got)
	}
	if tr := NewTransport(TransportOptions{MaxConnsPerHost: 4}); tr.direct != nil {
		t.Error("MaxConnsPerHost needs http.Transport, but the direct client is on")
	}
	if tr := NewTransport(TransportOptions{ResponseHeaderTimeout: time.Second}); tr.direct != nil {
		t.Error("ResponseHeaderTimeout needs http.Transport, but the direct client is on")
	}
	d, _ := newDirectClient(t)
	if a := d.Transport.(*Transport).directAddr(httptest.NewRequest("GET", "http://example.test/v1", nil)); a != "example.test:80" {
		t.Errorf("dial address %q, want example.test:80", a)
	}
}

func TestDirectClosesConnectionsIdlePastTheTimeout(t *testing.T) {
	closed := make(chan struct{}, 16)
	srv, _ := countingServer(t, echo, func(s *http.Server) {
		s.ConnState = func(_ net.Conn, st http.ConnState) {
			if st == http.StateClosed {
				closed <- struct{}{}
			}
		}
	})
	tr := NewTransport(TransportOptions{IdleConnTimeout: 30 * time.Millisecond})
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	if code, got := post(t, t.Context(), c, srv.URL, "x"); code != 200 || got != "x" {
		t.Fatalf("%d %q", code, got)
	}
	select {
	case <-closed: // our side closed the idle connection, unasked
	case <-time.After(5 * time.Second):
		t.Fatal("a connection idle past IdleConnTimeout was not closed")
	}
	tr.direct.mu.Lock()
	n := len(tr.direct.idle[srv.Listener.Addr().String()])
	tr.direct.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d connections left in the pool", n)
	}
}

// TestDirectStreamHoldsOnlyASmallReadBuffer: a gateway holds thousands of
// streams at once, one upstream connection each, so a connection in use
// holds one read buffer of directBufSize and no write buffer, and an idle
// one holds none; buffers and connections are reused, and bodies, header
// lines and answers larger than the buffers still pass whole.
func TestDirectStreamHoldsOnlyASmallReadBuffer(t *testing.T) {
	release := make(chan struct{})
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Long", strings.Repeat("h", 3*directBufSize))
		w.Header().Set("X-Got", strconv.Itoa(len(b)))
		_, _ = w.Write([]byte("data: first\n\n"))
		http.NewResponseController(w).Flush()
		if r.URL.Path == "/hold" {
			<-release
		}
		_, _ = w.Write(bytes.Repeat([]byte("z"), 5*directBufSize))
	})
	c, tr := newDirectClient(t)
	big := strings.Repeat("b", 10*directBufSize)

	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/hold", strings.NewReader(big))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	dc := resp.Body.(*directBody).dc
	if dc.br == nil || dc.br.Size() != directBufSize {
		t.Fatalf("a connection in use holds a read buffer of %d bytes, want %d", bufSize(dc.br), directBufSize)
	}
	if got := resp.Header.Get("X-Got"); got != strconv.Itoa(len(big)) {
		t.Errorf("the server read %s bytes of a %d-byte body", got, len(big))
	}
	if got := len(resp.Header.Get("X-Long")); got != 3*directBufSize {
		t.Errorf("a header line of %d bytes arrived with %d", 3*directBufSize, got)
	}
	close(release)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || len(b) != len("data: first\n\n")+5*directBufSize {
		t.Fatalf("answer: %d bytes, %v", len(b), err)
	}

	tr.direct.mu.Lock()
	idle := append([]*dconn(nil), tr.direct.idle[dc.addr]...)
	tr.direct.mu.Unlock()
	if len(idle) != 1 || idle[0] != dc {
		t.Fatalf("idle pool holds %d connections, want the one just used", len(idle))
	}
	if dc.br != nil {
		t.Errorf("an idle connection still holds a %d-byte read buffer", dc.br.Size())
	}
	for i := range 3 {
		if code, got := post(t, t.Context(), c, srv.URL, big); code != 200 || len(got) != len("data: first\n\n")+5*directBufSize {
			t.Fatalf("call %d on the reused connection: %d, %d bytes", i, code, len(got))
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("4 sequential calls opened %d connections, want 1", n)
	}
}

func bufSize(br *bufio.Reader) int {
	if br == nil {
		return 0
	}
	return br.Size()
}

// TestDirectStreamWaitsForItsNextEventWithoutAReadBuffer: WaitRead (what an
// SSE reader calls between events) gives the connection's read buffer back
// while nothing is there, and returns with the next bytes read whole.
func TestDirectStreamWaitsForItsNextEventWithoutAReadBuffer(t *testing.T) {
	release := make(chan struct{})
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		<-release
		_, _ = io.WriteString(w, "data: two\n\n")
	})
	c, _ := newDirectClient(t)
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("{}"))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b := resp.Body.(*directBody)
	one := make([]byte, len("data: one\n\n"))
	if _, err := io.ReadFull(b, one); err != nil || string(one) != "data: one\n\n" {
		t.Fatalf("first event %q, %v", one, err)
	}
	// The buffer the connection holds when a read that must not block
	// finds nothing, seen by the goroutine that waits.
	held := make(chan int, 8)
	try := b.dc.try
	b.dc.try = func(fd uintptr) bool {
		ok := try(fd)
		if !ok {
			select {
			case held <- bufSize(b.dc.br):
			default:
			}
		}
		return ok
	}
	waited := make(chan error, 1)
	go func() { waited <- b.WaitRead() }()
	select {
	case n := <-held:
		if n != 0 {
			t.Errorf("the connection held a %d-byte read buffer while it waited", n)
		}
	case err := <-waited:
		t.Fatalf("WaitRead returned (%v) before the upstream sent anything", err)
	case <-time.After(10 * time.Second):
		t.Fatal("WaitRead did not try a read")
	}
	select {
	case err := <-waited:
		t.Fatalf("WaitRead returned (%v) before the upstream sent anything", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-waited; err != nil {
		t.Fatalf("WaitRead: %v", err)
	}
	if n := b.dc.br.Buffered(); n == 0 {
		t.Error("WaitRead returned without the bytes that woke it read")
	}
	rest, err := io.ReadAll(b)
	if err != nil || string(rest) != "data: two\n\n" {
		t.Fatalf("after the wait: %q, %v", rest, err)
	}
}

// TestDirectCancelWhileWaitingForTheNextEvent: a context that ends while
// the body waits without its buffer ends the wait and the call, as it
// ends a blocked Read.
func TestDirectCancelWhileWaitingForTheNextEvent(t *testing.T) {
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		waitGone(r)
	})
	c, _ := newDirectClient(t)
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader("{}"))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b := resp.Body.(*directBody)
	if _, err := io.ReadFull(b, make([]byte, len("data: one\n\n"))); err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(20*time.Millisecond, cancel)
	if err := b.WaitRead(); err == nil {
		t.Fatal("WaitRead returned nil after its context ended")
	}
	if _, err := b.Read(make([]byte, 8)); err == nil {
		t.Fatal("Read after the cancelled wait returned no error")
	}
}

// TestStreamBodyLetsTheRestOfTheAnswerGo: a stream keeps only its body;
// net/http's body would otherwise hold the header map and the request to
// the stream's end.
func TestStreamBodyLetsTheRestOfTheAnswerGo(t *testing.T) {
	body := io.NopCloser(strings.NewReader("data: x\n\n"))
	resp := &http.Response{Header: http.Header{"X-A": {"1"}}, Request: &http.Request{}, Body: body}
	if got := StreamBody(resp); got != body {
		t.Fatal("StreamBody did not return the body")
	}
	if resp.Header != nil || resp.Request != nil {
		t.Fatalf("still held: header %v, request %v", resp.Header, resp.Request)
	}
}
