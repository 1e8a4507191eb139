package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/blinkchamber/blinkchamber/test/bench/procstat"
)

// processCPU is the user+system CPU time of pid so far.
func processCPU(pid int) (time.Duration, error) {
	s, err := procstat.ReadStat(pid)
	if err != nil {
		return 0, err
	}
	return time.Duration(s.CPU * float64(time.Second)), nil
}

// rssKiB is VmRSS of pid.
func rssKiB(pid int) (int64, error) {
	m, err := procstat.ReadMemory(pid)
	return m.RSS, err
}

// goroutines reads go_goroutines from the injector's Prometheus endpoint.
func goroutines(ctx context.Context, metricsURL string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int(f), err
		}
	}
	return 0, fmt.Errorf("%s: no go_goroutines metric", metricsURL)
}

// loadAvg is the machine's 1, 5 and 15 minute load, for the report.
func loadAvg() string {
	l, err := procstat.LoadAverage()
	if err != nil {
		return "unknown"
	}
	return l
}

// memTotalGiB is the machine's memory, for the report.
func memTotalGiB() float64 {
	kib, err := procstat.MemInfoKiB("MemTotal")
	if err != nil {
		return 0
	}
	return float64(kib) / (1 << 20)
}
