package harness

// The kubelet shim: a stand-in for a node, kept for the agent tests a real
// node cannot run, or not in reasonable time. What a pod sees (files,
// modes and owners, tmpfs, tokens, native sidecar start, rotation actions,
// metrics on the pod IP, vault-k8s annotations, refusals, revoke on
// shutdown, restricted Pod Security) is tested on the real node, through
// the chart (test/nodee2e); none of that is tested here any more.
//
// It is still used by these tests of test/e2e, for these reasons:
//
//   - Vault under the test's control: TestAgentRendersRotatesAndRecovers
//     (Vault stopped for 15 s and restarted, every login token revoked),
//     TestNativeStartupProbe (Vault down while the pod starts),
//     TestAgentSurvivesVaultFaults (a proxy dropping and slowing requests,
//     Vault sealed), TestAgentLeaseRevoked and TestAgentRoleDeleted (a
//     lease or the role revoked mid-run). The node's Vault is the chart's
//     StatefulSet: stopping, sealing or proxying it would break the other
//     tests sharing the installed stack.
//   - The host reaching into a running pod's volume: TestAgentTmpfsFull
//     fills the tmpfs, TestSpecialFilesDoNotBlockRendering plants a FIFO
//     and a directory where the agent writes. The node's volumes are
//     private to the kubelet and the containers are read-only, restricted.
//   - Servers the node's images do not have: TestDynamicPostgresCredentials
//     (the harness's PostgreSQL; the chart's PostgreSQL image is not built
//     for the node) and TestBootstrapDevelopment (pods proving the roles
//     `blinkchamber bootstrap` made in a fresh Vault; on the node the
//     chart's Job bootstraps the one Vault).
//   - Dozens of hostile templates, each a pod whose agent must fail or keep
//     running with a named error: TestTemplateTokenEndpoints,
//     TestTemplateRenderBounds, TestTemplateCycleAfterRotation,
//     TestComputedPathErrorsLeakNothing. A shim pod starts in well under a
//     second; a node pod takes seconds each.
//
// The shim reads a real (mutated) Pod back from the API server and runs the
// containers whose image the test maps to a local executable, doing what
// the kubelet and the runtime would do for them: volumes (tmpfs emptyDirs
// with their size limit, projected ServiceAccount tokens minted by the
// TokenRequest API and bound to the pod), a mount namespace per process
// with the volumes at their mountPaths, the container's uid/gid, env,
// command and args, init container ordering and native sidecar startup
// probes.
//
// What it does not do: image pulls (the executable is the image), PID and
// network namespaces (all processes share the host's; see HealthAddr), so
// no shareProcessNamespace and no metrics port on a pod IP; restarts (an
// exit is reported, not retried), cgroups and resource limits, seccomp,
// $(VAR) expansion in env, command and args, env valueFrom/envFrom,
// subPath, volumes other than emptyDir and the serviceAccountToken part of
// projected volumes, token rotation (minted once; tests are far shorter
// than the token's life), httpGet/tcpSocket probes.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/blinkchamber/blinkchamber/pkg/agent"
)

// ShimOptions says which containers the shim runs and how.
type ShimOptions struct {
	// Binaries maps a container image to the local executable that stands
	// for it: it runs in place of the container's command[0] (or of the
	// image's entrypoint when the container has no command). Containers
	// whose image is not here are not run.
	Binaries map[string]string
	// Stdout receives every container's output, each line prefixed with the
	// container's name; it may be nil.
	Stdout io.Writer
	// ExtraEnv is appended to every container's env (KEY=value).
	ExtraEnv []string
}

// Defaults that the container runtime applies.
const (
	// shimDefaultUID is used when neither the container nor the pod names a
	// uid: the image's user is unknown here, and distroless "nonroot"
	// (65532:65532) is what the agent's image uses.
	shimDefaultUID = 65532
	shimPath       = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	// stopGrace is how long Stop waits after SIGTERM before SIGKILL, like a
	// pod's terminationGracePeriodSeconds (shortened for tests).
	stopGrace = 10 * time.Second
)

// PodRun is a pod run by the shim.
type PodRun struct {
	pod        *corev1.Pod
	opts       ShimOptions
	tools      shimTools
	root       string            // host dir holding volumes and images
	volumes    map[string]string // volume name -> host dir
	tmpfs      []string          // tmpfs mounts to undo, in mount order
	images     map[string]string // image -> executable copy under root
	healthAddr string
	procs      map[string]*Proc
	order      []*Proc // start order
	stopped    bool
}

// ContainerError says that a container kept the pod from starting: a plain
// init container that exited non-zero, a native sidecar whose startup probe
// never passed, or a container that could not be started.
type ContainerError struct {
	Pod       string // namespace/name
	Container string
	Reason    string
	ExitCode  int // -1 when it had not exited
	Output    string
}

func (e *ContainerError) Error() string {
	return fmt.Sprintf("pod %s, container %s: %s (exit code %d)\n--- output of %s ---\n%s",
		e.Pod, e.Container, e.Reason, e.ExitCode, e.Container, strings.TrimRight(e.Output, "\n"))
}

// RunPod runs the pod namespace/name as the kubelet would, as far as its
// mapped containers go: volumes first, then init containers in order (a
// plain one must exit 0 before the next starts; a native sidecar must pass
// its startup probe), then the regular containers. It returns once they are
// all started; ctx bounds that start-up, not the processes, which run until
// they exit or Stop. On error everything started is stopped and removed.
func (k *Kube) RunPod(ctx context.Context, namespace, name string, opts ShimOptions) (*PodRun, error) {
	pod, err := k.Clientset.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading pod %s/%s: %w", namespace, name, err)
	}
	tools, err := findShimTools()
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, fmt.Errorf("choosing the pod's health port: %w", err)
	}
	r := &PodRun{pod: pod, opts: opts, tools: tools, volumes: map[string]string{}, images: map[string]string{},
		procs: map[string]*Proc{}, healthAddr: "127.0.0.1:" + strconv.Itoa(port)}
	if err := r.start(ctx, k); err != nil {
		return nil, errors.Join(err, r.Stop())
	}
	return r, nil
}

// RunPodForTest is RunPod that fails the test on error and stops the pod at
// cleanup.
func (k *Kube) RunPodForTest(t testing.TB, namespace, name string, opts ShimOptions) *PodRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, err := k.RunPod(ctx, namespace, name, opts)
	if err != nil {
		t.Fatalf("shim: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Stop(); err != nil {
			t.Errorf("stopping pod %s/%s: %v", namespace, name, err)
		}
	})
	return r
}

func (r *PodRun) start(ctx context.Context, k *Kube) error {
	root, err := os.MkdirTemp("", "blinkchamber-pod-")
	if err != nil {
		return fmt.Errorf("creating pod dir: %w", err)
	}
	r.root = root
	// Container users must reach the image copies under root.
	if err := os.Chmod(root, 0o711); err != nil {
		return err
	}
	if err := r.pullImages(); err != nil {
		return err
	}
	if err := r.setUpVolumes(ctx, k); err != nil {
		return err
	}
	if err := r.runInitContainers(ctx); err != nil {
		return err
	}
	for i := range r.pod.Spec.Containers {
		c := &r.pod.Spec.Containers[i]
		if _, ok := r.images[c.Image]; ok {
			if _, err := r.startContainer(c); err != nil {
				return err
			}
		}
	}
	return nil
}

// Pod is the pod as read from the API server.
func (r *PodRun) Pod() *corev1.Pod { return r.pod }

// VolumeDir is the host directory behind a pod volume ("" if the shim did
// not set that volume up), so that tests can read rendered files.
func (r *PodRun) VolumeDir(volumeName string) string { return r.volumes[volumeName] }

// Container is the process of a container, nil when it was not run.
func (r *PodRun) Container(name string) *Proc { return r.procs[name] }

// HealthAddr is the agent's health address in this pod. On a node every pod
// has its own network namespace, so every agent can listen on the injected
// port; here all pods share the host's loopback, so the shim gives each pod
// its own free port instead (see rewriteHealthAddr).
func (r *PodRun) HealthAddr() string { return r.healthAddr }

// Stop ends the pod as the kubelet does: SIGTERM to the regular
// containers, and once they are gone to the native sidecars, last started
// first; whatever is still running when the 10 s grace period is spent is
// killed with its process group. Then the tmpfs mounts are undone and the
// pod's directories removed. An error names a container that had to be
// killed or something that could not be cleaned up. Calling it twice is
// harmless.
func (r *PodRun) Stop() error {
	if r.stopped {
		return nil
	}
	r.stopped = true
	deadline := time.Now().Add(stopGrace)
	var main, sidecars []*Proc
	for _, p := range r.order {
		if p.sidecar {
			sidecars = append(sidecars, p)
		} else {
			main = append(main, p)
		}
	}
	errs := terminate(main, deadline)
	for i := len(sidecars) - 1; i >= 0; i-- {
		errs = append(errs, terminate(sidecars[i:i+1], deadline)...)
	}
	for i := len(r.tmpfs) - 1; i >= 0; i-- {
		if err := syscall.Unmount(r.tmpfs[i], 0); err != nil {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", r.tmpfs[i], err))
		}
	}
	if r.root != "" {
		if err := os.RemoveAll(r.root); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", r.root, err))
		}
	}
	return errors.Join(errs...)
}

// terminate sends SIGTERM to procs and waits for them until deadline; then
// it kills what is left, and anything they forked.
func terminate(procs []*Proc, deadline time.Time) []error {
	for _, p := range procs {
		if p.Running() {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	var errs []error
	for _, p := range procs {
		select {
		case <-p.done:
		case <-time.After(time.Until(deadline)):
			errs = append(errs, fmt.Errorf("container %s still ran %s after SIGTERM; killed", p.name, stopGrace))
		}
		p.kill()
	}
	return errs
}

func (r *PodRun) podName() string { return r.pod.Namespace + "/" + r.pod.Name }

// pullImages copies (or links) each mapped executable under the pod's
// directory: the original may sit in a directory the container's user
// cannot enter (a test's TempDir is root-only), as an image's files never
// do.
func (r *PodRun) pullImages() error {
	dir := filepath.Join(r.root, "images")
	if err := os.Mkdir(dir, 0o711); err != nil {
		return err
	}
	for image, bin := range r.opts.Binaries {
		dst := filepath.Join(dir, strconv.Itoa(len(r.images)), filepath.Base(bin))
		if err := os.Mkdir(filepath.Dir(dst), 0o711); err != nil {
			return err
		}
		if err := linkOrCopy(bin, dst); err != nil {
			return fmt.Errorf("image %s: %w", image, err)
		}
		r.images[image] = dst
	}
	return nil
}

func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s: %w", src, err)
	}
	return out.Close()
}

// shimTools are the host programs that build a container's process.
type shimTools struct{ unshare, sh, mkdir, mount, setpriv string }

func findShimTools() (shimTools, error) {
	var t shimTools
	for _, f := range []struct {
		name string
		dst  *string
	}{{"unshare", &t.unshare}, {"sh", &t.sh}, {"mkdir", &t.mkdir}, {"mount", &t.mount}, {"setpriv", &t.setpriv}} {
		p, err := exec.LookPath(f.name)
		if err != nil {
			return t, fmt.Errorf("the kubelet shim needs %s (util-linux, coreutils): %w", f.name, err)
		}
		*f.dst = p
	}
	return t, nil
}

// --- volumes ---

func (r *PodRun) setUpVolumes(ctx context.Context, k *Kube) error {
	if err := os.Mkdir(filepath.Join(r.root, "volumes"), 0o700); err != nil {
		return err
	}
	for i := range r.pod.Spec.Volumes {
		v := &r.pod.Spec.Volumes[i]
		var err error
		switch {
		case v.EmptyDir != nil:
			err = r.emptyDir(v)
		case v.Projected != nil:
			err = r.projected(ctx, k, v)
		default:
			continue // unsupported; an error only if a run container mounts it
		}
		if err != nil {
			return fmt.Errorf("volume %s: %w", v.Name, err)
		}
	}
	return nil
}

// volumeDir creates the host dir of a volume, world-writable as the
// kubelet makes emptyDirs, on a tmpfs when memory is true. A tmpfs root
// keeps its sticky bit (1777): the kubelet only fixes the permission bits.
func (r *PodRun) volumeDir(name string, memory bool, size int64) (string, error) {
	dir := filepath.Join(r.root, "volumes", name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", err
	}
	mode := os.FileMode(0o777)
	if memory {
		if err := mountTmpfs(dir, size); err != nil {
			return "", err
		}
		r.tmpfs = append(r.tmpfs, dir)
		mode |= os.ModeSticky
	}
	if err := os.Chmod(dir, mode); err != nil {
		return "", err
	}
	r.volumes[name] = dir
	return dir, nil
}

// mountTmpfs mounts a tmpfs with the options the kubelet uses: size= the
// sizeLimit when there is one, and noswap where the kernel has it (6.4+)
// so that secrets never reach swap.
func mountTmpfs(dir string, size int64) error {
	var opts []string
	if size > 0 {
		opts = append(opts, "size="+strconv.FormatInt(size, 10))
	}
	err := syscall.Mount("tmpfs", dir, "tmpfs", 0, strings.Join(append(opts, "noswap"), ","))
	if errors.Is(err, syscall.EINVAL) {
		err = syscall.Mount("tmpfs", dir, "tmpfs", 0, strings.Join(opts, ","))
	}
	if err != nil {
		return fmt.Errorf("mounting tmpfs on %s: %w", dir, err)
	}
	return nil
}

func (r *PodRun) emptyDir(v *corev1.Volume) error {
	var size int64
	switch v.EmptyDir.Medium {
	case corev1.StorageMediumDefault:
	case corev1.StorageMediumMemory:
		if v.EmptyDir.SizeLimit != nil {
			size = v.EmptyDir.SizeLimit.Value()
		}
	default:
		return fmt.Errorf("emptyDir medium %q is not supported by the shim", v.EmptyDir.Medium)
	}
	dir, err := r.volumeDir(v.Name, v.EmptyDir.Medium == corev1.StorageMediumMemory, size)
	if err != nil {
		return err
	}
	if g := podFSGroup(r.pod); g != nil {
		return applyFSGroup(dir, *g, false)
	}
	return nil
}

// projected sets up the serviceAccountToken parts of a projected volume on
// a tmpfs (the kubelet backs projected volumes with memory). ConfigMap,
// Secret and downwardAPI parts (those of kube-api-access) are left out.
func (r *PodRun) projected(ctx context.Context, k *Kube, v *corev1.Volume) error {
	dir, err := r.volumeDir(v.Name, true, 0)
	if err != nil {
		return err
	}
	files := map[string]projectedFile{}
	for _, src := range v.Projected.Sources {
		if src.ServiceAccountToken == nil {
			continue
		}
		token, err := r.mintToken(ctx, k, src.ServiceAccountToken)
		if err != nil {
			return err
		}
		mode, uid := tokenFileOwnership(r.pod, v.Projected.DefaultMode)
		files[src.ServiceAccountToken.Path] = projectedFile{data: []byte(token), mode: mode, uid: uid}
	}
	if err := writeAtomicLayout(dir, files); err != nil {
		return err
	}
	if g := podFSGroup(r.pod); g != nil {
		return applyFSGroup(dir, *g, true) // projected volumes are read-only
	}
	return nil
}

// mintToken asks the TokenRequest API for what the kubelet would project:
// a token of the pod's ServiceAccount, bound to the pod (name and uid).
func (r *PodRun) mintToken(ctx context.Context, k *Kube, p *corev1.ServiceAccountTokenProjection) (string, error) {
	spec := authenticationv1.TokenRequestSpec{
		ExpirationSeconds: p.ExpirationSeconds,
		BoundObjectRef: &authenticationv1.BoundObjectReference{
			Kind: "Pod", APIVersion: "v1", Name: r.pod.Name, UID: r.pod.UID,
		},
	}
	if p.Audience != "" {
		spec.Audiences = []string{p.Audience}
	}
	sa := r.pod.Spec.ServiceAccountName
	tr, err := k.Clientset.CoreV1().ServiceAccounts(r.pod.Namespace).CreateToken(ctx, sa,
		&authenticationv1.TokenRequest{Spec: spec}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("TokenRequest for ServiceAccount %s/%s: %w", r.pod.Namespace, sa, err)
	}
	return tr.Status.Token, nil
}

// tokenFileOwnership is the kubelet's rule for a projected token file
// (pkg/volume/projected, with the alpha AtomicWriteVolumeUserFields gate
// off, its default): the volume's defaultMode, owned by root; but 0600,
// owned by the FsUser (the uid every container runs as), when there is one
// or when the pod has an fsGroup (applyFSGroup then adds group read).
func tokenFileOwnership(pod *corev1.Pod, defaultMode *int32) (mode os.FileMode, uid int) {
	mode = 0o644 // the API server's default for projected volumes
	if defaultMode != nil {
		mode = os.FileMode(*defaultMode) & os.ModePerm
	}
	fsUser := podFSUser(pod)
	if fsUser != nil || podFSGroup(pod) != nil {
		mode = 0o600
	}
	if fsUser != nil {
		uid = int(*fsUser)
	}
	return mode, uid
}

// podFSUser is the kubelet's FsUserFrom: the uid all init and regular
// containers run as, or nil when one has none or two differ.
func podFSUser(pod *corev1.Pod) *int64 {
	var fsUser *int64
	all := append(slices.Clone(pod.Spec.InitContainers), pod.Spec.Containers...)
	for i := range all {
		uid := effectiveRunAsUser(pod, &all[i])
		if uid == nil || fsUser != nil && *fsUser != *uid {
			return nil
		}
		fsUser = uid
	}
	return fsUser
}

func podFSGroup(pod *corev1.Pod) *int64 {
	if sc := pod.Spec.SecurityContext; sc != nil {
		return sc.FSGroup
	}
	return nil
}

func effectiveRunAsUser(pod *corev1.Pod, c *corev1.Container) *int64 {
	if c.SecurityContext != nil && c.SecurityContext.RunAsUser != nil {
		return c.SecurityContext.RunAsUser
	}
	if pod.Spec.SecurityContext != nil {
		return pod.Spec.SecurityContext.RunAsUser
	}
	return nil
}

type projectedFile struct {
	data []byte
	mode os.FileMode
	uid  int
}

// writeAtomicLayout lays files out as the kubelet's AtomicWriter does, so
// that a reader sees what it would on a node: the data in a timestamped
// dir, "..data" pointing at it, and each top-level name pointing into
// "..data".
func writeAtomicLayout(dir string, files map[string]projectedFile) error {
	ts := time.Now().UTC().Format("..2006_01_02_15_04_05.000000000")
	tsDir := filepath.Join(dir, ts)
	if err := os.Mkdir(tsDir, 0o755); err != nil {
		return err
	}
	top := map[string]bool{}
	for name, f := range files {
		if err := checkRelative(name); err != nil {
			return err
		}
		p := filepath.Join(tsDir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			return err
		}
		if err := os.Chmod(p, f.mode); err != nil { // WriteFile's mode is masked by the umask
			return err
		}
		if err := os.Chown(p, f.uid, 0); err != nil {
			return err
		}
		top[strings.SplitN(name, "/", 2)[0]] = true
	}
	if err := os.Symlink(ts, filepath.Join(dir, "..data")); err != nil {
		return err
	}
	for name := range top {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}

func checkRelative(name string) error {
	if name == "" || path.IsAbs(name) || slices.Contains(strings.Split(name, "/"), "..") {
		return fmt.Errorf("projected path %q must be relative and stay inside the volume", name)
	}
	return nil
}

// applyFSGroup is the kubelet's SetVolumeOwnership: everything in the
// volume goes to group gid, gains group read (and write, unless the volume
// is read-only), and directories gain the setgid bit so that new files
// inherit the group. Symlinks change owner but not mode.
func applyFSGroup(dir string, gid int64, readOnly bool) error {
	return filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, -1, int(gid)); err != nil {
			return err
		}
		if info.Mode()&os.ModeSymlink != 0 {
			return nil
		}
		mask := os.FileMode(0o660)
		if readOnly {
			mask = 0o440
		}
		if info.IsDir() {
			mask |= os.ModeSetgid | 0o110
		}
		return os.Chmod(p, info.Mode()|mask)
	})
}

// --- containers ---

func isNativeSidecar(c *corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

func (r *PodRun) runInitContainers(ctx context.Context) error {
	for i := range r.pod.Spec.InitContainers {
		c := &r.pod.Spec.InitContainers[i]
		if _, ok := r.images[c.Image]; !ok {
			continue
		}
		p, err := r.startContainer(c)
		if err != nil {
			return err
		}
		if isNativeSidecar(c) {
			err = r.waitStarted(ctx, c, p)
		} else {
			err = r.waitCompleted(ctx, p)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// waitCompleted waits for a plain init container, which must exit 0
// before the next container starts.
func (r *PodRun) waitCompleted(ctx context.Context, p *Proc) error {
	select {
	case <-p.done:
	case <-ctx.Done():
		return r.containerError(p, fmt.Sprintf("still running when start-up gave up: %v", ctx.Err()))
	}
	if code := p.ExitCode(); code != 0 {
		return r.containerError(p, "init container failed")
	}
	return nil
}

// waitStarted runs a native sidecar's startup probe as the kubelet does:
// after initialDelaySeconds, every periodSeconds, until it passes or has
// failed failureThreshold times. No probe: started means running.
func (r *PodRun) waitStarted(ctx context.Context, c *corev1.Container, p *Proc) error {
	probe := c.StartupProbe
	if probe == nil {
		return nil
	}
	if probe.Exec == nil {
		return r.containerError(p, "the shim runs exec startup probes only")
	}
	if err := sleepCtx(ctx, time.Duration(probe.InitialDelaySeconds)*time.Second); err != nil {
		return r.containerError(p, err.Error())
	}
	period := secondsOr(probe.PeriodSeconds, 10)
	threshold := int(probe.FailureThreshold)
	if threshold <= 0 {
		threshold = 3
	}
	for failures := 0; ; {
		out, err := r.runProbe(ctx, c, probe)
		if err == nil {
			return nil
		}
		failures++
		if !p.Running() {
			return r.containerError(p, "exited before its startup probe passed")
		}
		if failures >= threshold {
			return r.containerError(p, fmt.Sprintf("startup probe failed %d times; last: %v: %s", failures, err, strings.TrimSpace(out)))
		}
		if err := sleepCtx(ctx, period); err != nil {
			return r.containerError(p, err.Error())
		}
	}
}

// runProbe runs an exec probe with the container's binary mapping, env,
// mounts and user, killed after timeoutSeconds.
func (r *PodRun) runProbe(ctx context.Context, c *corev1.Container, probe *corev1.Probe) (string, error) {
	argv, err := r.probeArgv(c, probe.Exec.Command)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, secondsOr(probe.TimeoutSeconds, 1))
	defer cancel()
	cmd, err := r.command(c, argv)
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done, err := r.startProcess(cmd)
	if err != nil {
		return "", err
	}
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		err = fmt.Errorf("probe timed out: %w", ctx.Err())
	}
	return out.String(), err
}

// probeArgv maps the probe's command[0] to the image's executable when it
// is the container's own command[0]: the probe runs inside the image, where
// that path is the binary.
func (r *PodRun) probeArgv(c *corev1.Container, command []string) ([]string, error) {
	if len(command) == 0 {
		return nil, errors.New("exec probe without a command")
	}
	if len(c.Command) == 0 || command[0] != c.Command[0] {
		return nil, fmt.Errorf("probe command %q is not the container's command %q; the shim only has the image's binary", command[0], c.Command)
	}
	return append([]string{r.images[c.Image]}, command[1:]...), nil
}

func (r *PodRun) containerError(p *Proc, reason string) error {
	return &ContainerError{Pod: r.podName(), Container: p.name, Reason: reason, ExitCode: p.ExitCode(), Output: p.Output()}
}

func secondsOr(s int32, def int32) time.Duration {
	if s <= 0 {
		s = def
	}
	return time.Duration(s) * time.Second
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	select {
	case <-ctx.Done():
		return fmt.Errorf("start-up gave up: %w", ctx.Err())
	case <-time.After(d):
		return nil
	}
}

// startContainer starts a container's process and records it.
func (r *PodRun) startContainer(c *corev1.Container) (*Proc, error) {
	argv := append([]string{r.images[c.Image]}, c.Args...)
	if len(c.Command) > 0 {
		argv = append(append([]string{r.images[c.Image]}, c.Command[1:]...), c.Args...)
	}
	cmd, err := r.command(c, argv)
	if err != nil {
		return nil, &ContainerError{Pod: r.podName(), Container: c.Name, Reason: err.Error(), ExitCode: -1}
	}
	p := &Proc{name: c.Name, sidecar: isNativeSidecar(c), cmd: cmd, done: make(chan struct{})}
	var w io.Writer = &p.out
	var tee *prefixWriter
	if r.opts.Stdout != nil {
		tee = &prefixWriter{w: r.opts.Stdout, prefix: "[" + c.Name + "] "}
		w = io.MultiWriter(&p.out, tee)
	}
	cmd.Stdout, cmd.Stderr = w, w
	waited, err := r.startProcess(cmd)
	if err != nil {
		return nil, &ContainerError{Pod: r.podName(), Container: c.Name, Reason: fmt.Sprintf("starting: %v", err), ExitCode: -1}
	}
	go func() {
		p.err = <-waited
		if tee != nil {
			tee.flush()
		}
		close(p.done)
	}()
	r.procs[c.Name] = p
	r.order = append(r.order, p)
	return p, nil
}

// mountScript runs in the container's new mount namespace, as root, before
// it becomes the container's user. Its arguments:
//
//	mkdir mount rootfs-ro workdir {hostdir mountPath ro|rw}... -- command...
//
// procfs "new" mounts a /proc for the pod's shared PID namespace.
//
// Paths travel as arguments, never inside the script text.
const mountScript = `set -eu
mkdir=$1 mount=$2 rootro=$3 workdir=$4
shift 4
while [ "$1" != -- ]; do
	"$mkdir" -p "$2"
	"$mount" --bind "$1" "$2"
	if [ "$3" = ro ]; then "$mount" -o remount,bind,ro "$2"; fi
	shift 3
done
shift
if [ "$rootro" = ro ]; then "$mount" -o remount,bind,ro /; fi
cd "$workdir"
exec "$@"
`

// command builds the process for argv in container c: a private mount
// namespace (unshare) where the volumes are bind-mounted at their
// mountPaths, then setpriv to the container's user, then argv. The
// mountPaths are created on the host's filesystem (mkdir -p) as empty
// directories if missing; the mounts themselves exist only inside the
// namespace and vanish with the process.
func (r *PodRun) command(c *corev1.Container, argv []string) (*exec.Cmd, error) {
	env, err := r.containerEnv(c)
	if err != nil {
		return nil, err
	}
	mounts, err := r.mountArgs(c)
	if err != nil {
		return nil, err
	}
	sc := c.SecurityContext
	rootRO, workdir := "rw", "/"
	if sc != nil && sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem {
		rootRO = "ro"
	}
	if c.WorkingDir != "" {
		workdir = c.WorkingDir
	}
	user, err := r.setprivArgs(c)
	if err != nil {
		return nil, err
	}
	args := []string{"--mount", "--propagation", "private", "--", r.tools.sh, "-c", mountScript, "shim",
		r.tools.mkdir, r.tools.mount, rootRO, workdir}
	args = append(args, mounts...)
	args = append(args, "--", r.tools.setpriv)
	args = append(args, user...)
	args = append(args, "--")
	args = append(args, argv...)
	cmd := exec.Command(r.tools.unshare, args...)
	cmd.Env = env
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// A child that keeps the output pipe open must not block Wait forever.
	cmd.WaitDelay = 2 * time.Second
	return cmd, nil
}

// mountArgs lists hostdir/mountPath/mode triples, parents before children
// (as container runtimes sort mounts).
func (r *PodRun) mountArgs(c *corev1.Container) ([]string, error) {
	vms := slices.Clone(c.VolumeMounts)
	slices.SortStableFunc(vms, func(a, b corev1.VolumeMount) int {
		return strings.Count(path.Clean(a.MountPath), "/") - strings.Count(path.Clean(b.MountPath), "/")
	})
	var args []string
	for _, m := range vms {
		host, ok := r.volumes[m.Name]
		if !ok {
			return nil, fmt.Errorf("container %s mounts volume %s, of a kind the shim does not set up", c.Name, m.Name)
		}
		if m.SubPath != "" || m.SubPathExpr != "" {
			return nil, fmt.Errorf("container %s: subPath mounts are not supported by the shim", c.Name)
		}
		if !path.IsAbs(m.MountPath) {
			return nil, fmt.Errorf("container %s: mountPath %q is not absolute", c.Name, m.MountPath)
		}
		mode := "rw"
		if m.ReadOnly {
			mode = "ro"
		}
		args = append(args, host, path.Clean(m.MountPath), mode)
	}
	return args, nil
}

// setprivArgs switches to the container's uid and gid (pod-level values
// apply when the container sets none), with the pod's supplemental groups
// and fsGroup, no new privileges, and no capabilities at all when the
// container drops ALL.
func (r *PodRun) setprivArgs(c *corev1.Container) ([]string, error) {
	uid, gid := runAsIDs(r.pod, c)
	sc := c.SecurityContext
	if uid == 0 && (sc != nil && sc.RunAsNonRoot != nil && *sc.RunAsNonRoot ||
		r.pod.Spec.SecurityContext != nil && r.pod.Spec.SecurityContext.RunAsNonRoot != nil && *r.pod.Spec.SecurityContext.RunAsNonRoot) {
		return nil, errors.New("runAsNonRoot is set but the container would run as uid 0")
	}
	args := []string{"--reuid=" + strconv.FormatInt(uid, 10), "--regid=" + strconv.FormatInt(gid, 10)}
	if groups := supplementalGroups(r.pod); len(groups) > 0 {
		args = append(args, "--groups="+strings.Join(groups, ","))
	} else {
		args = append(args, "--clear-groups")
	}
	args = append(args, "--no-new-privs", "--pdeathsig=KILL")
	if sc != nil && sc.Capabilities != nil && slices.Contains(sc.Capabilities.Drop, "ALL") {
		args = append(args, "--inh-caps=-all", "--bounding-set=-all")
	}
	return args, nil
}

// runAsIDs is the container's uid and gid: the container's securityContext,
// else the pod's, else 65532; the gid defaults to the uid.
func runAsIDs(pod *corev1.Pod, c *corev1.Container) (uid, gid int64) {
	uid, gid = shimDefaultUID, -1
	if psc := pod.Spec.SecurityContext; psc != nil {
		if psc.RunAsUser != nil {
			uid = *psc.RunAsUser
		}
		if psc.RunAsGroup != nil {
			gid = *psc.RunAsGroup
		}
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = *sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			gid = *sc.RunAsGroup
		}
	}
	if gid < 0 {
		gid = uid
	}
	return uid, gid
}

func supplementalGroups(pod *corev1.Pod) []string {
	psc := pod.Spec.SecurityContext
	if psc == nil {
		return nil
	}
	var groups []string
	for _, g := range psc.SupplementalGroups {
		groups = append(groups, strconv.FormatInt(g, 10))
	}
	if psc.FSGroup != nil {
		groups = append(groups, strconv.FormatInt(*psc.FSGroup, 10))
	}
	return groups
}

// containerEnv is exactly the container's env, plus PATH (as the image
// would set it) and ShimOptions.ExtraEnv, with the one rewrite the shim
// makes: the agent's health address.
func (r *PodRun) containerEnv(c *corev1.Container) ([]string, error) {
	if len(c.EnvFrom) > 0 {
		return nil, fmt.Errorf("container %s: envFrom is not supported by the shim", c.Name)
	}
	env := []string{"PATH=" + shimPath}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			return nil, fmt.Errorf("container %s: env %s uses valueFrom, which the shim does not support", c.Name, e.Name)
		}
		value := e.Value
		if e.Name == agent.ConfigEnv {
			var err error
			if value, err = rewriteHealthAddr(value, r.healthAddr); err != nil {
				return nil, fmt.Errorf("container %s: %w", c.Name, err)
			}
		}
		env = append(env, e.Name+"="+value)
	}
	return append(env, r.opts.ExtraEnv...), nil
}

// rewriteHealthAddr sets healthAddr in the agent's JSON config and keeps
// every other field as it is. This is the shim's one deliberate deviation
// from the pod spec: on a node each pod has its own network namespace and
// every agent listens on the injected port (8099); here all pods share the
// host's loopback, so each pod gets a free port instead. All containers of
// a pod get the same one, so the startup probe (which reads the same env)
// finds its agent.
func rewriteHealthAddr(configJSON, addr string) (string, error) {
	dec := json.NewDecoder(strings.NewReader(configJSON))
	dec.UseNumber() // numbers stay as written
	var cfg map[string]any
	if err := dec.Decode(&cfg); err != nil {
		return "", fmt.Errorf("%s is not a JSON object: %w", agent.ConfigEnv, err)
	}
	cfg["healthAddr"] = addr
	b, err := json.Marshal(cfg)
	if err != nil {
		return "", fmt.Errorf("re-encoding %s: %w", agent.ConfigEnv, err)
	}
	return string(b), nil
}

// --- processes ---

// Proc is one container's process.
type Proc struct {
	name    string
	sidecar bool // a native sidecar: stopped after the regular containers
	cmd     *exec.Cmd
	out     syncBuffer
	done    chan struct{} // closed once reaped
	err     error         // cmd.Wait's result; read after done
}

// Wait waits for the process to exit and returns exec's error (nil for
// exit code 0).
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}

// ExitCode is -1 while the process runs; after it exits, its exit code, or
// 128+n when signal n killed it (as the kubelet reports it).
func (p *Proc) ExitCode() int {
	if p.Running() {
		return -1
	}
	ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return p.cmd.ProcessState.ExitCode()
}

// Output is everything the process wrote to stdout and stderr so far.
func (p *Proc) Output() string { return p.out.String() }

// Running reports whether the process has not exited yet.
func (p *Proc) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill ends the process and anything it forked (its process group), and
// waits for it.
func (p *Proc) kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// syncBuffer is a bytes.Buffer safe for one writer and many readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// prefixWriter writes each complete line to w with a prefix, so that the
// output of several containers stays readable when interleaved.
type prefixWriter struct {
	w       io.Writer
	prefix  string
	pending []byte
}

func (pw *prefixWriter) Write(p []byte) (int, error) {
	pw.pending = append(pw.pending, p...)
	for {
		i := bytes.IndexByte(pw.pending, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := append([]byte(pw.prefix), pw.pending[:i+1]...)
		pw.pending = pw.pending[i+1:]
		if _, err := pw.w.Write(line); err != nil {
			return len(p), err
		}
	}
}

// flush writes a last line that had no newline.
func (pw *prefixWriter) flush() {
	if len(pw.pending) > 0 {
		_, _ = pw.w.Write(append(append([]byte(pw.prefix), pw.pending...), '\n'))
		pw.pending = nil
	}
}

// startProcess starts cmd and returns a channel that receives cmd.Wait's
// result.
func (r *PodRun) startProcess(cmd *exec.Cmd) (<-chan error, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	return waited, nil
}
