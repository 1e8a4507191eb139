// Command fakeagent stands in for the agent's image in the kubelet shim's
// own tests: a real program that does, in its container, what the shim must
// make possible for the real agent, and prints what it found.
//
//	fakeagent run    agent: check the token, render a file, serve /startupz
//	fakeagent probe  startup probe: exit 0 when /startupz answers 200
//	fakeagent app F  app: read rendered file F, check its mount is read-only
//
// It reads the agent's JSON config from BLINKCHAMBER_AGENT_CONFIG, like the
// agent. Test knobs come from the shim's ExtraEnv: FAKEAGENT_READY_AFTER (a
// duration, or "never") delays readiness; FAKEAGENT_FAIL makes run fail
// with that reason and exit code 3; FAKEAGENT_APP_STAY keeps app running
// until SIGTERM.
package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

type config struct {
	Mode       string `json:"mode"`
	TokenFile  string `json:"tokenFile"`
	SecretsDir string `json:"secretsDir"`
	HealthAddr string `json:"healthAddr"`
}

// RenderedFile is the file run writes into the secrets dir.
const renderedFile = "hello"

func main() {
	if len(os.Args) < 2 {
		fail(2, "usage: fakeagent run|probe|app FILE")
	}
	switch os.Args[1] {
	case "run":
		run(loadConfig())
	case "probe":
		probe(loadConfig())
	case "app":
		if len(os.Args) != 3 {
			fail(2, "usage: fakeagent app FILE")
		}
		app(os.Args[2])
	default:
		fail(2, "unknown command "+os.Args[1])
	}
}

func loadConfig() config {
	var c config
	if err := json.Unmarshal([]byte(os.Getenv("BLINKCHAMBER_AGENT_CONFIG")), &c); err != nil {
		fail(2, "config: "+err.Error())
	}
	return c
}

func fail(code int, msg string) {
	fmt.Println(msg)
	os.Exit(code)
}

func run(c config) {
	start := time.Now()
	fmt.Printf("uid=%d gid=%d groups=%v\n", os.Getuid(), os.Getgid(), groups())
	if reason := os.Getenv("FAKEAGENT_FAIL"); reason != "" {
		fail(3, "render failed: "+reason)
	}
	checkToken(c.TokenFile)
	checkRootFS()
	content := fmt.Sprintf("rendered by uid %d\n", os.Getuid())
	if err := os.WriteFile(filepath.Join(c.SecretsDir, renderedFile), []byte(content), 0o400); err != nil {
		fail(4, "render: "+err.Error())
	}
	fmt.Println("rendered", renderedFile)
	if c.Mode == "init" {
		return
	}
	serveHealth(c.HealthAddr, start)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	<-stop
	fmt.Println("terminating on SIGTERM")
}

func groups() []int {
	g, _ := os.Getgroups()
	return g
}

// checkToken reads the projected token and prints its audience and the pod
// it is bound to.
func checkToken(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		fail(5, "token: "+err.Error())
	}
	parts := strings.Split(strings.TrimSpace(string(b)), ".")
	if len(parts) != 3 {
		fail(5, fmt.Sprintf("token: not a JWT (%d parts)", len(parts)))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		fail(5, "token payload: "+err.Error())
	}
	var claims struct {
		Aud []string `json:"aud"`
		K8s struct {
			Pod struct{ Name string } `json:"pod"`
		} `json:"kubernetes.io"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		fail(5, "token claims: "+err.Error())
	}
	fmt.Printf("token aud=%s pod=%s\n", strings.Join(claims.Aud, ","), claims.K8s.Pod.Name)
}

// checkRootFS reports whether the root filesystem is read-only, as
// readOnlyRootFilesystem asks.
func checkRootFS() {
	err := os.WriteFile("/.fakeagent-rootfs-check", nil, 0o600)
	switch {
	case errors.Is(err, syscall.EROFS):
		fmt.Println("rootfs: read-only")
	case err == nil:
		os.Remove("/.fakeagent-rootfs-check")
		fmt.Println("rootfs: writable")
	default:
		fmt.Println("rootfs:", err)
	}
}

// serveHealth answers /startupz with 503 until FAKEAGENT_READY_AFTER has
// passed since start, then 200, printing each answer.
func serveHealth(addr string, start time.Time) {
	readyAfter := time.Duration(-1)
	if v := os.Getenv("FAKEAGENT_READY_AFTER"); v != "" && v != "never" {
		d, err := time.ParseDuration(v)
		if err != nil {
			fail(2, "FAKEAGENT_READY_AFTER: "+err.Error())
		}
		readyAfter = d
	} else if v == "" {
		readyAfter = 0
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fail(6, "health: "+err.Error())
	}
	fmt.Println("health listening on", addr)
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code := http.StatusServiceUnavailable
		if readyAfter >= 0 && time.Since(start) >= readyAfter {
			code = http.StatusOK
		}
		fmt.Println("startupz", code)
		w.WriteHeader(code)
	}))
}

func probe(c config) {
	client := http.Client{Timeout: time.Second}
	resp, err := client.Get("http://" + c.HealthAddr + "/startupz")
	if err != nil {
		fail(1, "probe: "+err.Error())
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fail(1, fmt.Sprintf("probe: status %d", resp.StatusCode))
	}
}

// app reads the rendered file as the app container would, and checks that
// its secrets mount refuses writes.
func app(file string) {
	fmt.Printf("app uid=%d\n", os.Getuid())
	b, err := os.ReadFile(file)
	if err != nil {
		fail(7, "app read: "+err.Error())
	}
	fmt.Printf("app read: %s", b)
	err = os.WriteFile(filepath.Join(filepath.Dir(file), "app-was-here"), nil, 0o600)
	if errors.Is(err, syscall.EROFS) {
		fmt.Println("secrets mount: read-only")
	} else {
		fmt.Println("secrets mount: writable:", err)
	}
	if os.Getenv("FAKEAGENT_APP_STAY") == "" {
		return
	}
	// Stay like a server, and take a moment to shut down, so that a test
	// can see whether the sidecar outlives the app.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	<-stop
	time.Sleep(300 * time.Millisecond)
	fmt.Println("app terminating")
}
