package stack

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/blinkchamber/blinkchamber/pkg/cli"
)

// VaultAddr is the in-cluster Vault's Service address, which the host
// reaches through the node's routes (its DNS name resolves only in pods).
func (s *Stack) VaultAddr(ctx context.Context) (string, error) {
	svc, err := s.Node.Clientset.CoreV1().Services(Namespace).Get(ctx, Release+"-vault", metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("finding Vault's Service: %w", err)
	}
	return "http://" + svc.Spec.ClusterIP + ":8200", nil
}

// Config writes the bootstrap config the chart generated, with Vault's
// address as the host reaches it and apps appended (the platform
// engineer's own apps, onboarded with the CLI), and returns its path.
func (s *Stack) Config(ctx context.Context, apps ...map[string]any) (string, error) {
	cm, err := s.Node.Clientset.CoreV1().ConfigMaps(Namespace).Get(ctx, Release+"-bootstrap-config", metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("reading the chart's bootstrap config: %w", err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data["blinkchamber.yaml"]), &cfg); err != nil {
		return "", err
	}
	addr, err := s.VaultAddr(ctx)
	if err != nil {
		return "", err
	}
	cfg["vault"].(map[string]any)["address"] = addr
	// The CLI's apps are the engineer's, not the release's: a prune by the
	// chart's bootstrap Job must not remove them.
	cfg["owner"] = "platform-cli"
	list, _ := cfg["apps"].([]any)
	for _, a := range apps {
		list = append(list, a)
	}
	cfg["apps"] = list
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return "", err
	}
	path := filepath.Join(s.Node.Dir, "blinkchamber.yaml")
	return path, os.WriteFile(path, b, 0o600)
}

// CLI runs the blinkchamber command, as a platform engineer runs it from
// their machine, against the node's cluster and the given config. It
// returns what the command printed.
func (s *Stack) CLI(config string, args ...string) (string, error) {
	var out, errOut bytes.Buffer
	argv := append([]string{"--kubeconfig", s.Node.Kubeconfig(), "--config", config, "--env", "development"}, args...)
	if code := cli.Main(argv, &out, &errOut); code != cli.ExitOK {
		return out.String(), fmt.Errorf("blinkchamber %v: exit %d: %s", args, code, errOut.String())
	}
	return out.String(), nil
}
