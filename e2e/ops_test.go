package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/alerts"
	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/runtime/faultproxy"
)

// hookReceiver is a local webhook endpoint that records the alerts it is
// sent.
type hookReceiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []alerts.Payload
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var p alerts.Payload
		if err := json.Unmarshal(b, &p); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.got = append(h.got, p)
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// wait returns the first payload of rule with status.
func (h *hookReceiver) wait(t *testing.T, rule, status string, timeout time.Duration) alerts.Payload {
	t.Helper()
	var found alerts.Payload
	waitFor(t, timeout, rule+" "+status+" webhook", func() (bool, string) {
		h.mu.Lock()
		defer h.mu.Unlock()
		var seen []string
		for _, p := range h.got {
			if p.Alert.Rule == rule && p.Status == status {
				found = p
				return true, ""
			}
			seen = append(seen, p.Alert.Rule+" "+p.Status)
		}
		return false, fmt.Sprintf("received %v", seen)
	})
	return found
}

func (h *hookReceiver) count(rule string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, p := range h.got {
		if p.Alert.Rule == rule {
			n++
		}
	}
	return n
}

// writeConfig writes a berth configuration file for a test.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "berth.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCrashLoopAlertWebhook: a service that crash-loops fires one
// crash_loop alert to the webhook; once it runs steadily again the
// resolved message follows.
func TestCrashLoopAlertWebhook(t *testing.T) {
	t.Parallel()
	hook := newHookReceiver(t)
	cfg := writeConfig(t, fmt.Sprintf(`
alerts:
  notifiers:
    - {name: test, type: webhook, url: %q}
`, hook.srv.URL))
	b := startBerth(t, "--config", cfg)
	b.mustCLI("deploy", "--detach", "--stack", "loop", "-f", writeCompose(t, fmt.Sprintf(`
services:
  web:
    image: %s
    environment:
      PROBE_CRASHES: "4"
      PROBE_AFTER: 100ms
    deploy:
      restart_policy:
        condition: any
        window: 3s
`, probeImage)))
	fired := hook.wait(t, "crash_loop", api.AlertFiring, 90*time.Second)
	if fired.Alert.Stack != "loop" || fired.Alert.Service != "web" || fired.Alert.Severity != "critical" ||
		!strings.Contains(fired.Alert.LastEvent.Message, "exited with code 3") {
		t.Errorf("firing alert %+v", fired.Alert)
	}
	resolved := hook.wait(t, "crash_loop", api.AlertResolved, 90*time.Second)
	if resolved.Alert.ID != fired.Alert.ID || resolved.Alert.LastEvent.Type != "task.recovered" {
		t.Errorf("resolved alert %+v", resolved.Alert)
	}
	if n := hook.count("crash_loop"); n != 2 {
		t.Errorf("%d crash_loop messages, want firing and resolved only", n)
	}
	out := b.mustCLI("alerts", "--all")
	if !strings.Contains(out, "resolved") || !strings.Contains(out, "crash loop: loop/web") {
		t.Errorf("berth alerts --all:\n%s", out)
	}
}

// TestWatchdogWedgedEngine puts the fault proxy between berth and the
// engine and hangs it: the node is marked degraded in the API and
// `berth nodes`, engine.wedged is recorded and alerted, calls do not pile
// up at the engine, and when the engine answers again everything clears
// with the containers untouched.
func TestWatchdogWedgedEngine(t *testing.T) {
	t.Parallel()
	proxy := startFaultProxy(t)
	hook := newHookReceiver(t)
	cfg := writeConfig(t, fmt.Sprintf(`
watchdog: {interval: 500ms, slow: 2s, hang: 4s}
alerts:
  notifiers:
    - {name: test, type: webhook, url: %q}
`, hook.srv.URL))
	b := startBerth(t, "--docker-host", proxy.Host(), "--config", cfg)
	b.deploy("wd", fmt.Sprintf("services:\n  web:\n    image: %s\n", probeImage))
	b.waitRunning("wd", "web", 1)
	before := containerIDs(b, "wd")

	proxy.Set(faultproxy.Hang, 0, "")
	var node api.Node
	waitFor(t, 30*time.Second, "node degraded", func() (bool, string) {
		var ns []api.Node
		if err := json.Unmarshal([]byte(b.mustCLI("nodes", "--json")), &ns); err != nil || len(ns) != 1 {
			return false, fmt.Sprintf("%v %v", ns, err)
		}
		node = ns[0]
		return strings.HasPrefix(node.Degraded, "engine wedged: hung") && node.EngineHealth.State == api.EngineWedged, node.Degraded
	})
	if out := b.mustCLI("nodes"); !strings.Contains(out, "ready (degraded)") || !strings.Contains(out, "wedged") {
		t.Errorf("berth nodes:\n%s", out)
	}
	hook.wait(t, "engine_wedged", api.AlertFiring, 30*time.Second)
	if out := b.mustCLI("events"); !strings.Contains(out, "engine.wedged") {
		t.Errorf("no engine.wedged event:\n%s", out)
	}
	time.Sleep(10 * time.Second) // 20 probes and a few agent passes
	if _, most := proxy.Held(); most > 4 {
		t.Errorf("%d calls held at the wedged engine at once: they pile up", most)
	}
	if out := b.mustCLI("status", "wd"); !strings.Contains(out, "is degraded: engine wedged") { // the API does not depend on the engine
		t.Errorf("berth status does not show the degraded node:\n%s", out)
	}

	proxy.Set(faultproxy.Pass, 0, "")
	hook.wait(t, "engine_wedged", api.AlertResolved, 30*time.Second)
	waitFor(t, 30*time.Second, "node healthy", func() (bool, string) {
		var ns []api.Node
		_ = json.Unmarshal([]byte(b.mustCLI("nodes", "--json")), &ns)
		return len(ns) == 1 && ns[0].Degraded == "" && ns[0].EngineHealth.State == api.EngineHealthy, fmt.Sprint(ns)
	})
	b.waitRunning("wd", "web", 1)
	if after := containerIDs(b, "wd"); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("containers changed across the wedge: %v → %v", before, after)
	}
}

// startFaultProxy starts a fault proxy in front of the engine's socket.
func startFaultProxy(t *testing.T) *faultproxy.Proxy {
	t.Helper()
	host := drv.Host()
	if !strings.HasPrefix(host, "unix://") {
		t.Fatalf("the fault proxy needs the engine on a unix socket, not %s", host)
	}
	dir, err := os.MkdirTemp("", "bfp")
	if err != nil {
		t.Fatal(err)
	}
	p, err := faultproxy.Start(filepath.Join(dir, "engine.sock"), strings.TrimPrefix(host, "unix://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(); os.RemoveAll(dir) })
	return p
}
