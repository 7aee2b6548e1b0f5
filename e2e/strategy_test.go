package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
)

// strategyStack is the probe behind a route with a rollout strategy; env
// is extra environment (PROBE_STATUS, PROBE_DELAY).
func strategyStack(host, deploy, version string, env ...string) string {
	envs := ""
	for _, e := range env {
		envs += "      " + e + "\n"
	}
	return fmt.Sprintf(`
services:
  web:
    image: %s
    environment:
      VERSION: %s
%s    deploy:
      replicas: 2
    healthcheck:
      test: ["CMD", "/probe", "-healthcheck"]
      interval: 500ms
      timeout: 2s
      retries: 3
    x-berth:
      routes:
        - host: %s
          port: 8080
      deploy:
%s`, probeImage, version, envs, host, deploy)
}

// routeLoad sends GETs through the ingress to host on 6 workers and counts
// answers by "STATUS VERSION".
func routeLoad(b *berth, host string) *load {
	v, err := b.cl.Version(context.Background())
	if err != nil || v.Ingress == "" {
		b.t.Fatalf("no ingress address: %v %+v", err, v)
	}
	url := "http://" + v.Ingress + "/page"
	return startLoad(6, func() (string, error) {
		code, body, err := httpGet(url, host)
		if err != nil {
			return "", err
		}
		f := strings.Fields(body)
		return fmt.Sprintf("%d %s", code, f[len(f)-1]), nil
	})
}

func waitServing(t *testing.T, b *berth, host, version string) {
	t.Helper()
	v, _ := b.cl.Version(context.Background())
	waitFor(t, 30*time.Second, host+" to serve "+version, func() (bool, string) {
		code, body, err := httpGet("http://"+v.Ingress+"/", host)
		return err == nil && code == 200 && strings.Contains(body, version), fmt.Sprint(code, body, err)
	})
}

// TestCanaryGates: a canary that answers 500s is rolled back at its first
// step, one that is slow fails the latency gate, and a good one is
// promoted step by step; the old revision serves throughout and no
// request fails to connect.
func TestCanaryGates(t *testing.T) {
	t.Parallel()
	b := startBerth(t)
	const host = "canary.test"
	deploy := "        strategy: canary\n        steps: [25, 100]\n        interval: 5s\n"
	b.deploy("can", strategyStack(host, deploy, "v1"))
	b.waitRunning("can", "web", 2)
	waitServing(t, b, host, "v1")

	l := routeLoad(b, host)
	// A version whose pages answer 500 (its health check passes).
	out, code := b.cli("deploy", "-f", writeCompose(t, strategyStack(host, deploy, "v2", "PROBE_STATUS: 500")), "--stack", "can", "--timeout", "90s")
	if code == 0 || !strings.Contains(out, "rolled back") || !strings.Contains(out, "errors gate failed") {
		t.Fatalf("deploy of a failing canary: exit %d\n%s", code, out)
	}
	svc := b.status("can").Services[0]
	if svc.Revision != 1 || svc.Rollout.Step != 0 {
		t.Fatalf("after the failing canary: revision %d, step %d; want revision 1, rolled back at step 1", svc.Revision, svc.Rollout.Step)
	}
	// Once rolled back, nothing answers 500 any more.
	time.Sleep(time.Second)
	counts, failures := l.Stop()
	bad := counts["500 v2"]
	if bad == 0 || failures != nil {
		t.Fatalf("canary traffic: %v, failures %v; want some 500s from v2 and no connection error", counts, failures)
	}
	if share := float64(bad) / float64(total(counts)); share > 0.3 {
		t.Errorf("%.0f%% of requests saw the failing canary; its step is 25%%", 100*share)
	}
	l = routeLoad(b, host)
	time.Sleep(2 * time.Second)
	counts, failures = l.Stop()
	if counts["500 v2"] != 0 || counts["200 v1"] == 0 || failures != nil {
		t.Fatalf("after the rollback: %v, failures %v", counts, failures)
	}

	// A slow version: every answer takes 600ms (past twice the
	// old p99 plus the gate's 100 ms slack unless that p99 passes
	// 250ms, and still some 50 requests to judge in the 5s step).
	l = routeLoad(b, host)
	out, code = b.cli("deploy", "-f", writeCompose(t, strategyStack(host, deploy, "v3", "PROBE_DELAY: 600ms")), "--stack", "can", "--timeout", "90s")
	if code == 0 || !strings.Contains(out, "latency gate failed") {
		t.Fatalf("deploy of a slow canary: exit %d\n%s", code, out)
	}
	// A good version goes through both steps.
	out = b.mustCLI("deploy", "-f", writeCompose(t, strategyStack(host, deploy, "v4")), "--stack", "can", "--timeout", "90s")
	counts, failures = l.Stop()
	if failures != nil {
		t.Fatalf("connection errors during the canaries: %v", failures)
	}
	for label, n := range counts {
		if !strings.HasPrefix(label, "200 ") {
			t.Errorf("%d answers %q while the slow and the good canary rolled out", n, label)
		}
	}
	if !strings.Contains(out, "errors gate passed") || !strings.Contains(out, "latency gate passed") {
		t.Errorf("deploy does not show the gates:\n%s", out)
	}
	if svc := b.waitRunning("can", "web", 2); svc.Revision != 4 || svc.Rollout.State != api.RolloutDone {
		t.Fatalf("after the good canary: revision %d, rollout %+v", svc.Revision, svc.Rollout)
	}
	waitServing(t, b, host, "v4")
	if out := b.mustCLI("history", "can"); strings.Count(out, "rolled_back") != 2 {
		t.Errorf("history:\n%s", out)
	}
}

// TestBlueGreenSwitchAndFastRollback: the new set starts beside the old
// one without traffic, traffic switches at once, the old set is kept
// stopped, and a rollback starts those same containers again; no request
// fails throughout.
func TestBlueGreenSwitchAndFastRollback(t *testing.T) {
	t.Parallel()
	b := startBerth(t)
	const host = "bg.test"
	deploy := "        strategy: blue-green\n        interval: 3s\n        rollback_window: 5m\n"
	b.deploy("bg", strategyStack(host, deploy, "v1"))
	b.waitRunning("bg", "web", 2)
	waitServing(t, b, host, "v1")
	blue := map[string]bool{}
	for _, c := range running(b.containers("bg")) {
		blue[c.ID] = true
	}

	l := routeLoad(b, host)
	b.mustCLI("deploy", "-f", writeCompose(t, strategyStack(host, deploy, "v2")), "--stack", "bg", "--timeout", "90s")
	counts, failures := l.Stop()
	if failures != nil || counts["200 v2"] == 0 || counts["200 v1"] == 0 || len(counts) != 2 {
		t.Fatalf("during the blue-green rollout: %v, failures %v", counts, failures)
	}
	waitServing(t, b, host, "v2")
	waitFor(t, 30*time.Second, "the old set kept, stopped", func() (bool, string) {
		var kept int
		for _, c := range b.containers("bg") {
			if blue[c.ID] && !c.Running() {
				kept++
			}
		}
		return kept == 2, fmt.Sprintf("%d of 2 kept stopped", kept)
	})

	// Rollback: the kept containers start again.
	l = routeLoad(b, host)
	start := time.Now()
	b.mustCLI("rollback", "bg", "--timeout", "60s")
	took := time.Since(start)
	waitServing(t, b, host, "v1")
	counts, failures = l.Stop()
	if failures != nil {
		t.Fatalf("during the rollback: %v, failures %v", counts, failures)
	}
	for label, n := range counts {
		if !strings.HasPrefix(label, "200 ") {
			t.Errorf("%d answers %q during the rollback", n, label)
		}
	}
	for _, c := range running(b.containers("bg")) {
		if c.Labels[api.LabelRevision] == "1" && !blue[c.ID] {
			t.Errorf("rollback created container %s instead of starting a kept one", c.ID[:12])
		}
	}
	t.Logf("blue-green rollback to the kept set took %s", took.Round(time.Millisecond))
}
