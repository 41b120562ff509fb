package bench

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is what a run measured. Its JSON form is the `--json` output;
// see the package comment for the field names.
type Result struct {
	Label       string    `json:"label,omitempty"`
	URL         string    `json:"url"`
	Model       string    `json:"model"`
	Mode        string    `json:"mode"` // "closed" or "open"
	Concurrency int       `json:"concurrency"`
	Rate        float64   `json:"rate,omitempty"`
	Mix         Mix       `json:"mix"`
	Prompts     int       `json:"prompts,omitempty"`
	ZipfS       float64   `json:"zipf_s,omitempty"`
	StreamShare float64   `json:"stream_share"`
	RunID       string    `json:"run_id"`
	Start       time.Time `json:"start"`
	Interrupted bool      `json:"interrupted,omitempty"`

	Requests      int64       `json:"requests"`
	DurationS     float64     `json:"duration_s"`
	ThroughputRPS float64     `json:"throughput_rps"`
	Latency       Percentiles `json:"latency_us"`

	Errors          int64            `json:"errors"`
	TransportErrors int64            `json:"transport_errors"`
	StreamErrors    int64            `json:"stream_errors"`
	Dropped         int64            `json:"dropped"`
	ErrorRate       float64          `json:"error_rate"`
	Status          map[string]int64 `json:"status"`

	Hits     Tiers     `json:"hits"`
	HitRate  float64   `json:"hit_rate"`
	HitRates TierRates `json:"hit_rates"`

	OverheadMsMean float64      `json:"overhead_ms_mean"`
	Overhead       *Percentiles `json:"overhead_us,omitempty"`

	Streams int64        `json:"streams"`
	TTFT    *Percentiles `json:"ttft_us,omitempty"`

	Series []Point `json:"series,omitempty"`
}

// Succeeded is the number of requests answered successfully.
func (r *Result) Succeeded() int64 { return r.Requests - r.Errors }

// Percentiles summarises a distribution in microseconds.
type Percentiles struct {
	Count uint64  `json:"count"`
	Min   float64 `json:"min"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P95   float64 `json:"p95"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
}

// Tiers counts responses by their X-Cache-Status and X-Cache-Layer
// headers. HitOther is a HIT without a known layer; None had no
// X-Cache-Status (including transport errors).
type Tiers struct {
	L1       int64 `json:"l1"`
	L2       int64 `json:"l2"`
	HitOther int64 `json:"hit_other"`
	Miss     int64 `json:"miss"`
	Bypass   int64 `json:"bypass"`
	None     int64 `json:"none"`
}

// TierRates are Tiers as fractions of all requests.
type TierRates struct {
	L1     float64 `json:"l1"`
	L2     float64 `json:"l2"`
	Miss   float64 `json:"miss"`
	Bypass float64 `json:"bypass"`
}

// Point is one interval of the time series; TS is its end in seconds since
// the measured run started.
type Point struct {
	TS            float64 `json:"t_s"`
	Requests      int64   `json:"requests"`
	RPS           float64 `json:"rps"`
	Errors        int64   `json:"errors"`
	HitRate       float64 `json:"hit_rate"`
	LatencyMeanUs float64 `json:"latency_mean_us"`
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// ms formats microseconds as milliseconds with microsecond precision.
func ms(us float64) string { return strconv.FormatFloat(us/1000, 'f', 3, 64) }

func pct(f float64) string { return strconv.FormatFloat(f*100, 'f', 2, 64) + "%" }

// WriteText writes the human-readable report.
func (r *Result) WriteText(w io.Writer) error {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	mode := fmt.Sprintf("closed loop, %d workers", r.Concurrency)
	if r.Mode == "open" {
		mode = fmt.Sprintf("open loop, %g req/s, at most %d in flight", r.Rate, r.Concurrency)
	}
	mix := string(r.Mix)
	if r.Mix == MixZipf {
		mix = fmt.Sprintf("zipf over %d prompts, s=%g", r.Prompts, r.ZipfS)
	}
	if r.Label != "" {
		fmt.Fprintf(tw, "label\t%s\n", r.Label)
	}
	fmt.Fprintf(tw, "target\t%s (model %s)\n", r.URL, r.Model)
	fmt.Fprintf(tw, "load\t%s; mix %s; %s streamed\n", mode, mix, pct(r.StreamShare))
	interrupted := ""
	if r.Interrupted {
		interrupted = " (interrupted)"
	}
	fmt.Fprintf(tw, "requests\t%d in %.3fs%s\n", r.Requests, r.DurationS, interrupted)
	if r.Succeeded() == 0 {
		fmt.Fprintf(tw, "throughput\tnone: no request succeeded\n")
	} else {
		fmt.Fprintf(tw, "throughput\t%.1f req/s (successful answers only)\n", r.ThroughputRPS)
	}
	fmt.Fprintf(tw, "errors\t%d (%s): %d transport, %d broken streams, %d dropped\n",
		r.Errors+r.Dropped, pct(r.ErrorRate), r.TransportErrors, r.StreamErrors, r.Dropped)
	codes := make([]string, 0, len(r.Status))
	for c := range r.Status {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	var sc strings.Builder
	for i, c := range codes {
		if i > 0 {
			sc.WriteString(", ")
		}
		fmt.Fprintf(&sc, "%s: %d", c, r.Status[c])
	}
	fmt.Fprintf(tw, "status\t%s\n", sc.String())
	h := r.Hits
	fmt.Fprintf(tw, "cache\thit %s: L1 %d (%s), L2 %d (%s), MISS %d (%s), BYPASS %d (%s)",
		pct(r.HitRate), h.L1, pct(r.HitRates.L1), h.L2, pct(r.HitRates.L2),
		h.Miss, pct(r.HitRates.Miss), h.Bypass, pct(r.HitRates.Bypass))
	if h.HitOther > 0 {
		fmt.Fprintf(tw, ", HIT without layer %d", h.HitOther)
	}
	if h.None > 0 {
		fmt.Fprintf(tw, ", no header %d", h.None)
	}
	fmt.Fprintln(tw)
	if r.Overhead != nil {
		fmt.Fprintf(tw, "gateway overhead\tmean %.3f ms (X-Edge-Overhead-Ms on %d responses)\n", r.OverheadMsMean, r.Overhead.Count)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	b.WriteString("\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "(ms)\tmin\tp50\tp90\tp95\tp99\tp99.9\tmax\tmean\tcount\t")
	row := func(name string, p Percentiles) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n", name,
			ms(p.Min), ms(p.P50), ms(p.P90), ms(p.P95), ms(p.P99), ms(p.P999), ms(p.Max), ms(p.Mean), p.Count)
	}
	row("latency", r.Latency)
	if r.TTFT != nil {
		row("ttft", *r.TTFT)
	}
	if r.Overhead != nil {
		row("overhead", *r.Overhead)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := io.WriteString(w, b.String())
	return err
}
