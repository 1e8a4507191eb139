package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Plot files written into -plot-dir.
const (
	throughputPNG = "webhook-throughput.png"
	latencyPNG    = "webhook-p99.png"
)

// writePlots draws admissions/s and p99 against concurrency, a line per
// pod size, with vault-k8s's stated figures as points.
func writePlots(dir string, points []point, secrets []int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range []struct {
		file, title, unit string
		value             func(point) float64
		ref               func(reference) float64
	}{
		{throughputPNG, "Webhook throughput", "admissions/s",
			func(p point) float64 { return p.throughput }, func(r reference) float64 { return r.throughput }},
		{latencyPNG, "Webhook p99 latency", "p99 (ms)",
			func(p point) float64 { return millis(p.p99) }, func(r reference) float64 { return millis(r.p99) }},
	} {
		p, err := concurrencyPlot(f.title, f.unit, points, secrets, f.value, f.ref)
		if err != nil {
			return fmt.Errorf("plot %s: %w", f.file, err)
		}
		if err := p.Save(16*vg.Centimeter, 10*vg.Centimeter, filepath.Join(dir, f.file)); err != nil {
			return fmt.Errorf("plot %s: %w", f.file, err)
		}
	}
	return nil
}

func concurrencyPlot(title, unit string, points []point, secrets []int, value func(point) float64, ref func(reference) float64) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title + " by concurrency"
	p.X.Label.Text = "concurrency (requests in flight)"
	p.Y.Label.Text = unit
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	for i, n := range secrets {
		var xys plotter.XYs
		for _, pt := range points {
			if pt.secrets == n {
				xys = append(xys, plotter.XY{X: float64(pt.concurrency), Y: value(pt)})
			}
		}
		l, s, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, err
		}
		l.Color, s.Color = plotutil.Color(i), plotutil.Color(i)
		s.Shape = plotutil.Shape(i)
		p.Add(l, s)
		p.Legend.Add(fmt.Sprintf("blinkchamber, %d secrets", n), l, s)
	}
	refs := make(plotter.XYs, len(vaultK8s))
	for i, r := range vaultK8s {
		refs[i] = plotter.XY{X: float64(r.concurrency), Y: ref(r)}
	}
	sc, err := plotter.NewScatter(refs)
	if err != nil {
		return nil, err
	}
	sc.Shape = draw.CrossGlyph{}
	sc.Radius = vg.Points(5)
	p.Add(sc)
	p.Legend.Add(fmt.Sprintf("vault-k8s, %d secrets (stated)", targetSecrets), sc)
	p.Legend.Top, p.Legend.Left = true, true
	p.Add(plotter.NewGrid())
	return p, nil
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
