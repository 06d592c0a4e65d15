package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
)

// Hand-written SVG charts for the report: horizontal bar pairs, Converge
// beside its baseline, one pair per row. Values of different scenarios
// differ by orders of magnitude, so each pair is scaled to its own larger
// value; the figures are printed at the bars' ends.

// barRow is one pair of bars.
type barRow struct {
	Label    string // scenario
	Sublabel string // metric
	Ours     *float64
	Base     *float64
	OursText string
	BaseText string
	BaseName string
	Ratio    string
}

// Chart geometry, in pixels.
const (
	chartWidth  = 1160
	labelWidth  = 250
	barArea     = 400
	barHeight   = 14
	rowHeight   = 48
	chartTop    = 64
	chartBottom = 16
	oursColor   = "#1b7f79"
	baseColor   = "#9a9a9a"
)

// esc escapes s for XML text and attribute values.
func esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s)) // writing to a bytes.Buffer cannot fail
	return b.String()
}

// barChart renders rows as an SVG document.
func barChart(title, subtitle string, rows []barRow) []byte {
	h := chartTop + len(rows)*rowHeight + chartBottom
	var b bytes.Buffer
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif" font-size="12">`+"\n", chartWidth, h, chartWidth, h)
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>`+"\n", chartWidth, h)
	fmt.Fprintf(&b, `<text x="12" y="22" font-size="16" font-weight="bold">%s</text>`+"\n", esc(title))
	fmt.Fprintf(&b, `<text x="12" y="40" fill="#555555">%s</text>`+"\n", esc(subtitle))
	// Legend.
	lx := chartWidth - 300
	fmt.Fprintf(&b, `<rect x="%d" y="12" width="12" height="12" fill="%s"/><text x="%d" y="22">Converge</text>`+"\n", lx, oursColor, lx+16)
	fmt.Fprintf(&b, `<rect x="%d" y="12" width="12" height="12" fill="%s"/><text x="%d" y="22">baseline (named at its bar)</text>`+"\n", lx+90, baseColor, lx+106)
	for i, r := range rows {
		y := chartTop + i*rowHeight
		if i%2 == 1 {
			fmt.Fprintf(&b, `<rect x="0" y="%d" width="%d" height="%d" fill="#f4f4f4"/>`+"\n", y-6, chartWidth, rowHeight)
		}
		fmt.Fprintf(&b, `<text x="12" y="%d" font-weight="bold">%s</text>`+"\n", y+10, esc(r.Label))
		fmt.Fprintf(&b, `<text x="12" y="%d" fill="#444444">%s</text>`+"\n", y+26, esc(r.Sublabel))
		if r.Ratio != "" {
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" fill="#444444">%s</text>`+"\n", labelWidth-8, y+26, esc(r.Ratio))
		}
		scale := 0.0
		for _, v := range []*float64{r.Ours, r.Base} {
			if v != nil && *v > scale && !math.IsInf(*v, 0) {
				scale = *v
			}
		}
		bar := func(v *float64, text, color string, dy int) {
			w := 0.0
			if v != nil && scale > 0 {
				w = math.Max(1, *v/scale*barArea)
			}
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", labelWidth, y+dy, w, barHeight, color)
			fmt.Fprintf(&b, `<text x="%.1f" y="%d">%s</text>`+"\n", float64(labelWidth)+w+6, y+dy+11, esc(text))
		}
		bar(r.Ours, r.OursText, oursColor, 0)
		baseText := r.BaseText
		if r.BaseName != "" {
			baseText += " — " + r.BaseName
		}
		bar(r.Base, baseText, baseColor, barHeight+4)
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// chartRows returns the bar rows of the measured rows of kind k.
func chartRows(rows []Row, k Kind) []barRow {
	var out []barRow
	for _, r := range rows {
		if r.Metric == "" || r.Kind != k || r.Status == StatusError || (r.Value == nil && r.BaselineValue == nil) {
			continue
		}
		ours := formatValue(r.Value, r.Unit)
		if r.Status == StatusNotAvailable {
			ours = "not available"
		}
		ratio := ""
		if r.Ratio != nil {
			ratio = formatRatio(r.Ratio)
		}
		out = append(out, barRow{
			Label: r.Scenario, Sublabel: r.Metric,
			Ours: r.Value, Base: r.BaselineValue,
			OursText: ours, BaseText: formatValue(r.BaselineValue, r.Unit),
			BaseName: r.Baseline, Ratio: ratio,
		})
	}
	return out
}
