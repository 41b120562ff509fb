package app_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/edge-agent/edge-agent/internal/config"
	"github.com/edge-agent/edge-agent/internal/provider/simulated"
)

// These tests replay the attack run of issue 12 over real connections:
// clients that announce large bodies and trickle them, and slow bodies.

// rawRequest writes a chat completion's head announcing contentLength
// (or chunked, when negative) on a new connection.
func rawRequest(t testing.TB, url string, contentLength int) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	head := "POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
	if contentLength >= 0 {
		head += fmt.Sprintf("Content-Length: %d\r\n", contentLength)
	} else {
		head += "Transfer-Encoding: chunked\r\n"
	}
	if _, err := io.WriteString(conn, head+"\r\n"); err != nil {
		t.Fatal(err)
	}
	return conn
}

// readAnswer reads one HTTP answer from conn, waiting up to wait.
func readAnswer(conn net.Conn, wait time.Duration) (*http.Response, []byte, error) {
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// liveHeap is the heap in use after a collection: what is still held.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func TestAnnouncedBodiesCannotTakeTheHeap(t *testing.T) {
	const (
		conns     = 100
		announced = 10_000_000 // each announces 10 MB, within MAX_REQUEST_SIZE
		sent      = 256 << 10  // and sends 256 KiB of it before trickling
		budget    = 16 << 20
	)
	s := startSim(t, simulated.Options{})
	cfg := simConfig(s)
	cfg.Cache.Enabled = false
	cfg.LogLevel = "error"
	cfg.MaxBodyMemoryBytes = budget
	cfg.BodyReadTimeout = config.Duration(60 * time.Second) // the test ends the connections itself
	g := startGateway(t, cfg)
	base := liveHeap()

	prefix := []byte(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"`)
	prefix = append(prefix, bytes.Repeat([]byte("a"), sent-len(prefix))...)
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		rejected  int
		bad       []string
		stop      = make(chan struct{})
		connsOpen []net.Conn
	)
	for range conns {
		conn := rawRequest(t, g.URL, announced)
		connsOpen = append(connsOpen, conn)
		wg.Add(2)
		go func() { // the sender: the prefix, then a byte every 100 ms
			defer wg.Done()
			if _, err := conn.Write(prefix); err != nil {
				return // answered and closed by the gateway
			}
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := conn.Write([]byte("a")); err != nil {
						return
					}
				}
			}
		}()
		go func() { // the reader: only a refused body is answered before the end
			defer wg.Done()
			resp, body, err := readAnswer(conn, 2*time.Minute)
			mu.Lock()
			defer mu.Unlock()
			select {
			case <-stop:
				return // the test closed the connection
			default:
			}
			switch {
			case err != nil:
				bad = append(bad, err.Error())
			case resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
				gjson.GetBytes(body, "error.code").Str != "body_memory_exhausted":
				bad = append(bad, fmt.Sprintf("%d %v %s", resp.StatusCode, resp.Header, body))
			default:
				rejected++
			}
		}()
	}

	// Settled: every connection is either refused or holds its prefix.
	var used float64
	deadline := time.Now().Add(60 * time.Second)
	for {
		used = scrapeFamilies(t, g.URL).value("llm_edge_request_body_memory_bytes")
		mu.Lock()
		n, b := rejected, len(bad)
		mu.Unlock()
		if b > 0 || n+int(used)/sent >= conns {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled: %d refused, %.0f bytes held", n, used)
		}
		time.Sleep(50 * time.Millisecond)
	}
	growth := int64(liveHeap()) - int64(base)
	mu.Lock()
	if len(bad) > 0 {
		t.Fatalf("answers other than 503 body_memory_exhausted: %q", bad)
	}
	n := rejected
	mu.Unlock()
	t.Logf("%d connections announcing %d bytes: %d refused with 503, %.1f MiB held by the budget, live heap grew %.1f MiB",
		conns, announced, n, used/(1<<20), float64(growth)/(1<<20))
	// Before: the announcement was reserved, 100 x 10 MB = 1 GB of heap.
	if growth > 64<<20 {
		t.Errorf("live heap grew by %d MiB under %d announcing connections; the budget is %d MiB", growth>>20, conns, budget>>20)
	}
	if used > budget {
		t.Errorf("budget holds %.0f bytes, past its %d", used, budget)
	}
	if want := conns - budget/sent; n < want {
		t.Errorf("%d requests refused, want at least %d past a budget of %d MiB", n, want, budget>>20)
	}
	if f := scrapeFamilies(t, g.URL); f.value("llm_edge_request_body_memory_rejected_total") != float64(n) {
		t.Errorf("llm_edge_request_body_memory_rejected_total = %v, want %d", f.value("llm_edge_request_body_memory_rejected_total"), n)
	}

	mu.Lock()
	close(stop)
	mu.Unlock()
	for _, c := range connsOpen {
		_ = c.Close()
	}
	wg.Wait()
	// Every body given back: the budget returns to 0.
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if v := scrapeFamilies(t, g.URL).value("llm_edge_request_body_memory_bytes"); v == 0 {
			break
		} else if time.Now().After(end) {
			t.Fatalf("budget still holds %v bytes after every connection closed", v)
		}
	}
}

func TestSlowBodiesAreCutWith408(t *testing.T) {
	const (
		conns    = 50
		deadline = 500 * time.Millisecond
	)
	// The provider answers slower than the body deadline: the deadline
	// covers the body only, never the answer.
	s := startSim(t, simulated.Options{TTFT: 2 * deadline, ChunkDelay: 50 * time.Millisecond})
	cfg := simConfig(s)
	cfg.Cache.Enabled = false
	cfg.LogLevel = "error"
	cfg.BodyReadTimeout = config.Duration(deadline)
	g := startGateway(t, cfg)

	streamed := make(chan string, 1)
	go func() {
		// post's t.Fatal must not run off the test's goroutine: report instead.
		req, _ := http.NewRequest(http.MethodPost, g.URL+"/v1/chat/completions",
			strings.NewReader(chat("gpt-4o-mini", "a long answer", `"stream":true`)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			streamed <- err.Error()
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 || !strings.Contains(string(body), "data: [DONE]") {
			streamed <- fmt.Sprintf("stream outlasting the body deadline: %d %v %s", resp.StatusCode, err, body)
			return
		}
		streamed <- ""
	}()

	var wg sync.WaitGroup
	var cut atomic.Int32
	errs := make(chan string, conns)
	for i := range conns {
		// Half announce their length, half are chunked; all send a byte
		// every 100 ms, which would take minutes.
		length := 1000
		if i%2 == 1 {
			length = -1
		}
		conn := rawRequest(t, g.URL, length)
		t.Cleanup(func() { _ = conn.Close() })
		wg.Add(2)
		start := time.Now()
		done := make(chan struct{})
		go func() {
			defer wg.Done()
			for _, b := range []byte(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"` + strings.Repeat("a", 900)) {
				chunk := []byte{b}
				if length < 0 {
					chunk = []byte("1\r\n" + string(b) + "\r\n")
				}
				select {
				case <-done:
					return
				case <-time.After(100 * time.Millisecond):
				}
				if _, err := conn.Write(chunk); err != nil {
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			defer close(done)
			resp, body, err := readAnswer(conn, 30*time.Second)
			took := time.Since(start)
			switch {
			case err != nil:
				errs <- fmt.Sprintf("no answer after %s: %v", took, err)
				return
			case resp.StatusCode != http.StatusRequestTimeout || gjson.GetBytes(body, "error.code").Str != "request_timeout":
				errs <- fmt.Sprintf("%d %s", resp.StatusCode, body)
				return
			case took < deadline:
				errs <- fmt.Sprintf("cut after %s, before the %s deadline", took, deadline)
				return
			}
			// The connection is closed, not kept for another request.
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			if n, err := conn.Read(make([]byte, 1)); err == nil || n > 0 {
				errs <- "connection still open after the 408"
				return
			}
			if took := time.Since(start); took > 15*time.Second {
				errs <- fmt.Sprintf("connection closed only after %s", took)
				return
			}
			cut.Add(1)
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if e := <-streamed; e != "" {
		t.Error(e)
	}
	if cut.Load() != conns {
		t.Fatalf("%d of %d slow bodies cut with 408 and closed", cut.Load(), conns)
	}
}

func TestEncodedRequestBodiesOverHTTP(t *testing.T) {
	s := startSim(t, simulated.Options{})
	cfg := simConfig(s)
	cfg.Cache.Enabled = false
	cfg.MaxRequestSize = 1 << 20
	g := startGateway(t, cfg)
	gz := func(b string) string {
		var out bytes.Buffer
		zw := gzip.NewWriter(&out)
		_, _ = zw.Write([]byte(b))
		_ = zw.Close()
		return out.String()
	}
	// 2 MiB decoded from about 2 KiB sent: decoded past the 1 MiB limit.
	bomb := gz(chat("gpt-4o-mini", strings.Repeat("a", 2<<20)))
	for _, c := range []struct {
		name, body, encoding string
		status               int
		code                 string
	}{
		{"gzip", gz(chat("gpt-4o-mini", "compressed")), "gzip", 200, ""},
		{"gzip bomb", bomb, "gzip", 413, "request_too_large"},
		{"brotli", chat("gpt-4o-mini", "x"), "br", 415, "unsupported_content_encoding"},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, body := post(t, g.URL, c.body, "Content-Encoding: "+c.encoding)
			if resp.StatusCode != c.status || gjson.GetBytes(body, "error.code").Str != c.code {
				t.Fatalf("%d %s, want %d %q", resp.StatusCode, body, c.status, c.code)
			}
			if c.status == 200 && gjson.GetBytes(body, "object").Str != "chat.completion" {
				t.Fatalf("answer %s", body)
			}
		})
	}
}
