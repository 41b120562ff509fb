package main

import (
	"bytes"
	"encoding/json"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/internal/bench"
)

// writeSamples writes bench results the way the benchmark scripts do.
func writeSamples(t *testing.T, dir string) {
	t.Helper()
	put := func(file string, r bench.Result) {
		data, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, file), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range []int{1, 4, 16, 64, 256} {
		f := float64(i + 1)
		for _, l := range []struct {
			label string
			base  float64
		}{{"l1-hit", 150}, {"miss", 800_000}} {
			put("latency-"+l.label+"-c"+string(rune('0'+i))+".json", bench.Result{
				Label: l.label, Concurrency: c, Requests: 1000, ThroughputRPS: 1000 * f,
				Latency: bench.Percentiles{P50: l.base * f, P95: l.base * f * 2, P99: l.base * f * 4},
			})
		}
	}
	for label, rps := range map[string]float64{"gateway-l1-hit": 21000, "gateway-miss": 950, "simulated-provider": 1100} {
		put("throughput-"+label+".json", bench.Result{Label: label, Concurrency: 32, ThroughputRPS: rps})
	}
	var series []bench.Point
	for s := 1; s <= 60; s++ {
		series = append(series, bench.Point{TS: float64(s), HitRate: 0.8 * (1 - math.Exp(-float64(s)/10))})
	}
	put("hitratio-zipf.json", bench.Result{Label: "zipf s=1", Mix: bench.MixZipf, Prompts: 1000, ZipfS: 1, Series: series})
	put("hitratio-zipf-1.2.json", bench.Result{Mix: bench.MixZipf, Prompts: 1000, ZipfS: 1.2, Series: series[:30]})
	if err := os.WriteFile(filepath.Join(dir, "notes.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRunRendersEveryChartFromBenchJSON(t *testing.T) {
	in, out := t.TempDir(), filepath.Join(t.TempDir(), "img")
	writeSamples(t, in)
	var log bytes.Buffer
	if err := run(in, out, &log); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "skipping notes.json") {
		t.Errorf("an unconventional file name should be reported, log:\n%s", log.String())
	}
	for _, name := range []string{"latency.png", "throughput.png", "hitratio.png"} {
		t.Run(name, func(t *testing.T) {
			f, err := os.Open(filepath.Join(out, name))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			img, err := png.Decode(f)
			if err != nil {
				t.Fatal(err)
			}
			if b := img.Bounds(); b.Dx() != chartW || b.Dy() != chartH {
				t.Errorf("size %v", b)
			}
			ink, colours := countInk(img)
			if ink < 5000 {
				t.Errorf("only %d non-white pixels: the chart is (nearly) empty", ink)
			}
			if colours < 2 {
				t.Errorf("only %d palette colours drawn, want data in colour", colours)
			}
		})
	}
}

// countInk counts non-white pixels and how many palette colours appear.
func countInk(img image.Image) (ink, colours int) {
	seen := map[int]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r>>8 != 255 || g>>8 != 255 || bl>>8 != 255 {
				ink++
			}
			for i, p := range palette {
				if uint8(r>>8) == p.R && uint8(g>>8) == p.G && uint8(bl>>8) == p.B {
					seen[i] = true
				}
			}
		}
	}
	return ink, len(seen)
}

func TestRunSkipsChartsWithoutInput(t *testing.T) {
	in, out := t.TempDir(), t.TempDir()
	data, _ := json.Marshal(bench.Result{Label: "only", ThroughputRPS: 10})
	if err := os.WriteFile(filepath.Join(in, "throughput-only.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	if err := run(in, out, &log); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "throughput.png")); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(out, "latency.png")); err == nil || !strings.Contains(log.String(), "latency.png not drawn") {
		t.Errorf("latency.png should be skipped with a note, log:\n%s", log.String())
	}
}

func TestRunFailsWithoutAnyInput(t *testing.T) {
	if err := run(t.TempDir(), t.TempDir(), &bytes.Buffer{}); err == nil {
		t.Error("no input should be an error")
	}
}

func TestRunRejectsBrokenJSON(t *testing.T) {
	in := t.TempDir()
	if err := os.WriteFile(filepath.Join(in, "latency-x.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := run(in, t.TempDir(), &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "latency-x.json") {
		t.Errorf("error %v, want one naming the file", err)
	}
}

func TestFontCoversChartText(t *testing.T) {
	f := parseFont()
	for _, r := range "0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ ().,%-_:/=<>+µ" {
		if _, ok := f[r]; !ok {
			t.Errorf("no glyph for %q", r)
		}
	}
	if g := f['A']; g[3] != 0x1f {
		t.Errorf("A's crossbar row = %05b, want 11111", g[3])
	}
}

func TestAxisTicksAreRoundNumbers(t *testing.T) {
	tests := []struct {
		a    axis
		want []float64
	}{
		{linearAxis(0, 23_000), []float64{0, 5000, 10000, 15000, 20000, 25000}},
		{logAxis(0.15, 80), []float64{0.1, 1, 10, 100}},
		{logAxis(2, 80), []float64{1, 2, 5, 10, 20, 50, 100}},
	}
	for _, tt := range tests {
		got := tt.a.ticks()
		if len(got) != len(tt.want) {
			t.Errorf("%+v ticks %v, want %v", tt.a, got, tt.want)
			continue
		}
		for i := range got {
			if math.Abs(got[i]-tt.want[i]) > 1e-9*math.Max(1, tt.want[i]) {
				t.Errorf("%+v ticks %v, want %v", tt.a, got, tt.want)
				break
			}
		}
	}
}
