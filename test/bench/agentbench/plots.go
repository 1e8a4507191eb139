package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// figure is one PNG the report links to.
type figure struct {
	title, file string
}

// writePlots draws every figure of the report into dir.
func writePlots(dir string, o options, res results) ([]figure, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	figs := []struct {
		figure
		draw func() (*plot.Plot, error)
	}{
		{figure{"RssAnon at steady state", "agent-memory-anon.png"},
			func() (*plot.Plot, error) {
				return memoryPlot("RssAnon", o, res, func(r idleRun) int64 { return r.anonKiB })
			}},
		{figure{"RSS at steady state", "agent-memory-rss.png"},
			func() (*plot.Plot, error) {
				return memoryPlot("RSS", o, res, func(r idleRun) int64 { return r.rssKiB })
			}},
		{figure{"First render", "agent-first-render.png"}, func() (*plot.Plot, error) { return firstRenderPlot(o, res) }},
		{figure{"Rotation latency", "agent-rotation.png"}, func() (*plot.Plot, error) { return rotationPlot(res) }},
	}
	var out []figure
	for _, f := range figs {
		p, err := f.draw()
		if err != nil {
			return nil, fmt.Errorf("plot %s: %w", f.file, err)
		}
		if err := p.Save(16*vg.Centimeter, 10*vg.Centimeter, filepath.Join(dir, f.file)); err != nil {
			return nil, fmt.Errorf("plot %s: %w", f.file, err)
		}
		out = append(out, f.figure)
	}
	return out, nil
}

// memoryPlot is a bar per agent and number of secrets: the median of the
// idle replicas.
func memoryPlot(what string, o options, res results, read func(idleRun) int64) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = what + " at steady state (median of " + fmt.Sprint(o.replicas) + " processes)"
	p.X.Label.Text = "secrets"
	p.Y.Label.Text = what + " (MiB)"
	w := vg.Points(18)
	top := 0.0
	for i, kind := range kinds {
		vs := make(plotter.Values, len(o.sizes))
		for j, n := range o.sizes {
			vs[j] = medianOf(res.idle[key{kind, n}], func(r idleRun) float64 { return float64(read(r)) / 1024 })
			top = max(top, vs[j])
		}
		b, err := plotter.NewBarChart(vs, w)
		if err != nil {
			return nil, err
		}
		b.Color = plotutil.Color(i)
		b.LineStyle.Width = 0
		b.Offset = w * vg.Length(2*i-1) / 2
		p.Add(b)
		p.Legend.Add(string(kind), b)
	}
	// Room above the bars for the legend, and beside the outer bars.
	p.Y.Min, p.Y.Max = 0, top*1.3
	p.X.Min, p.X.Max = -0.6, float64(len(o.sizes))-0.4
	p.Legend.Top, p.Legend.Left = true, true
	p.NominalX(sizeNames(o.sizes)...)
	p.Add(plotter.NewGrid())
	return p, nil
}

// firstRenderPlot is a box of the starts per agent and number of secrets.
func firstRenderPlot(o options, res results) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Process start to all files written (%d starts each)", o.starts)
	p.Y.Label.Text = "ms"
	var names []string
	for _, n := range o.sizes {
		for _, kind := range kinds {
			b, err := plotter.NewBoxPlot(vg.Points(16), float64(len(names)), millis(res.firsts[key{kind, n}]))
			if err != nil {
				return nil, err
			}
			b.BoxStyle.Color = plotutil.Color(kindIndex(kind))
			p.Add(b)
			names = append(names, fmt.Sprintf("%s\n%d secrets", shortName(kind), n))
		}
	}
	p.NominalX(names...)
	p.Y.Min = 0
	p.Add(plotter.NewGrid())
	return p, nil
}

// rotationPlot is the cumulative distribution of rotation latencies, a
// line per agent and render interval.
func rotationPlot(res results) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Rotation latency: KV v2 write to file changed"
	p.X.Label.Text = "seconds"
	p.Y.Label.Text = "fraction of rotations"
	for j, r := range res.rotations {
		for _, kind := range kinds {
			l, err := plotter.NewLine(cdf(r.latencies[kind]))
			if err != nil {
				return nil, err
			}
			l.Color = plotutil.Color(kindIndex(kind))
			l.Dashes = plotutil.Dashes(j)
			l.Width = vg.Points(1.5)
			p.Add(l)
			p.Legend.Add(fmt.Sprintf("%s, interval %s", kind, r.interval), l)
		}
	}
	p.X.Min = 0
	p.Legend.Top, p.Legend.Left = false, false
	p.Legend.YOffs = vg.Points(20)
	p.Add(plotter.NewGrid())
	return p, nil
}

// cdf is a step line through the sorted latencies.
func cdf(ds []time.Duration) plotter.XYs {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	xys := make(plotter.XYs, 0, 2*len(s))
	for i, d := range s {
		xys = append(xys, plotter.XY{X: d.Seconds(), Y: float64(i) / float64(len(s))},
			plotter.XY{X: d.Seconds(), Y: float64(i+1) / float64(len(s))})
	}
	return xys
}

func millis(ds []time.Duration) plotter.Values {
	vs := make(plotter.Values, len(ds))
	for i, d := range ds {
		vs[i] = float64(d) / float64(time.Millisecond)
	}
	return vs
}

func sizeNames(sizes []int) []string {
	out := make([]string, len(sizes))
	for i, n := range sizes {
		out[i] = fmt.Sprint(n)
	}
	return out
}

func kindIndex(kind agentKind) int {
	for i, k := range kinds {
		if k == kind {
			return i
		}
	}
	return len(kinds)
}

func shortName(kind agentKind) string {
	if kind == ours {
		return "blinkchamber"
	}
	return "vault"
}
