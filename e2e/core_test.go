package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
)

func probeStack(replicas int, version string) string {
	return fmt.Sprintf(`
services:
  web:
    image: %s
    environment:
      VERSION: %q
    deploy:
      replicas: %d
    healthcheck:
      test: ["CMD", "/probe", "-healthcheck"]
      interval: 1s
      timeout: 2s
      retries: 3
`, probeImage, version, replicas)
}

func containerIDs(b *berth, stack string) []string {
	var ids []string
	for _, c := range b.containers(stack) {
		ids = append(ids, c.ID)
	}
	sort.Strings(ids)
	return ids
}

// TestDeployScaleRedeploy: deploy 3 replicas, scale to 5 and back,
// redeploy the same file (no container changes), change an env var (new
// revision, containers replaced).
func TestDeployScaleRedeploy(t *testing.T) {
	t.Parallel()
	b := startBerth(t)
	b.deploy("web", probeStack(3, "v1"))
	svc := b.waitRunning("web", "web", 3)
	if svc.Revision != 1 {
		t.Fatalf("revision = %d, want 1", svc.Revision)
	}
	if !strings.HasPrefix(svc.ImageID, "sha256:") {
		t.Fatalf("image not pinned to a digest: %q", svc.ImageID)
	}

	// Secure defaults on every container.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "inspect", "--format",
		"{{.HostConfig.CapDrop}} {{.HostConfig.SecurityOpt}} {{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.CpuShares}} {{.HostConfig.Privileged}} {{.HostConfig.NetworkMode}} {{.HostConfig.LogConfig.Config}}",
		b.containers("web")[0].ID).CombinedOutput()
	if err != nil {
		t.Fatalf("docker inspect: %v %s", err, out)
	}
	for _, want := range []string{"[ALL]", "no-new-privileges:true", "536870912", "512", "false", "berth_web", "max-size:10m"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("container config %q lacks %q", strings.TrimSpace(string(out)), want)
		}
	}

	b.mustCLI("scale", "web", "web=5")
	b.waitRunning("web", "web", 5)
	b.mustCLI("scale", "web", "web=3")
	b.waitRunning("web", "web", 3)
	before := containerIDs(b, "web")

	// The same file again: nothing changes.
	out2 := b.deploy("web", probeStack(3, "v1"))
	if !strings.Contains(out2, "unchanged") {
		t.Errorf("redeploy output does not say unchanged:\n%s", out2)
	}
	time.Sleep(2 * time.Second)
	if after := containerIDs(b, "web"); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Fatalf("idempotent redeploy changed containers:\nbefore %v\nafter  %v", before, after)
	}

	// A changed environment variable is a new revision.
	b.deploy("web", probeStack(3, "v2"))
	svc = b.waitRunning("web", "web", 3)
	if svc.Revision != 2 {
		t.Fatalf("revision after env change = %d, want 2", svc.Revision)
	}
	for _, c := range b.containers("web") {
		if c.Labels[api.LabelRevision] != "2" {
			t.Errorf("container %s still of revision %s", c.Name, c.Labels[api.LabelRevision])
		}
	}
}

// TestKilledContainerComesBack: docker kill -s KILL → restarted, with the
// restart counted and the reason shown.
func TestKilledContainerComesBack(t *testing.T) {
	t.Parallel()
	b := startBerth(t)
	b.deploy("kill", probeStack(1, "v1"))
	b.waitRunning("kill", "web", 1)
	c := b.containers("kill")[0]
	if out, err := exec.Command("docker", "kill", "-s", "KILL", c.ID).CombinedOutput(); err != nil {
		t.Fatalf("docker kill: %v %s", err, out)
	}
	waitFor(t, 30*time.Second, "the killed task to run again with 1 restart", func() (bool, string) {
		st := b.status("kill")
		tv := st.Services[0].Tasks[0]
		if tv.Status == nil {
			return false, "no status"
		}
		return tv.Status.State == api.StateRunning && tv.Status.Restarts == 1 && strings.Contains(tv.Status.Reason, "SIGKILL"),
			fmt.Sprintf("%+v", *tv.Status)
	})
	if cs := b.containers("kill"); len(cs) != 1 || cs[0].ID != c.ID {
		t.Fatalf("want the same container restarted in place, got %d containers", len(cs))
	}
	out := b.mustCLI("ps", "kill")
	if !strings.Contains(out, "SIGKILL") {
		t.Errorf("berth ps does not show the reason:\n%s", out)
	}
}

// TestCrashLoop: a process that exits 1 repeatedly goes into a crash loop
// with its reason, and the backoff grows.
func TestCrashLoop(t *testing.T) {
	t.Parallel()
	b := startBerth(t)
	doc := fmt.Sprintf(`
services:
  crash:
    image: %s
    command: ["-exit", "1", "-after", "100ms"]
`, probeImage)
	b.mustCLI("deploy", "-f", writeCompose(t, doc), "--stack", "crash", "--detach")
	var gaps []time.Duration
	var lastNext time.Time
	var lastAt time.Time
	waitFor(t, 60*time.Second, "a crash loop with growing backoff", func() (bool, string) {
		st := b.status("crash")
		if len(st.Services) == 0 || len(st.Services[0].Tasks) == 0 || st.Services[0].Tasks[0].Status == nil {
			return false, "no status yet"
		}
		s := st.Services[0].Tasks[0].Status
		if s.State == api.StateCrashLoop && !s.NextRestart.IsZero() && !s.NextRestart.Equal(lastNext) {
			lastNext = s.NextRestart
			if !lastAt.IsZero() {
				gaps = append(gaps, s.NextRestart.Sub(s.UpdatedAt))
			}
			lastAt = s.UpdatedAt
		}
		ok := s.State == api.StateCrashLoop && strings.Contains(s.Reason, "exited with code 1") && len(gaps) >= 2 && s.Restarts >= 4
		return ok, fmt.Sprintf("state %s restarts %d reason %q gaps %v", s.State, s.Restarts, s.Reason, gaps)
	})
	if gaps[len(gaps)-1] <= gaps[0] {
		t.Errorf("backoff did not grow: %v", gaps)
	}
	out := b.mustCLI("events", "crash")
	if !strings.Contains(out, "task.crashloop") {
		t.Errorf("no crashloop event:\n%s", out)
	}
}

// TestOOMKilled: a task over its memory limit is reported as OOMKilled.
func TestOOMKilled(t *testing.T) {
	t.Parallel()
	b := startBerth(t)
	doc := fmt.Sprintf(`
services:
  hog:
    image: %s
    command: ["-oom"]
    deploy:
      resources:
        limits:
          memory: 16M
`, probeImage)
	b.mustCLI("deploy", "-f", writeCompose(t, doc), "--stack", "oom", "--detach")
	waitFor(t, 60*time.Second, "an OOMKilled reason", func() (bool, string) {
		st := b.status("oom")
		if len(st.Services) == 0 || len(st.Services[0].Tasks) == 0 || st.Services[0].Tasks[0].Status == nil {
			return false, "no status"
		}
		s := st.Services[0].Tasks[0].Status
		return s.OOMKilled && strings.Contains(s.Reason, "OOMKilled"), fmt.Sprintf("%+v", *s)
	})
}

// TestKillBerthDuringDeploy: kill -9 berth while a deploy converges, start
// it again: converges with no duplicate or orphan containers, and the
// containers that were already running are not restarted.
func TestKillBerthDuringDeploy(t *testing.T) {
	t.Parallel()
	b := startBerth(t)
	b.deploy("crashy", probeStack(2, "v1"))
	b.waitRunning("crashy", "web", 2)
	startedBefore := map[string]time.Time{}
	for _, c := range b.containers("crashy") {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		full, err := drv.Inspect(ctx, c.ID)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		startedBefore[c.ID] = full.StartedAt
	}

	// Scale up and kill berth while the new tasks are being created.
	b.mustCLI("scale", "crashy", "web=12")
	time.Sleep(300 * time.Millisecond)
	b.kill9()
	b.start()
	b.waitRunning("crashy", "web", 12)

	perTask := map[string]int{}
	for _, c := range b.containers("crashy") {
		perTask[c.Labels[api.LabelTask]]++
	}
	tasks := b.status("crashy").Services[0].Tasks
	if len(perTask) != len(tasks) {
		t.Errorf("%d task labels on containers, %d tasks: orphans", len(perTask), len(tasks))
	}
	for id, n := range perTask {
		if n != 1 {
			t.Errorf("task %s has %d containers", id, n)
		}
	}
	for id, started := range startedBefore {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		full, err := drv.Inspect(ctx, id)
		cancel()
		if err != nil {
			t.Fatalf("container %s running before the crash is gone: %v", id[:12], err)
		}
		if !full.StartedAt.Equal(started) {
			t.Errorf("container %s was restarted across the berth crash", id[:12])
		}
	}
}

// TestRemovedContainerRecreatedForeignUntouched: a task container removed
// with the docker CLI is recreated; a container berth did not create is
// left alone even though it looks like berth's.
func TestRemovedContainerRecreatedForeignUntouched(t *testing.T) {
	t.Parallel()
	b := startBerth(t)

	foreign := "berth-e2e-foreign-" + b.cluster
	out, err := exec.Command("docker", "create", "--name", foreign, "--label", "io.berth.stack=rm",
		"--label", "io.berth.cluster=someone-else", probeImage).CombinedOutput()
	if err != nil {
		t.Fatalf("docker create: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", foreign).Run() })

	b.deploy("rm", probeStack(2, "v1"))
	b.waitRunning("rm", "web", 2)
	victim := b.containers("rm")[0]
	if out, err := exec.Command("docker", "rm", "-f", victim.ID).CombinedOutput(); err != nil {
		t.Fatalf("docker rm: %v %s", err, out)
	}
	waitFor(t, 30*time.Second, "the removed container to be recreated", func() (bool, string) {
		cs := running(b.containers("rm"))
		for _, c := range cs {
			if c.ID == victim.ID {
				return false, "victim still listed"
			}
		}
		return len(cs) == 2, fmt.Sprintf("%d running", len(cs))
	})
	b.mustCLI("rm", "rm")
	waitFor(t, 30*time.Second, "the stack's containers to go", func() (bool, string) {
		n := len(b.containers("rm"))
		return n == 0, fmt.Sprintf("%d left", n)
	})
	if out, err := exec.Command("docker", "inspect", "--format", "{{.State.Status}}", foreign).CombinedOutput(); err != nil {
		t.Fatalf("the foreign container was touched: %v %s", err, out)
	}
}
