package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	shipitOnce sync.Once
	shipitBin  string
	shipitErr  error
)

// shipit builds testdata/apps/shipit once per run.
func shipit(t *testing.T) string {
	t.Helper()
	shipitOnce.Do(func() {
		dir, err := os.MkdirTemp("", "berth-shipit-")
		if err != nil {
			shipitErr = err
			return
		}
		shipitBin = filepath.Join(dir, "shipit")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		shipitErr = goBuild(ctx, shipitBin, "../testdata/apps/shipit")
	})
	if shipitErr != nil {
		t.Fatalf("build shipit: %v", shipitErr)
	}
	return shipitBin
}

// appRepo writes the shipit application's source tree (its binary, a
// "base" layer saying version, a Dockerfile, a .dockerignore leaving out
// secret.txt) as a git work tree with one commit, and returns it.
func appRepo(t *testing.T, version string) string {
	t.Helper()
	dir := t.TempDir()
	bin, err := os.ReadFile(shipit(t))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"Dockerfile":       "FROM scratch\nCOPY base/ /base/\nCOPY shipit /shipit\nCOPY ctx/ /ctx/\nENTRYPOINT [\"/shipit\"]\n",
		".dockerignore":    "ctx/secret.txt\n",
		"base/version.txt": version + "\n",
		"ctx/keep.txt":     "kept\n",
		"ctx/secret.txt":   "never in the image\n",
		"shipit":           string(bin),
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	git(t, dir, "init", "-q")
	git(t, dir, "add", ".")
	git(t, dir, "commit", "-q", "-m", "shipit "+version)
	return dir
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=e2e", "GIT_AUTHOR_EMAIL=e2e@berth.invalid",
		"GIT_COMMITTER_NAME=e2e", "GIT_COMMITTER_EMAIL=e2e@berth.invalid", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// setVersion rewrites the base layer's version and commits it.
func setVersion(t *testing.T, dir, version string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "base/version.txt"), []byte(version+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, dir, "commit", "-q", "-am", "shipit "+version)
}

// removeImages removes, when the test ends, the engine's image references
// that contain token (a name only this test uses). It removes references,
// never image IDs: an image this test tagged, like the shared example
// image pushed under a name of the test's, keeps its other names.
func removeImages(t *testing.T, token string) {
	t.Cleanup(func() {
		out, err := exec.Command("docker", "image", "ls", "--digests", "--format", "{{.Repository}}|{{.Tag}}|{{.Digest}}").Output()
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Split(line, "|")
			if len(f) != 3 || !strings.Contains(f[0], token) {
				continue
			}
			var refs []string
			if f[1] != "<none>" {
				refs = append(refs, f[0]+":"+f[1])
			}
			if f[2] != "<none>" {
				refs = append(refs, f[0]+"@"+f[2])
			}
			for _, ref := range refs {
				if !seen[ref] {
					seen[ref] = true
					_ = exec.Command("docker", "rmi", ref).Run() // the image goes with its last reference
				}
			}
		}
	})
}

// freeAddr is a loopback address with a port nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startDockerRegistry runs Debian's docker-registry (distribution 2.x)
// on loopback without authentication, as the "production" registry.
func startDockerRegistry(t *testing.T) string {
	t.Helper()
	bin := needTool(t, "docker-registry", "docker-registry")
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	path := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	startDaemon(t, nil, bin, "serve", path)
	waitFor(t, 20*time.Second, "docker-registry to answer", func() (bool, string) {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	return addr
}

// lines returns the non-empty lines of s.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// lastLine is the output's last non-empty line (a command's result after
// its progress).
func lastLine(s string) string {
	l := lines(s)
	if len(l) == 0 {
		return ""
	}
	return l[len(l)-1]
}
