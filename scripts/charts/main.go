// Command charts draws the benchmark charts of docs/benchmarks.md from
// `edge-agent bench --json` results and scripts/streams_compare.sh's table,
// with gonum's plotting library (gonum.org/v1/plot).
//
//	go run ./scripts/charts -in results/ -out docs/img/
//
// Input conventions, in -in:
//
//	latency-*.json  one bench result each (`edge-agent bench --json --label
//	                NAME ...`); files sharing a label form one line against
//	                their "concurrency" field (scripts/sweep_requests.sh
//	                writes latency-LABEL-cN.json for N = 1 ... 256):
//	                latency.png (p50 and p99, ms, log scale) and
//	                throughput.png (successful requests per second).
//	hitratio-*.json hitratio.png: "hit_rate" of each "series" point
//	                against its "t_s", one line per file (run the bench
//	                with --mix zipf and --interval).
//	streams.tsv     scripts/streams_compare.sh's rows: streams-rss.png (RSS
//	                per stream), streams-cpu.png (CPU per stream) and
//	                streams-ttft.png (time to first token added to the
//	                provider's own), one line per target against the
//	                number of concurrent streams.
//
// The label is the file name without prefix and extension when the result
// has none. A chart without input is skipped with a note on stderr; having
// no input at all is an error.
package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/edge-agent/edge-agent/internal/bench"
)

func main() {
	in := flag.String("in", "results", "directory of bench JSON results and streams.tsv")
	out := flag.String("out", "docs/img", "directory for the PNG charts")
	flag.Parse()
	if err := run(*in, *out, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "charts:", err)
		os.Exit(1)
	}
}

// The size of every chart: 6 x 3.6 inches at 96 dpi, 576 x 346 pixels.
const (
	chartW = 6 * vg.Inch
	chartH = 3.6 * vg.Inch
)

// input is one bench result file.
type input struct {
	name string // label, or the file name without prefix and extension
	file string
	res  bench.Result
}

// chart is one PNG to draw and the plot that draws it.
type chart struct {
	file string
	p    *plot.Plot
}

func run(in, out string, log io.Writer) error {
	groups := map[string][]input{}
	paths, err := filepath.Glob(filepath.Join(in, "*.json"))
	if err != nil {
		return err
	}
	slices.Sort(paths)
	for _, p := range paths {
		base := filepath.Base(p)
		kind, rest, ok := strings.Cut(strings.TrimSuffix(base, ".json"), "-")
		if !ok || (kind != "latency" && kind != "hitratio") {
			fmt.Fprintf(log, "charts: skipping %s: name does not start with latency- or hitratio-\n", base)
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
		groups[kind] = append(groups[kind], input{name: cmp.Or(res.Label, rest), file: base, res: res})
	}
	streams, err := readStreams(filepath.Join(in, "streams.tsv"))
	if err != nil {
		return err
	}
	if len(groups) == 0 && streams == nil {
		return fmt.Errorf("no latency-*.json, hitratio-*.json or streams.tsv in %s", in)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	var charts []chart
	skip := func(what string, files ...string) {
		fmt.Fprintf(log, "charts: no %s input, %s not drawn\n", what, strings.Join(files, ", "))
	}
	if ins := groups["latency"]; len(ins) > 0 {
		cs, err := requestCharts(ins)
		if err != nil {
			return err
		}
		charts = append(charts, cs...)
	} else {
		skip("latency-*.json", "latency.png", "throughput.png")
	}
	if ins := groups["hitratio"]; len(ins) > 0 {
		c, err := hitRatioChart(ins)
		if err != nil {
			return err
		}
		charts = append(charts, c)
	} else {
		skip("hitratio-*.json", "hitratio.png")
	}
	if streams != nil {
		cs, err := streamCharts(streams)
		if err != nil {
			return err
		}
		charts = append(charts, cs...)
	} else {
		skip("streams.tsv", "streams-rss.png", "streams-cpu.png", "streams-ttft.png")
	}
	for _, c := range charts {
		path := filepath.Join(out, c.file)
		if err := c.p.Save(chartW, chartH, path); err != nil {
			return fmt.Errorf("%s: %w", c.file, err)
		}
		fmt.Fprintf(log, "charts: wrote %s\n", path)
	}
	return nil
}

// newPlot is a plot with a grid and the legend in the top left corner.
func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	p.Legend.Left = true
	return p
}

// line is one labelled series.
type line struct {
	name string
	xy   plotter.XYs
}

// addLines draws each series with points, in plotutil's colours, dashed
// for every second one of a pair (p50 solid, p99 dashed).
func addLines(p *plot.Plot, lines []line, pairs bool) error {
	for i, l := range lines {
		if len(l.xy) == 0 {
			continue
		}
		slices.SortFunc(l.xy, func(a, b plotter.XY) int { return cmp.Compare(a.X, b.X) })
		ln, pts, err := plotter.NewLinePoints(l.xy)
		if err != nil {
			return fmt.Errorf("%s: %w", l.name, err)
		}
		c := i
		if pairs {
			c = i / 2
			if i%2 == 1 {
				ln.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
			}
		}
		ln.Color = plotutil.Color(c)
		pts.Color = plotutil.Color(c)
		pts.Shape = draw.CircleGlyph{}
		pts.Radius = vg.Points(2)
		p.Add(ln, pts)
		p.Legend.Add(l.name, ln, pts)
	}
	return nil
}

// logAxis puts a on a log scale over [lo, hi], widened by a factor of 2
// on each side when the data has a single value (gonum would widen it by
// 1 in each direction, to 0 or below, which a log scale cannot show).
func logAxis(a *plot.Axis, lo, hi float64) {
	a.Scale = plot.LogScale{}
	if lo == hi {
		lo, hi = lo/2, hi*2
	}
	a.Min, a.Max = lo, hi
}

// legendRoom is the share of the plot's height to keep free above the data
// for a legend of n entries in the top corner.
func legendRoom(n int) float64 { return min(0.06*float64(n)+0.04, 0.6) }

// roomAbove raises a linear axis's maximum so that the data [lo, hi] ends
// below a legend of n entries.
func roomAbove(a *plot.Axis, lo, hi float64, n int) {
	a.Max = lo + (hi-lo)/(1-legendRoom(n))
}

// bounds is the least and greatest of vs (which are not empty).
func bounds(vs []float64) (lo, hi float64) {
	return slices.Min(vs), slices.Max(vs)
}

// ys is every y of lines.
func ys(lines []line) []float64 {
	var v []float64
	for _, l := range lines {
		for _, p := range l.xy {
			v = append(v, p.Y)
		}
	}
	return v
}

// levelTicks marks the x axis at the levels measured (1, 2, 4 ... 256).
func levelTicks(levels []float64) plot.ConstantTicks {
	levels = slices.Clone(levels) // Compact clears the tail of its input
	slices.Sort(levels)
	levels = slices.Compact(levels)
	ticks := make(plot.ConstantTicks, len(levels))
	for i, v := range levels {
		ticks[i] = plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', -1, 64)}
	}
	return ticks
}

// requestCharts draws latency.png and throughput.png: one line per label
// against concurrency.
func requestCharts(ins []input) ([]chart, error) {
	var labels []string
	by := map[string][]input{}
	var levels []float64
	for _, in := range ins {
		if in.res.Concurrency <= 0 {
			return nil, fmt.Errorf("%s has no concurrency", in.file)
		}
		if _, ok := by[in.name]; !ok {
			labels = append(labels, in.name)
		}
		by[in.name] = append(by[in.name], in)
		levels = append(levels, float64(in.res.Concurrency))
	}
	var lat, tput []line
	positive := false
	for _, l := range labels {
		var p50, p99, rps plotter.XYs
		for _, in := range by[l] {
			c := float64(in.res.Concurrency)
			if in.res.Latency.P50 > 0 && in.res.Latency.P99 > 0 {
				p50 = append(p50, plotter.XY{X: c, Y: in.res.Latency.P50 / 1000})
				p99 = append(p99, plotter.XY{X: c, Y: in.res.Latency.P99 / 1000})
				positive = true
			}
			rps = append(rps, plotter.XY{X: c, Y: in.res.ThroughputRPS})
		}
		lat = append(lat, line{l + " p50", p50}, line{l + " p99", p99})
		tput = append(tput, line{l, rps})
	}
	if !positive {
		return nil, errors.New("latency-*.json: no latencies recorded")
	}
	ticks := levelTicks(levels)
	lo, hi := bounds(levels)
	lat0, lat1 := bounds(ys(lat))
	lp := newPlot("Latency by concurrency", "concurrent connections", "latency (ms)")
	lp.X.Tick.Marker = ticks
	logAxis(&lp.X, lo, hi)
	lp.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	// On a log axis the room above the data is a factor, not a length.
	logAxis(&lp.Y, lat0, lat0*math.Pow(lat1/lat0, 1/(1-legendRoom(len(lat)))))
	if err := addLines(lp, lat, true); err != nil {
		return nil, err
	}
	tp := newPlot("Throughput by concurrency", "concurrent connections", "successful requests per second")
	tp.X.Tick.Marker = ticks
	logAxis(&tp.X, lo, hi)
	tp.Y.Min = 0
	_, rmax := bounds(ys(tput))
	roomAbove(&tp.Y, 0, rmax, len(tput))
	if err := addLines(tp, tput, false); err != nil {
		return nil, err
	}
	return []chart{{"latency.png", lp}, {"throughput.png", tp}}, nil
}

func hitRatioChart(ins []input) (chart, error) {
	title := "Cache hit ratio over time"
	if in := ins[0].res; len(ins) == 1 && in.Mix == bench.MixZipf {
		title = fmt.Sprintf("Hit ratio over time, Zipf s=%g, %d prompts", in.ZipfS, in.Prompts)
	}
	p := newPlot(title, "time since start (s)", "hit ratio (%)")
	p.Legend.Top, p.Legend.Left = false, false
	p.Y.Min, p.Y.Max = 0, 100
	var lines []line
	for _, in := range ins {
		var xy plotter.XYs
		for _, pt := range in.res.Series {
			xy = append(xy, plotter.XY{X: pt.TS, Y: pt.HitRate * 100})
		}
		lines = append(lines, line{in.name, xy})
	}
	if slices.IndexFunc(lines, func(l line) bool { return len(l.xy) > 0 }) < 0 {
		return chart{}, errors.New("hitratio-*.json: no series (run the bench with --interval)")
	}
	if err := addLines(p, lines, false); err != nil {
		return chart{}, err
	}
	return chart{"hitratio.png", p}, nil
}

// streamRow is one row of streams.tsv.
type streamRow struct {
	target, mode      string
	n, completed, bad int
	cpuMs, rssKiB     float64
	ttftP50           float64 // ms
}

// readStreams reads streams_compare.sh's table; nil when there is none.
func readStreams(path string) ([]streamRow, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rows []streamRow
	sc := bufio.NewScanner(f)
	for ln := 1; sc.Scan(); ln++ {
		if ln == 1 {
			continue // the header
		}
		fs := strings.Split(sc.Text(), "\t")
		if len(fs) < 11 {
			return nil, fmt.Errorf("%s:%d: %d fields, want 11", path, ln, len(fs))
		}
		var r streamRow
		var errs []error
		num := func(s string) float64 {
			v, err := strconv.ParseFloat(s, 64)
			errs = append(errs, err)
			return v
		}
		r.target, r.mode = fs[0], fs[1]
		r.n, r.completed, r.bad = int(num(fs[2])), int(num(fs[3])), int(num(fs[4]))
		r.cpuMs, r.rssKiB, r.ttftP50 = num(fs[5]), num(fs[7]), num(fs[8])
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, ln, err)
		}
		rows = append(rows, r)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if rows == nil {
		return nil, fmt.Errorf("%s: no rows", path)
	}
	return rows, nil
}

// streamCharts draws RSS per stream, CPU per stream and added time to
// first token against the number of concurrent streams, a line per target.
func streamCharts(rows []streamRow) ([]chart, error) {
	var targets []string
	base := map[int]float64{} // the provider's own TTFT p50 at each N
	var levels []float64
	for _, r := range rows {
		if r.mode != "stream" {
			continue
		}
		if !slices.Contains(targets, r.target) {
			targets = append(targets, r.target)
		}
		if r.target == "simulated-provider" {
			base[r.n] = r.ttftP50
		}
		levels = append(levels, float64(r.n))
	}
	if len(targets) == 0 {
		return nil, errors.New("streams.tsv: no stream rows")
	}
	var rss, cpu, ttft []line
	for _, t := range targets {
		var a, b, c plotter.XYs
		for _, r := range rows {
			if r.mode != "stream" || r.target != t {
				continue
			}
			n := float64(r.n)
			a = append(a, plotter.XY{X: n, Y: r.rssKiB})
			b = append(b, plotter.XY{X: n, Y: r.cpuMs})
			if p, ok := base[r.n]; ok && t != "simulated-provider" {
				c = append(c, plotter.XY{X: n, Y: r.ttftP50 - p})
			}
		}
		rss = append(rss, line{t, a})
		cpu = append(cpu, line{t, b})
		// The provider's own line is empty here (nothing added to itself),
		// but keeps its place, so each target has one colour in every chart.
		ttft = append(ttft, line{t, c})
	}
	ticks := levelTicks(levels)
	lo, hi := bounds(levels)
	mk := func(file, title, y string, lines []line) (chart, error) {
		p := newPlot(title, "concurrent streams", y)
		p.X.Tick.Marker = ticks
		logAxis(&p.X, lo, hi)
		p.Y.Min = math.Min(0, minY(lines))
		_, ymax := bounds(ys(lines))
		roomAbove(&p.Y, p.Y.Min, ymax, len(lines))
		if err := addLines(p, lines, false); err != nil {
			return chart{}, err
		}
		return chart{file, p}, nil
	}
	var charts []chart
	for _, c := range []struct {
		file, title, y string
		lines          []line
	}{
		{"streams-rss.png", "Memory per stream (peak RSS growth / streams)", "KiB per stream", rss},
		{"streams-cpu.png", "CPU per stream", "CPU ms per stream", cpu},
		{"streams-ttft.png", "Time to first token added to the provider's", "added TTFT p50 (ms)", ttft},
	} {
		if len(c.lines) == 0 {
			continue
		}
		ch, err := mk(c.file, c.title, c.y, c.lines)
		if err != nil {
			return nil, err
		}
		charts = append(charts, ch)
	}
	return charts, nil
}

func minY(lines []line) float64 {
	m := 0.0
	for _, l := range lines {
		for _, p := range l.xy {
			m = math.Min(m, p.Y)
		}
	}
	return m
}
