// Command testapp is the app container of the real-node tests: it reports,
// from inside the pod, what the agent rendered (mode, owner, size and a
// SHA-256 of the content, never the content, and the file system it is on)
// and counts the SIGHUPs and reload calls it gets. Every line it prints is
// one JSON object; the first says who it runs as and which processes it
// sees (a shared process namespace shows the pause process and the agent).
//
//	testapp report FILE...                          one line per file; exit 1 if one cannot be read (Jobs)
//	testapp watch [-interval D] [-status F] [-listen ADDR] FILE...
//	                                                a line per file at start and on each change, one per SIGHUP and
//	                                                per POST to ADDR/-/reload; exit 0 on SIGTERM
//	testapp env NAME...                             a line per environment variable (its digest, and whether the
//	                                                value is also in the argument list); exit 0 on SIGTERM
//	testapp token -vault URL FILE                   looks the Vault token in FILE up (lookup-self) and prints its
//	                                                policies, never the token; exit 1 if Vault refuses it
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
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
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
	// FS is "tmpfs" for an in-memory file system, else its magic number;
	// FSSize is that file system's size in bytes.
	FS     string `json:"fs,omitempty"`
	FSSize int64  `json:"fsSize,omitempty"`
}

// Start is the first line: who the app runs as, its pid, the other
// processes it sees (by name) and those of them whose environment it can
// read.
type Start struct {
	Event    string   `json:"event"`
	UID      int      `json:"uid"`
	GID      int      `json:"gid"`
	Groups   []int    `json:"groups"`
	PID      int      `json:"pid"`
	Procs    []string `json:"procs"`
	Readable []string `json:"readable"`
}

// Status is what watch keeps in -status: what a test reads with one exec
// or file read instead of parsing logs.
type Status struct {
	SIGHUPs int      `json:"sighups"`
	Reloads int      `json:"reloads"`
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
	procs, readable := processes()
	_ = out.Encode(Start{Event: "start", UID: os.Getuid(), GID: os.Getgid(), Groups: groups, PID: os.Getpid(), Procs: procs, Readable: readable})
	var code int
	switch os.Args[1] {
	case "report":
		code = report(out, os.Args[2:])
	case "watch":
		code = watch(ctx, out, os.Args[2:])
	case "env":
		code = env(ctx, out, os.Args[2:])
	case "token":
		code = token(ctx, out, os.Args[2:])
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
	var fs syscall.Statfs_t
	if err := syscall.Statfs(path, &fs); err == nil {
		r.FS, r.FSSize = fsName(fs.Type), int64(fs.Blocks)*fs.Bsize
	}
	return r
}

func fsName(magic int64) string {
	const tmpfsMagic = 0x01021994
	if magic == tmpfsMagic {
		return "tmpfs"
	}
	return fmt.Sprintf("%#x", magic)
}

// processes lists the names of the other processes in /proc and those of
// them whose environ this process can read.
func processes() (names, readable []string) {
	entries, _ := os.ReadDir("/proc")
	self := strconv.Itoa(os.Getpid())
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil || e.Name() == self {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil {
			continue
		}
		name := strings.TrimSpace(string(comm))
		names = append(names, name)
		if f, err := os.Open(filepath.Join("/proc", e.Name(), "environ")); err == nil {
			f.Close()
			readable = append(readable, name)
		}
	}
	return names, readable
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
	listen := fs.String("listen", "", "address to serve POST /-/reload on")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	hup := make(chan os.Signal, 16)
	signal.Notify(hup, syscall.SIGHUP)
	reload := make(chan struct{}, 16)
	if *listen != "" {
		if err := serveReload(*listen, reload); err != nil {
			fmt.Fprintln(os.Stderr, "testapp:", err)
			return 1
		}
	}
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
		case <-reload:
			st.Reloads++
			_ = out.Encode(map[string]any{"event": "reload", "count": st.Reloads})
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

// serveReload counts POSTs to /-/reload, as an app's reload endpoint.
func serveReload(addr string, reload chan<- struct{}) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /-/reload", func(w http.ResponseWriter, _ *http.Request) {
		reload <- struct{}{}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return nil
}

// Env is what env prints of one variable.
type Env struct {
	Event  string `json:"event"`
	Name   string `json:"name"`
	SHA256 string `json:"sha256,omitempty"`
	// InArgs is true when the value also appears in the argument list,
	// where any user of the node could read it.
	InArgs bool `json:"inArgs"`
}

func env(ctx context.Context, out *json.Encoder, names []string) int {
	for _, n := range names {
		e := Env{Event: "env", Name: n}
		if v, ok := os.LookupEnv(n); ok {
			sum := sha256.Sum256([]byte(v))
			e.SHA256 = hex.EncodeToString(sum[:])
			for _, a := range os.Args {
				e.InArgs = e.InArgs || (v != "" && strings.Contains(a, v))
			}
		}
		_ = out.Encode(e)
	}
	<-ctx.Done()
	return 0
}

// Token is what token prints: the policies Vault lists for the token.
type Token struct {
	Event    string   `json:"event"`
	Policies []string `json:"policies,omitempty"`
	Error    string   `json:"error,omitempty"`
}

func token(ctx context.Context, out *json.Encoder, args []string) int {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	vault := fs.String("vault", "", "Vault's address")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 || *vault == "" {
		fmt.Fprintln(os.Stderr, "usage: testapp token -vault URL FILE")
		return 2
	}
	_ = out.Encode(inspect(fs.Arg(0)))
	policies, err := lookupSelf(ctx, *vault, fs.Arg(0))
	if err != nil {
		_ = out.Encode(Token{Event: "token", Error: err.Error()})
		return 1
	}
	_ = out.Encode(Token{Event: "token", Policies: policies})
	return 0
}

// lookupSelf asks Vault about the token in file. Errors name the status,
// never the token.
func lookupSelf(ctx context.Context, vault, file string) ([]string, error) {
	tok, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(vault, "/")+"/v1/auth/token/lookup-self", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Vault-Token", strings.TrimSpace(string(tok)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("lookup-self: %s", resp.Status)
	}
	var body struct {
		Data struct {
			Policies []string `json:"policies"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("lookup-self: %w", err)
	}
	return body.Data.Policies, nil
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
