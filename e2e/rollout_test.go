package e2e

import (
	"context"
	"fmt"
	"os/user"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
)

func rolloutStack(command, deadline string) string {
	cmd := ""
	if command != "" {
		cmd = "    command: " + command + "\n"
	}
	return fmt.Sprintf(`
services:
  web:
    image: %s
%s    deploy:
      replicas: 2
    healthcheck:
      test: ["CMD", "/probe", "-healthcheck"]
      interval: 500ms
      timeout: 2s
      retries: 2
    x-berth:
      deploy:
        deadline: %s
        stability: 10s
`, probeImage, cmd, deadline)
}

// TestFailingRevisionRollsBack: a revision that crash-loops, and one that
// never becomes healthy, are rolled back; the deploy fails with the
// reason; the old tasks never stopped serving.
func TestFailingRevisionRollsBack(t *testing.T) {
	t.Parallel()
	b := startBerth(t)
	b.deploy("rb", rolloutStack("", "60s"))
	b.waitRunning("rb", "web", 2)
	started := map[string]time.Time{}
	for _, c := range b.containers("rb") {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		full, err := drv.Inspect(ctx, c.ID)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		started[c.ID] = full.StartedAt
	}
	check := func(what string) {
		t.Helper()
		st := b.status("rb")
		svc := st.Services[0]
		if svc.Revision != 1 || svc.Rollout == nil || svc.Rollout.State != api.RolloutRolledBack {
			t.Fatalf("%s: revision %d rollout %+v, want rolled back to 1", what, svc.Revision, svc.Rollout)
		}
		for id, at := range started {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			full, err := drv.Inspect(ctx, id)
			cancel()
			if err != nil || !full.Running() || !full.StartedAt.Equal(at) {
				t.Fatalf("%s: old task %s stopped or restarted during the failed rollout (%v)", what, id[:12], err)
			}
		}
	}

	// A revision that crash-loops.
	out, code := b.cli("deploy", "-f", writeCompose(t, rolloutStack(`["-exit", "1", "-after", "50ms"]`, "60s")), "--stack", "rb", "--timeout", "90s")
	if code == 0 || !strings.Contains(out, "rolled back") || !strings.Contains(out, "exited with code 1") {
		t.Fatalf("deploy of a crashing revision: exit %d\n%s", code, out)
	}
	check("crash loop")
	b.waitRunning("rb", "web", 2)

	// A revision that is healthy for 2 s, then exits: it never ran for the
	// stability time, so it never counted as ready and the old tasks were
	// never replaced. The stability time is 10 s, not the default 5 s: on
	// two cores busy with this suite the engine reported the exit 3 to 5 s
	// after it happened, and berth can only judge what the engine tells.
	out, code = b.cli("deploy", "-f", writeCompose(t, rolloutStack(`["-exit", "1", "-after", "2s", "-serve"]`, "60s")), "--stack", "rb", "--timeout", "90s")
	if code == 0 || !strings.Contains(out, "rolled back") || !strings.Contains(out, "exited with code 1") {
		t.Fatalf("deploy of a revision that dies after 2 s: exit %d\n%s", code, out)
	}
	check("unstable")
	b.waitRunning("rb", "web", 2)

	// A revision that runs but never gets healthy: its failing health
	// check or the deadline, whichever comes first, rolls it back.
	out, code = b.cli("deploy", "-f", writeCompose(t, rolloutStack(`["-exit", "0", "-after", "10m"]`, "4s")), "--stack", "rb", "--timeout", "90s")
	if code == 0 || !strings.Contains(out, "rolled back") || !(strings.Contains(out, "deadline") || strings.Contains(out, "unhealthy")) {
		t.Fatalf("deploy of a never-healthy revision: exit %d\n%s", code, out)
	}
	check("never healthy")
	b.waitRunning("rb", "web", 2)

	me, _ := user.Current()
	if out := b.mustCLI("history", "rb"); !strings.Contains(out, "rolled_back") || me == nil || !strings.Contains(out, " "+me.Username+" ") {
		t.Errorf("history does not show the rollback and who deployed:\n%s", out)
	}
	if out := b.mustCLI("events", "rb"); !strings.Contains(out, "rollout.rolled_back") {
		t.Errorf("no rollback event:\n%s", out)
	}
}

// TestManualRollback: berth rollback returns to the previous revision.
func TestManualRollback(t *testing.T) {
	t.Parallel()
	b := startBerth(t)
	doc := func(v string) string {
		return fmt.Sprintf("services:\n  web:\n    image: %s\n    environment:\n      VERSION: %s\n", probeImage, v)
	}
	b.deploy("mr", doc("v1"))
	b.deploy("mr", doc("v2"))
	b.waitRunning("mr", "web", 1)
	b.mustCLI("rollback", "mr", "--timeout", "60s")
	svc := b.waitRunning("mr", "web", 1)
	if svc.Revision != 1 {
		t.Fatalf("revision after rollback = %d, want 1", svc.Revision)
	}
	if out, code := b.cli("rollback", "mr", "--to", "9"); code == 0 || !strings.Contains(out, "no revision 9") {
		t.Fatalf("rollback to a missing revision: exit %d\n%s", code, out)
	}
}

// TestRolloutControlAndConcurrentDeploy: while a rollout is in progress a
// second deploy of the stack is refused with a clear error; the rollout
// can be paused and aborted.
func TestRolloutControlAndConcurrentDeploy(t *testing.T) {
	t.Parallel()
	b := startBerth(t)
	doc := func(version, command string) string {
		return fmt.Sprintf(`
services:
  web:
    image: %s
    command: %s
    environment:
      VERSION: %s
    deploy:
      replicas: 2
    healthcheck:
      test: ["CMD", "/probe", "-healthcheck"]
      interval: 1s
      timeout: 1s
      retries: 120
`, probeImage, command, version)
	}
	serve := `["-exit", "-1"]`
	b.deploy("ctl", doc("v1", serve))
	b.waitRunning("ctl", "web", 2)

	// v2 does not serve: its health stays "starting" for a long time.
	b.mustCLI("deploy", "-f", writeCompose(t, doc("v2", `["-exit", "0", "-after", "10m"]`)), "--stack", "ctl", "--detach")
	if out := b.mustCLI("rollout", "status", "ctl"); !strings.Contains(out, "in_progress") {
		t.Fatalf("rollout status:\n%s", out)
	}
	out, code := b.cli("deploy", "-f", writeCompose(t, doc("v3", serve)), "--stack", "ctl", "--detach")
	if code != 4 || !strings.Contains(out, "still rolling out revision 2") {
		t.Fatalf("concurrent deploy: exit %d, want 4 (conflict)\n%s", code, out)
	}
	b.mustCLI("rollout", "pause", "ctl")
	if out := b.mustCLI("rollout", "status", "ctl"); !strings.Contains(out, "paused") {
		t.Fatalf("rollout status after pause:\n%s", out)
	}
	b.mustCLI("rollout", "abort", "ctl")
	svc := b.waitRunning("ctl", "web", 2)
	if svc.Revision != 1 || svc.Rollout.State != api.RolloutRolledBack || !strings.Contains(svc.Rollout.Reason, "aborted") {
		t.Fatalf("after abort: revision %d rollout %+v", svc.Revision, svc.Rollout)
	}
	if _, code := b.cli("rollout", "abort", "ctl"); code != 4 {
		t.Errorf("abort without a rollout: exit %d, want 4", code)
	}
	b.deploy("ctl", doc("v3", serve))
	if svc := b.waitRunning("ctl", "web", 2); svc.Revision != 3 {
		t.Fatalf("revision after the next deploy = %d, want 3", svc.Revision)
	}
}

// TestKillBerthMidRollout: kill -9 berth while a rollout replaces tasks,
// start it again: the rollout finishes on one revision, with exactly one
// container per slot and none left of the old revision.
func TestKillBerthMidRollout(t *testing.T) {
	t.Parallel()
	b := startBerth(t)
	strategies := []string{"rolling", "canary", "blue-green", "rolling", "canary"}
	doc := func(v, strategy string) string {
		return fmt.Sprintf(`
services:
  web:
    image: %s
    environment:
      VERSION: %s
    deploy:
      replicas: 3
    healthcheck:
      test: ["CMD", "/probe", "-healthcheck"]
      interval: 500ms
      timeout: 2s
      retries: 3
    x-berth:
      routes:
        - host: mid.test
          port: 8080
      deploy:
        strategy: %s
        interval: 2s
`, probeImage, v, strategy)
	}
	b.deploy("mid", doc("v1", "rolling"))
	b.waitRunning("mid", "web", 3)
	waitServing(t, b, "mid.test", "v1")
	l := routeLoad(b, "mid.test")
	for i, strategy := range strategies {
		rev := i + 2
		b.mustCLI("deploy", "-f", writeCompose(t, doc(fmt.Sprintf("v%d", rev), strategy)), "--stack", "mid", "--detach")
		time.Sleep(time.Duration(500+400*i) * time.Millisecond)
		b.kill9()
		b.start()
		svc := b.waitRunning("mid", "web", 3)
		if svc.Revision != rev {
			t.Fatalf("cycle %d (%s): revision %d, want %d", i+1, strategy, svc.Revision, rev)
		}
		if svc.Rollout == nil || svc.Rollout.State != api.RolloutDone {
			t.Fatalf("cycle %d (%s): rollout %+v, want done", i+1, strategy, svc.Rollout)
		}
		waitFor(t, 30*time.Second, "only the new revision to run", func() (bool, string) {
			for _, c := range running(b.containers("mid")) {
				if c.Labels[api.LabelRevision] != fmt.Sprint(rev) {
					return false, fmt.Sprintf("cycle %d (%s): container %s of revision %s still runs", i+1, strategy, c.Name, c.Labels[api.LabelRevision])
				}
			}
			return true, ""
		})
	}
	counts, failures := l.Stop()
	if failures != nil {
		t.Fatalf("%d requests failed across 5 kill -9 mid-rollout; first: %s (answered: %v)", len(failures), failures[0], counts)
	}
	for label, n := range counts {
		if !strings.HasPrefix(label, "200 ") {
			t.Fatalf("%d answers %q across the kills", n, label)
		}
	}
	t.Logf("5 kill -9 of berth mid-rollout: %d requests, 0 failed", total(counts))
}
