package bench

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// stallTransport answers in 1ms, except that requests arriving while the
// server is frozen (from stallAt for stallFor after start) wait for the
// freeze to end.
type stallTransport struct {
	start             time.Time
	stallAt, stallFor time.Duration
}

func (s *stallTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	io.Copy(io.Discard, r.Body)
	r.Body.Close()
	since := time.Since(s.start)
	if since >= s.stallAt && since < s.stallAt+s.stallFor {
		time.Sleep(s.stallAt + s.stallFor - since)
	}
	time.Sleep(time.Millisecond)
	return &http.Response{
		StatusCode: http.StatusOK,
		Header:     http.Header{"X-Cache-Status": {"HIT"}, "X-Cache-Layer": {"L1"}},
		Body:       io.NopCloser(strings.NewReader("{}")),
		Request:    r,
	}, nil
}

func TestOpenLoopScheduleCountsQueueingFromTheDueTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig("http://gateway.test/v1/chat/completions")
		cfg.Rate = 100 // one request due every 10ms
		cfg.Duration = time.Second
		cfg.Concurrency = 4
		cfg.Transport = &stallTransport{start: time.Now(), stallAt: 300 * time.Millisecond, stallFor: 200 * time.Millisecond}
		res, err := Run(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if res.Requests != 100 || res.Dropped != 0 || res.Hits.L1 != 100 {
			t.Fatalf("%d requests, %d dropped, %d L1 hits; want 100, 0, 100", res.Requests, res.Dropped, res.Hits.L1)
		}
		// The request due at 300ms waits until 500ms, the one due at 310ms
		// 190ms, and so on: the slowest tenth took over 100ms although
		// only four of them were in flight when the server froze.
		near := func(name string, got, want float64) {
			t.Helper()
			if got < want*0.98 || got > want*1.02 {
				t.Errorf("%s = %.0fµs, want ≈ %.0fµs", name, got, want)
			}
		}
		near("max", res.Latency.Max, 201_000)
		near("p99", res.Latency.P99, 191_000)
		near("p90", res.Latency.P90, 103_000)
		near("p50", res.Latency.P50, 1_000)
	})
}

func TestClosedLoopHidesTheStallThatOpenLoopShows(t *testing.T) {
	// The same freeze seen by a closed loop: the workers simply wait, so
	// only the four requests in flight are slow. This is the coordinated
	// omission open loop exists to avoid.
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig("http://gateway.test/v1/chat/completions")
		cfg.Duration = time.Second
		cfg.Concurrency = 4
		cfg.Transport = &stallTransport{start: time.Now(), stallAt: 300 * time.Millisecond, stallFor: 200 * time.Millisecond}
		res, err := Run(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if res.Latency.P99 > 2_000 || res.Latency.Max < 199_000 {
			t.Errorf("p99 %.0fµs, max %.0fµs; want a fast p99 and one 200ms outlier per worker", res.Latency.P99, res.Latency.Max)
		}
	})
}
