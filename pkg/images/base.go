package images

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// CABundle is where the images keep the CA certificates (as distroless and
// Debian do), and where they are taken from on the build host: Debian's
// ca-certificates package writes it.
const CABundle = "/etc/ssl/certs/ca-certificates.crt"

// Nonroot is the user every image runs as, distroless's "nonroot".
const (
	NonrootUID = 65532
	Nonroot    = "65532:65532"
)

// hostCABundle is where the build host's bundle is read: CABundle, but a
// variable so that a test can take it away.
var hostCABundle = CABundle

// ErrNoCABundle is returned when the build host has no CA bundle to copy.
var ErrNoCABundle = errors.New("no CA certificates on this machine: install Debian's ca-certificates package (apt-get install ca-certificates, or make deps)")

// Env is the environment of every image, as distroless's.
var Env = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"SSL_CERT_FILE=" + CABundle,
}

// Account is one line of /etc/passwd, with its group.
type Account struct {
	Name     string
	UID, GID int
	Home     string
}

// Accounts are the users of every image: root and nonroot, as distroless's.
var Accounts = []Account{
	{Name: "root", UID: 0, GID: 0, Home: "/root"},
	{Name: "nonroot", UID: NonrootUID, GID: NonrootUID, Home: "/home/nonroot"},
}

// Base is the files every image holds besides its program: the build
// host's CA bundle, /etc/passwd and /etc/group with the accounts, nonroot's
// home, and a world-writable /tmp. There is no shell.
func Base(accounts []Account) ([]File, error) {
	if _, err := os.Stat(hostCABundle); err != nil {
		return nil, fmt.Errorf("%w (%w)", ErrNoCABundle, err)
	}
	var passwd, group []byte
	for _, a := range accounts {
		passwd = fmt.Appendf(passwd, "%s:x:%d:%d:%s:%s:/sbin/nologin\n", a.Name, a.UID, a.GID, a.Name, a.Home)
		group = fmt.Appendf(group, "%s:x:%d:\n", a.Name, a.GID)
	}
	return []File{
		{Path: CABundle, Mode: 0o644, Source: hostCABundle},
		{Path: "/etc/passwd", Mode: 0o644, Data: passwd},
		{Path: "/etc/group", Mode: 0o644, Data: group},
		{Path: "/home", Mode: fs.ModeDir | 0o755},
		{Path: "/home/nonroot", Mode: fs.ModeDir | 0o700, UID: NonrootUID, GID: NonrootUID},
		{Path: "/tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
	}, nil
}

// Spec is the product image around a built binary.
func (p Product) Spec(binary, version string) (Spec, error) {
	files, err := Base(Accounts)
	if err != nil {
		return Spec{}, err
	}
	files = append(files, File{Path: p.Path, Mode: 0o755, Source: binary})
	return Spec{
		Files:      files,
		User:       Nonroot,
		Entrypoint: p.Entrypoint,
		Cmd:        p.Cmd,
		Env:        Env,
		WorkingDir: "/home/nonroot",
		Labels:     p.Labels(version),
	}, nil
}
