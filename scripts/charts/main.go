// Command charts draws the benchmark charts of docs/benchmarks.md from
// `edge-agent bench --json` results, with the standard library only.
//
//	go run ./scripts/charts -in results/ -out docs/img/
//
// Input conventions: every *.json file in -in is one bench result (the
// output of `edge-agent bench --json --label NAME ...`). The file name's
// prefix says which chart it feeds; the "label" field names it there
// (the file name without prefix and extension when the label is empty).
//
//	latency-*.json     latency.png: p50, p95 and p99 (ms, log scale when
//	                   they span more than a decade) against the
//	                   "concurrency" field. Files sharing a label form
//	                   one set of lines, e.g. latency-l1-c1.json ...
//	                   latency-l1-c256.json all labelled "l1-hit".
//	throughput-*.json  throughput.png: one bar per file with its
//	                   "throughput_rps", e.g. labels "gateway-l1-hit",
//	                   "gateway-miss", "simulated-provider".
//	hitratio-*.json    hitratio.png: "hit_rate" of each "series" point
//	                   against its "t_s", one line per file (run the bench
//	                   with --mix zipf and --interval).
//
// A chart without input files is skipped with a note on stderr; having no
// input at all is an error.
package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/edge-agent/edge-agent/internal/bench"
)

func main() {
	in := flag.String("in", "results", "directory of bench JSON results")
	out := flag.String("out", "docs/img", "directory for the PNG charts")
	flag.Parse()
	if err := run(*in, *out, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "charts:", err)
		os.Exit(1)
	}
}

// input is one result file.
type input struct {
	name string // label, or the file name without prefix and extension
	file string
	res  bench.Result
}

func run(in, out string, log io.Writer) error {
	f := parseFont()
	groups := map[string][]input{}
	paths, err := filepath.Glob(filepath.Join(in, "*.json"))
	if err != nil {
		return err
	}
	slices.Sort(paths)
	for _, p := range paths {
		base := filepath.Base(p)
		kind, rest, ok := strings.Cut(strings.TrimSuffix(base, ".json"), "-")
		if !ok || (kind != "latency" && kind != "throughput" && kind != "hitratio") {
			fmt.Fprintf(log, "charts: skipping %s: name does not start with latency-, throughput- or hitratio-\n", base)
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var res bench.Result
		if err := json.Unmarshal(data, &res); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		name := cmp.Or(res.Label, rest)
		groups[kind] = append(groups[kind], input{name: name, file: base, res: res})
	}
	if len(groups) == 0 {
		return fmt.Errorf("no latency-*.json, throughput-*.json or hitratio-*.json files in %s", in)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	charts := []struct {
		kind, file string
		draw       func(font, []input) (*image.RGBA, error)
	}{
		{"latency", "latency.png", latencyChart},
		{"throughput", "throughput.png", throughputChart},
		{"hitratio", "hitratio.png", hitRatioChart},
	}
	for _, ch := range charts {
		ins := groups[ch.kind]
		if len(ins) == 0 {
			fmt.Fprintf(log, "charts: no %s-*.json input, %s not drawn\n", ch.kind, ch.file)
			continue
		}
		img, err := ch.draw(f, ins)
		if err != nil {
			return fmt.Errorf("%s: %w", ch.file, err)
		}
		if err := writePNG(filepath.Join(out, ch.file), img); err != nil {
			return err
		}
		fmt.Fprintf(log, "charts: wrote %s from %d results\n", filepath.Join(out, ch.file), len(ins))
	}
	return nil
}

func writePNG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return f.Close()
}

func latencyChart(f font, ins []input) (*image.RGBA, error) {
	var levels []int
	var labels []string
	byLabel := map[string]map[int]bench.Percentiles{}
	lo, hi := 0.0, 0.0
	for _, in := range ins {
		c := in.res.Concurrency
		if c <= 0 {
			return nil, fmt.Errorf("%s has no concurrency", in.file)
		}
		if byLabel[in.name] == nil {
			byLabel[in.name] = map[int]bench.Percentiles{}
			labels = append(labels, in.name)
		}
		byLabel[in.name][c] = in.res.Latency
		if !slices.Contains(levels, c) {
			levels = append(levels, c)
		}
		for _, v := range []float64{in.res.Latency.P50, in.res.Latency.P95, in.res.Latency.P99} {
			v /= 1000
			if v > 0 && (lo == 0 || v < lo) {
				lo = v
			}
			hi = max(hi, v)
		}
	}
	if hi == 0 {
		return nil, errors.New("no latencies recorded")
	}
	slices.Sort(levels)
	ch := newChart(f, "Latency percentiles by concurrency", "concurrent connections", "latency (ms)")
	ch.y = linearAxis(0, hi*1.05)
	if hi/lo > 10 {
		ch.y = logAxis(lo, hi)
	}
	ch.yGrid("")
	slot := ch.plot.Dx() / len(levels)
	xAt := func(i int) int { return ch.plot.Min.X + slot/2 + i*slot }
	for i, c := range levels {
		ch.xLabel(xAt(i), strconv.Itoa(c), slot-4)
	}
	var legend []legendEntry
	n := 0
	for _, l := range labels {
		for _, q := range []struct {
			name string
			get  func(bench.Percentiles) float64
		}{
			{"p50", func(p bench.Percentiles) float64 { return p.P50 }},
			{"p95", func(p bench.Percentiles) float64 { return p.P95 }},
			{"p99", func(p bench.Percentiles) float64 { return p.P99 }},
		} {
			var pts []image.Point
			for i, c := range levels {
				if p, ok := byLabel[l][c]; ok {
					pts = append(pts, image.Pt(xAt(i), ch.py(q.get(p)/1000)))
				}
			}
			col := colorAt(n)
			n++
			ch.polyline(pts, col)
			name := q.name
			if len(labels) > 1 {
				name = l + " " + q.name
			}
			legend = append(legend, legendEntry{name, col})
		}
	}
	ch.legend(legend)
	return ch.img, nil
}

func throughputChart(f font, ins []input) (*image.RGBA, error) {
	hi := 0.0
	for _, in := range ins {
		hi = max(hi, in.res.ThroughputRPS)
	}
	if hi == 0 {
		return nil, errors.New("no throughput recorded")
	}
	ch := newChart(f, "Throughput with and without cache", "", "requests per second")
	ch.y = linearAxis(0, hi*1.12)
	ch.yGrid("")
	slot := ch.plot.Dx() / len(ins)
	barW := min(140, slot*6/10)
	for i, in := range ins {
		x := ch.plot.Min.X + slot/2 + i*slot
		top := ch.py(in.res.ThroughputRPS)
		ch.fill(image.Rect(x-barW/2, top, x+barW/2, ch.plot.Max.Y), colorAt(i))
		v := formatNum(in.res.ThroughputRPS)
		ch.text(x-textWidth(v, 2)/2, top-textHeight(2)-6, v, 2, ink)
		ch.xLabel(x, in.name, slot-8)
	}
	return ch.img, nil
}

func hitRatioChart(f font, ins []input) (*image.RGBA, error) {
	tMax := 0.0
	for _, in := range ins {
		for _, p := range in.res.Series {
			tMax = max(tMax, p.TS)
		}
	}
	if tMax == 0 {
		return nil, errors.New("no series (run the bench with --interval)")
	}
	title := "Cache hit ratio over time"
	if in := ins[0].res; len(ins) == 1 && in.Mix == bench.MixZipf {
		title = fmt.Sprintf("Hit ratio over time, Zipf s=%g, %d prompts", in.ZipfS, in.Prompts)
	}
	ch := newChart(f, title, "time since start (s)", "hit ratio (%)")
	ch.x = linearAxis(0, tMax)
	ch.y = axis{lo: 0, hi: 100}
	ch.yGrid("%")
	for _, t := range ch.x.ticks() {
		ch.xLabel(ch.px(ch.x.frac(t)), formatNum(t), 80)
	}
	var legend []legendEntry
	for i, in := range ins {
		pts := make([]image.Point, 0, len(in.res.Series))
		for _, p := range in.res.Series {
			pts = append(pts, image.Pt(ch.px(ch.x.frac(p.TS)), ch.py(p.HitRate*100)))
		}
		ch.polyline(pts, colorAt(i))
		legend = append(legend, legendEntry{in.name, colorAt(i)})
	}
	if len(ins) > 1 {
		ch.legend(legend)
	}
	return ch.img, nil
}
