package procstat

import (
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name, in string
		want     Stat
		err      error
	}{
		{"plain", "42 (vault) S 7 42 42 0 -1 4194560 1 0 0 0 250 50 0 0 20 0 9 0", Stat{Comm: "vault", PPID: 7, CPU: 3}, nil},
		{"comm with spaces and parens", "9 (a (b) c) R 1 9 9 0 -1 0 0 0 0 0 1 2 0 0", Stat{Comm: "a (b) c", PPID: 1, CPU: 0.03}, nil},
		{"no comm", "9 vault R 1", Stat{}, ErrFormat},
		{"short", "9 (x) R 1 2 3", Stat{}, ErrFormat},
		{"not a number", "9 (x) R 1 9 9 0 -1 0 0 0 0 0 u 2 0 0", Stat{}, ErrFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat([]byte(tt.in))
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Errorf("parseStat = %+v, %v; want %+v, %v", got, err, tt.want, tt.err)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name, in string
		want     Memory
		err      error
	}{
		{"both", "Name:\tx\nVmRSS:\t  17920 kB\nRssAnon:\t    3700 kB\nRssFile: 14220 kB\n", Memory{RSS: 17920, Anon: 3700}, nil},
		{"no RssAnon", "VmRSS:\t 1 kB\n", Memory{}, ErrFormat},
		{"bad number", "VmRSS:\t x kB\nRssAnon:\t 1 kB\n", Memory{}, ErrFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatus([]byte(tt.in))
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Errorf("parseStatus = %+v, %v; want %+v, %v", got, err, tt.want, tt.err)
			}
		})
	}
}

func TestParseMachine(t *testing.T) {
	got, err := parseMachine([]byte("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3\n"))
	if err != nil || got != (Machine{Busy: 1.5, Total: 10}) {
		t.Errorf("parseMachine = %+v, %v; want busy 1.5 of 10", got, err)
	}
	if _, err := parseMachine([]byte("intr 1 2\n")); !errors.Is(err, ErrFormat) {
		t.Errorf("parseMachine without a cpu line: %v, want ErrFormat", err)
	}
}

// TestLiveProcesses reads this machine's /proc: a child started here is
// found by name, and this process has resident memory.
func TestLiveProcesses(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pids, err := Children(os.Getpid(), "sleep")
	if err != nil || !slices.Contains(pids, cmd.Process.Pid) {
		t.Errorf("Children = %v, %v; want it to hold %d", pids, err, cmd.Process.Pid)
	}
	m, err := ReadMemory(os.Getpid())
	if err != nil || m.RSS <= 0 || m.Anon <= 0 || m.Anon > m.RSS {
		t.Errorf("ReadMemory(self) = %+v, %v", m, err)
	}
	if _, err := ReadStat(cmd.Process.Pid); err != nil {
		t.Errorf("ReadStat(child): %v", err)
	}
	avail, err1 := MemInfoKiB("MemAvailable")
	total, err2 := MemInfoKiB("MemTotal")
	if err1 != nil || err2 != nil || avail <= 0 || avail > total {
		t.Errorf("MemInfoKiB: available %d (%v) of total %d (%v)", avail, err1, total, err2)
	}
	if l, err := LoadAverage(); err != nil || len(strings.Fields(l)) != 3 {
		t.Errorf("LoadAverage = %q, %v; want three numbers", l, err)
	}
	if _, err := MemInfoKiB("NoSuchField"); !errors.Is(err, ErrFormat) {
		t.Errorf("MemInfoKiB(NoSuchField): %v, want ErrFormat", err)
	}
}
