package agent

import (
	"testing"
	"time"
)

// TestResumedTTL: a resumed token keeps what lookup-self says it has left;
// one issued with a TTL that has less than resumeFloor left is replaced by
// a login, above all when under a second reads as 0 (kept as 0, it would
// be a token that never expires, never renewed until Vault refuses it).
func TestResumedTTL(t *testing.T) {
	cases := []struct {
		name   string
		issued int
		left   time.Duration
		want   int
		keep   bool
	}{
		{"plenty left", 3600, 3540 * time.Second, 3540, true},
		{"fractions dropped", 3600, 3540*time.Second + 900*time.Millisecond, 3540, true},
		{"exactly the floor", 3600, resumeFloor, int(resumeFloor / time.Second), true},
		{"under the floor", 3600, resumeFloor - time.Second, 0, false},
		{"under a second, read as 0", 3600, 0, 0, false},
		{"issued without a TTL", 0, 0, 0, true},
		{"issued without a TTL, lookup says it has one", 0, time.Hour, 3600, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, keep := resumedTTL(tc.issued, tc.left)
			if got != tc.want || keep != tc.keep {
				t.Errorf("resumedTTL(%d, %s) = %d, %v; want %d, %v", tc.issued, tc.left, got, keep, tc.want, tc.keep)
			}
		})
	}
}
