package docker

import (
	"context"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/versions"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-units"

	"github.com/berth-dev/berth/runtime"
)

// Create creates (does not start) a container from spec. A name in use is
// runtime.ErrConflict; a missing image or network is runtime.ErrNotFound.
func (d *Driver) Create(ctx context.Context, spec runtime.ContainerSpec) (string, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	cfg, hc, nc := containerConfig(spec)
	if cfg.Healthcheck != nil && cfg.Healthcheck.StartInterval > 0 {
		// The engine accepts a start interval from API 1.44 (Engine 25);
		// older engines probe at Interval during the start period too.
		v, err := d.apiVersion(ctx)
		if err != nil {
			return "", d.wrap("create container "+spec.Name, err)
		}
		if versions.LessThan(v, "1.44") {
			d.log.Debug("engine API too old for a health start interval; using the interval", "container", spec.Name, "api", v)
			cfg.Healthcheck.StartInterval = 0
		}
	}
	resp, err := d.cli.ContainerCreate(ctx, cfg, hc, nc, nil, spec.Name)
	if err != nil {
		return "", d.wrap("create container "+spec.Name, err)
	}
	d.ok()
	for _, w := range resp.Warnings {
		d.log.Debug("engine warning on create", "container", spec.Name, "warning", w)
	}
	return resp.ID, nil
}

// containerConfig maps a spec to the engine's create request. It is pure,
// so the mapping is tested without an engine.
func containerConfig(spec runtime.ContainerSpec) (*container.Config, *container.HostConfig, *network.NetworkingConfig) {
	cfg := &container.Config{
		Image:      spec.Image,
		Cmd:        spec.Cmd,
		Entrypoint: spec.Entrypoint,
		Env:        spec.Env,
		User:       spec.User,
		WorkingDir: spec.WorkingDir,
		Hostname:   spec.Hostname,
		Labels:     spec.Labels,
		StopSignal: spec.StopSignal,
	}
	if spec.StopTimeout > 0 {
		secs := ceilSeconds(spec.StopTimeout)
		cfg.StopTimeout = &secs
	}
	if h := spec.Health; h != nil {
		cfg.Healthcheck = &container.HealthConfig{
			Test: h.Test, Interval: h.Interval, Timeout: h.Timeout,
			StartPeriod: h.StartPeriod, StartInterval: h.StartInterval, Retries: h.Retries,
		}
	}

	hc := &container.HostConfig{
		// berth does job control itself; an engine restart policy would
		// race it and survive berth's decisions.
		RestartPolicy:  container.RestartPolicy{Name: container.RestartPolicyDisabled},
		Privileged:     false,
		CapAdd:         spec.CapAdd,
		CapDrop:        spec.CapDrop,
		SecurityOpt:    spec.SecurityOpt,
		ReadonlyRootfs: spec.ReadOnly,
		Sysctls:        spec.Sysctls,
		Tmpfs:          spec.Tmpfs,
		Resources: container.Resources{
			Memory:    spec.Memory,
			NanoCPUs:  spec.NanoCPUs,
			CPUShares: spec.CPUShares,
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
			lc["max-file"] = strconv.Itoa(spec.LogMaxFiles)
		}
		hc.LogConfig = container.LogConfig{Type: "json-file", Config: lc}
	}
	for _, m := range spec.Mounts {
		hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.Type(m.Type), Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly})
	}

	var nc *network.NetworkingConfig
	switch {
	case spec.HostNetwork:
		hc.NetworkMode = network.NetworkHost
	case spec.Network == network.NetworkNone:
		hc.NetworkMode = network.NetworkNone
	case spec.Network != "":
		hc.NetworkMode = container.NetworkMode(spec.Network)
		nc = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			spec.Network: {Aliases: spec.Aliases},
		}}
	}
	return cfg, hc, nc
}

// ceilSeconds rounds d up to whole seconds, the engine's unit for stop
// timeouts; negative durations are zero.
func ceilSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int(math.Ceil(d.Seconds()))
}

// Start starts a container.
func (d *Driver) Start(ctx context.Context, id string) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	return d.wrap("start container "+short(id), d.cli.ContainerStart(ctx, id, container.StartOptions{}))
}

// Stop sends the container's stop signal, waits up to grace (rounded up to
// whole seconds) and then kills it. Stopping a stopped container succeeds.
func (d *Driver) Stop(ctx context.Context, id string, grace time.Duration) error {
	secs := ceilSeconds(grace)
	// The engine answers once the container is down: grant it the grace
	// period on top of the call timeout.
	ctx, cancel := context.WithTimeout(ctx, d.timeout+time.Duration(secs)*time.Second)
	defer cancel()
	return d.wrap("stop container "+short(id), d.cli.ContainerStop(ctx, id, container.StopOptions{Timeout: &secs}))
}

// Kill sends signal (a name such as "KILL" or "SIGTERM", or a number; empty
// means KILL). A container that is not running is runtime.ErrConflict.
func (d *Driver) Kill(ctx context.Context, id, signal string) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	return d.wrap("kill container "+short(id), d.cli.ContainerKill(ctx, id, signal))
}

// Remove removes a container, forcefully if running, with its anonymous
// volumes. Named volumes are never removed with a container.
func (d *Driver) Remove(ctx context.Context, id string) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	return d.wrap("remove container "+short(id),
		d.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true}))
}

// Inspect returns a container's state. OOMKilled is also true when an
// Events stream of this driver saw the container's oom event during its
// last run, which Engine 20.10 can fail to record under load.
func (d *Driver) Inspect(ctx context.Context, id string) (runtime.Container, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	c, err := d.cli.ContainerInspect(ctx, id)
	if err != nil {
		return runtime.Container{}, d.wrap("inspect container "+short(id), err)
	}
	d.ok()
	out := runtime.Container{ID: c.ID, Name: strings.TrimPrefix(c.Name, "/"), Image: c.Image, Addresses: map[string]string{}}
	if c.Config != nil {
		out.Labels = c.Config.Labels
	}
	out.LogPath = c.LogPath
	if c.HostConfig != nil {
		out.LogDriver = c.HostConfig.LogConfig.Type
	}
	if s := c.State; s != nil {
		out.State = string(s.Status)
		out.ExitCode, out.OOMKilled, out.Error, out.Pid = s.ExitCode, s.OOMKilled, s.Error, s.Pid
		out.StartedAt = parseTime(s.StartedAt)
		out.FinishedAt = parseTime(s.FinishedAt)
		if s.Health != nil {
			out.Health = string(s.Health.Status)
			for _, r := range s.Health.Log {
				if r != nil {
					out.HealthLog = append(out.HealthLog, runtime.HealthResult{Start: r.Start, End: r.End, ExitCode: r.ExitCode, Output: r.Output})
				}
			}
		}
		if !s.Running && !s.OOMKilled && !out.StartedAt.IsZero() && d.oomSince(c.ID, out.StartedAt) {
			out.OOMKilled = true // the engine handled the exit before the OOM
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

// parseTime parses the engine's timestamps; the engine's zero time
// ("0001-01-01T00:00:00Z") and garbage become the zero time.Time.
func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() < 2000 {
		return time.Time{}
	}
	return t
}

// List returns containers carrying all the labels, running or not, from
// one list call: ID, name, image ID, labels, state, addresses, and the
// exit code and health the engine's status line shows. Timestamps, Pid,
// OOMKilled, Error and the log driver and path need Inspect.
func (d *Driver) List(ctx context.Context, labels map[string]string) ([]runtime.Container, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	cs, err := d.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: labelFilter(labels)})
	if err != nil {
		return nil, d.wrap("list containers", err)
	}
	d.ok()
	out := make([]runtime.Container, 0, len(cs))
	for _, c := range cs {
		rc := runtime.Container{ID: c.ID, Image: c.ImageID, Labels: c.Labels, State: string(c.State), Addresses: map[string]string{}}
		if len(c.Names) > 0 {
			rc.Name = strings.TrimPrefix(c.Names[0], "/")
		}
		rc.ExitCode, rc.Health = parseStatus(c.Status)
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

var (
	exitedStatus = regexp.MustCompile(`^Exited \((-?\d+)\)`)
	healthStatus = regexp.MustCompile(`\((healthy|unhealthy|health: starting)\)$`)
)

// parseStatus reads the exit code and health from the engine's status line
// ("Exited (3) 5 seconds ago", "Up 2 minutes (healthy)").
func parseStatus(s string) (exitCode int, health string) {
	if m := exitedStatus.FindStringSubmatch(s); m != nil {
		exitCode, _ = strconv.Atoi(m[1])
	}
	if m := healthStatus.FindStringSubmatch(s); m != nil {
		health = strings.TrimPrefix(m[1], "health: ")
	}
	return exitCode, health
}

// Wait blocks until the container is not running (at once for one that
// was never started) and returns its exit code. It is bounded by ctx only,
// once the engine has accepted the request.
func (d *Driver) Wait(ctx context.Context, id string) (int, error) {
	op := "wait for container " + short(id)
	sctx, answered, cancel := d.stream(ctx)
	defer cancel()
	resc, errc := d.cli.ContainerWait(sctx, id, container.WaitConditionNotRunning)
	if !answered() {
		// ContainerWait returns once the engine has sent its headers.
		err := <-errc
		return -1, d.wrap(op, streamErr(sctx, err))
	}
	select {
	case r := <-resc:
		if r.Error != nil && r.Error.Message != "" {
			return int(r.StatusCode), fmt.Errorf("%s: %w: %s", op, runtime.ErrEngine, r.Error.Message)
		}
		return int(r.StatusCode), nil
	case err := <-errc:
		if ctx.Err() != nil {
			return -1, fmt.Errorf("%s: %w", op, ctx.Err())
		}
		return -1, d.wrap(op, err)
	}
}

// Logs copies a container's output, demultiplexed into stdout and stderr
// (containers are created without a TTY). With Follow it returns when the
// container stops or ctx ends (then with nil).
func (d *Driver) Logs(ctx context.Context, id string, opts runtime.LogOptions, stdout, stderr io.Writer) error {
	op := "logs of container " + short(id)
	lo := container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: opts.Follow, Timestamps: opts.Timestamps, Tail: opts.Tail}
	if !opts.Since.IsZero() {
		lo.Since = unixTimestamp(opts.Since)
	}
	if !opts.Until.IsZero() {
		lo.Until = unixTimestamp(opts.Until)
	}
	if opts.Follow {
		sctx, answered, cancel := d.stream(ctx)
		defer cancel()
		rc, err := d.cli.ContainerLogs(sctx, id, lo)
		if !answered() {
			if rc != nil {
				rc.Close()
			}
			return d.wrap(op, streamErr(sctx, err))
		}
		if err != nil {
			return d.wrap(op, err)
		}
		defer rc.Close()
		if err := demux(rc, stdout, stderr); err != nil && ctx.Err() == nil {
			return d.wrap(op, err)
		}
		return nil // the container stopped, or the caller stopped following
	}
	cctx, cancel := d.call(ctx)
	defer cancel()
	rc, err := d.cli.ContainerLogs(cctx, id, lo)
	if err != nil {
		return d.wrap(op, err)
	}
	defer rc.Close()
	return d.wrap(op, demux(rc, stdout, stderr))
}

// unixTimestamp formats t as the engine's "seconds.nanoseconds".
func unixTimestamp(t time.Time) string {
	return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond())
}

func demux(rc io.Reader, stdout, stderr io.Writer) error {
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	_, err := stdcopy.StdCopy(stdout, stderr, rc)
	return err
}
