package main

import (
	"image"
	"image/color"
	"image/draw"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

var (
	white = color.RGBA{255, 255, 255, 255}
	ink   = color.RGBA{40, 40, 40, 255}
	grid  = color.RGBA{225, 225, 225, 255}
	muted = color.RGBA{110, 110, 110, 255}
)

// palette is colour-blind friendly (Okabe–Ito) and prints well in grey.
var palette = []color.RGBA{
	{0, 114, 178, 255},
	{213, 94, 0, 255},
	{0, 158, 115, 255},
	{204, 121, 167, 255},
	{230, 159, 0, 255},
	{86, 180, 233, 255},
	{120, 120, 120, 255},
	{240, 228, 66, 255},
}

func colorAt(i int) color.RGBA { return palette[i%len(palette)] }

// canvas is an image with the primitives the charts need.
type canvas struct {
	img  *image.RGBA
	font font
}

func newCanvas(w, h int, f font) *canvas {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.NewUniform(white), image.Point{}, draw.Src)
	return &canvas{img: img, font: f}
}

func (c *canvas) fill(r image.Rectangle, col color.Color) {
	draw.Draw(c.img, r, image.NewUniform(col), image.Point{}, draw.Src)
}

// line draws a line w pixels thick.
func (c *canvas) line(x0, y0, x1, y1, w int, col color.Color) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		c.fill(image.Rect(x0-w/2, y0-w/2, x0-w/2+w, y0-w/2+w), col)
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func (c *canvas) rectOutline(r image.Rectangle, col color.Color) {
	c.fill(image.Rect(r.Min.X, r.Min.Y, r.Max.X, r.Min.Y+1), col)
	c.fill(image.Rect(r.Min.X, r.Max.Y-1, r.Max.X, r.Max.Y), col)
	c.fill(image.Rect(r.Min.X, r.Min.Y, r.Min.X+1, r.Max.Y), col)
	c.fill(image.Rect(r.Max.X-1, r.Min.Y, r.Max.X, r.Max.Y), col)
}

// textWidth is the width of s at the given pixel scale.
func textWidth(s string, scale int) int {
	n := utf8.RuneCountInString(s)
	if n == 0 {
		return 0
	}
	return (n*(glyphW+1) - 1) * scale
}

func textHeight(scale int) int { return (glyphH - 1) * scale } // the descender hangs below

// text draws s with its top-left corner at (x, y).
func (c *canvas) text(x, y int, s string, scale int, col color.Color) {
	for _, r := range s {
		g := c.font.glyph(r)
		for row := range glyphH {
			for bit := range glyphW {
				if g[row]&(1<<(glyphW-1-bit)) != 0 {
					px, py := x+bit*scale, y+row*scale
					c.fill(image.Rect(px, py, px+scale, py+scale), col)
				}
			}
		}
		x += (glyphW + 1) * scale
	}
}

// textUp draws s rotated a quarter turn anticlockwise, reading upwards,
// with its bottom-left corner (before rotation: top-left) at (x, y).
func (c *canvas) textUp(x, y int, s string, scale int, col color.Color) {
	for _, r := range s {
		g := c.font.glyph(r)
		for row := range glyphH {
			for bit := range glyphW {
				if g[row]&(1<<(glyphW-1-bit)) != 0 {
					px, py := x+row*scale, y-(bit+1)*scale
					c.fill(image.Rect(px, py, px+scale, py+scale), col)
				}
			}
		}
		y -= (glyphW + 1) * scale
	}
}

// fitText shortens s until it fits in width pixels at scale.
func fitText(s string, scale, width int) string {
	for textWidth(s, scale) > width && utf8.RuneCountInString(s) > 2 {
		r := []rune(strings.TrimSuffix(s, ".."))
		s = string(r[:len(r)-1]) + ".."
	}
	return s
}

// axis maps data values to [0, 1], linearly or by decades.
type axis struct {
	lo, hi float64
	log    bool
}

// linearAxis spans 0 (or lo) to a round number above hi.
func linearAxis(lo, hi float64) axis {
	if hi <= lo {
		hi = lo + 1
	}
	step := niceStep((hi - lo) / 5)
	return axis{lo: math.Floor(lo/step) * step, hi: math.Ceil(hi/step) * step}
}

// logAxis spans whole decades around lo..hi (both > 0).
func logAxis(lo, hi float64) axis {
	return axis{lo: math.Pow(10, math.Floor(math.Log10(lo))), hi: math.Pow(10, math.Ceil(math.Log10(hi))), log: true}
}

func (a axis) frac(v float64) float64 {
	if a.log {
		v = math.Max(v, a.lo)
		return (math.Log10(v) - math.Log10(a.lo)) / (math.Log10(a.hi) - math.Log10(a.lo))
	}
	return (v - a.lo) / (a.hi - a.lo)
}

func (a axis) ticks() []float64 {
	var ts []float64
	if a.log {
		decades := math.Log10(a.hi) - math.Log10(a.lo)
		for d := a.lo; d <= a.hi*1.0001; d *= 10 {
			ts = append(ts, d)
			if decades <= 2 && d*10 <= a.hi*1.0001 {
				ts = append(ts, 2*d, 5*d)
			}
		}
		return ts
	}
	step := niceStep((a.hi - a.lo) / 5)
	for v := a.lo; v <= a.hi+step/1000; v += step {
		ts = append(ts, math.Round(v/step)*step)
	}
	return ts
}

// niceStep rounds x up to 1, 2 or 5 times a power of ten.
func niceStep(x float64) float64 {
	if x <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= x {
			return m * p
		}
	}
	return 10 * p
}

// formatNum writes axis and value labels compactly: 1500, 12k, 2.5M, 0.25.
func formatNum(v float64) string {
	av := math.Abs(v)
	switch {
	case av >= 1e6:
		return strconv.FormatFloat(math.Round(v/1e5)/10, 'f', -1, 64) + "M"
	case av >= 1e4:
		return strconv.FormatFloat(math.Round(v/100)/10, 'f', -1, 64) + "k"
	case av >= 100 || av == math.Trunc(av):
		return strconv.FormatFloat(math.Round(v), 'f', -1, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

// chart is a canvas with a title, axis titles and a plot area.
type chart struct {
	*canvas
	plot image.Rectangle
	x, y axis
	// drawn holds every data point drawn, so the legend can avoid them.
	drawn []image.Point
}

const (
	chartW = 1000
	chartH = 600
)

func newChart(f font, title, xTitle, yTitle string) *chart {
	c := &chart{canvas: newCanvas(chartW, chartH, f)}
	c.plot = image.Rect(110, 70, chartW-40, chartH-90)
	ts := 3
	if textWidth(title, ts) > chartW-40 {
		ts = 2
	}
	title = fitText(title, ts, chartW-40)
	c.text((chartW-textWidth(title, ts))/2, 20, title, ts, ink)
	c.text(c.plot.Min.X+(c.plot.Dx()-textWidth(xTitle, 2))/2, chartH-35, xTitle, 2, ink)
	c.textUp(20, c.plot.Min.Y+(c.plot.Dy()+textWidth(yTitle, 2))/2, yTitle, 2, ink)
	return c
}

func (c *chart) px(fx float64) int {
	return c.plot.Min.X + int(math.Round(fx*float64(c.plot.Dx())))
}

func (c *chart) py(v float64) int {
	return c.plot.Max.Y - int(math.Round(c.y.frac(v)*float64(c.plot.Dy())))
}

// yGrid draws horizontal grid lines with labels and the plot frame.
func (c *chart) yGrid(suffix string) {
	for _, t := range c.y.ticks() {
		y := c.py(t)
		c.fill(image.Rect(c.plot.Min.X, y, c.plot.Max.X, y+1), grid)
		l := formatNum(t) + suffix
		c.text(c.plot.Min.X-10-textWidth(l, 2), y-textHeight(2)/2, l, 2, muted)
	}
	c.fill(image.Rect(c.plot.Min.X, c.plot.Min.Y, c.plot.Min.X+1, c.plot.Max.Y), ink)
	c.fill(image.Rect(c.plot.Min.X, c.plot.Max.Y, c.plot.Max.X, c.plot.Max.Y+1), ink)
}

// xLabel writes a tick label centred under x.
func (c *chart) xLabel(x int, s string, width int) {
	scale := 2
	if textWidth(s, 2) > width {
		scale = 1
	}
	s = fitText(s, scale, width)
	c.fill(image.Rect(x, c.plot.Max.Y, x+1, c.plot.Max.Y+6), ink)
	c.text(x-textWidth(s, scale)/2, c.plot.Max.Y+12, s, scale, muted)
}

type legendEntry struct {
	name string
	col  color.Color
}

// legend draws a boxed legend in the corner of the plot that covers the
// fewest data points (top-left on a tie).
func (c *chart) legend(es []legendEntry) {
	if len(es) == 0 {
		return
	}
	w := 0
	for _, e := range es {
		w = max(w, textWidth(e.name, 2))
	}
	lineH := textHeight(2) + 8
	size := image.Pt(w+56, len(es)*lineH+10)
	in := c.plot.Inset(12)
	var box image.Rectangle
	best := -1
	for _, at := range []image.Point{
		in.Min,
		{in.Max.X - size.X, in.Min.Y},
		in.Max.Sub(size),
		{in.Min.X, in.Max.Y - size.Y},
	} {
		r := image.Rectangle{at, at.Add(size)}
		covered := 0
		for _, p := range c.drawn {
			if p.In(r.Inset(-6)) {
				covered++
			}
		}
		if best < 0 || covered < best {
			box, best = r, covered
		}
	}
	c.fill(box, white)
	c.rectOutline(box, grid)
	for i, e := range es {
		y := box.Min.Y + 8 + i*lineH
		c.fill(image.Rect(box.Min.X+10, y+textHeight(2)/2-2, box.Min.X+38, y+textHeight(2)/2+2), e.col)
		c.text(box.Min.X+46, y, e.name, 2, ink)
	}
}

// polyline joins points with a thick line and marks each one.
func (c *chart) polyline(pts []image.Point, col color.Color) {
	c.drawn = append(c.drawn, pts...)
	for i := 1; i < len(pts); i++ {
		c.line(pts[i-1].X, pts[i-1].Y, pts[i].X, pts[i].Y, 3, col)
	}
	if len(pts) > 40 { // a dense series reads better as a bare line
		return
	}
	for _, p := range pts {
		c.fill(image.Rect(p.X-4, p.Y-4, p.X+5, p.Y+5), col)
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v < 0:
		return -1
	case v > 0:
		return 1
	}
	return 0
}
