// Command counter stands for an app in the rotation end-to-end tests: it
// counts the SIGHUPs, SIGUSR1s and the POSTs to /-/reload it receives and prints each
// one, so a test can tell exactly how many times the agent told it about a
// change. At start it prints what it sees of the pod's processes, and a
// digest (never the value) of the environment variables named by -env.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

func main() {
	listen := flag.String("listen", "", "serve POST /-/reload on this address")
	envNames := flag.String("env", "", "comma-separated variables to report a digest of")
	flag.Parse()
	seen := processes()
	if len(seen) > 20 {
		// The host's PID namespace (no shareProcessNamespace in the shim).
		seen = []string{strconv.Itoa(len(seen)) + "-processes"}
	}
	fmt.Printf("started pid=%d pid1=%s sees=%s agent-environ=%s\n", os.Getpid(), comm(1), strings.Join(seen, ","), agentEnviron())
	for _, n := range strings.Split(*envNames, ",") {
		if n == "" {
			continue
		}
		sum := sha256.Sum256([]byte(os.Getenv(n)))
		fmt.Printf("env %s sha256=%s\n", n, hex.EncodeToString(sum[:]))
	}
	if *listen != "" {
		var reloads atomic.Int64
		http.HandleFunc("/-/reload", func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost {
				http.Error(w, "POST only", http.StatusMethodNotAllowed)
				return
			}
			fmt.Printf("reload count=%d\n", reloads.Add(1))
		})
		go func() {
			if err := http.ListenAndServe(*listen, nil); err != nil {
				fmt.Println("listen:", err)
				os.Exit(2)
			}
		}()
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGTERM)
	counts := map[os.Signal]int{}
	for s := range sigs {
		if s == syscall.SIGTERM {
			fmt.Println("terminating")
			return
		}
		counts[s]++
		fmt.Printf("signal %s count=%d\n", map[os.Signal]string{syscall.SIGHUP: "SIGHUP", syscall.SIGUSR1: "SIGUSR1"}[s], counts[s])
	}
}

func comm(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// processes lists the names of the processes this one can see.
func processes() []string {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var names []string
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err == nil {
			names = append(names, comm(pid))
		}
	}
	sort.Strings(names)
	return names
}

// agentEnviron says whether this process may read the environment of the
// agent (the kernel names it blinkchamber-ag) it sees: "readable",
// "denied", or "unseen".
func agentEnviron() string {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil || comm(pid) != "blinkchamber-ag" {
			continue
		}
		if _, err := os.ReadFile(filepath.Join(d, "environ")); err != nil {
			return "denied"
		}
		return "readable"
	}
	return "unseen"
}
