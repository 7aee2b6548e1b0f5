package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
)

func monitoredStack(status string) string {
	return fmt.Sprintf(`
services:
  web:
    image: %s
    environment: {PROBE_STATUS: %q, PROBE_LINES: "5"}
    x-berth:
      routes:
        - {host: mon.test, path: /, port: 8080}
        - {host: mon.test, path: /api, port: 8080}
`, probeImage, status)
}

// scrapeMetrics reads /metrics from the TCP listener berth reports.
func (b *berth) scrapeMetrics() string {
	b.t.Helper()
	addr, err := os.ReadFile(filepath.Join(b.dir, "metrics-addr"))
	if err != nil {
		b.t.Fatalf("metrics address: %v", err)
	}
	resp, err := http.Get("http://" + strings.TrimSpace(string(addr)) + "/metrics")
	if err != nil {
		b.t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		b.t.Fatalf("scrape: %s: %s", resp.Status, body)
	}
	return string(body)
}

// TestMetricsTopAndMonitors: /metrics (on --metrics-addr) has the
// workload's container, traffic and log metrics and passes promtool;
// berth top shows the service; a route that starts failing through the
// ingress gives a monitor.down event and monitor_up 0, and monitor.up
// once it answers again.
func TestMetricsTopAndMonitors(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not found: .ci/run must install Debian's prometheus")
		}
		t.Skip("promtool not found; install Debian's prometheus to run this test")
	}
	b := startBerth(t, "--metrics-addr", "127.0.0.1:0", "--metrics-interval", "1s", "--monitor-interval", "500ms")
	b.deploy("mon", monitoredStack("200"))
	b.waitRunning("mon", "web", 1)
	v, err := b.cl.Version(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if code, _, err := httpGet("http://"+v.Ingress+"/", "mon.test"); err != nil || code != 200 {
			t.Fatalf("GET through the ingress: %d %v", code, err)
		}
	}
	var out string
	waitFor(t, 30*time.Second, "workload metrics", func() (bool, string) {
		out = b.scrapeMetrics()
		for _, want := range []string{
			`berth_http_requests_total{node=`,
			`berth_container_cpu_seconds_total{node=`,
			`berth_container_memory_bytes{node=`,
			`berth_monitor_up{node=`,
			`berth_monitor_probe_duration_seconds_bucket{node=`,
			`berth_log_store_bytes{node=`,
			`berth_log_lines_collected_total{node=`,
			`berth_engine_state{node=`,
			`berth_engine_probe_seconds{call="ping",node=`,
		} {
			if !strings.Contains(out, want) {
				return false, "missing " + want
			}
		}
		return true, ""
	})
	if !strings.Contains(out, `service="web",stack="mon"} 1`) {
		t.Errorf("monitor_up of mon/web is not 1:\n%s", grepLines(out, "monitor_up"))
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, msg)
	}
	// The API socket serves the same exposition.
	if resp, err := httpUnix(b, "/metrics"); err != nil || !strings.Contains(resp, "berth_http_requests_total") {
		t.Fatalf("/metrics on the API: %v", err)
	}

	var top api.TopReport
	waitFor(t, 30*time.Second, "berth top to show mon/web", func() (bool, string) {
		raw := b.mustCLI("top", "mon", "--json", "--history")
		if err := json.Unmarshal([]byte(raw), &top); err != nil {
			return false, raw
		}
		return len(top.Services) == 1 && top.Services[0].Latest.MemoryBytes > 0 && len(top.Services[0].History) >= 2, raw
	})
	if table := b.mustCLI("top"); !strings.Contains(table, "mon") || !strings.Contains(table, "web") {
		t.Fatalf("berth top:\n%s", table)
	}

	// A new revision answers /api with 500 but passes its readiness
	// check (on /): only the outside-in monitor sees the fault.
	b.deploy("mon", monitoredStack("500"))
	waitEvent := func(typ string) api.Event {
		var found api.Event
		waitFor(t, 60*time.Second, typ+" event", func() (bool, string) {
			evs, err := b.cl.Events(context.Background(), "mon", 200)
			if err != nil {
				return false, err.Error()
			}
			for _, e := range evs {
				if e.Type == typ {
					found = e
					return true, ""
				}
			}
			return false, fmt.Sprintf("%d events", len(evs))
		})
		return found
	}
	down := waitEvent("monitor.down")
	if down.Service != "web" || !strings.Contains(down.Message, "mon.test/api") || !strings.Contains(down.Message, "500") {
		t.Fatalf("down event %+v", down)
	}
	if m := b.scrapeMetrics(); !strings.Contains(m, `berth_monitor_up{node=`) || !strings.Contains(grepLines(m, "berth_monitor_up{"), `stack="mon"} 0`) {
		t.Fatalf("monitor_up after the fault:\n%s", grepLines(m, "berth_monitor_up{"))
	}
	b.deploy("mon", monitoredStack("200"))
	waitEvent("monitor.up")
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// httpUnix GETs a path from the API socket.
func httpUnix(b *berth, path string) (string, error) {
	cmd := exec.Command("curl", "-sf", "--unix-socket", filepath.Join(b.dir, "berth.sock"), "http://berth"+path)
	out, err := cmd.Output()
	return string(out), err
}
