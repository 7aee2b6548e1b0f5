// Package docker is berth's runtime driver for the Docker Engine, through
// the engine's own Go client with API version negotiation.
package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-units"

	"github.com/berth-dev/berth/runtime"
)

// Options configure the driver.
type Options struct {
	// Host is the engine address; empty means DOCKER_HOST or the local socket.
	Host string
	// CallTimeout bounds every non-streaming engine call (default 30s).
	CallTimeout time.Duration
	Logger      *slog.Logger
}

// Driver implements runtime.Driver against a Docker Engine.
type Driver struct {
	cli     *client.Client
	host    string
	timeout time.Duration
	log     *slog.Logger
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
		return nil, fmt.Errorf("docker client: %w", err)
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Driver{cli: cli, host: cli.DaemonHost(), timeout: opts.CallTimeout, log: opts.Logger}, nil
}

// Client exposes the engine client (image builds, benchmarks).
func (d *Driver) Client() *client.Client { return d.cli }

// Close releases the client's connections.
func (d *Driver) Close() error { return d.cli.Close() }

// call bounds one non-streaming engine call by the driver's timeout (or
// the caller's deadline if sooner).
func (d *Driver) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d.timeout)
}

// wrap maps engine errors to runtime's kinds.
func (d *Driver) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case cerrdefs.IsNotFound(err) || client.IsErrNotFound(err):
		return fmt.Errorf("%s: %w: %v", op, runtime.ErrNotFound, err)
	case cerrdefs.IsConflict(err) || strings.Contains(err.Error(), "is already in use"):
		return fmt.Errorf("%s: %w: %v", op, runtime.ErrConflict, err)
	case client.IsErrConnectionFailed(err) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w: the Docker Engine at %s did not answer (%v); is dockerd running?", op, runtime.ErrUnreachable, d.host, err)
	default:
		return fmt.Errorf("%s: %w: %v", op, runtime.ErrEngine, err)
	}
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
	return runtime.EngineInfo{
		Version: info.ServerVersion, APIVersion: d.cli.ClientVersion(),
		NanoCPUs: int64(info.NCPU) * 1e9, Memory: info.MemTotal, Hostname: info.Name,
		OS: info.OSType, CgroupVersion: info.CgroupVersion,
	}, nil
}

// EnsureNetwork creates a bridge network or accepts an existing one of ours.
func (d *Driver) EnsureNetwork(ctx context.Context, name string, labels map[string]string, internal bool) (string, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	n, err := d.cli.NetworkInspect(ctx, name, network.InspectOptions{})
	if err == nil {
		if !hasLabels(n.Labels, labels) {
			return "", fmt.Errorf("network %s: %w: it exists and was not created by this berth cluster; remove or rename it", name, runtime.ErrConflict)
		}
		return n.ID, nil
	}
	if !cerrdefs.IsNotFound(err) {
		return "", d.wrap("inspect network "+name, err)
	}
	resp, err := d.cli.NetworkCreate(ctx, name, network.CreateOptions{Driver: "bridge", Internal: internal, Labels: labels})
	if err != nil {
		if cerrdefs.IsConflict(err) {
			// Created concurrently by another pass: accept it if ours.
			if n, ierr := d.cli.NetworkInspect(ctx, name, network.InspectOptions{}); ierr == nil && hasLabels(n.Labels, labels) {
				return n.ID, nil
			}
		}
		return "", d.wrap("create network "+name, err)
	}
	return resp.ID, nil
}

// RemoveNetwork removes a network by name.
func (d *Driver) RemoveNetwork(ctx context.Context, name string) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	return d.wrap("remove network "+name, d.cli.NetworkRemove(ctx, name))
}

// ListNetworks returns networks carrying all the labels.
func (d *Driver) ListNetworks(ctx context.Context, labels map[string]string) ([]runtime.Network, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	ns, err := d.cli.NetworkList(ctx, network.ListOptions{Filters: labelFilter(labels)})
	if err != nil {
		return nil, d.wrap("list networks", err)
	}
	out := make([]runtime.Network, 0, len(ns))
	for _, n := range ns {
		out = append(out, runtime.Network{ID: n.ID, Name: n.Name, Labels: n.Labels})
	}
	return out, nil
}

// EnsureVolume creates a named volume or accepts an existing one of ours.
func (d *Driver) EnsureVolume(ctx context.Context, v runtime.VolumeSpec) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	existing, err := d.cli.VolumeInspect(ctx, v.Name)
	if err == nil {
		if !hasLabels(existing.Labels, v.Labels) {
			return fmt.Errorf("volume %s: %w: it exists and was not created by this berth cluster; remove it or declare it external", v.Name, runtime.ErrConflict)
		}
		return nil
	}
	if !cerrdefs.IsNotFound(err) {
		return d.wrap("inspect volume "+v.Name, err)
	}
	_, err = d.cli.VolumeCreate(ctx, volume.CreateOptions{Name: v.Name, Driver: v.Driver, DriverOpts: v.DriverOpts, Labels: v.Labels})
	return d.wrap("create volume "+v.Name, err)
}

// RemoveVolume removes a named volume.
func (d *Driver) RemoveVolume(ctx context.Context, name string) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	return d.wrap("remove volume "+name, d.cli.VolumeRemove(ctx, name, false))
}

// ListVolumes returns volumes carrying all the labels.
func (d *Driver) ListVolumes(ctx context.Context, labels map[string]string) ([]runtime.Volume, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	resp, err := d.cli.VolumeList(ctx, volume.ListOptions{Filters: labelFilter(labels)})
	if err != nil {
		return nil, d.wrap("list volumes", err)
	}
	out := make([]runtime.Volume, 0, len(resp.Volumes))
	for _, v := range resp.Volumes {
		out = append(out, runtime.Volume{Name: v.Name, Labels: v.Labels})
	}
	return out, nil
}

// Create creates a container from spec.
func (d *Driver) Create(ctx context.Context, spec runtime.ContainerSpec) (string, error) {
	cfg, hc, nc := containerConfig(spec)
	ctx, cancel := d.call(ctx)
	defer cancel()
	resp, err := d.cli.ContainerCreate(ctx, cfg, hc, nc, nil, spec.Name)
	if err != nil {
		return "", d.wrap("create container "+spec.Name, err)
	}
	return resp.ID, nil
}

func containerConfig(spec runtime.ContainerSpec) (*container.Config, *container.HostConfig, *network.NetworkingConfig) {
	cfg := &container.Config{
		Image: spec.Image, Cmd: spec.Cmd, Entrypoint: spec.Entrypoint, Env: spec.Env,
		User: spec.User, WorkingDir: spec.WorkingDir, Hostname: spec.Hostname, Labels: spec.Labels,
		StopSignal: spec.StopSignal,
	}
	if spec.StopTimeout > 0 {
		secs := int(math.Ceil(spec.StopTimeout.Seconds()))
		cfg.StopTimeout = &secs
	}
	if h := spec.Health; h != nil {
		cfg.Healthcheck = &container.HealthConfig{
			Test: h.Test, Interval: h.Interval, Timeout: h.Timeout,
			StartPeriod: h.StartPeriod, StartInterval: h.StartInterval, Retries: h.Retries,
		}
	}
	hc := &container.HostConfig{
		RestartPolicy:  container.RestartPolicy{Name: container.RestartPolicyDisabled},
		CapAdd:         spec.CapAdd,
		CapDrop:        spec.CapDrop,
		SecurityOpt:    spec.SecurityOpt,
		ReadonlyRootfs: spec.ReadOnly,
		Sysctls:        spec.Sysctls,
		Tmpfs:          spec.Tmpfs,
		Resources: container.Resources{
			Memory: spec.Memory, NanoCPUs: spec.NanoCPUs, CPUShares: spec.CPUShares,
		},
	}
	if spec.Memory > 0 {
		hc.Resources.MemorySwap = spec.Memory // no swap beyond the limit
	}
	if spec.PidsLimit > 0 {
		p := spec.PidsLimit
		hc.Resources.PidsLimit = &p
	}
	for _, u := range spec.Ulimits {
		hc.Resources.Ulimits = append(hc.Resources.Ulimits, &units.Ulimit{Name: u.Name, Soft: u.Soft, Hard: u.Hard})
	}
	if spec.LogMaxSize != "" || spec.LogMaxFiles > 0 {
		lc := map[string]string{}
		if spec.LogMaxSize != "" {
			lc["max-size"] = spec.LogMaxSize
		}
		if spec.LogMaxFiles > 0 {
			lc["max-file"] = fmt.Sprint(spec.LogMaxFiles)
		}
		hc.LogConfig = container.LogConfig{Type: "json-file", Config: lc}
	}
	for _, m := range spec.Mounts {
		hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.Type(m.Type), Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly})
	}
	var nc *network.NetworkingConfig
	switch {
	case spec.HostNetwork:
		hc.NetworkMode = "host"
	case spec.Network != "":
		hc.NetworkMode = container.NetworkMode(spec.Network)
		nc = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			spec.Network: {Aliases: spec.Aliases},
		}}
	}
	return cfg, hc, nc
}

// Start starts a container.
func (d *Driver) Start(ctx context.Context, id string) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	return d.wrap("start container "+short(id), d.cli.ContainerStart(ctx, id, container.StartOptions{}))
}

// Stop sends the stop signal and kills after grace.
func (d *Driver) Stop(ctx context.Context, id string, grace time.Duration) error {
	secs := int(math.Ceil(grace.Seconds()))
	ctx, cancel := context.WithTimeout(ctx, d.timeout+grace)
	defer cancel()
	return d.wrap("stop container "+short(id), d.cli.ContainerStop(ctx, id, container.StopOptions{Timeout: &secs}))
}

// Kill sends a signal.
func (d *Driver) Kill(ctx context.Context, id, signal string) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	return d.wrap("kill container "+short(id), d.cli.ContainerKill(ctx, id, signal))
}

// Remove removes a container, forcefully, with its anonymous volumes.
func (d *Driver) Remove(ctx context.Context, id string) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	return d.wrap("remove container "+short(id), d.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true}))
}

// Inspect returns a container's state.
func (d *Driver) Inspect(ctx context.Context, id string) (runtime.Container, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	c, err := d.cli.ContainerInspect(ctx, id)
	if err != nil {
		return runtime.Container{}, d.wrap("inspect container "+short(id), err)
	}
	out := runtime.Container{ID: c.ID, Name: strings.TrimPrefix(c.Name, "/"), Image: c.Image, Addresses: map[string]string{}}
	if c.Config != nil {
		out.Labels = c.Config.Labels
	}
	if s := c.State; s != nil {
		out.State = string(s.Status)
		out.ExitCode, out.OOMKilled, out.Error, out.Pid = s.ExitCode, s.OOMKilled, s.Error, s.Pid
		out.StartedAt = parseTime(s.StartedAt)
		out.FinishedAt = parseTime(s.FinishedAt)
		if s.Health != nil {
			out.Health = string(s.Health.Status)
		}
	}
	if c.NetworkSettings != nil {
		for name, ep := range c.NetworkSettings.Networks {
			if ep != nil {
				out.Addresses[name] = ep.IPAddress
			}
		}
	}
	return out, nil
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() < 2000 {
		return time.Time{}
	}
	return t
}

// List returns containers carrying all the labels, running or not.
func (d *Driver) List(ctx context.Context, labels map[string]string) ([]runtime.Container, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	cs, err := d.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: labelFilter(labels)})
	if err != nil {
		return nil, d.wrap("list containers", err)
	}
	out := make([]runtime.Container, 0, len(cs))
	for _, c := range cs {
		rc := runtime.Container{ID: c.ID, Image: c.ImageID, Labels: c.Labels, State: string(c.State), Addresses: map[string]string{}}
		if len(c.Names) > 0 {
			rc.Name = strings.TrimPrefix(c.Names[0], "/")
		}
		if c.NetworkSettings != nil {
			for name, ep := range c.NetworkSettings.Networks {
				if ep != nil {
					rc.Addresses[name] = ep.IPAddress
				}
			}
		}
		out = append(out, rc)
	}
	return out, nil
}

// Wait blocks until the container is not running and returns its exit code.
func (d *Driver) Wait(ctx context.Context, id string) (int, error) {
	resc, errc := d.cli.ContainerWait(ctx, id, container.WaitConditionNotRunning)
	select {
	case r := <-resc:
		if r.Error != nil && r.Error.Message != "" {
			return int(r.StatusCode), fmt.Errorf("wait container %s: %s", short(id), r.Error.Message)
		}
		return int(r.StatusCode), nil
	case err := <-errc:
		return -1, d.wrap("wait container "+short(id), err)
	}
}

// Logs copies a container's output, demultiplexed.
func (d *Driver) Logs(ctx context.Context, id string, opts runtime.LogOptions, stdout, stderr io.Writer) error {
	lo := container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: opts.Follow, Timestamps: opts.Timestamps, Tail: opts.Tail}
	if !opts.Since.IsZero() {
		lo.Since = opts.Since.Format(time.RFC3339Nano)
	}
	if !opts.Until.IsZero() {
		lo.Until = opts.Until.Format(time.RFC3339Nano)
	}
	if !opts.Follow {
		var cancel context.CancelFunc
		ctx, cancel = d.call(ctx)
		defer cancel()
	}
	rc, err := d.cli.ContainerLogs(ctx, id, lo)
	if err != nil {
		return d.wrap("logs of container "+short(id), err)
	}
	defer rc.Close()
	if _, err := stdcopy.StdCopy(stdout, stderr, rc); err != nil && ctx.Err() == nil {
		return fmt.Errorf("read logs of container %s: %w", short(id), err)
	}
	return nil
}

// Events streams container events for containers carrying the labels.
func (d *Driver) Events(ctx context.Context, labels map[string]string) (<-chan runtime.Event, <-chan error) {
	f := labelFilter(labels)
	f.Add("type", string(events.ContainerEventType))
	msgs, errs := d.cli.Events(ctx, events.ListOptions{Filters: f})
	out := make(chan runtime.Event, 64)
	outErr := make(chan error, 1)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case err := <-errs:
				if ctx.Err() == nil {
					outErr <- d.wrap("engine events", err)
				}
				return
			case m := <-msgs:
				e, ok := toEvent(m)
				if !ok {
					continue
				}
				select {
				case out <- e:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, outErr
}

func toEvent(m events.Message) (runtime.Event, bool) {
	action := string(m.Action)
	e := runtime.Event{ID: m.Actor.ID, Labels: m.Actor.Attributes, Time: time.Unix(0, m.TimeNano)}
	switch {
	case action == "health_status: healthy", action == "health_status: unhealthy":
		e.Action = runtime.EventHealth
		e.Health = strings.TrimPrefix(action, "health_status: ")
	case action == runtime.EventDie:
		e.Action = action
		fmt.Sscan(m.Actor.Attributes["exitCode"], &e.ExitCode)
	case action == runtime.EventStart, action == runtime.EventOOM, action == runtime.EventDestroy,
		action == runtime.EventCreate, action == runtime.EventStop, action == runtime.EventKill:
		e.Action = action
	default:
		return e, false
	}
	return e, true
}

// ImageInspect resolves a reference to an image.
func (d *Driver) ImageInspect(ctx context.Context, ref string) (runtime.Image, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	img, err := d.cli.ImageInspect(ctx, ref)
	if err != nil {
		if cerrdefs.IsNotFound(err) || client.IsErrNotFound(err) {
			return runtime.Image{}, fmt.Errorf("%w: image %s not found on this engine: build it (berth build, docker build) or push it to a registry berth can pull from", runtime.ErrNotFound, ref)
		}
		return runtime.Image{}, d.wrap("inspect image "+ref, err)
	}
	out := runtime.Image{ID: img.ID, RepoTags: img.RepoTags, RepoDigests: img.RepoDigests, Size: img.Size}
	if img.Config != nil {
		out.User = img.Config.User
	}
	out.Created = parseTime(img.Created)
	return out, nil
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

func short(id string) string {
	if len(id) > 12 && !strings.ContainsAny(id, "-_") {
		return id[:12]
	}
	return id
}
