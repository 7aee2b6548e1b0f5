package e2e

import (
	"archive/tar"
	"bytes"
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

// cliIO runs the CLI with stdin and stdout connected to files.
func (b *berth) cliIO(stdin io.Reader, stdout io.Writer, args ...string) {
	b.t.Helper()
	cmd := exec.Command(berthBin, args...)
	cmd.Env = append(os.Environ(), "BERTH_HOST=unix://"+filepath.Join(b.dir, "berth.sock"))
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, &stderr
	if err := cmd.Run(); err != nil {
		b.t.Fatalf("berth %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
}

// startBerthIn starts berth up on an existing data directory (a restored
// one) and cleans up after it like startBerth.
func startBerthIn(t *testing.T, dir, cluster string) *berth {
	t.Helper()
	b := &berth{t: t, dir: dir, cluster: cluster}
	b.start()
	t.Cleanup(func() {
		b.stop()
		stopProxy(dir)
		cleanupCluster(t, cluster)
		if t.Failed() {
			t.Logf("restored berth log:\n%s", b.logText())
		}
		os.RemoveAll(dir)
	})
	return b
}

func tarOf(t *testing.T, files map[string]string) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, content := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), ModTime: time.Now()}); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write([]byte(content))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

func tarNames(t *testing.T, r io.Reader) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		b, _ := io.ReadAll(tr)
		out[strings.TrimPrefix(h.Name, "./")] = string(b)
	}
}

// TestBackupRestore backs up berth and a volume, destroys everything
// (berth's data directory, its containers, networks and volumes), restores
// into a fresh data directory, and checks that the stacks converge again
// and the volume's data is back, served by the service itself.
func TestBackupRestore(t *testing.T) {
	t.Parallel()
	b := startBerth(t)
	stack := fmt.Sprintf(`
services:
  web:
    image: %s
    environment: {PROBE_DATA: /data}
    volumes: ["data:/data"]
volumes:
  data: {}
`, probeImage)
	b.deploy("bk", stack)
	b.deploy("other", fmt.Sprintf("services:\n  web:\n    image: %s\n    deploy: {replicas: 2}\n", probeImage))
	b.waitRunning("bk", "web", 1)
	b.waitRunning("other", "web", 2)

	b.cliIO(tarOf(t, map[string]string{"note.txt": "hello from before"}), io.Discard, "volume", "restore", "bk", "data")
	var vol bytes.Buffer
	b.cliIO(nil, &vol, "volume", "backup", "bk", "data")
	files := tarNames(t, bytes.NewReader(vol.Bytes()))
	if files["note.txt"] != "hello from before" || strings.Count(files["boots"], "\n") != 1 {
		t.Fatalf("volume backup holds %v", files)
	}
	work := t.TempDir()
	volTar := filepath.Join(work, "data.tar")
	if err := os.WriteFile(volTar, vol.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	backupFile := filepath.Join(work, "berth.backup")
	b.mustCLI("backup", backupFile)
	if out, code := b.cli("volume", "backup", "bk", "nope"); code != 3 || !strings.Contains(out, "no named volume") {
		t.Errorf("backup of an unknown volume: exit %d %s", code, out)
	}

	// Destroy: berth, its data directory, and everything it created.
	cluster := b.cluster
	b.kill9()
	stopProxy(b.dir)
	cleanupCluster(t, cluster)
	if err := os.RemoveAll(b.dir); err != nil {
		t.Fatal(err)
	}

	fresh, err := os.MkdirTemp("", "be2r")
	if err != nil {
		t.Fatal(err)
	}
	restore := func(args ...string) (string, int) {
		cmd := exec.Command(berthBin, append([]string{"restore"}, args...)...)
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		return string(out), 0
	}
	if out, code := restore(volTar, "--data-dir", fresh); code != 2 || !strings.Contains(out, "not a berth backup") {
		t.Fatalf("restore of a tar that is no backup: exit %d %s", code, out)
	}
	if entries, _ := os.ReadDir(fresh); len(entries) != 0 {
		t.Fatalf("a failed restore left %d entries behind", len(entries))
	}
	if out, code := restore(backupFile, "--data-dir", fresh); code != 0 {
		t.Fatalf("restore: exit %d %s", code, out)
	}
	if out, code := restore(backupFile, "--data-dir", fresh); code != 4 || !strings.Contains(out, "not empty") {
		t.Fatalf("restore over a restored directory: exit %d %s", code, out)
	}

	r := startBerthIn(t, fresh, cluster)
	if id, _ := os.ReadFile(filepath.Join(fresh, "cluster-id")); strings.TrimSpace(string(id)) != cluster {
		t.Fatalf("cluster id %q after restore, want %s", id, cluster)
	}
	r.waitRunning("bk", "web", 1)
	r.waitRunning("other", "web", 2)
	if out := r.mustCLI("events", "--json"); !strings.Contains(out, "stack.deploy") {
		t.Errorf("event history not restored:\n%s", out)
	}
	r.cliIO(bytes.NewReader(vol.Bytes()), io.Discard, "volume", "restore", "bk", "data")

	// The service sees the restored data: the note, and the boots of the
	// old container and of the new one.
	// The restored statuses still describe the old containers until the
	// agent has looked: wait for the status of the container that runs.
	addr := ""
	waitFor(t, 60*time.Second, "the status of the recreated container", func() (bool, string) {
		live := map[string]bool{}
		for _, c := range running(r.containers("bk")) {
			live[c.ID] = true
		}
		for _, s := range r.status("bk").Services {
			for _, tv := range s.Tasks {
				if tv.Status != nil && live[tv.Status.ContainerID] && tv.Status.Address != "" {
					addr = tv.Status.Address
					return true, ""
				}
			}
		}
		return false, fmt.Sprint(live)
	})
	if addr == "" {
		t.Fatalf("no task address in %+v", r.status("bk"))
	}
	get := func(path string) string {
		var resp *http.Response
		var err error
		for i := 0; i < 100; i++ { // the program may still be starting
			if resp, err = http.Get("http://" + addr + ":8080/data/" + path); err == nil {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("get %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("get %s from %s: %s %s", path, addr, resp.Status, body)
		}
		return string(body)
	}
	if got := get("note.txt"); got != "hello from before" {
		t.Errorf("note.txt = %q after restore", got)
	}
	if boots := get("boots"); !strings.Contains(boots, strings.TrimSpace(files["boots"])) {
		t.Errorf("boots = %q, want it to hold the old container's %q", boots, files["boots"])
	}
}
