package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestBadComposeRejected: each bad file gets a clear error with its
// position and nothing is deployed.
func TestBadComposeRejected(t *testing.T) {
	t.Parallel()
	b := startBerth(t)
	img := probeImage
	cases := []struct {
		desc, doc, want string
		noLine          bool
	}{
		{desc: "unknown key", doc: "services:\n  web:\n    imagee: " + img + "\n", want: "imagee"},
		{desc: "wrong type", doc: "services:\n  web:\n    image: " + img + "\n    deploy:\n      replicas: three\n", want: "replicas"},
		{desc: "build without image", doc: "services:\n  web:\n    build: .\n", want: "image"},
		{desc: "yaml syntax", doc: "services:\n  web:\n    image: " + img + "\n   bad: [\n", want: "yaml"},
		{desc: "undefined volume", doc: "services:\n  web:\n    image: " + img + "\n    volumes:\n      - data:/data\n", want: "data"},
		{desc: "privileged", doc: "services:\n  web:\n    image: " + img + "\n    privileged: true\n", want: "privileged"},
		{desc: "network mode", doc: "services:\n  web:\n    image: " + img + "\n    network_mode: \"container:other\"\n", want: "network_mode"},
		{desc: "bad duration", doc: "services:\n  web:\n    image: " + img + "\n    healthcheck:\n      test: [\"CMD\", \"/probe\"]\n      interval: fast\n", want: "interval"},
		{desc: "bad memory", doc: "services:\n  web:\n    image: " + img + "\n    deploy:\n      resources:\n        limits:\n          memory: lots\n", want: "memory"},
		{desc: "docker socket", doc: "services:\n  web:\n    image: " + img + "\n    volumes:\n      - /var/run/docker.sock:/var/run/docker.sock\n", want: "docker.sock"},
		{desc: "unknown x-berth key", doc: "services:\n  web:\n    image: " + img + "\n    x-berth:\n      shedule: \"@hourly\"\n", want: "shedule"},
		{desc: "bad cron", doc: "services:\n  web:\n    image: " + img + "\n    x-berth:\n      schedule: \"every tuesday\"\n", want: "schedule"},
		{desc: "missing image", doc: "services:\n  web:\n    image: berth-test/does-not-exist:1\n", want: "does-not-exist", noLine: true},
		{desc: "empty file", doc: "", want: "compose.yaml", noLine: true},
	}
	line := regexp.MustCompile(`compose\.yaml:\d+`)
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			out, code := b.cli("deploy", "-f", writeCompose(t, tc.doc), "--stack", "bad", "--timeout", "10s")
			if code == 0 {
				t.Fatalf("deploy succeeded:\n%s", out)
			}
			if code != 2 {
				t.Errorf("exit code %d, want 2 (invalid input)", code)
			}
			if !strings.Contains(strings.ToLower(out), strings.ToLower(tc.want)) {
				t.Errorf("error does not mention %q:\n%s", tc.want, out)
			}
			if !tc.noLine && !line.MatchString(out) {
				t.Errorf("error has no file:line position:\n%s", out)
			}
		})
	}
	if out := b.mustCLI("ls"); strings.Contains(out, "bad") {
		t.Fatalf("a bad file deployed something:\n%s", out)
	}
	if n := len(b.containers("")); n != 0 {
		t.Fatalf("%d containers created by bad input", n)
	}
}

// TestBadAPIRequests: invalid names and bodies get 4xx and change nothing.
func TestBadAPIRequests(t *testing.T) {
	t.Parallel()
	b := startBerth(t)
	sock := filepath.Join(b.dir, "berth.sock")
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}, Timeout: 10 * time.Second}
	long := strings.Repeat("a", 300)
	body := `{"stack":{"services":{"web":{"name":"web","image":"` + probeImage + `","replicas":1,"restart":{"condition":"any"}}}}}`
	cases := []struct{ method, path, body string }{
		{"POST", "/v1/stacks/..%2Fx/deploy", body},
		{"POST", "/v1/stacks/%2E%2E/deploy", body},
		{"POST", "/v1/stacks/" + long + "/deploy", body},
		{"POST", "/v1/stacks//deploy", body},
		{"POST", "/v1/stacks/ok/deploy", `{"stack":{"services":{"web":{"name":"web","image":"x","replicas":1,"restart":{"condition":"any"},"bogus":1}}}}`},
		{"POST", "/v1/stacks/ok/deploy", `{not json`},
		{"POST", "/v1/stacks/ok/deploy", ``},
		{"POST", "/v1/stacks/ok/deploy", `{"stack":{"services":{"../x":{"name":"../x","image":"x","replicas":1,"restart":{"condition":"any"}}}}}`},
		{"POST", "/v1/stacks/ok/services/web/scale", `{"replicas":-1}`},
		{"GET", "/v1/stacks/..%2F..%2Fetc", ""},
		{"GET", "/v1/tasks?stack=../x", ""},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(tc.method, "http://berth"+tc.path, strings.NewReader(tc.body))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		resp.Body.Close()
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Errorf("%s %s: status %d, want 4xx", tc.method, tc.path[:min(len(tc.path), 40)], resp.StatusCode)
		}
	}
	if out := b.mustCLI("ls", "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("bad requests changed state: %s", out)
	}
	_ = fmt.Sprint()
}
