package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/ingress"
	"github.com/berth-dev/berth/runtime"
)

// berth is one `berth up` process under test with its own data directory
// and cluster ID.
type berth struct {
	t       *testing.T
	dir     string
	cluster string
	cl      *client.Client
	mu      sync.Mutex
	cmd     *exec.Cmd
	logs    *bytes.Buffer
	exited  chan struct{}
	extra   []string
	// after runs once the cluster's containers, networks and volumes are
	// gone (images they used can be removed then).
	after []func()
}

// afterCleanup runs f when the test ends, after the cluster's cleanup.
func (b *berth) afterCleanup(f func()) { b.after = append(b.after, f) }

// startBerth starts `berth up` in a fresh data directory. Everything the
// cluster created is removed when the test ends, pass or fail.
func startBerth(t *testing.T, extraArgs ...string) *berth {
	t.Helper()
	// Unix socket paths are limited to 108 bytes; keep the dir short.
	dir, err := os.MkdirTemp("", "be2e")
	if err != nil {
		t.Fatal(err)
	}
	b := &berth{t: t, dir: dir, extra: extraArgs}
	b.start()
	id, err := os.ReadFile(filepath.Join(dir, "cluster-id"))
	if err != nil {
		t.Fatalf("read cluster id: %v", err)
	}
	b.cluster = strings.TrimSpace(string(id))
	t.Cleanup(func() {
		b.stop()
		stopProxy(dir)
		cleanupCluster(t, b.cluster)
		for _, f := range b.after {
			f()
		}
		if t.Failed() {
			t.Logf("berth log:\n%s", b.logText())
		}
		// The secrets tmpfs berth mounted, if any, goes with the directory.
		_ = syscall.Unmount(filepath.Join(dir, "run"), syscall.MNT_DETACH)
		os.RemoveAll(dir)
	})
	return b
}

func (b *berth) start() {
	b.t.Helper()
	b.mu.Lock()
	b.logs = &bytes.Buffer{}
	args := []string{"up", "--data-dir", b.dir, "--log-level", "debug",
		"--http-addr", "127.0.0.1:0", "--publish-host", "127.0.0.1", "--drain-timeout", "10s", "--registry-addr", "127.0.0.1:0"}
	cmd := exec.Command(berthBin, append(args, b.extra...)...)
	cmd.Stdout = syncWriter{&b.mu, b.logs}
	cmd.Stderr = syncWriter{&b.mu, b.logs}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		b.mu.Unlock()
		b.t.Fatalf("start berth: %v", err)
	}
	b.cmd = cmd
	b.exited = make(chan struct{})
	b.mu.Unlock()
	go func() { _ = cmd.Wait(); close(b.exited) }()

	cl, err := client.New("unix://" + filepath.Join(b.dir, "berth.sock"))
	if err != nil {
		b.t.Fatal(err)
	}
	b.cl = cl
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		if _, err := cl.Version(ctx); err == nil {
			return
		}
		select {
		case <-b.exited:
			b.t.Fatalf("berth up exited:\n%s", b.logText())
		case <-ctx.Done():
			b.t.Fatalf("berth up not ready in 60s:\n%s", b.logText())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// kill9 kills berth without warning, as a crash would.
func (b *berth) kill9() {
	b.t.Helper()
	_ = b.cmd.Process.Signal(syscall.SIGKILL)
	<-b.exited
}

// stop stops berth gracefully (SIGTERM), falling back to SIGKILL.
func (b *berth) stop() {
	if b.cmd == nil {
		return
	}
	select {
	case <-b.exited:
		return
	default:
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.exited:
	case <-time.After(20 * time.Second):
		_ = b.cmd.Process.Signal(syscall.SIGKILL)
		<-b.exited
	}
}

func (b *berth) logText() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.logs.String()
}

type syncWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// cli runs the berth CLI against this instance and returns its output and
// exit code.
func (b *berth) cli(args ...string) (string, int) {
	b.t.Helper()
	cmd := exec.Command(berthBin, args...)
	cmd.Env = append(os.Environ(), "BERTH_HOST=unix://"+filepath.Join(b.dir, "berth.sock"), "BERTH_DATA_DIR="+b.dir)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		b.t.Fatalf("run berth %v: %v", args, err)
	}
	return string(out), code
}

// mustCLI runs the CLI and fails the test on a non-zero exit.
func (b *berth) mustCLI(args ...string) string {
	b.t.Helper()
	out, code := b.cli(args...)
	if code != 0 {
		b.t.Fatalf("berth %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// writeCompose writes a Compose file into a temporary directory.
func writeCompose(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "compose.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// deploy deploys a Compose document as stack and waits for convergence.
func (b *berth) deploy(stack, doc string) string {
	b.t.Helper()
	return b.mustCLI("deploy", "-f", writeCompose(b.t, doc), "--stack", stack, "--timeout", "90s")
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, detail := cond()
		if ok {
			return
		}
		last = detail
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last: %s", timeout, what, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// containers lists the engine's containers of this cluster (and stack).
func (b *berth) containers(stack string) []runtime.Container {
	b.t.Helper()
	labels := map[string]string{api.LabelCluster: b.cluster}
	if stack != "" {
		labels[api.LabelStack] = stack
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := drv.List(ctx, labels)
	if err != nil {
		b.t.Fatalf("list containers: %v", err)
	}
	return cs
}

func running(cs []runtime.Container) []runtime.Container {
	var out []runtime.Container
	for _, c := range cs {
		if c.Running() {
			out = append(out, c)
		}
	}
	return out
}

// status returns the stack status.
func (b *berth) status(stack string) api.StackStatus {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := b.cl.Stack(ctx, stack)
	if err != nil {
		b.t.Fatalf("status %s: %v", stack, err)
	}
	return st
}

// waitRunning waits until service runs want tasks of its current revision
// with exactly want containers of the service on the engine.
func (b *berth) waitRunning(stack, service string, want int) api.ServiceStatus {
	b.t.Helper()
	var svc api.ServiceStatus
	waitFor(b.t, 90*time.Second, fmt.Sprintf("%s/%s to run %d tasks", stack, service, want), func() (bool, string) {
		st := b.status(stack)
		for _, s := range st.Services {
			if s.Name != service {
				continue
			}
			svc = s
			// A blue-green rollout's previous set stays, stopped, for
			// the rollback window: it is not counted.
			kept := map[string]bool{}
			tasks := 0
			for _, tv := range s.Tasks {
				if tv.Task.Revision != s.Revision && tv.Task.Desired == api.DesiredStopped {
					kept[tv.Task.ID] = true
					continue
				}
				tasks++
			}
			n := 0
			for _, c := range b.containers(stack) {
				if c.Labels[api.LabelService] == service && !kept[c.Labels[api.LabelTask]] {
					n++
				}
			}
			inProgress := s.Rollout != nil && s.Rollout.State == api.RolloutInProgress
			return s.Running == want && tasks == want && n == want && !inProgress,
				fmt.Sprintf("running %d, tasks %d, containers %d, rollout in progress %v", s.Running, tasks, n, inProgress)
		}
		return false, "service not found"
	})
	return svc
}

// stopProxy stops the data directory's proxy process, which outlives
// berth up by design.
func stopProxy(dir string) {
	pid, err := ingress.ReadPID(dir)
	if err != nil {
		return
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return
	}
	_ = p.Signal(syscall.SIGTERM)
	for i := 0; i < 100; i++ {
		// Gone, or a zombie waiting for a reaper: either way it serves nothing.
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(stat), ") Z ") {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = p.Signal(syscall.SIGKILL)
}

// cleanupCluster removes every container, network and volume carrying the
// cluster's label — and nothing else.
func cleanupCluster(t *testing.T, cluster string) {
	if cluster == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	labels := map[string]string{api.LabelCluster: cluster}
	// Two sweeps: a create the engine was still carrying out when berth
	// stopped can finish after the first list.
	for sweep := 0; sweep < 2; sweep++ {
		if sweep > 0 {
			time.Sleep(time.Second)
		}
		cs, err := drv.List(ctx, labels)
		if err != nil {
			t.Logf("cleanup: list containers: %v", err)
		}
		for _, c := range cs {
			if err := drv.Remove(ctx, c.ID); err != nil {
				t.Logf("cleanup: remove container %s: %v", c.Name, err)
			}
		}
	}
	nets, _ := drv.ListNetworks(ctx, labels)
	for _, n := range nets {
		if err := drv.RemoveNetwork(ctx, n.ID); err != nil {
			t.Logf("cleanup: remove network %s: %v", n.Name, err)
		}
	}
	vols, _ := drv.ListVolumes(ctx, labels)
	for _, v := range vols {
		if err := drv.RemoveVolume(ctx, v.Name); err != nil {
			t.Logf("cleanup: remove volume %s: %v", v.Name, err)
		}
	}
}
