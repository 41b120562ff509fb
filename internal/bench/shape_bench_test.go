package bench

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"testing"
)

// BenchmarkClientReadsAnswer measures what net/http's client (the load
// generator's, and every Go SDK's) spends reading one answer: the simulated
// provider's shape (Content-Type, Date, Content-Length) against a gateway
// hit's, which carries the eight more headers the issues require. The
// body is the same 850 bytes in both; docs/benchmarks.md uses the
// difference to explain the load generator's share of a hit's latency.
func BenchmarkClientReadsAnswer(b *testing.B) {
	for _, c := range []struct {
		name  string
		extra string
	}{
		{"provider-shape", ""},
		{"gateway-hit-shape", "X-Cache-Key: 0123456789abcdef0123456789abcdef\r\nX-Cache-Layer: L1\r\nX-Cache-Status: HIT\r\n" +
			"X-Content-Type-Options: nosniff\r\nX-Edge-Overhead-Ms: 0.012\r\nX-Edge-Provider: openai\r\n" +
			"X-Frame-Options: DENY\r\nX-Request-Id: req_0123456789ab_1abc\r\n"},
	} {
		b.Run(c.name, func(b *testing.B) {
			raw := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + c.extra +
				"Date: Fri, 27 Nov 2026 04:23:00 GMT\r\nContent-Length: 850\r\n\r\n" + string(bytes.Repeat([]byte("x"), 850)))
			rd := bytes.NewReader(raw)
			br := bufio.NewReaderSize(rd, 4096)
			b.ReportAllocs()
			for b.Loop() {
				rd.Reset(raw)
				br.Reset(rd)
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					b.Fatal(err)
				}
				if n, _ := io.Copy(io.Discard, resp.Body); n != 850 {
					b.Fatalf("body %d bytes", n)
				}
			}
		})
	}
}
