package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/internal/bench"
)

func put(t *testing.T, dir, file string, r bench.Result) {
	t.Helper()
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, file), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeSamples writes results the way the benchmark scripts do: a
// concurrency sweep, hit-ratio series and a streams table.
func writeSamples(t *testing.T, dir string) {
	t.Helper()
	for _, c := range []int{1, 2, 4, 8, 16, 32, 64, 128, 256} {
		f := float64(c)
		for _, l := range []struct {
			label string
			base  float64
		}{{"gateway-l1-hit", 150}, {"gateway-miss", 300}, {"simulated-provider", 120}} {
			put(t, dir, fmt.Sprintf("latency-%s-c%d.json", l.label, c), bench.Result{
				Label: l.label, Concurrency: c, Requests: 1000, ThroughputRPS: 1e6 / l.base * math.Min(f, 2),
				Latency: bench.Percentiles{P50: l.base * f, P95: l.base * f * 2, P99: l.base * f * 4},
			})
		}
	}
	var series []bench.Point
	for s := 1; s <= 60; s++ {
		series = append(series, bench.Point{TS: float64(s), HitRate: 0.8 * (1 - math.Exp(-float64(s)/10))})
	}
	put(t, dir, "hitratio-zipf.json", bench.Result{Label: "zipf s=1", Mix: bench.MixZipf, Prompts: 1000, ZipfS: 1, Series: series})
	put(t, dir, "hitratio-zipf-1.2.json", bench.Result{Mix: bench.MixZipf, Prompts: 1000, ZipfS: 1.2, Series: series[:30]})
	if err := os.WriteFile(filepath.Join(dir, "notes.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	var tsv strings.Builder
	tsv.WriteString("target\tmode\tn\tcompleted\tfailed\tcpu_ms_per_req\tpeak_rss_mib\trss_kib_per_req\tttft_p50_ms\tttft_p99_ms\ttotal_p50_ms\n")
	for _, n := range []int{500, 1000, 2000, 5000, 10000} {
		for i, target := range []string{"simulated-provider", "bare-proxy", "gateway"} {
			fmt.Fprintf(&tsv, "%s\tstream\t%d\t%d\t0\t%.3f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\n",
				target, n, 2*n, 0.5+float64(i), float64(n)/20, 40+10*float64(i), 1000+2*float64(i), 1010+float64(i), 2000.0)
		}
	}
	tsv.WriteString("gateway\tjson\t5000\t5000\t0\t0.2\t90\t30\t1001\t1003\t1001\n")
	if err := os.WriteFile(filepath.Join(dir, "streams.tsv"), []byte(tsv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRunRendersEveryChartSmallAndInColour(t *testing.T) {
	in, out := t.TempDir(), filepath.Join(t.TempDir(), "img")
	writeSamples(t, in)
	var log bytes.Buffer
	if err := run(in, out, &log); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "skipping notes.json") {
		t.Errorf("an unconventional file name should be reported, log:\n%s", log.String())
	}
	for _, name := range []string{"latency.png", "throughput.png", "hitratio.png", "streams-rss.png", "streams-cpu.png", "streams-ttft.png"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(out, name)
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if st.Size() > 200<<10 {
				t.Errorf("%d bytes: charts are committed, keep them under 200 KiB", st.Size())
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			img, err := png.Decode(f)
			if err != nil {
				t.Fatal(err)
			}
			if b := img.Bounds(); b.Dx() != 576 || b.Dy() != 346 {
				t.Errorf("size %v, want 576 x 346", b.Size())
			}
			ink, coloured := countInk(img)
			if ink < 5000 {
				t.Errorf("only %d non-white pixels: the chart is (nearly) empty", ink)
			}
			if coloured < 300 {
				t.Errorf("only %d coloured pixels: no data lines drawn", coloured)
			}
		})
	}
}

// countInk counts non-white pixels, and the coloured ones among them (not
// a shade of grey: the data lines, not the axes, text and grid).
func countInk(img image.Image) (ink, coloured int) {
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			r, g, bl = r>>8, g>>8, bl>>8
			if r != 255 || g != 255 || bl != 255 {
				ink++
			}
			if max(r, g, bl)-min(r, g, bl) > 60 {
				coloured++
			}
		}
	}
	return ink, coloured
}

func TestRunSkipsChartsWithoutInput(t *testing.T) {
	in, out := t.TempDir(), t.TempDir()
	put(t, in, "latency-only-c1.json", bench.Result{Label: "only", Concurrency: 1, ThroughputRPS: 10,
		Latency: bench.Percentiles{P50: 100, P99: 200}})
	var log bytes.Buffer
	if err := run(in, out, &log); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "throughput.png")); err != nil {
		t.Error(err)
	}
	for _, skipped := range []string{"hitratio.png", "streams-rss.png"} {
		if _, err := os.Stat(filepath.Join(out, skipped)); err == nil || !strings.Contains(log.String(), skipped) {
			t.Errorf("%s should be skipped with a note, log:\n%s", skipped, log.String())
		}
	}
}

func TestRunFailsWithoutAnyInput(t *testing.T) {
	if err := run(t.TempDir(), t.TempDir(), &bytes.Buffer{}); err == nil {
		t.Error("no input should be an error")
	}
}

func TestRunRejectsBrokenInput(t *testing.T) {
	cases := []struct{ file, content, want string }{
		{"latency-x.json", "{", "latency-x.json"},
		{"latency-noc.json", `{"label":"x","latency_us":{"p50":1,"p99":2}}`, "no concurrency"},
		{"streams.tsv", "header\ngateway\tstream\t500\n", "streams.tsv:2: 3 fields"},
		{"streams.tsv", "header\ngateway\tstream\tmany\t1\t0\t1\t1\t1\t1\t1\t1\n", `streams.tsv:2: strconv.ParseFloat: parsing "many"`},
	}
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			in := t.TempDir()
			if err := os.WriteFile(filepath.Join(in, c.file), []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
			err := run(in, t.TempDir(), &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestStreamChartsMeasureAddedTTFTAgainstTheProvider(t *testing.T) {
	rows := []streamRow{
		{target: "simulated-provider", mode: "stream", n: 500, ttftP50: 1000},
		{target: "bare-proxy", mode: "stream", n: 500, ttftP50: 1004},
		{target: "gateway", mode: "stream", n: 500, ttftP50: 1009},
		{target: "gateway", mode: "json", n: 5000, ttftP50: 1500},
	}
	charts, err := streamCharts(rows)
	if err != nil {
		t.Fatal(err)
	}
	if len(charts) != 3 || charts[2].file != "streams-ttft.png" {
		t.Fatalf("charts %v, want rss, cpu and ttft", charts)
	}
	p := charts[2].p
	if p.Y.Min > 0 || p.Y.Max < 9 {
		t.Errorf("added TTFT axis %g..%g, want it to span 0..9 ms (the gateway adds 9, the proxy 4)", p.Y.Min, p.Y.Max)
	}
}
