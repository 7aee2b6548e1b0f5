package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
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
)

// needTool finds a program the test runs beside berth; outside CI a
// missing one skips the test, in CI it fails it (.ci/run installs it).
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found: .ci/run installs Debian's %s", name, pkg)
	}
	t.Skipf("%s not found; install Debian's %s to run this test", name, pkg)
	return ""
}

// startDaemon runs a helper program for the length of the test.
func startDaemon(t *testing.T, env []string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	logf, err := os.Create(filepath.Join(t.TempDir(), filepath.Base(name)+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("%s log:\n%s", filepath.Base(name), b)
		}
	})
}

// TestACMEWithPebble: with --acme, the ingress obtains a certificate for
// a route's host from an ACME CA (Debian's pebble, validating HTTP-01
// through the ingress's HTTP listener, with pebble-challtestsrv resolving
// every name to 127.0.0.1), serves it over HTTPS, and redirects plain HTTP
// while still answering the CA's challenges.
func TestACMEWithPebble(t *testing.T) {
	t.Parallel()
	pebble := needTool(t, "pebble", "pebble")
	challsrv := needTool(t, "pebble-challtestsrv", "pebble")

	dir := t.TempDir()
	cert, key, trust := selfSigned(t, dir, "localhost")
	dnsPort, acmePort, mgmtPort, chalMgmt := freePort(t), freePort(t), freePort(t), freePort(t)
	httpPort, httpsPort := freePort(t), freePort(t)
	startDaemon(t, nil, challsrv, "-dns01", fmt.Sprintf("127.0.0.1:%d", dnsPort), "-http01", "", "-https01", "",
		"-tlsalpn01", "", "-management", fmt.Sprintf("127.0.0.1:%d", chalMgmt), "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "")
	conf, _ := json.Marshal(map[string]any{"pebble": map[string]any{
		"listenAddress": fmt.Sprintf("127.0.0.1:%d", acmePort), "managementListenAddress": fmt.Sprintf("127.0.0.1:%d", mgmtPort),
		"certificate": cert, "privateKey": key, "httpPort": httpPort, "tlsPort": freePort(t),
		"ocspResponderURL": "", "externalAccountBindingRequired": false,
	}})
	confFile := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(confFile, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	startDaemon(t, []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0"}, pebble,
		"-config", confFile, "-dnsserver", fmt.Sprintf("127.0.0.1:%d", dnsPort))
	mgmt := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: trust}}}
	var root []byte
	waitFor(t, 20*time.Second, "pebble to answer", func() (bool, string) {
		resp, err := mgmt.Get(fmt.Sprintf("https://localhost:%d/roots/0", mgmtPort))
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		root, _ = io.ReadAll(resp.Body)
		return resp.StatusCode == 200, resp.Status
	})

	b := startBerth(t, "--http-addr", fmt.Sprintf("127.0.0.1:%d", httpPort), "--https-addr", fmt.Sprintf("127.0.0.1:%d", httpsPort),
		"--acme", "--acme-ca", fmt.Sprintf("https://localhost:%d/dir", acmePort), "--acme-ca-root", cert,
		"--acme-email", "ops@acme.test", "--redirect-http")
	b.deploy("acme", fmt.Sprintf(`
services:
  web:
    image: %s
    x-berth:
      routes:
        - host: acme.test
          port: 8080
`, helloImage))
	b.waitRunning("acme", "web", 1)

	pebbleRoots := x509.NewCertPool()
	if !pebbleRoots.AppendCertsFromPEM(root) {
		t.Fatalf("pebble's root is not PEM: %q", root)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pebbleRoots, ServerName: "acme.test"},
		ForceAttemptHTTP2: true,
	}}
	url := fmt.Sprintf("https://127.0.0.1:%d/", httpsPort)
	waitFor(t, 60*time.Second, "an ACME certificate for acme.test", func() (bool, string) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Host = "acme.test"
		resp, err := client.Do(req)
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200 && strings.Contains(string(body), "hello from") && resp.ProtoMajor == 2,
			fmt.Sprint(resp.Status, " ", resp.Proto, " ", string(body))
	})
	if _, err := os.Stat(filepath.Join(b.dir, "certificates")); err != nil {
		t.Errorf("certificates are not kept in the data directory: %v", err)
	}

	// Plain HTTP redirects to HTTPS (the challenges were answered first).
	noFollow := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/x", httpPort), nil)
	req.Host = "acme.test"
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPermanentRedirect || !strings.HasPrefix(resp.Header.Get("Location"), "https://acme.test") {
		t.Errorf("plain HTTP: %s → %q, want a redirect to https://acme.test", resp.Status, resp.Header.Get("Location"))
	}
}
