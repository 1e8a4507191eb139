package images

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// PushOptions say how Push reaches the registry.
type PushOptions struct {
	// Insecure allows plain HTTP to the registry (loopback and private
	// addresses are tried over HTTP without it). TLS is always verified: a
	// registry with a private CA needs that CA in SSL_CERT_FILE.
	Insecure bool
}

// Push copies the image named ref in archive to target, authenticating as
// `docker login` and credential helpers configure, and returns the digest
// the registry now serves.
func Push(ctx context.Context, archive, ref, target string, o PushOptions) (string, error) {
	img, err := ReadArchive(archive, ref)
	if err != nil {
		return "", err
	}
	var nameOpts []name.Option
	if o.Insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	dst, err := name.NewTag(target, nameOpts...)
	if err != nil {
		return "", fmt.Errorf("image name %q: %w", target, err)
	}
	if err := remote.Write(dst, img, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return "", fmt.Errorf("pushing %s to %s: %w", ref, target, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return d.String(), nil
}
