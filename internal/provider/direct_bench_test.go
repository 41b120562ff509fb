package provider

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkTransport is one POST and its answer over loopback, through
// the direct client and through http.Transport (StdOnly). Client and
// server share the process, so a goroutine hand-off costs less here than
// between a gateway and a separate upstream: compare allocations here and
// CPU per call with scripts/load_compare.sh.
func BenchmarkTransport(b *testing.B) {
	answer := bytes.Repeat([]byte("a"), 400)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header()["Content-Type"] = []string{"application/json"}
		_, _ = w.Write(answer)
	}))
	defer srv.Close()
	body := bytes.Repeat([]byte("q"), 300)
	for _, c := range []struct {
		name string
		std  bool
	}{{"direct", false}, {"std", true}} {
		b.Run(c.name, func(b *testing.B) {
			tr := NewTransport(TransportOptions{StdOnly: c.std})
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			buf := make([]byte, 1024)
			b.ReportAllocs()
			for b.Loop() {
				req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				for {
					if _, err := resp.Body.Read(buf); err != nil {
						break
					}
				}
				resp.Body.Close()
			}
		})
	}
}

// BenchmarkDirectStreamWait is one event of a stream that the reader
// waits for, as a gateway's stream waits between a model's tokens: the
// server writes the next event only once the one before was read, so
// every WaitRead finds nothing and waits (the read buffer back in the
// pool) and the Read after it reads what woke it.
func BenchmarkDirectStreamWait(b *testing.B) {
	next := make(chan bool)
	event := []byte("data: " + string(bytes.Repeat([]byte("e"), 250)) + "\n\n")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = []string{"text/event-stream"}
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for <-next {
			_, _ = w.Write(event)
			w.(http.Flusher).Flush()
		}
	}))
	defer srv.Close()
	tr := NewTransport(TransportOptions{})
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Post(srv.URL, "application/json", bytes.NewReader([]byte("{}")))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body := resp.Body.(*directBody)
	buf := make([]byte, len(event))
	b.ReportAllocs()
	for b.Loop() {
		next <- true
		if err := body.WaitRead(); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(body, buf); err != nil {
			b.Fatal(err)
		}
	}
	close(next)
}
