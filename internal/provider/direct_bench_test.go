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
