package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// remoteCLI runs the CLI against the remote API with a token.
func (b *berth) remoteCLI(addr, caFile, token string, args ...string) (string, int) {
	b.t.Helper()
	cmd := exec.Command(berthBin, args...)
	cmd.Env = append(os.Environ(), "BERTH_HOST=https://"+addr, "BERTH_TOKEN="+token, "BERTH_CA="+caFile)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		b.t.Fatal(err)
	}
	return string(out), 0
}

// TestRemoteAPIWithTokensAndTenants: the TCP listener speaks only TLS
// (berth's own CA) and only to valid tokens; roles and tenants hold from
// the CLI; and a container of tenant A cannot open a connection to a
// container of tenant B.
func TestRemoteAPIWithTokensAndTenants(t *testing.T) {
	t.Parallel()
	b := startBerth(t, "--api-addr", "127.0.0.1:0")
	raw, err := os.ReadFile(filepath.Join(b.dir, "api-remote.addr"))
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimSpace(string(raw))
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, []byte(b.mustCLI("ca", "cert", "--data-dir", b.dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	token := func(args ...string) string {
		// The token is the last line; the line before it, on stderr, describes it.
		lines := strings.Split(strings.TrimSpace(b.mustCLI(append([]string{"token", "create"}, args...)...)), "\n")
		return lines[len(lines)-1]
	}
	viewer := token("--role", "viewer")
	depA := token("--role", "deployer", "--tenant", "ta", "--name", "ci-a")
	depB := token("--role", "deployer", "--tenant", "tb")

	if out, code := b.remoteCLI(addr, caFile, viewer, "whoami"); code != 0 || !strings.Contains(out, "viewer of every tenant") {
		t.Fatalf("whoami over TLS: %d %s", code, out)
	}
	if out, code := b.remoteCLI(addr, caFile, "", "ls"); code == 0 || !strings.Contains(out, "needs a token") {
		t.Errorf("no token: %d %s", code, out)
	}
	if out, code := b.remoteCLI(addr, "", viewer, "ls"); code == 0 || !strings.Contains(out, "certificate") {
		t.Errorf("without trusting the CA: %d %s", code, out)
	}
	// Plain HTTP on the TLS port gets nothing.
	cmd := exec.Command(berthBin, "ls")
	cmd.Env = append(os.Environ(), "BERTH_HOST=http://"+addr, "BERTH_TOKEN="+viewer)
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("plain HTTP answered: %s", out)
	}

	doc := fmt.Sprintf("services:\n  web:\n    image: %[1]s\n  client:\n    image: %[1]s\n", probeImage)
	compose := writeCompose(t, doc)
	if out, code := b.remoteCLI(addr, caFile, viewer, "deploy", "-f", compose, "--stack", "av"); code == 0 || !strings.Contains(out, "needs the deployer role") {
		t.Errorf("viewer deploys: %d %s", code, out)
	}
	for _, d := range []struct{ tok, stack string }{{depA, "tenanta"}, {depB, "tenantb"}} {
		if out, code := b.remoteCLI(addr, caFile, d.tok, "deploy", "-f", compose, "--stack", d.stack, "--timeout", "90s"); code != 0 {
			t.Fatalf("deploy %s: %d %s", d.stack, code, out)
		}
	}
	b.waitRunning("tenanta", "web", 1)
	b.waitRunning("tenantb", "web", 1)
	if out, _ := b.remoteCLI(addr, caFile, depB, "ls"); strings.Contains(out, "tenanta") || !strings.Contains(out, "tenantb") {
		t.Errorf("tenant b's ls: %s", out)
	}
	if out, code := b.remoteCLI(addr, caFile, depB, "status", "tenanta"); code == 0 {
		t.Errorf("tenant b reads tenant a's stack: %s", out)
	}

	// Network isolation between the tenants' stacks.
	var betaAddr string
	for _, s := range b.status("tenantb").Services {
		if s.Name == "web" && len(s.Tasks) > 0 && s.Tasks[0].Status != nil {
			betaAddr = s.Tasks[0].Status.Address
		}
	}
	if betaAddr == "" {
		t.Fatal("tenantb/web has no address")
	}
	if out, code := b.remoteCLI(addr, caFile, depA, "run", "tenanta", "client", "--", "-get", "http://web:8080/"); code != 0 {
		t.Fatalf("tenanta reaches its own web: %d %s", code, out)
	}
	if out, code := b.remoteCLI(addr, caFile, depA, "run", "tenanta", "client", "--", "-dial", betaAddr+":8080"); code == 0 {
		t.Errorf("tenant a's container connected to tenant b's at %s: %s", betaAddr, out)
	}

	// Revoked at once; every call above is in the audit log with its caller.
	id := strings.Split(depB, "_")[1]
	b.mustCLI("token", "revoke", id)
	if out, code := b.remoteCLI(addr, caFile, depB, "ls"); code == 0 || !strings.Contains(out, "revoked") {
		t.Errorf("revoked token: %d %s", code, out)
	}
	audit := b.mustCLI("audit", "--limit", "1000")
	for _, want := range []string{"POST /v1/stacks/tenanta/deploy", "(ci-a)", "127.0.0.1:", "denied (403)"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit log lacks %q:\n%s", want, audit)
		}
	}
}
