// Package docker is berth's runtime driver for the Docker Engine, through
// the engine's own Go client with API version negotiation.
//
// Every engine call is bounded: non-streaming calls by the driver's call
// timeout (or the caller's deadline if sooner); streaming calls (Events,
// Wait, Logs with Follow) by the caller's ctx once the engine has answered,
// and by the call timeout until it has. A wedged engine therefore shows up
// as runtime.ErrUnreachable instead of a hung caller.
package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/berth-dev/berth/runtime"
)

// DefaultCallTimeout bounds a non-streaming engine call when Options leave
// CallTimeout zero.
const DefaultCallTimeout = 30 * time.Second

// Options configure the driver.
type Options struct {
	// Host is the engine address (unix:///var/run/docker.sock,
	// tcp://host:2376); empty means DOCKER_HOST or the local socket.
	Host string
	// CallTimeout bounds every non-streaming engine call (default 30s).
	CallTimeout time.Duration
	// Logger receives the driver's debug messages; nil discards them.
	Logger *slog.Logger
}

// Driver implements runtime.Driver against a Docker Engine. It is safe
// for concurrent use.
type Driver struct {
	cli     *client.Client
	host    string
	timeout time.Duration
	log     *slog.Logger

	// negotiated is set once an engine call has succeeded, after which
	// cli.ClientVersion() is the negotiated API version.
	negotiated atomic.Bool

	// ooms remembers oom events seen on any Events stream, by container
	// ID: under load Engine 20.10 can handle a container's exit before its
	// OOM and then reports OOMKilled false. Inspect fills it in from here.
	oomMu sync.Mutex
	ooms  map[string]time.Time
}

var _ runtime.Driver = (*Driver)(nil)

// New returns a driver. It does not contact the engine; Info does.
func New(opts Options) (*Driver, error) {
	copts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if opts.Host != "" {
		copts = append(copts, client.WithHost(opts.Host))
	}
	cli, err := client.NewClientWithOpts(copts...)
	if err != nil {
		return nil, fmt.Errorf("docker client for %q: %w", opts.Host, err)
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = DefaultCallTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Driver{cli: cli, host: cli.DaemonHost(), timeout: opts.CallTimeout, log: opts.Logger, ooms: map[string]time.Time{}}, nil
}

// Client exposes the engine client (image builds, benchmarks, tests).
func (d *Driver) Client() *client.Client { return d.cli }

// Host is the engine address the driver talks to.
func (d *Driver) Host() string { return d.host }

// Close releases the client's connections.
func (d *Driver) Close() error { return d.cli.Close() }

// call bounds one non-streaming engine call by the driver's timeout, or by
// the caller's deadline if that is sooner.
func (d *Driver) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d.timeout)
}

// stream returns the context for a streaming call. It ends with the
// caller's ctx, and also if the engine has not answered the request within
// the call timeout. The caller invokes answered once the engine's response
// has arrived; answered reports false if the call timeout had already
// fired. cancel releases the context.
func (d *Driver) stream(ctx context.Context) (sctx context.Context, answered func() bool, cancel context.CancelFunc) {
	sctx, cancelCause := context.WithCancelCause(ctx)
	timer := time.AfterFunc(d.timeout, func() {
		cancelCause(fmt.Errorf("no answer within %s: %w", d.timeout, context.DeadlineExceeded))
	})
	return sctx, timer.Stop, func() { timer.Stop(); cancelCause(context.Canceled) }
}

// streamErr is the error of a streaming call that failed before the
// engine answered: a fired answer timer is reported as a deadline.
func streamErr(sctx context.Context, err error) error {
	if cause := context.Cause(sctx); cause != nil && errors.Is(cause, context.DeadlineExceeded) {
		return cause
	}
	return err
}

// ok records that the engine answered a call, so that the client's API
// version is the negotiated one from now on.
func (d *Driver) ok() { d.negotiated.Store(true) }

// wrap maps an engine error to runtime's kinds, keeping the engine's error
// in the chain. A caller's cancellation stays context.Canceled.
func (d *Driver) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case cerrdefs.IsNotFound(err):
		return fmt.Errorf("%s: %w: %w", op, runtime.ErrNotFound, err)
	case cerrdefs.IsConflict(err) || strings.Contains(err.Error(), "is already in use"):
		return fmt.Errorf("%s: %w: %w", op, runtime.ErrConflict, err)
	case unreachable(err):
		return fmt.Errorf("%s: %w: the Docker Engine at %s is not reachable (%w); start dockerd (systemctl start docker) or point berth at a running engine",
			op, runtime.ErrUnreachable, d.host, err)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("%s: %w", op, err)
	default:
		return fmt.Errorf("%s: %w: %w", op, runtime.ErrEngine, err)
	}
}

// unreachable reports whether err means the engine did not answer: no
// connection, a connection cut mid-call, or no answer before the deadline.
func unreachable(err error) bool {
	return client.IsErrConnectionFailed(err) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

func labelFilter(labels map[string]string) filters.Args {
	f := filters.NewArgs()
	for k, v := range labels {
		f.Add("label", k+"="+v)
	}
	return f
}

// Info pings the engine and reports its version and capacity.
func (d *Driver) Info(ctx context.Context) (runtime.EngineInfo, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	info, err := d.cli.Info(ctx)
	if err != nil {
		return runtime.EngineInfo{}, d.wrap("engine info", err)
	}
	d.ok()
	return runtime.EngineInfo{
		Version:       info.ServerVersion,
		APIVersion:    d.cli.ClientVersion(),
		NanoCPUs:      int64(info.NCPU) * 1e9,
		Memory:        info.MemTotal,
		Hostname:      info.Name,
		OS:            info.OSType,
		CgroupVersion: info.CgroupVersion,
	}, nil
}

// apiVersion returns the negotiated API version, asking the engine once if
// no call has been answered yet.
func (d *Driver) apiVersion(ctx context.Context) (string, error) {
	if !d.negotiated.Load() {
		if _, err := d.cli.ServerVersion(ctx); err != nil {
			return "", err
		}
		d.ok()
	}
	return d.cli.ClientVersion(), nil
}

// oomMemory is how long an oom event is remembered for Inspect.
const oomMemory = 10 * time.Minute

// noteEvent records oom events (and forgets them on destroy).
func (d *Driver) noteEvent(e runtime.Event) {
	if e.Action != runtime.EventOOM && e.Action != runtime.EventDestroy {
		return
	}
	d.oomMu.Lock()
	defer d.oomMu.Unlock()
	if e.Action == runtime.EventDestroy {
		delete(d.ooms, e.ID)
		return
	}
	for id, at := range d.ooms {
		if time.Since(at) > oomMemory {
			delete(d.ooms, id)
		}
	}
	d.ooms[e.ID] = e.Time
}

// oomSince reports whether an oom event of container id was seen at or
// after t.
func (d *Driver) oomSince(id string, t time.Time) bool {
	d.oomMu.Lock()
	defer d.oomMu.Unlock()
	at, ok := d.ooms[id]
	return ok && !at.Before(t)
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// short abbreviates a 64-hex-digit engine ID for messages; names pass.
func short(id string) string {
	if len(id) != 64 {
		return id
	}
	for _, r := range id {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return id
		}
	}
	return id[:12]
}
