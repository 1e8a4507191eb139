package main

import (
	"fmt"
	"os"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// plotFleet draws time to all rendered (left) and Vault's CPU (right)
// against fleet size into a PNG.
func plotFleet(path string, rows []result) error {
	all, vaultStart, vaultIdle := plotter.XYs{}, plotter.XYs{}, plotter.XYs{}
	for _, r := range rows {
		x := float64(r.size)
		all = append(all, plotter.XY{X: x, Y: r.all.Seconds()})
		vaultStart = append(vaultStart, plotter.XY{X: x, Y: r.start.cores(r.start.vault)})
		vaultIdle = append(vaultIdle, plotter.XY{X: x, Y: r.idle.cores(r.idle.vault)})
	}
	left, err := linePlot("Time until every agent has rendered", "seconds", map[string]plotter.XYs{"all rendered": all})
	if err != nil {
		return err
	}
	right, err := linePlot("Vault CPU", "cores (mean)", map[string]plotter.XYs{"while starting": vaultStart, "idle": vaultIdle})
	if err != nil {
		return err
	}
	img := vgimg.New(vg.Points(900), vg.Points(360))
	canvases := plot.Align([][]*plot.Plot{{left, right}}, draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Points(20), PadTop: vg.Points(6), PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(6)}, draw.New(img))
	left.Draw(canvases[0][0])
	right.Draw(canvases[0][1])
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("-plot: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("-plot: writing %s: %w", path, err)
	}
	return f.Close()
}

// linePlot draws each series as lines with points against the fleet size
// on a log axis. Series are added in name order so colours are stable.
func linePlot(title, yLabel string, series map[string]plotter.XYs) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "agents"
	p.Y.Label.Text = yLabel
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min = 0
	p.Legend.Top = true
	p.Legend.Left = true
	names := make([]string, 0, len(series))
	for n := range series {
		names = append(names, n)
	}
	sort.Strings(names)
	for i, n := range names {
		l, pts, err := plotter.NewLinePoints(series[n])
		if err != nil {
			return nil, fmt.Errorf("plot %q: %w", title, err)
		}
		l.Color, pts.Color = plotutil.Color(i), plotutil.Color(i)
		p.Add(l, pts)
		p.Legend.Add(n, l, pts)
	}
	return p, nil
}
