package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/berth-dev/berth/cis"
)

// TestTaskContainersPassCIS: berth's own task containers pass the
// automatable CIS Docker Benchmark section 5 checks that apply to them:
// read-only root where the service asks, a health check where one is
// defined, and every other runtime check on every container.
func TestTaskContainersPassCIS(t *testing.T) {
	t.Parallel()
	b := startBerth(t)
	b.deploy("cis", fmt.Sprintf(`
services:
  web:
    image: %[1]s
    read_only: true
    healthcheck:
      test: ["CMD", "/probe", "-healthcheck"]
      interval: 1s
  worker:
    image: %[1]s
    deploy:
      replicas: 2
`, probeImage))
	b.waitRunning("cis", "web", 1)
	b.waitRunning("cis", "worker", 2)

	var rep cis.Report
	if err := json.Unmarshal([]byte(b.mustCLI("audit", "host", "--own", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	byTarget := map[string]map[string]cis.Result{}
	for _, r := range rep.Results {
		if byTarget[r.Target] == nil {
			byTarget[r.Target] = map[string]cis.Result{}
		}
		byTarget[r.Target][r.ID] = r
	}
	always := []string{"5.3", "5.4", "5.5", "5.7", "5.9", "5.10", "5.11", "5.14", "5.15", "5.16", "5.17", "5.19", "5.20", "5.21", "5.24", "5.25", "5.28", "5.29", "5.30", "5.31"}
	checked := 0
	for _, c := range b.containers("cis") {
		res, ok := byTarget[c.Name]
		if !ok {
			t.Errorf("no results for %s", c.Name)
			continue
		}
		checked++
		want := append([]string(nil), always...)
		if strings.HasPrefix(c.Name, "cis-web-") {
			want = append(want, "5.12", "5.26") // asked for: read_only and a healthcheck
		}
		for _, id := range want {
			r, ok := res[id]
			if !ok || r.Level != cis.Pass {
				t.Errorf("%s: %s %q is %q (%s)", c.Name, id, r.Title, r.Level, r.Detail)
			}
		}
	}
	if checked != 3 {
		t.Fatalf("checked %d containers, want 3", checked)
	}
	// Daemon checks are reported too, each with a remediation when it warns.
	daemon := 0
	for _, r := range rep.Results {
		if r.Target == "daemon" {
			daemon++
		}
		if r.Level == cis.Warn && r.Remediation == "" {
			t.Errorf("%s on %s warns without a remediation", r.ID, r.Target)
		}
	}
	if daemon < 10 {
		t.Errorf("%d daemon checks reported", daemon)
	}
	if out := b.mustCLI("audit", "host", "--own"); !strings.Contains(out, "PASS") || !strings.Contains(out, "passed") {
		t.Errorf("table output:\n%s", out)
	}
}
