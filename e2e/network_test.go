package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
)

// TestStackIsolationAndDiscovery: services in a stack resolve each other by
// name; a container of one stack cannot reach another stack's containers.
func TestStackIsolationAndDiscovery(t *testing.T) {
	t.Parallel()
	b := startBerth(t)
	doc := fmt.Sprintf(`
services:
  web:
    image: %[1]s
  client:
    image: %[1]s
`, probeImage)
	b.deploy("alpha", doc)
	b.deploy("beta", doc)
	b.waitRunning("alpha", "web", 1)
	b.waitRunning("beta", "web", 1)

	// Discovery inside the stack, through a one-off job on its network.
	out, code := b.cli("run", "alpha", "client", "--", "-get", "http://web:8080/")
	if code != 0 {
		t.Fatalf("alpha/client cannot reach web by name (exit %d):\n%s", code, out)
	}

	var betaAddr string
	for _, tv := range b.status("beta").Services {
		if tv.Name == "web" && tv.Tasks[0].Status != nil {
			betaAddr = tv.Tasks[0].Status.Address
		}
	}
	if betaAddr == "" {
		t.Fatal("beta/web has no address")
	}
	out, code = b.cli("run", "alpha", "client", "--", "-dial", betaAddr+":8080")
	if code == 0 {
		t.Fatalf("alpha reached beta's container at %s:\n%s", betaAddr, out)
	}
	// And the other way round, by name: beta's "web" is its own.
	for _, c := range b.containers("alpha") {
		if c.Labels[api.LabelService] == "web" && !strings.HasPrefix(c.Name, "alpha-web-") {
			t.Errorf("unexpected container name %s", c.Name)
		}
	}
}

// TestRunJobAndSchedule: berth run streams output and passes the exit code
// through; a scheduled job runs on its schedule and keeps its history.
func TestRunJobAndSchedule(t *testing.T) {
	t.Parallel()
	b := startBerth(t)
	doc := fmt.Sprintf(`
services:
  web:
    image: %[1]s
  tick:
    image: %[1]s
    command: ["-echo", "tick"]
    x-berth:
      schedule: "@every 2s"
`, probeImage)
	b.deploy("jobs", doc)

	out, code := b.cli("run", "jobs", "web", "--", "-echo", "hello-from-job")
	if code != 0 || !strings.Contains(out, "hello-from-job") || !strings.Contains(out, "stderr:hello-from-job") {
		t.Fatalf("run: exit %d, output:\n%s", code, out)
	}
	out, code = b.cli("run", "jobs", "web", "--", "-exit", "7")
	if code != 7 {
		t.Fatalf("run exit code = %d, want 7:\n%s", code, out)
	}
	waitFor(t, 30*time.Second, "two scheduled runs", func() (bool, string) {
		out := b.mustCLI("jobs", "jobs")
		n := strings.Count(out, "scheduled")
		ok := strings.Count(out, "succeeded") >= 2 && n >= 2
		return ok, out
	})
	// Job containers are removed once they finish (a run may be finishing
	// at any moment, so look for a moment with none left behind).
	waitFor(t, 10*time.Second, "no finished job container left behind", func() (bool, string) {
		for _, c := range b.containers("jobs") {
			if c.Labels[api.LabelJob] != "" && !c.Running() {
				return false, c.Name + " " + c.State
			}
		}
		return true, ""
	})
}

// TestStopStartRemoveKeepsVolumes: stop and start a stack; rm keeps named
// volumes unless --volumes.
func TestStopStartRemoveKeepsVolumes(t *testing.T) {
	t.Parallel()
	b := startBerth(t)
	doc := fmt.Sprintf(`
services:
  db:
    image: %s
    volumes:
      - data:/data
volumes:
  data: {}
`, probeImage)
	b.deploy("vol", doc)
	b.waitRunning("vol", "db", 1)
	b.mustCLI("stop", "vol")
	waitFor(t, 30*time.Second, "containers stopped", func() (bool, string) {
		n := len(running(b.containers("vol")))
		return n == 0, fmt.Sprintf("%d running", n)
	})
	b.mustCLI("start", "vol")
	b.waitRunning("vol", "db", 1)

	b.mustCLI("rm", "vol")
	waitFor(t, 30*time.Second, "containers removed", func() (bool, string) {
		n := len(b.containers("vol"))
		return n == 0, fmt.Sprintf("%d left", n)
	})
	vols := func() int {
		vs, err := drv.ListVolumes(t.Context(), map[string]string{api.LabelCluster: b.cluster, api.LabelStack: "vol"})
		if err != nil {
			t.Fatal(err)
		}
		return len(vs)
	}
	if vols() != 1 {
		t.Fatalf("rm without --volumes removed the named volume")
	}
	b.deploy("vol", doc)
	b.waitRunning("vol", "db", 1)
	b.mustCLI("rm", "--volumes", "vol")
	if n := vols(); n != 0 {
		t.Fatalf("rm --volumes left %d volumes", n)
	}
}
