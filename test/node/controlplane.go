package node

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// freePort asks the kernel for a free TCP port on addr.
func freePort(addr string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startEtcd runs etcd on loopback: only the API server talks to it.
func (c *Cluster) startEtcd(bin string) error {
	client, err := freePort("127.0.0.1")
	if err != nil {
		return err
	}
	peer, err := freePort("127.0.0.1")
	if err != nil {
		return err
	}
	c.etcdURL = "http://127.0.0.1:" + strconv.Itoa(client)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peer)
	_, err = c.start("etcd", []string{bin,
		"--data-dir", filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls", c.etcdURL, "--advertise-client-urls", c.etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "default=" + peerURL,
		// A test cluster's data does not outlive it.
		"--unsafe-no-fsync",
	}, nil)
	return err
}

// startAPIServer runs the API server on the host end of the veth pair, the
// one address both the test (on the host) and the node reach.
func (c *Cluster) startAPIServer(bin string) error {
	port, err := freePort(hostAddr)
	if err != nil {
		return err
	}
	c.Server = "https://" + net.JoinHostPort(hostAddr, strconv.Itoa(port))
	err = c.pki.serving("apiserver",
		[]net.IP{net.ParseIP(hostAddr), net.ParseIP(kubernetesServiceIP), net.ParseIP("127.0.0.1")},
		[]string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "localhost"})
	if err != nil {
		return err
	}
	if err := c.writeKubeconfigs(); err != nil {
		return err
	}
	p := c.pki.path
	_, err = c.start("kube-apiserver", []string{bin,
		"--etcd-servers", c.etcdURL,
		"--bind-address", hostAddr, "--advertise-address", hostAddr,
		"--secure-port", strconv.Itoa(port),
		"--tls-cert-file", p("apiserver.crt"), "--tls-private-key-file", p("apiserver.key"),
		"--client-ca-file", c.pki.caFile(),
		"--service-account-key-file", p("sa.pub"),
		"--service-account-signing-key-file", p("sa.key"),
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range", serviceCIDR,
		"--authorization-mode", "Node,RBAC",
		"--enable-admission-plugins", "NodeRestriction",
		"--kubelet-client-certificate", p(apiserverKubeletID.file + ".crt"),
		"--kubelet-client-key", p(apiserverKubeletID.file + ".key"),
		"--kubelet-certificate-authority", c.pki.caFile(),
		"--kubelet-preferred-address-types", "InternalIP",
		"--profiling=false",
	}, nil)
	return err
}

func (c *Cluster) startControllerManager(bin string) error {
	p := c.pki.path
	_, err := c.start("kube-controller-manager", []string{bin,
		"--kubeconfig", c.kubeconfig(kcmID),
		"--service-account-private-key-file", p("sa.key"),
		"--root-ca-file", c.pki.caFile(),
		"--use-service-account-credentials=true",
		"--cluster-signing-cert-file", c.pki.caFile(), "--cluster-signing-key-file", p("ca.key"),
		"--service-cluster-ip-range", serviceCIDR,
		"--allocate-node-cidrs=false",
		// Its default is under /usr/libexec, outside the node's directory.
		"--flex-volume-plugin-dir", filepath.Join(c.Dir, "kcm-volume-plugins"),
		"--leader-elect=false",
		"--bind-address", "127.0.0.1", "--secure-port=0",
		"--profiling=false",
	}, nil)
	return err
}

func (c *Cluster) startScheduler(bin string) error {
	_, err := c.start("kube-scheduler", []string{bin,
		"--kubeconfig", c.kubeconfig(schedulerID),
		"--leader-elect=false",
		"--bind-address", "127.0.0.1", "--secure-port=0",
		"--profiling=false",
	}, nil)
	return err
}

// writeKubeconfigs issues a client certificate for each identity and writes
// its kubeconfig.
func (c *Cluster) writeKubeconfigs() error {
	for _, id := range []identity{adminID, kcmID, schedulerID, proxyID, kubeletID, dnsID, apiserverKubeletID} {
		if err := c.pki.client(id); err != nil {
			return err
		}
		if id.file == apiserverKubeletID.file {
			continue
		}
		cfg := clientcmdapi.NewConfig()
		cfg.Clusters["local"] = &clientcmdapi.Cluster{Server: c.Server, CertificateAuthority: c.pki.caFile()}
		cfg.AuthInfos[id.file] = &clientcmdapi.AuthInfo{
			ClientCertificate: c.pki.path(id.file + ".crt"), ClientKey: c.pki.path(id.file + ".key")}
		cfg.Contexts["local"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: id.file}
		cfg.CurrentContext = "local"
		if err := clientcmd.WriteToFile(*cfg, c.kubeconfig(id)); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) kubeconfig(id identity) string {
	return filepath.Join(c.Dir, "kubeconfig", id.file)
}

// waitAPI waits for the API server's readiness endpoint.
func (c *Cluster) waitAPI(ctx context.Context) error {
	return c.poll(ctx, "the API server to be ready", func(ctx context.Context) (bool, error) {
		body, err := c.Clientset.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && string(body) == "ok", nil
	})
}

func mkdirs(dirs ...string) error {
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", d, err)
		}
	}
	return nil
}
