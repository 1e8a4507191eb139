package main

import (
	"math"
	"sort"
	"time"
)

// median of ds; ds must not be empty.
func median(ds []time.Duration) time.Duration {
	return percentile(ds, 50)
}

// percentile is the nearest-rank percentile p (0 < p <= 100) of ds: the
// smallest value with at least p % of the values at or below it. Of 50
// values, p99 is therefore the largest.
func percentile(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// medianOf is the median of what f reads from each run.
func medianOf[T any](runs []T, f func(T) float64) float64 {
	xs := make([]float64, len(runs))
	for i, r := range runs {
		xs[i] = f(r)
	}
	sort.Float64s(xs)
	if len(xs)%2 == 1 {
		return xs[len(xs)/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}
