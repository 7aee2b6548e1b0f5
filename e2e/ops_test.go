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
