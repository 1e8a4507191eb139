package metrics

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// AddRuntime adds the Go runtime and process metrics, under the names the
// Prometheus client's Go and process collectors use: go_goroutines,
// go_threads, go_info, go_memstats_{heap_alloc,heap_inuse,heap_idle,
// heap_released,stack_inuse,sys,next_gc}_bytes, go_gc_cycles_total (the
// client's go_memstats_gc... family is not all here), process_cpu_seconds_total,
// process_resident_memory_bytes, process_virtual_memory_bytes,
// process_open_fds, process_max_fds and process_start_time_seconds.
func (r *Registry) AddRuntime() {
	one := func(v float64) func() []Sample { return func() []Sample { return []Sample{{Value: v}} } }
	r.NewFunc("go_goroutines", "Number of goroutines that currently exist.", KindGauge, "",
		func() []Sample { return []Sample{{Value: float64(runtime.NumGoroutine())}} })
	r.NewFunc("go_threads", "Number of OS threads created.", KindGauge, "",
		func() []Sample { n, _ := runtime.ThreadCreateProfile(nil); return []Sample{{Value: float64(n)}} })
	r.NewFunc("go_info", "Information about the Go environment.", KindGauge, "version",
		func() []Sample { return []Sample{{LabelValue: runtime.Version(), Value: 1}} })
	r.add(writeMemStats)
	r.NewFunc("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", KindCounter, "", cpuSeconds)
	r.NewFunc("process_resident_memory_bytes", "Resident memory size in bytes.", KindGauge, "", func() []Sample { return statm(1) })
	r.NewFunc("process_virtual_memory_bytes", "Virtual memory size in bytes.", KindGauge, "", func() []Sample { return statm(0) })
	r.NewFunc("process_open_fds", "Number of open file descriptors.", KindGauge, "", openFDs)
	r.NewFunc("process_max_fds", "Maximum number of open file descriptors.", KindGauge, "", maxFDs)
	if start, ok := startTime(); ok {
		r.NewFunc("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", KindGauge, "", one(start))
	}
}

var memStats = []struct {
	name, kind, help string
	read             func(*runtime.MemStats) uint64
}{
	{"go_memstats_heap_alloc_bytes", "gauge", "Number of heap bytes allocated and still in use.", func(s *runtime.MemStats) uint64 { return s.HeapAlloc }},
	{"go_memstats_heap_inuse_bytes", "gauge", "Number of heap bytes that are in use.", func(s *runtime.MemStats) uint64 { return s.HeapInuse }},
	{"go_memstats_heap_idle_bytes", "gauge", "Number of heap bytes waiting to be used.", func(s *runtime.MemStats) uint64 { return s.HeapIdle }},
	{"go_memstats_heap_released_bytes", "gauge", "Number of heap bytes released to the OS.", func(s *runtime.MemStats) uint64 { return s.HeapReleased }},
	{"go_memstats_stack_inuse_bytes", "gauge", "Number of bytes in use by the stack allocator.", func(s *runtime.MemStats) uint64 { return s.StackInuse }},
	{"go_memstats_sys_bytes", "gauge", "Number of bytes obtained from the system.", func(s *runtime.MemStats) uint64 { return s.Sys }},
	{"go_memstats_next_gc_bytes", "gauge", "Number of heap bytes when the next garbage collection will take place.", func(s *runtime.MemStats) uint64 { return s.NextGC }},
	{"go_gc_cycles_total", "counter", "Completed garbage collection cycles.", func(s *runtime.MemStats) uint64 { return uint64(s.NumGC) }},
}

// writeMemStats reads the runtime's statistics once per scrape (a read
// stops the world briefly) and writes every metric taken from them.
func writeMemStats(b *bufio.Writer) {
	var s runtime.MemStats
	runtime.ReadMemStats(&s)
	for _, m := range memStats {
		header(b, m.name, m.help, m.kind)
		sample(b, m.name, "", "", float64(m.read(&s)))
	}
}

func cpuSeconds() []Sample {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return nil
	}
	secs := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return []Sample{{Value: secs(ru.Utime) + secs(ru.Stime)}}
}

// statm reads field i of /proc/self/statm (0 size, 1 resident), in pages.
func statm(i int) []Sample {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return nil
	}
	f := strings.Fields(string(b))
	if len(f) <= i {
		return nil
	}
	pages, err := strconv.ParseFloat(f[i], 64)
	if err != nil {
		return nil
	}
	return []Sample{{Value: pages * float64(os.Getpagesize())}}
}

func openFDs() []Sample {
	d, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil
	}
	// ReadDir's own descriptor was closed before it returned.
	return []Sample{{Value: float64(len(d))}}
}

func maxFDs() []Sample {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return nil
	}
	return []Sample{{Value: float64(l.Cur)}}
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// startTime is when the process started: its start in clock ticks after
// boot (/proc/self/stat, field 22) plus the boot time (/proc/stat btime).
func startTime() (float64, bool) {
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, false
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: the first of them is field 3.
	rest := stat[bytes.LastIndexByte(stat, ')')+1:]
	f := strings.Fields(string(rest))
	if len(f) < 20 {
		return 0, false
	}
	ticks, err := strconv.ParseFloat(f[19], 64)
	if err != nil {
		return 0, false
	}
	all, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(all)) {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			boot, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return 0, false
			}
			return boot + ticks/clockTicks, true
		}
	}
	return 0, false
}
