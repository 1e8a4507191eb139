package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseOptionsDefaults(t *testing.T) {
	o, err := parseOptions([]string{"-out", "docs/benchmarks.md"})
	if err != nil {
		t.Fatal(err)
	}
	// The defaults are issue #6's figures, so that a bare run reproduces them.
	if !slices.Equal(o.sizes, []int{1, 10, 50}) || o.starts != 20 || o.idle != 5*time.Minute || o.rotations != 50 ||
		!slices.Equal(o.rotationIntervals, []time.Duration{time.Second, 5 * time.Second}) {
		t.Errorf("defaults = %+v", o)
	}
	if o.plots != "docs/benchmarks" {
		t.Errorf("plots = %q, want the benchmarks/ directory beside -out", o.plots)
	}
}

func TestParseOptionsErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string // the flag the error must name
	}{
		{[]string{"-sizes", "1,x"}, "-sizes"},
		{[]string{"-sizes", "0"}, "-sizes"},
		{[]string{"-rotation-intervals", "500ms"}, "-rotation-intervals"},
		{[]string{"-rotation-intervals", "soon"}, "-rotation-intervals"},
		{[]string{"-render-interval", "100ms"}, "-render-interval"},
		{[]string{"-starts", "0"}, "-starts"},
		{[]string{"-replicas", "-1"}, "-replicas"},
		{[]string{"-rotations", "0"}, "-rotations"},
		{[]string{"-idle", "10ms"}, "-idle"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, err := parseOptions(tt.args)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseOptions(%q) = %v, want an error naming %s", tt.args, err, tt.want)
			}
		})
	}
}
