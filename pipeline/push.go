package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/runtime/docker"
)

// Credentials are registry logins by registry host (host:port). Others
// come from the Docker configuration (~/.docker/config.json, helpers).
type Credentials map[string]authn.Basic

// Resolve implements authn.Keychain.
func (c Credentials) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if b, ok := c[r.RegistryStr()]; ok {
		return &authn.Basic{Username: b.Username, Password: b.Password}, nil
	}
	return authn.DefaultKeychain.Resolve(r)
}

// ParseRef parses an image reference; registries on loopback are spoken
// to over plain HTTP, as engines do.
func ParseRef(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref, name.WithDefaultTag("latest"))
	if err != nil {
		return nil, api.Invalidf("image reference %q: %v", ref, err)
	}
	if Loopback(r.Context().RegistryStr()) {
		r, _ = name.ParseReference(ref, name.WithDefaultTag("latest"), name.Insecure)
	}
	return r, nil
}

// NamesRegistry reports whether an image reference names its registry
// (the engine's rule: a first component with a dot or a port, or
// localhost); others are local images or Docker Hub's.
func NamesRegistry(ref string) bool {
	first, _, found := strings.Cut(ref, "/")
	return found && (strings.ContainsAny(first, ".:") || first == "localhost")
}

// Loopback reports whether a registry host is on this machine.
func Loopback(host string) bool {
	h, _, err := net.SplitHostPort(host)
	if err != nil {
		h = host
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// PushOptions say what to push where.
type PushOptions struct {
	Image string // an image on the local engine (repo:tag)
	// Registry is the destination registry (host:port[/prefix]); the
	// image keeps its repository path and tag under it. Empty: the
	// image's own registry.
	Registry string
	Keychain authn.Keychain
	Progress io.Writer
	Timeout  time.Duration // default 30 minutes
}

// PushResult is where an image went.
type PushResult struct {
	Ref    string `json:"ref"`    // registry/repo:tag
	Digest string `json:"digest"` // manifest digest
	Pinned string `json:"pinned"` // registry/repo@digest
}

// Push copies an image from the local engine to a registry and returns
// the manifest digest the registry stores it under. The image's
// configuration is kept byte for byte, so the registry's config digest is
// the engine's image ID (what `berth test` records).
func Push(ctx context.Context, eng *docker.Driver, opts PushOptions) (PushResult, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	dst, err := destination(opts.Image, opts.Registry)
	if err != nil {
		return PushResult{}, err
	}
	if _, err := eng.ImageInspect(ctx, opts.Image); err != nil {
		return PushResult{}, err
	}
	tmp, err := os.CreateTemp("", "berth-push-*.tar")
	if err != nil {
		return PushResult{}, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	rc, err := eng.ImageSave(ctx, []string{opts.Image})
	if err != nil {
		return PushResult{}, err
	}
	_, err = io.Copy(tmp, rc)
	rc.Close()
	if err != nil {
		return PushResult{}, fmt.Errorf("push %s: read the image from the engine: %w", opts.Image, err)
	}
	img, err := tarball.ImageFromPath(tmp.Name(), nil)
	if err != nil {
		return PushResult{}, fmt.Errorf("push %s: %w", opts.Image, err)
	}
	if err := write(ctx, dst, img, opts.Keychain, opts.Progress); err != nil {
		return PushResult{}, err
	}
	d, err := img.Digest()
	if err != nil {
		return PushResult{}, err
	}
	return PushResult{Ref: dst.String(), Digest: d.String(), Pinned: dst.Context().Digest(d.String()).String()}, nil
}

// destination is the image's repository and tag under registry.
func destination(image, registry string) (name.Reference, error) {
	src, err := name.ParseReference(image, name.WithDefaultTag("latest"))
	if err != nil {
		return nil, api.Invalidf("image reference %q: %v", image, err)
	}
	tag, ok := src.(name.Tag)
	if !ok {
		return nil, api.Invalidf("push %s: name the image by tag (repo:tag), the registry assigns the digest", image)
	}
	if registry == "" {
		return ParseRef(tag.String())
	}
	if strings.Contains(registry, "://") {
		return nil, api.Invalidf("registry %q: give host:port[/prefix], without a scheme", registry)
	}
	path := tag.Context().RepositoryStr()
	if src.Context().RegistryStr() == name.DefaultRegistry {
		path = strings.TrimPrefix(path, "library/")
	}
	return ParseRef(strings.TrimSuffix(registry, "/") + "/" + path + ":" + tag.TagStr())
}

func write(ctx context.Context, dst name.Reference, img v1.Image, kc authn.Keychain, progress io.Writer) error {
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(keychain(kc))}
	if progress != nil {
		ch := make(chan v1.Update, 16)
		done := make(chan struct{})
		go func() {
			defer close(done)
			last := time.Time{}
			for u := range ch {
				if time.Since(last) > time.Second || (u.Total > 0 && u.Complete == u.Total) {
					fmt.Fprintf(progress, "pushing %s: %d/%d MB\n", dst, u.Complete>>20, u.Total>>20)
					last = time.Now()
				}
			}
		}()
		defer func() { <-done }()
		opts = append(opts, remote.WithProgress(ch))
	}
	if err := remote.Write(dst, img, opts...); err != nil {
		return RegistryError("push to "+dst.String(), dst, err)
	}
	return nil
}

func keychain(kc authn.Keychain) authn.Keychain {
	if kc == nil {
		return authn.DefaultKeychain
	}
	return kc
}

// RegistryError says what a registry's refusal means for the user.
func RegistryError(op string, ref name.Reference, err error) error {
	host := ref.Context().RegistryStr()
	var terr *transport.Error
	var nerr net.Error
	switch {
	case errors.As(err, &terr) && (terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden):
		return fmt.Errorf("%s: %w: registry %s refused the credential (%d): log in with `docker login %s`, or for berth's own registry let berth supply it (`berth registry`)",
			op, api.ErrInvalid, host, terr.StatusCode, host)
	case errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%s: %w: %v", op, api.ErrNotFound, err)
	case errors.As(err, &nerr), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w: registry %s is not reachable (%v): check the address, or start the registry", op, api.ErrUnavailable, host, err)
	case strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "no such host"):
		return fmt.Errorf("%s: %w: registry %s is not reachable (%v): check the address, or start the registry", op, api.ErrUnavailable, host, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}
