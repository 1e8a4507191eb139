// Package stack installs blinkchamber on the real local node exactly as a
// platform team installs it on a cluster of its own: the images are built
// here, pushed to a registry (served in process, on the host's side of the
// node's link) and pulled from it by containerd; the chart is installed
// with the Helm SDK, hooks and all, so the bootstrap Job provisions Vault.
// The end-to-end tests on the node and `make demo` share it.
package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	"helm.sh/helm/v4/pkg/action"
	chartutil "helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/kube"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	product "github.com/blinkchamber/blinkchamber/pkg/images"
	"github.com/blinkchamber/blinkchamber/test/images"
	"github.com/blinkchamber/blinkchamber/test/node"
)

// Names of the release the stack installs.
const (
	Release   = "bc"
	Namespace = "blinkchamber"
	// AppsNamespace is the chart's apps namespace (labelled for injection,
	// Pod Security restricted).
	AppsNamespace = "blinkchamber-apps"
	// Version tags the product images built for the stack.
	Version = "dev"
)

// Options configure Install.
type Options struct {
	// Progress receives a line per step.
	Progress io.Writer
	// Values are merged over the stack's own values (development
	// environment, images from the local registry, app stack off).
	Values map[string]any
}

// Stack is a node with blinkchamber installed on it.
type Stack struct {
	Node *node.Cluster
	// Registry is the local registry's host:port, as image names carry it.
	Registry string
	// Images are the images built for the stack, by name.
	Images *images.Set

	opts     Options
	server   *http.Server
	helmConf *action.Configuration
}

func (s *Stack) say(format string, args ...any) {
	if s.opts.Progress != nil {
		fmt.Fprintf(s.opts.Progress, format+"\n", args...)
	}
}

// Install builds the images, starts the node and the registry, pushes the
// images and installs the chart, waiting for the bootstrap Job. On error
// everything started is stopped again.
func Install(ctx context.Context, o Options) (*Stack, error) {
	s := &Stack{opts: o}
	dir, err := images.DefaultDir()
	if err != nil {
		return nil, err
	}
	s.say("building the images (injector, agent, cli; and for the node: vault, pause, testapp)")
	if s.Images, err = images.Build(ctx, images.Options{Dir: dir, Version: Version, Progress: o.Progress}); err != nil {
		return nil, err
	}
	pause := s.Images.Images[images.Pause]
	s.say("starting the node")
	s.Node, err = node.Start(ctx, node.Options{Sandbox: node.Image{Ref: pause.Ref, Archive: pause.Archive}, Progress: o.Progress})
	if err != nil {
		return nil, err
	}
	if err := s.install(ctx); err != nil {
		serr := s.Stop()
		if serr == nil {
			s.say("the node is stopped and the machine is as it was")
		}
		return nil, errors.Join(err, serr)
	}
	return s, nil
}

func (s *Stack) install(ctx context.Context) error {
	if err := s.startRegistry(); err != nil {
		return err
	}
	s.say("pushing the images to the local registry %s", s.Registry)
	if err := s.push(ctx); err != nil {
		return err
	}
	if err := s.Node.TrustRegistry(s.Registry); err != nil {
		return err
	}
	// Vault's claims (data and audit) bind to these.
	if err := s.Node.ProvideVolumes(ctx, 4, "1Gi"); err != nil {
		return err
	}
	s.say("helm install %s charts/blinkchamber -n %s (global.imageRegistry=%s); waiting for the bootstrap Job", Release, Namespace, s.Registry)
	return s.helmInstall(ctx)
}

// startRegistry serves an OCI registry on the host's end of the node's
// link: containerd, in the node's network namespace, pulls from it.
func (s *Stack) startRegistry() error {
	l, err := net.Listen("tcp", net.JoinHostPort(node.HostAddr, "0"))
	if err != nil {
		return fmt.Errorf("starting the local registry: %w", err)
	}
	s.Registry = l.Addr().String()
	s.server = &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0))), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.server.Serve(l) }()
	return nil
}

// push mirrors every built image into the registry under the same
// repository path, as `blinkchamber images push --registry` does.
func (s *Stack) push(ctx context.Context) error {
	for _, b := range s.Images.Images {
		target, err := product.MirrorRef(b.Ref, s.Registry)
		if err != nil {
			return err
		}
		if _, err := product.Push(ctx, b.Archive, b.Ref, target, product.PushOptions{Insecure: true}); err != nil {
			return err
		}
	}
	return nil
}

// Ref is the name under which the node pulls a built image.
func (s *Stack) Ref(name string) string {
	r, _ := product.MirrorRef(s.Images.Images[name].Ref, s.Registry)
	return r
}

func (s *Stack) values() map[string]any {
	tag := map[string]any{"tag": Version}
	v := map[string]any{
		"global": map[string]any{"environment": "development", "imageRegistry": s.Registry},
		"injector": map[string]any{
			"replicas": 2, "image": tag, "agentImage": tag,
		},
		"bootstrap": map[string]any{"image": tag},
		"apps":      appsOff(),
	}
	return chartutil.MergeTables(cloneValues(s.opts.Values), v)
}

// appsOff turns every component of the app stack off: their images
// (PostgreSQL, Prometheus, Grafana, MinIO, Zitadel, Mailu) are not built
// here; the chart's tests validate them by server-side dry run.
func appsOff() map[string]any {
	off := map[string]any{}
	for _, c := range []string{"postgresql", "prometheus", "grafana", "minio", "zitadel", "mailu", "vaultBackup"} {
		off[c] = map[string]any{"enabled": false}
	}
	return off
}

func cloneValues(v map[string]any) map[string]any {
	out := map[string]any{}
	for k, x := range v {
		if m, ok := x.(map[string]any); ok {
			x = cloneValues(m)
		}
		out[k] = x
	}
	return out
}

func (s *Stack) helmInstall(ctx context.Context) error {
	ch, err := loadChart()
	if err != nil {
		return err
	}
	if s.helmConf, err = s.HelmConfig(); err != nil {
		return err
	}
	in := action.NewInstall(s.helmConf)
	in.ReleaseName, in.Namespace, in.CreateNamespace = Release, Namespace, true
	// `helm install --wait --wait-for-jobs` of Helm 4: server-side apply
	// and the kstatus watcher.
	in.WaitStrategy, in.WaitForJobs, in.Timeout = kube.StatusWatcherStrategy, true, 10*time.Minute
	if _, err := in.RunWithContext(ctx, ch, s.values()); err != nil {
		return fmt.Errorf("helm install: %w", err)
	}
	return nil
}

// HelmConfig is the Helm SDK's configuration for the release's namespace.
func (s *Stack) HelmConfig() (*action.Configuration, error) {
	kc, ns := s.Node.Kubeconfig(), Namespace
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig, flags.Namespace = &kc, &ns
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(slog.DiscardHandler))
	if err := cfg.Init(flags, ns, "secret"); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Stop stops the registry and the node.
func (s *Stack) Stop() error {
	var errs []error
	if s.server != nil {
		errs = append(errs, s.server.Close())
	}
	if s.Node != nil {
		errs = append(errs, s.Node.Stop())
	}
	return errors.Join(errs...)
}

// Logs returns the end of every container log of the release's and apps'
// pods, for a failing test's message.
func (s *Stack) Logs(ctx context.Context) string {
	var b strings.Builder
	for _, ns := range []string{Namespace, AppsNamespace} {
		pods, err := s.Node.Clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			fmt.Fprintf(&b, "listing pods of %s: %v\n", ns, err)
			continue
		}
		for _, p := range pods.Items {
			fmt.Fprintf(&b, "pod %s/%s: %s\n", ns, p.Name, p.Status.Phase)
		}
	}
	return b.String()
}

// Uninstall runs `helm uninstall` of the release and waits up to timeout
// for what it deletes to be gone.
func (s *Stack) Uninstall(timeout time.Duration) error {
	cfg, err := s.HelmConfig()
	if err != nil {
		return err
	}
	un := action.NewUninstall(cfg)
	un.WaitStrategy, un.Timeout = kube.StatusWatcherStrategy, timeout // `helm uninstall --wait`
	if _, err := un.Run(Release); err != nil {
		return fmt.Errorf("helm uninstall %s: %w", Release, err)
	}
	return nil
}
