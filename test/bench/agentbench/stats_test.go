package main

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	fifty := make([]int, 50)
	for i := range fifty {
		fifty[i] = 50 - i
	}
	tests := []struct {
		name string
		ds   []time.Duration
		p    float64
		want time.Duration
	}{
		{"median of odd count, unsorted input", ms(30, 10, 20), 50, 20 * time.Millisecond},
		{"median of even count is the lower middle", ms(40, 10, 30, 20), 50, 20 * time.Millisecond},
		{"p99 of 50 is the largest", ms(fifty...), 99, 50 * time.Millisecond},
		{"p50 of 50 is the 25th", ms(fifty...), 50, 25 * time.Millisecond},
		{"one value", ms(7), 99, 7 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.ds, tt.p); got != tt.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tt.ds, tt.p, got, tt.want)
			}
		})
	}
}

func TestMedianOf(t *testing.T) {
	tests := []struct {
		xs   []float64
		want float64
	}{
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{5}, 5},
	}
	for _, tt := range tests {
		if got := medianOf(tt.xs, func(x float64) float64 { return x }); got != tt.want {
			t.Errorf("medianOf(%v) = %v, want %v", tt.xs, got, tt.want)
		}
	}
}
