package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
)

// Mix names how prompts are chosen for each request.
type Mix string

// The request mixes.
const (
	MixSame   Mix = "same"   // one prompt: after the first request, every answer can come from cache
	MixUnique Mix = "unique" // a new prompt for every request: every answer is a miss
	MixZipf   Mix = "zipf"   // Prompts distinct prompts, rank k chosen with probability ∝ 1/k^s
)

// bodies builds request bodies without encoding/json on the hot path: the
// bytes around the prompt are rendered once, prompts for same and zipf are
// rendered whole ahead of time, and unique prompts are appended into the
// template with strconv.
type bodies struct {
	mix   Mix
	plain [][]byte // by prompt rank, "stream":false (field omitted)
	strm  [][]byte // by prompt rank, "stream":true
	cdf   []float64

	// unique: head + worker + "-" + counter + tail
	head, tailPlain, tailStream []byte
}

func newBodies(cfg *Config) (*bodies, error) {
	model, err := json.Marshal(cfg.Model)
	if err != nil {
		return nil, fmt.Errorf("encode model: %w", err)
	}
	runID, err := json.Marshal(cfg.RunID)
	if err != nil {
		return nil, fmt.Errorf("encode run id: %w", err)
	}
	runID = runID[1 : len(runID)-1] // escaped, without quotes
	head := make([]byte, 0, 128)
	head = append(head, `{"model":`...)
	head = append(head, model...)
	head = append(head, `,"messages":[{"role":"user","content":"bench `...)
	head = append(head, runID...)
	head = append(head, ` prompt `...)
	tail := []byte(`: answer in one short sentence."}]`)
	if cfg.MaxTokens > 0 {
		tail = append(tail, `,"max_tokens":`...)
		tail = strconv.AppendInt(tail, int64(cfg.MaxTokens), 10)
	}
	b := &bodies{
		mix:        cfg.Mix,
		head:       head,
		tailPlain:  append(append([]byte(nil), tail...), '}'),
		tailStream: append(append([]byte(nil), tail...), `,"stream":true}`...),
	}
	n := 0
	switch cfg.Mix {
	case MixSame:
		n = 1
	case MixZipf:
		n = cfg.Prompts
		b.cdf = zipfCDF(n, cfg.ZipfS)
	case MixUnique:
		return b, nil
	default:
		return nil, fmt.Errorf("unknown mix %q (want same, unique or zipf)", cfg.Mix)
	}
	b.plain = make([][]byte, n)
	b.strm = make([][]byte, n)
	for i := range n {
		id := strconv.AppendInt(nil, int64(i+1), 10)
		b.plain[i] = b.unique(nil, id, false)
		b.strm[i] = b.unique(nil, id, true)
	}
	return b, nil
}

// unique appends a body whose prompt carries id.
func (b *bodies) unique(dst, id []byte, stream bool) []byte {
	dst = append(dst, b.head...)
	dst = append(dst, id...)
	if stream {
		return append(dst, b.tailStream...)
	}
	return append(dst, b.tailPlain...)
}

// pick returns the body for one request. worker and seq make unique
// prompts distinct without shared state between workers. The returned
// slice must not be modified; unique bodies are freshly allocated because
// the transport may still read a body after the response is returned.
func (b *bodies) pick(r *rand.Rand, stream bool, worker int, seq uint64) []byte {
	switch b.mix {
	case MixUnique:
		var id [48]byte
		idb := strconv.AppendInt(id[:0], int64(worker), 10)
		idb = append(idb, '-')
		idb = strconv.AppendUint(idb, seq, 10)
		dst := make([]byte, 0, len(b.head)+len(idb)+len(b.tailStream))
		return b.unique(dst, idb, stream)
	case MixZipf:
		k := sampleCDF(b.cdf, r.Float64())
		if stream {
			return b.strm[k]
		}
		return b.plain[k]
	default:
		if stream {
			return b.strm[0]
		}
		return b.plain[0]
	}
}

// zipfCDF returns the cumulative distribution of ranks 1..n with weight
// 1/k^s. math/rand/v2's Zipf needs s > 1, and s = 1 is the classic web
// cache workload, so the table serves every s > 0 (exactly, at O(log n)
// per sample).
func zipfCDF(n int, s float64) []float64 {
	cdf := make([]float64, n)
	var sum float64
	for k := 1; k <= n; k++ {
		sum += math.Pow(float64(k), -s)
		cdf[k-1] = sum
	}
	for i := range cdf {
		cdf[i] /= sum
	}
	cdf[n-1] = 1
	return cdf
}

// sampleCDF returns the index of the first cdf entry ≥ u.
func sampleCDF(cdf []float64, u float64) int {
	return min(sort.SearchFloat64s(cdf, u), len(cdf)-1)
}
