package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestReadPhases(t *testing.T) {
	started := time.Date(2026, 11, 27, 19, 13, 31, 100_000_000, time.UTC)
	tests := []struct {
		name    string
		log     string
		want    phases
		wantErr bool
	}{
		{"every step", `{"level":"info","ts":"2026-11-27T19:13:31.175Z","msg":"agent starting","secrets":2}
not json
{"level":"info","ts":"2026-11-27T19:13:31.196Z","msg":"logged in to vault","role":"app"}
{"level":"info","ts":"2026-11-27T19:13:31.434Z","msg":"rendered","secret":"s00"}
{"level":"info","ts":"2026-11-27T19:13:31.694Z","msg":"rendered","secret":"s01"}
{"level":"info","ts":"2026-11-27T19:13:31.700Z","msg":"first render complete"}
`, phases{init: 75 * time.Millisecond, login: 21 * time.Millisecond, reads: 238 * time.Millisecond, writes: 260 * time.Millisecond}, false},
		{"never logged in", `{"level":"info","ts":"2026-11-27T19:13:31.175Z","msg":"agent starting"}
{"level":"info","ts":"2026-11-27T19:13:31.300Z","msg":"first render not complete yet; retrying"}
`, phases{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "log")
			if err := os.WriteFile(path, []byte(tt.log), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := readPhases(path, started)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("readPhases = %+v, %v; want %+v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
