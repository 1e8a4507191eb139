package node

import (
	"strings"
	"testing"
)

func TestParseMountinfo(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []mount
	}{
		{"plain", "26 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n", []mount{{"/", "ext4", "/dev/vda"}}},
		{"optional fields", "30 26 0:27 / /sys/fs/cgroup rw shared:7 master:1 - tmpfs tmpfs rw\n", []mount{{"/sys/fs/cgroup", "tmpfs", "tmpfs"}}},
		{"escaped space", `40 26 0:30 / /tmp/a\040b rw - tmpfs tmp\040fs rw` + "\n", []mount{{"/tmp/a b", "tmpfs", "tmp fs"}}},
		{"no separator", "41 26 0:30 / /x rw tmpfs tmpfs rw\n", nil},
		{"short", "1 2 3\n", nil},
		{"bad escape kept", `42 26 0:30 / /y\09 rw - tmpfs t rw` + "\n", []mount{{`/y\09`, "tmpfs", "t"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseMountinfo(strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("mount %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

// FuzzParseMountinfo: any input parses without panicking, and every mount
// it returns came from a line with a separator and a type.
func FuzzParseMountinfo(f *testing.F) {
	f.Add("26 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n")
	f.Add(`40 26 0:30 / /tmp/a\040b rw - tmpfs tmp\040fs rw` + "\n")
	f.Add("\\\\\\ - - -\n")
	f.Fuzz(func(t *testing.T, in string) {
		ms, err := parseMountinfo(strings.NewReader(in))
		if err != nil {
			return // a line longer than the scanner's buffer
		}
		if len(ms) > strings.Count(in, " - ")+strings.Count(in, "\t-")+strings.Count(in, "-") {
			t.Fatalf("%d mounts from %d separators", len(ms), strings.Count(in, "-"))
		}
		for _, m := range ms {
			if m.Type == "" {
				t.Fatalf("mount %+v without a type", m)
			}
		}
	})
}
