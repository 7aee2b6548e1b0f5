// Package netengine starts a Docker Engine of a benchmark's own: a dockerd
// in a network namespace with its own data root, exec root and socket,
// joined to the host by a veth pair. A benchmark can turn it into a swarm
// manager (or anything else that would disturb the shared engine) and
// throw it away afterwards. It needs root, iproute2 and nsenter.
package netengine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Engine is a running private dockerd.
type Engine struct {
	// Host is its DOCKER_HOST (a unix socket).
	Host string
	// Addr is its address inside the namespace.
	Addr string

	name, dir string
	cmd       *exec.Cmd
	exited    chan struct{}
}

// Options configure Start.
type Options struct {
	// Name names the namespace and the veth pair (at most 10 characters).
	Name string
	// Subnet is the /24 of the veth pair, as "10.213.0" (host .1, engine .2).
	Subnet string
	// Env is added to dockerd's environment.
	Env []string
}

// Start creates the namespace and starts dockerd in it; the engine takes
// the shared engine's storage driver and MTU so containers start the same
// way. Close undoes everything.
func Start(ctx context.Context, o Options) (*Engine, error) {
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	if len(o.Name) > 10 {
		return nil, fmt.Errorf("netengine: name %q longer than 10 characters", o.Name)
	}
	dir, err := os.MkdirTemp("", "netengine-"+o.Name+"-")
	if err != nil {
		return nil, err
	}
	e := &Engine{name: o.Name, dir: dir, Host: "unix://" + filepath.Join(dir, "docker.sock"), Addr: o.Subnet + ".2", exited: make(chan struct{})}
	if err := e.start(ctx, o); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

func (e *Engine) start(ctx context.Context, o Options) error {
	host, peer := e.name+"h", e.name+"c"
	_ = run(ctx, "ip", "netns", "del", e.name) // a previous run's leftovers
	_ = run(ctx, "ip", "link", "del", host)
	steps := [][]string{
		{"ip", "netns", "add", e.name},
		{"ip", "link", "add", host, "type", "veth", "peer", "name", peer},
		{"ip", "link", "set", peer, "netns", e.name},
		{"ip", "addr", "add", o.Subnet + ".1/24", "dev", host},
		{"ip", "link", "set", host, "up"},
		{"ip", "-n", e.name, "addr", "add", e.Addr + "/24", "dev", peer},
		{"ip", "-n", e.name, "link", "set", peer, "up"},
		{"ip", "-n", e.name, "link", "set", "lo", "up"},
		{"ip", "-n", e.name, "route", "add", "default", "via", o.Subnet + ".1"},
	}
	for _, s := range steps {
		if err := run(ctx, s[0], s[1:]...); err != nil {
			return err
		}
	}
	cfg := map[string]any{}
	if b, err := os.ReadFile("/etc/docker/daemon.json"); err == nil {
		var shared map[string]any
		if json.Unmarshal(b, &shared) == nil {
			for _, k := range []string{"storage-driver", "mtu"} {
				if v, ok := shared[k]; ok {
					cfg[k] = v
				}
			}
		}
	}
	cfgFile := filepath.Join(e.dir, "daemon.json")
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		return err
	}
	log, err := os.Create(filepath.Join(e.dir, "dockerd.log"))
	if err != nil {
		return err
	}
	// nsenter, not `ip netns exec`: the latter remounts /sys and hides the
	// cgroup mounts dockerd needs.
	e.cmd = exec.Command("nsenter", "--net=/var/run/netns/"+e.name, "dockerd",
		"--config-file", cfgFile, "--data-root", filepath.Join(e.dir, "data"), "--exec-root", filepath.Join(e.dir, "exec"),
		"--pidfile", filepath.Join(e.dir, "docker.pid"), "-H", e.Host)
	e.cmd.Env = append(os.Environ(), o.Env...)
	e.cmd.Stdout, e.cmd.Stderr = log, log
	if err := e.cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start dockerd: %w", err)
	}
	go func() { _ = e.cmd.Wait(); log.Close(); close(e.exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if e.Docker(ctx, "version") == nil {
			return nil
		}
		select {
		case <-e.exited:
			return fmt.Errorf("dockerd exited: %s", e.logTail())
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("dockerd did not answer within 60s: %s", e.logTail())
}

// Docker runs the docker CLI against the engine.
func (e *Engine) Docker(ctx context.Context, args ...string) error {
	_, err := e.Output(ctx, args...)
	return err
}

// Output runs the docker CLI against the engine and returns its stdout.
func (e *Engine) Output(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", append([]string{"-H", e.Host}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// LoadImage copies an image of the shared engine into this one.
func (e *Engine) LoadImage(ctx context.Context, ref string) error {
	cmd := exec.CommandContext(ctx, "sh", "-c", fmt.Sprintf("docker save %q | docker -H %q load -q", ref, e.Host))
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("copy image %s: %w: %s", ref, err, b)
	}
	return nil
}

// Close stops dockerd (its containers with it) and removes the namespace,
// the veth pair and the engine's files.
func (e *Engine) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if e.cmd != nil && e.cmd.Process != nil {
		_ = e.Docker(ctx, "swarm", "leave", "--force")
		out, _ := e.Output(ctx, "ps", "-aq")
		if ids := strings.Fields(out); len(ids) > 0 {
			_ = e.Docker(ctx, append([]string{"rm", "-f"}, ids...)...)
		}
		_ = e.cmd.Process.Signal(os.Interrupt)
		select {
		case <-e.exited:
		case <-time.After(30 * time.Second):
			_ = e.cmd.Process.Kill()
			<-e.exited
		}
	}
	_ = run(ctx, "ip", "link", "del", e.name+"h")
	_ = run(ctx, "ip", "netns", "del", e.name)
	// The data root may hold mounts dockerd left behind.
	_ = exec.CommandContext(ctx, "sh", "-c", fmt.Sprintf("grep -o ' %s[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l", e.dir)).Run()
	_ = os.RemoveAll(e.dir)
}

func (e *Engine) logTail() string {
	b, _ := os.ReadFile(filepath.Join(e.dir, "dockerd.log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], "\n")
}

func run(ctx context.Context, name string, args ...string) error {
	b, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(b)))
	}
	return nil
}

// ErrNotRoot is returned where the caller cannot create namespaces.
var ErrNotRoot = errors.New("netengine: needs root (network namespaces, dockerd)")
