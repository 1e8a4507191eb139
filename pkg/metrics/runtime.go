package metrics

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// AddRuntime adds the Go runtime and process metrics that the Prometheus
// client's default Go and process collectors expose, every one of them,
// under the same names, types and help: RuntimeNames lists them.
func (r *Registry) AddRuntime() {
	one := func(v float64) func() []Sample { return func() []Sample { return []Sample{{Value: v}} } }
	r.add(writeGCStats)
	r.add(writeRuntimeSettings)
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
	r.NewFunc("process_virtual_memory_max_bytes", "Maximum amount of virtual memory available in bytes.", KindGauge, "",
		func() []Sample { return rlimit(syscall.RLIMIT_AS) })
	r.NewFunc("process_open_fds", "Number of open file descriptors.", KindGauge, "", openFDs)
	r.NewFunc("process_max_fds", "Maximum number of open file descriptors.", KindGauge, "",
		func() []Sample { return rlimit(syscall.RLIMIT_NOFILE) })
	if start, ok := startTime(); ok {
		r.NewFunc("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", KindGauge, "", one(start))
	}
	r.NewFunc("process_network_receive_bytes_total", "Number of bytes received by the process over the network.", KindCounter, "",
		func() []Sample { return netstat("InOctets") })
	r.NewFunc("process_network_transmit_bytes_total", "Number of bytes sent by the process over the network.", KindCounter, "",
		func() []Sample { return netstat("OutOctets") })
}

// RuntimeNames is every metric family AddRuntime adds.
var RuntimeNames = func() []string {
	names := []string{"go_gc_duration_seconds", "go_memstats_last_gc_time_seconds",
		"go_goroutines", "go_threads", "go_info",
		"process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes",
		"process_virtual_memory_max_bytes", "process_open_fds", "process_max_fds", "process_start_time_seconds",
		"process_network_receive_bytes_total", "process_network_transmit_bytes_total"}
	for _, s := range runtimeSettings {
		names = append(names, s.name)
	}
	for _, m := range memStats {
		names = append(names, m.name)
	}
	return names
}()

var memStats = []struct {
	name string
	kind Kind
	help string
	read func(*runtime.MemStats) uint64
}{
	{"go_memstats_alloc_bytes", KindGauge, "Number of bytes allocated in heap and currently in use. Equals to /memory/classes/heap/objects:bytes.", func(s *runtime.MemStats) uint64 { return s.Alloc }},
	{"go_memstats_alloc_bytes_total", KindCounter, "Total number of bytes allocated in heap until now, even if released already. Equals to /gc/heap/allocs:bytes.", func(s *runtime.MemStats) uint64 { return s.TotalAlloc }},
	{"go_memstats_sys_bytes", KindGauge, "Number of bytes obtained from system. Equals to /memory/classes/total:byte.", func(s *runtime.MemStats) uint64 { return s.Sys }},
	{"go_memstats_mallocs_total", KindCounter, "Total number of heap objects allocated, both live and gc-ed. Semantically a counter version for go_memstats_heap_objects gauge. Equals to /gc/heap/allocs:objects + /gc/heap/tiny/allocs:objects.", func(s *runtime.MemStats) uint64 { return s.Mallocs }},
	{"go_memstats_frees_total", KindCounter, "Total number of heap objects frees. Equals to /gc/heap/frees:objects + /gc/heap/tiny/allocs:objects.", func(s *runtime.MemStats) uint64 { return s.Frees }},
	{"go_memstats_heap_alloc_bytes", KindGauge, "Number of heap bytes allocated and currently in use, same as go_memstats_alloc_bytes. Equals to /memory/classes/heap/objects:bytes.", func(s *runtime.MemStats) uint64 { return s.HeapAlloc }},
	{"go_memstats_heap_sys_bytes", KindGauge, "Number of heap bytes obtained from system. Equals to /memory/classes/heap/objects:bytes + /memory/classes/heap/unused:bytes + /memory/classes/heap/released:bytes + /memory/classes/heap/free:bytes.", func(s *runtime.MemStats) uint64 { return s.HeapSys }},
	{"go_memstats_heap_idle_bytes", KindGauge, "Number of heap bytes waiting to be used. Equals to /memory/classes/heap/released:bytes + /memory/classes/heap/free:bytes.", func(s *runtime.MemStats) uint64 { return s.HeapIdle }},
	{"go_memstats_heap_inuse_bytes", KindGauge, "Number of heap bytes that are in use. Equals to /memory/classes/heap/objects:bytes + /memory/classes/heap/unused:bytes", func(s *runtime.MemStats) uint64 { return s.HeapInuse }},
	{"go_memstats_heap_released_bytes", KindGauge, "Number of heap bytes released to OS. Equals to /memory/classes/heap/released:bytes.", func(s *runtime.MemStats) uint64 { return s.HeapReleased }},
	{"go_memstats_heap_objects", KindGauge, "Number of currently allocated objects. Equals to /gc/heap/objects:objects.", func(s *runtime.MemStats) uint64 { return s.HeapObjects }},
	{"go_memstats_stack_inuse_bytes", KindGauge, "Number of bytes obtained from system for stack allocator in non-CGO environments. Equals to /memory/classes/heap/stacks:bytes.", func(s *runtime.MemStats) uint64 { return s.StackInuse }},
	{"go_memstats_stack_sys_bytes", KindGauge, "Number of bytes obtained from system for stack allocator. Equals to /memory/classes/heap/stacks:bytes + /memory/classes/os-stacks:bytes.", func(s *runtime.MemStats) uint64 { return s.StackSys }},
	{"go_memstats_mspan_inuse_bytes", KindGauge, "Number of bytes in use by mspan structures. Equals to /memory/classes/metadata/mspan/inuse:bytes.", func(s *runtime.MemStats) uint64 { return s.MSpanInuse }},
	{"go_memstats_mspan_sys_bytes", KindGauge, "Number of bytes used for mspan structures obtained from system. Equals to /memory/classes/metadata/mspan/inuse:bytes + /memory/classes/metadata/mspan/free:bytes.", func(s *runtime.MemStats) uint64 { return s.MSpanSys }},
	{"go_memstats_mcache_inuse_bytes", KindGauge, "Number of bytes in use by mcache structures. Equals to /memory/classes/metadata/mcache/inuse:bytes.", func(s *runtime.MemStats) uint64 { return s.MCacheInuse }},
	{"go_memstats_mcache_sys_bytes", KindGauge, "Number of bytes used for mcache structures obtained from system. Equals to /memory/classes/metadata/mcache/inuse:bytes + /memory/classes/metadata/mcache/free:bytes.", func(s *runtime.MemStats) uint64 { return s.MCacheSys }},
	{"go_memstats_buck_hash_sys_bytes", KindGauge, "Number of bytes used by the profiling bucket hash table. Equals to /memory/classes/profiling/buckets:bytes.", func(s *runtime.MemStats) uint64 { return s.BuckHashSys }},
	{"go_memstats_gc_sys_bytes", KindGauge, "Number of bytes used for garbage collection system metadata. Equals to /memory/classes/metadata/other:bytes.", func(s *runtime.MemStats) uint64 { return s.GCSys }},
	{"go_memstats_other_sys_bytes", KindGauge, "Number of bytes used for other system allocations. Equals to /memory/classes/other:bytes.", func(s *runtime.MemStats) uint64 { return s.OtherSys }},
	{"go_memstats_next_gc_bytes", KindGauge, "Number of heap bytes when next garbage collection will take place. Equals to /gc/heap/goal:bytes.", func(s *runtime.MemStats) uint64 { return s.NextGC }},
}

// writeMemStats reads the runtime's statistics once per scrape (a read
// stops the world briefly) and writes every metric taken from them.
func writeMemStats(b *bufio.Writer) {
	var s runtime.MemStats
	runtime.ReadMemStats(&s)
	for _, m := range memStats {
		header(b, m.name, m.help, string(m.kind))
		sample(b, m.name, "", "", float64(m.read(&s)))
	}
}

// writeGCStats writes the garbage collector's pauses as the client does:
// a summary with the minimum, quartiles and maximum of the recent pauses,
// the total pause time and the number of collections; and when the last
// collection ended.
func writeGCStats(b *bufio.Writer) {
	const name = "go_gc_duration_seconds"
	s := debug.GCStats{PauseQuantiles: make([]time.Duration, 5)}
	debug.ReadGCStats(&s)
	header(b, name, "A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles.", "summary")
	for i, q := range s.PauseQuantiles {
		sample(b, name, "quantile", formatFloat(float64(i)/float64(len(s.PauseQuantiles)-1)), q.Seconds())
	}
	sample(b, name+"_sum", "", "", s.PauseTotal.Seconds())
	sample(b, name+"_count", "", "", float64(s.NumGC))
	const last = "go_memstats_last_gc_time_seconds"
	header(b, last, "Number of seconds since 1970 of last garbage collection.", string(KindGauge))
	lastGC := 0.0
	if !s.LastGC.IsZero() {
		lastGC = float64(s.LastGC.UnixNano()) / 1e9
	}
	sample(b, last, "", "", lastGC)
}

// runtimeSettings are the runtime/metrics the client exposes by default:
// the collector's and scheduler's settings.
var runtimeSettings = []struct{ name, key, help string }{
	{"go_gc_gogc_percent", "/gc/gogc:percent", "Heap size target percentage configured by the user, otherwise 100. This value is set by the GOGC environment variable, and the runtime/debug.SetGCPercent function. Sourced from /gc/gogc:percent."},
	{"go_gc_gomemlimit_bytes", "/gc/gomemlimit:bytes", "Go runtime memory limit configured by the user, otherwise math.MaxInt64. This value is set by the GOMEMLIMIT environment variable, and the runtime/debug.SetMemoryLimit function. Sourced from /gc/gomemlimit:bytes."},
	{"go_sched_gomaxprocs_threads", "/sched/gomaxprocs:threads", "The current runtime.GOMAXPROCS setting, or the number of operating system threads that can execute user-level Go code simultaneously. Sourced from /sched/gomaxprocs:threads."},
}

func writeRuntimeSettings(b *bufio.Writer) {
	samples := make([]rtmetrics.Sample, len(runtimeSettings))
	for i, s := range runtimeSettings {
		samples[i].Name = s.key
	}
	rtmetrics.Read(samples)
	for i, s := range runtimeSettings {
		if samples[i].Value.Kind() != rtmetrics.KindUint64 {
			continue // not in this Go version
		}
		header(b, s.name, s.help, string(KindGauge))
		sample(b, s.name, "", "", float64(samples[i].Value.Uint64()))
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

// rlimit is the soft limit of resource (RLIM_INFINITY reads as 2^64-1,
// as the client reports it).
func rlimit(resource int) []Sample {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(resource, &l); err != nil {
		return nil
	}
	return []Sample{{Value: float64(l.Cur)}}
}

// netstat is the IpExt counter field of /proc/self/net/netstat: the bytes
// of the process's network namespace (the pod's), which is what the
// client's process collector reports too.
func netstat(field string) []Sample {
	b, err := os.ReadFile("/proc/self/net/netstat")
	if err != nil {
		return nil
	}
	var names []string
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "IpExt:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		if i := slices.Index(names, field); i > 0 && i < len(f) {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				return []Sample{{Value: v}}
			}
		}
		return nil
	}
	return nil
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
