package gateway

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// embedBatchBody is an embeddings request of 100 inputs: the 90 warm ones
// (seen before) and 10 of its own, unseen, tagged with n.
func embedBatchBody(n, hits, total int) []byte {
	b := []byte(`{"model":"text-embedding-3-small","input":[`)
	for i := range total {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `"a sentence of some length to embed, as documents are cut, number `...)
		if i < hits {
			b = strconv.AppendInt(b, int64(i), 10)
		} else {
			b = strconv.AppendInt(b, int64(n), 10)
			b = append(b, '-')
			b = strconv.AppendInt(b, int64(i), 10)
		}
		b = append(b, '"')
	}
	return append(b, "]}"...)
}

// BenchmarkEmbeddingsBatch100 is the gateway's CPU for one embeddings call
// of 100 inputs, 1536 dimensions, the provider in memory: with 90 of the
// inputs cached (only the 10 others go upstream, the answer is merged from
// stored and fresh vectors), and with the cache off (all 100 go upstream)
// for comparison. upstream-B/op is what the provider sent back per call;
// saved-B/op what the hits spared of it.
func BenchmarkEmbeddingsBatch100(b *testing.B) {
	for _, bc := range []struct {
		name  string
		cache bool
		want  string
	}{
		{"hits90", true, "PARTIAL"},
		{"nocache", false, "BYPASS"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := newEmbedRouter(1536)
			var g *Gateway
			if bc.cache {
				g = newEmbedGateway(b, r)
			} else {
				g = New(Options{Router: r})
			}
			w := &discardWriter{h: make(http.Header, 16)}
			req := httptest.NewRequest(http.MethodPost, "/v1/embeddings", nil)
			rd := &rewindBody{Reader: bytes.NewReader(nil)}
			req.Body = rd
			serve := func(body []byte) {
				rd.Reset(body)
				req.ContentLength = int64(len(body))
				clear(w.h)
				w.code, w.n = 0, 0
				g.ServeEmbeddings(w, req)
			}
			// The whole batch once: its size uncached, and the 90 warm.
			serve(embedBatchBody(-1, 90, 100))
			full := r.bytes
			bodies := make([][]byte, 1024)
			for i := range bodies {
				bodies[i] = embedBatchBody(i, 90, 100)
			}
			r.bytes, r.calls = 0, 0
			b.ReportAllocs()
			b.ResetTimer()
			n := 0
			for b.Loop() {
				if n > 0 && n%len(bodies) == 0 { // new misses for the next round
					b.StopTimer()
					for i := range bodies {
						bodies[i] = embedBatchBody(n+i, 90, 100)
					}
					b.StartTimer()
				}
				serve(bodies[n%len(bodies)])
				if w.code != http.StatusOK || w.h.Get("X-Cache-Status") != bc.want {
					b.Fatalf("status %d, cache %q", w.code, w.h.Get("X-Cache-Status"))
				}
				n++
			}
			b.StopTimer()
			per := float64(r.bytes) / float64(r.calls)
			b.ReportMetric(per, "upstream-B/op")
			b.ReportMetric(float64(full)-per, "saved-B/op")
			b.ReportMetric(float64(w.n), "answer-B/op")
		})
	}
}
