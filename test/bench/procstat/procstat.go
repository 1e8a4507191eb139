// Package procstat reads what benchmarks measure of other processes from
// Linux's /proc: CPU time, resident memory, children, machine-wide CPU and
// available memory.
package procstat

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ticksPerSecond is USER_HZ, 100 on every Linux architecture Go supports.
const ticksPerSecond = 100

// ErrFormat means a /proc file did not look as expected.
var ErrFormat = errors.New("unexpected /proc format")

// Stat is what a benchmark uses of /proc/<pid>/stat.
type Stat struct {
	Comm string
	PPID int
	// CPU is user plus system time, in seconds.
	CPU float64
}

// ReadStat reads /proc/<pid>/stat.
func ReadStat(pid int) (Stat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Stat{}, err
	}
	return parseStat(b)
}

// parseStat reads "pid (comm) state ppid ... utime stime ...". The command
// name may hold spaces and parentheses, so fields count from the last ')'.
func parseStat(b []byte) (Stat, error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return Stat{}, fmt.Errorf("%w: stat without (comm)", ErrFormat)
	}
	fields := strings.Fields(string(b[end+1:]))
	// After comm: state(0) ppid(1) ... utime(11) stime(12).
	if len(fields) < 13 {
		return Stat{}, fmt.Errorf("%w: stat has %d fields after comm", ErrFormat, len(fields))
	}
	ppid, err1 := strconv.Atoi(fields[1])
	utime, err2 := strconv.ParseFloat(fields[11], 64)
	stime, err3 := strconv.ParseFloat(fields[12], 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return Stat{}, fmt.Errorf("%w: stat numbers: %w", ErrFormat, err)
	}
	return Stat{Comm: string(b[open+1 : end]), PPID: ppid, CPU: (utime + stime) / ticksPerSecond}, nil
}

// CPUSeconds is a process's user plus system time; 0 once it is gone.
func CPUSeconds(pid int) float64 {
	s, err := ReadStat(pid)
	if err != nil {
		return 0
	}
	return s.CPU
}

// Memory is a process's resident memory in KiB: all of it (VmRSS) and the
// anonymous part (RssAnon), which is what it does not share with others
// running the same binary.
type Memory struct{ RSS, Anon int64 }

// ReadMemory reads VmRSS and RssAnon from /proc/<pid>/status.
func ReadMemory(pid int) (Memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Memory{}, err
	}
	return parseStatus(b)
}

func parseStatus(b []byte) (Memory, error) {
	var m Memory
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		var dst *int64
		switch fields[0] {
		case "VmRSS:":
			dst = &m.RSS
		case "RssAnon:":
			dst = &m.Anon
		default:
			continue
		}
		v, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			return Memory{}, fmt.Errorf("%w: %s %q", ErrFormat, fields[0], fields[1])
		}
		*dst = v
		found++
	}
	if found < 2 {
		return Memory{}, fmt.Errorf("%w: status without VmRSS and RssAnon", ErrFormat)
	}
	return m, nil
}

// Children lists the pids of ppid's children whose command name is comm
// (the first 15 bytes of the executable's name).
func Children(ppid int, comm string) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		s, err := ReadStat(pid)
		if err != nil {
			continue // exited meanwhile
		}
		if s.PPID == ppid && s.Comm == comm {
			out = append(out, pid)
		}
	}
	return out, nil
}

// Machine is the machine-wide CPU time from /proc/stat, in seconds summed
// over all cores.
type Machine struct{ Busy, Total float64 }

// ReadMachine reads the "cpu" line of /proc/stat.
func ReadMachine() (Machine, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return Machine{}, err
	}
	return parseMachine(b)
}

func parseMachine(b []byte) (Machine, error) {
	line, _, _ := bytes.Cut(b, []byte{'\n'})
	fields := strings.Fields(string(line))
	// cpu user nice system idle iowait irq softirq steal ...
	if len(fields) < 9 || fields[0] != "cpu" {
		return Machine{}, fmt.Errorf("%w: /proc/stat does not start with a cpu line", ErrFormat)
	}
	var m Machine
	for i, f := range fields[1:9] {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return Machine{}, fmt.Errorf("%w: /proc/stat cpu field %d: %q", ErrFormat, i+1, f)
		}
		m.Total += v / ticksPerSecond
		if i != 3 && i != 4 { // idle and iowait
			m.Busy += v / ticksPerSecond
		}
	}
	return m, nil
}

// MemInfoKiB reads one field of /proc/meminfo ("MemTotal", "MemAvailable").
func MemInfoKiB(field string) (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("%w: /proc/meminfo without %s", ErrFormat, field)
}

// LoadAverage is the 1, 5 and 15 minute load averages from /proc/loadavg,
// as written there ("0.52 0.58 0.59").
func LoadAverage() (string, error) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "", err
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "", fmt.Errorf("%w: /proc/loadavg %q", ErrFormat, b)
	}
	return strings.Join(f[:3], " "), nil
}
