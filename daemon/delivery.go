package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/pipeline"
	"github.com/berth-dev/berth/registry"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/runtime/docker"
	"github.com/berth-dev/berth/server"
	"github.com/berth-dev/berth/store"
)

// RegistryConfig configures the embedded registry.
type RegistryConfig struct {
	// Addr is where it listens ("off": no registry).
	Addr string
	// Optional makes a busy address a warning instead of a failure (the
	// default address, which a user did not choose).
	Optional        bool
	TLSCert, TLSKey string
}

// resolveTimeout bounds one registry lookup at deploy time.
const resolveTimeout = 15 * time.Second

// delivery is berth up's side of the delivery pipeline: the embedded
// registry, image resolution against registries, pulls for the agent,
// and the auto-update watcher.
type delivery struct {
	drv     *docker.Driver
	reg     *registry.Registry
	regErr  string
	watcher *pipeline.Watcher
	log     *slog.Logger
}

func openDelivery(ctx context.Context, cfg Config, drv *docker.Driver, log *slog.Logger) (*delivery, error) {
	d := &delivery{drv: drv, log: log, watcher: &pipeline.Watcher{Log: log.With("component", "updates")}}
	if cfg.Registry.Addr == "off" || cfg.Registry.Addr == "" {
		d.regErr = "this berth server runs no registry (berth up --registry-addr off)"
		return d, nil
	}
	reg, err := registry.Open(ctx, registry.Options{
		Dir: filepath.Join(cfg.DataDir, "registry"), Addr: cfg.Registry.Addr,
		TLSCert: cfg.Registry.TLSCert, TLSKey: cfg.Registry.TLSKey,
		Logger: log.With("component", "registry"),
		OnPush: func(repo, ref, digest string) { d.watcher.Pushed(repo) },
	})
	if err != nil {
		if cfg.Registry.Optional && errors.Is(err, syscall.EADDRINUSE) {
			log.Warn("registry not started: its address is in use", "addr", cfg.Registry.Addr, "err", err)
			d.regErr = err.Error()
			return d, nil
		}
		return nil, err
	}
	d.reg = reg
	return d, nil
}

// close releases a registry that was opened but never served.
func (d *delivery) close() {
	if d.reg != nil {
		_ = d.reg.Close()
	}
}

// addr is the registry's address as clients on this machine reach it.
func (d *delivery) addr() string {
	if d.reg == nil {
		return ""
	}
	host, port, _ := net.SplitHostPort(d.reg.Addr())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// Info implements server.RegistryOps.
func (d *delivery) Info() api.RegistryInfo {
	if d.reg == nil {
		return api.RegistryInfo{Error: d.regErr}
	}
	u, p := d.reg.Credential()
	return api.RegistryInfo{Addr: d.addr(), TLS: d.reg.TLS(), Username: u, Password: p}
}

// GC implements server.RegistryOps.
func (d *delivery) GC(ctx context.Context, req api.RegistryGCRequest) (api.RegistryGCResult, error) {
	res, err := d.reg.GC(ctx, registry.GCOptions{DeleteUntagged: req.DeleteUntagged, DryRun: req.DryRun})
	return api.RegistryGCResult{BytesBefore: res.BytesBefore, BytesAfter: res.BytesAfter, Took: api.Duration(res.Took)}, err
}

// credentials are the embedded registry's credential under the names
// this machine reaches it by, then the Docker configuration's.
func (d *delivery) credentials() pipeline.Credentials {
	c := pipeline.Credentials{}
	if d.reg == nil {
		return c
	}
	u, p := d.reg.Credential()
	_, port, _ := net.SplitHostPort(d.addr())
	for _, host := range []string{d.addr(), "localhost:" + port, "127.0.0.1:" + port} {
		c[host] = authn.Basic{Username: u, Password: p}
	}
	return c
}

// pull is the agent's PullImage: the engine pulls with the credential
// that belongs to the image's registry.
func (d *delivery) pull(ctx context.Context, ref string) error {
	r, err := name.ParseReference(ref)
	if err != nil {
		return api.Invalidf("image %q: %v", ref, err)
	}
	var auth *docker.RegistryAuth
	if a, err := d.credentials().Resolve(r.Context()); err == nil && a != authn.Anonymous {
		if cfg, err := a.Authorization(); err == nil && cfg.Username != "" {
			auth = &docker.RegistryAuth{Username: cfg.Username, Password: cfg.Password, ServerAddress: r.Context().RegistryStr()}
		}
	}
	return d.drv.ImagePull(ctx, ref, auth)
}

// ResolveImage implements server.ImageResolver for local images.
func (d *delivery) ResolveImage(ctx context.Context, ref string) (string, error) {
	pin, err := d.PinImage(ctx, ref)
	return pin.ID, err
}

// PinImage pins a reference at deploy time. One that names a registry
// (a host with a dot or a port, or localhost) is asked of that registry,
// and the revision runs the digest it serves now; others must be on the
// local engine, and the revision runs that image ID.
func (d *delivery) PinImage(ctx context.Context, ref string) (api.ImagePin, error) {
	if !pipeline.NamesRegistry(ref) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		img, err := d.drv.ImageInspect(ctx, ref)
		switch {
		case errors.Is(err, runtime.ErrUnreachable):
			return api.ImagePin{}, fmt.Errorf("%w: %v", api.ErrUnavailable, err)
		case err != nil:
			return api.ImagePin{}, err
		}
		return api.ImagePin{ID: img.ID}, nil
	}
	pinned, err := d.digest(ctx, ref)
	if err != nil {
		return api.ImagePin{}, err
	}
	return api.ImagePin{Digest: pinned}, nil
}

// digest asks the registry which digest ref names now and returns the
// pinned reference registry/repo@sha256:…; a reference by digest is
// checked to exist.
func (d *delivery) digest(ctx context.Context, ref string) (string, error) {
	r, err := pipeline.ParseRef(ref)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	desc, err := remote.Head(r, remote.WithContext(ctx), remote.WithAuthFromKeychain(d.credentials()))
	if err != nil {
		return "", pipeline.RegistryError("look up "+ref, r, err)
	}
	if want, ok := r.(name.Digest); ok && want.DigestStr() != desc.Digest.String() {
		return "", api.Invalidf("look up %s: the registry answered with digest %s: digest mismatch", ref, desc.Digest)
	}
	return r.Context().Digest(desc.Digest.String()).String(), nil
}

// parts are delivery's long-running components.
func (d *delivery) parts(st *store.Store, srv *server.Server) map[string]func(context.Context) error {
	d.watcher.Store = st
	d.watcher.Resolve = d.digest
	d.watcher.Apply = srv.ImageUpdate
	parts := map[string]func(context.Context) error{"updates": d.watcher.Run}
	if d.reg != nil {
		parts["registry"] = d.reg.Serve
	}
	return parts
}
