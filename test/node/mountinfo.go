package node

import (
	"bufio"
	"io"
	"os"
	"strconv"
	"strings"
)

// mount is one line of /proc/self/mountinfo, the parts the node uses.
type mount struct{ Point, Type, Source string }

func readMounts() ([]mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseMountinfo(f)
}

// parseMountinfo reads mountinfo lines: "id parent major:minor root point
// options [optional fields...] - type source super-options". Lines that do
// not have that shape are skipped.
func parseMountinfo(r io.Reader) ([]mount, error) {
	var out []mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		sep := 6
		for sep < len(fs) && fs[sep] != "-" {
			sep++
		}
		if len(fs) < 5 || sep+2 >= len(fs) {
			continue
		}
		out = append(out, mount{Point: unescapeMount(fs[4]), Type: fs[sep+1], Source: unescapeMount(fs[sep+2])})
	}
	return out, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
