// Command testapp is the app container of the real-node tests: it reports,
// from inside the pod, what the agent rendered (mode, owner, size and a
// SHA-256 of the content, never the content) and counts the SIGHUPs it is
// sent. Every line it prints is one JSON object.
//
//	testapp report FILE...                          one line per file; exit 1 if one cannot be read (Jobs)
//	testapp watch [-interval D] [-status F] FILE...  a line per file at start and on each change, one per SIGHUP; exit 0 on SIGTERM
//	testapp sleep D                                 exit 0 after D, or on SIGTERM
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

// Report is what testapp sees of one file.
type Report struct {
	Event string `json:"event"`
	Path  string `json:"path"`
	// Mode is the permission bits in octal, as "0440".
	Mode   string `json:"mode,omitempty"`
	UID    int    `json:"uid"`
	GID    int    `json:"gid"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Start is the first line: who the app runs as.
type Start struct {
	Event  string `json:"event"`
	UID    int    `json:"uid"`
	GID    int    `json:"gid"`
	Groups []int  `json:"groups"`
}

// Status is what watch keeps in -status: what a test reads with one exec
// or file read instead of parsing logs.
type Status struct {
	SIGHUPs int      `json:"sighups"`
	Files   []Report `json:"files"`
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: testapp report|watch|sleep ...")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	out := json.NewEncoder(os.Stdout)
	groups, _ := os.Getgroups()
	_ = out.Encode(Start{Event: "start", UID: os.Getuid(), GID: os.Getgid(), Groups: groups})
	var code int
	switch os.Args[1] {
	case "report":
		code = report(out, os.Args[2:])
	case "watch":
		code = watch(ctx, out, os.Args[2:])
	case "sleep":
		code = sleep(ctx, os.Args[2:])
	default:
		fmt.Fprintf(os.Stderr, "testapp: unknown command %q\n", os.Args[1])
		code = 2
	}
	os.Exit(code)
}

func inspect(path string) Report {
	r := Report{Event: "file", Path: path}
	st, err := os.Stat(path)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	r.Mode, r.Size = fmt.Sprintf("%04o", st.Mode().Perm()), st.Size()
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		r.UID, r.GID = int(sys.Uid), int(sys.Gid)
	}
	f, err := os.Open(path)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		r.Error = err.Error()
		return r
	}
	r.SHA256 = hex.EncodeToString(h.Sum(nil))
	return r
}

func report(out *json.Encoder, files []string) int {
	code := 0
	for _, f := range files {
		r := inspect(f)
		if r.Error != "" {
			code = 1
		}
		_ = out.Encode(r)
	}
	return code
}

func watch(ctx context.Context, out *json.Encoder, args []string) int {
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	interval := fs.Duration("interval", time.Second, "how often the files are read")
	statusFile := fs.String("status", "", "file to keep the status in (JSON)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	hup := make(chan os.Signal, 16)
	signal.Notify(hup, syscall.SIGHUP)
	st := Status{Files: make([]Report, fs.NArg())}
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	save := func() bool {
		if *statusFile == "" {
			return true
		}
		if err := writeStatus(*statusFile, st); err != nil {
			fmt.Fprintln(os.Stderr, "testapp:", err)
			return false
		}
		return true
	}
	for first := true; ; first = false {
		changed := first
		for i, f := range fs.Args() {
			if r := inspect(f); first || r != st.Files[i] {
				st.Files[i], changed = r, true
				_ = out.Encode(r)
			}
		}
		if changed && !save() {
			return 1
		}
		select {
		case <-ctx.Done():
			return 0
		case <-hup:
			st.SIGHUPs++
			_ = out.Encode(map[string]any{"event": "sighup", "count": st.SIGHUPs})
			if !save() {
				return 1
			}
		case <-tick.C:
		}
	}
}

// writeStatus replaces the status file atomically, so a reader never sees
// half of it.
func writeStatus(path string, st Status) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".status-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func sleep(ctx context.Context, args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: testapp sleep DURATION")
		return 2
	}
	d, err := time.ParseDuration(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "testapp:", err)
		return 2
	}
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
	return 0
}
