package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/runtime"
)

// execIn runs argv in a running container and returns its stdout.
func execIn(t *testing.T, id string, argv ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cli := drv.Client()
	ex, err := cli.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: argv, AttachStdout: true, AttachStderr: true})
	if err != nil {
		t.Fatalf("exec create: %v", err)
	}
	att, err := cli.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		t.Fatalf("exec attach: %v", err)
	}
	defer att.Close()
	var out, errb bytes.Buffer
	_, _ = stdcopy.StdCopy(&out, &errb, att.Reader)
	return out.String() + errb.String()
}

// cliStdin runs the CLI with stdin.
func (b *berth) cliStdin(stdin string, args ...string) (string, int) {
	b.t.Helper()
	cmd := exec.Command(berthBin, args...)
	cmd.Env = append(os.Environ(), "BERTH_HOST=unix://"+filepath.Join(b.dir, "berth.sock"))
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		b.t.Fatal(err)
	}
	return string(out), 0
}

func runningTask(b *berth, stack, service string) (string, string) {
	b.t.Helper()
	for _, c := range running(b.containers(stack)) {
		if c.Labels[api.LabelService] == service {
			return c.ID, c.Labels[api.LabelTask]
		}
	}
	b.t.Fatalf("no running container of %s/%s", stack, service)
	return "", ""
}

// TestSecretsDeliveredAsTmpfsFiles: Compose secrets (file and external)
// reach the container as read-only files at /run/secrets, owned by the
// container's user, mode 0400, on a tmpfs; they are in no environment,
// inspect output, log, event, API response or file on disk; rotation
// rolls the service, and the old task's files go with it.
func TestSecretsDeliveredAsTmpfsFiles(t *testing.T) {
	t.Parallel()
	b := startBerth(t)
	dbValue := fmt.Sprintf("db-password-%d-never-on-disk", time.Now().UnixNano())
	apiValue := fmt.Sprintf("api-key-%d-never-on-disk", time.Now().UnixNano())
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "db.txt"), []byte(dbValue), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := b.cliStdin(apiValue, "secret", "create", "sec", "api"); code != 0 {
		t.Fatalf("secret create: %d %s", code, out)
	}
	if out, code := b.cli("secret", "create", "sec", "other", "--file", "/nonexistent"); code == 0 {
		t.Fatalf("secret create from a missing file succeeded: %s", out)
	}
	doc := fmt.Sprintf(`
services:
  web:
    image: %[1]s
    user: "1000:1000"
    read_only: true
    secrets:
      - db
      - source: api
        target: api.key
  envsvc:
    image: %[1]s
    secrets: [db]
    x-berth:
      secrets_as_env: true
secrets:
  db:
    file: ./db.txt
  api:
    external: true
`, probeImage)
	compose := filepath.Join(dir, "compose.yaml")
	if err := os.WriteFile(compose, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	out := b.mustCLI("deploy", "-f", compose, "--stack", "sec", "--timeout", "90s")
	if !strings.Contains(out, "secrets_as_env puts the service's secrets in its environment") {
		t.Errorf("no warning for secrets_as_env:\n%s", out)
	}
	b.waitRunning("sec", "web", 1)
	b.waitRunning("sec", "envsvc", 1)
	id, task := runningTask(b, "sec", "web")

	sum := func(v string) string { return fmt.Sprintf("%x", sha256.Sum256([]byte(v))) }
	for file, value := range map[string]string{"db": dbValue, "api.key": apiValue} {
		got := execIn(t, id, "/probe", "-file", "/run/secrets/"+file)
		want := fmt.Sprintf("mode=400 uid=1000 gid=1000 sha256=%s writable=false", sum(value))
		if strings.TrimSpace(got) != want {
			t.Errorf("/run/secrets/%s: %q, want %q", file, got, want)
		}
	}
	// The files live on the tmpfs berth mounted, in the task's directory.
	hostDir := filepath.Join(b.dir, "run", task)
	if _, err := os.Stat(filepath.Join(hostDir, "db")); err != nil {
		t.Fatalf("host secret file: %v", err)
	}
	if mounts, _ := os.ReadFile("/proc/self/mountinfo"); !strings.Contains(string(mounts), filepath.Join(b.dir, "run")+" ") ||
		!strings.Contains(string(mounts), "tmpfs") {
		t.Errorf("%s is not a mount point", filepath.Join(b.dir, "run"))
	}

	// Never in inspect output or the environment (unless opted in).
	// Every engine call gets its own deadline.
	engineCtx := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		t.Cleanup(cancel)
		return ctx
	}
	_, raw, err := drv.Client().ContainerInspectWithRaw(engineCtx(), id, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{dbValue, apiValue} {
		if bytes.Contains(raw, []byte(v)) {
			t.Errorf("docker inspect of web shows a secret value")
		}
	}
	envID, _ := runningTask(b, "sec", "envsvc")
	_, envRaw, _ := drv.Client().ContainerInspectWithRaw(engineCtx(), envID, false)
	if !bytes.Contains(envRaw, []byte("DB="+dbValue)) {
		t.Errorf("secrets_as_env: DB is not in envsvc's environment")
	}

	// A one-off job gets the files too.
	jobOut, code := b.cli("run", "sec", "web", "--", "-file", "/run/secrets/db")
	if code != 0 || !strings.Contains(jobOut, sum(dbValue)) {
		t.Errorf("job: exit %d: %s", code, jobOut)
	}

	// Rotation rolls web (and envsvc, which uses db) to a new revision.
	newValue := "rotated-" + dbValue
	if out, code := b.cliStdin(newValue, "secret", "rotate", "sec", "db"); code != 0 || !strings.Contains(out, "web: rolling to revision 2") {
		t.Fatalf("rotate: %d %s", code, out)
	}
	svc := b.waitRunning("sec", "web", 1)
	if svc.Revision != 2 {
		t.Fatalf("web at revision %d after rotation", svc.Revision)
	}
	id2, _ := runningTask(b, "sec", "web")
	if got := execIn(t, id2, "/probe", "-file", "/run/secrets/db"); !strings.Contains(got, sum(newValue)) {
		t.Errorf("rotated value not delivered: %s", got)
	}
	waitFor(t, 30*time.Second, "the old task's secret files to go", func() (bool, string) {
		_, err := os.Stat(hostDir)
		return os.IsNotExist(err), fmt.Sprint(err)
	})

	// Nowhere in logs, events, API answers or berth's own log.
	secretList := b.mustCLI("secret", "ls", "sec", "--json")
	if !strings.Contains(secretList, `"version": 2`) {
		t.Errorf("secret ls: %s", secretList)
	}
	outputs := []string{secretList, b.mustCLI("events", "--json"), b.mustCLI("inspect", "sec", "web"), b.mustCLI("status", "sec", "--json"),
		b.mustCLI("audit", "--json"), b.logText()}
	var logs bytes.Buffer
	_ = drv.Logs(engineCtx(), id2, runtimeLogAll, &logs, &logs)
	outputs = append(outputs, logs.String())
	for i, o := range outputs {
		for _, v := range []string{dbValue, apiValue, newValue} {
			if strings.Contains(o, v) {
				t.Errorf("output %d shows a secret value", i)
			}
		}
	}

	// Nothing on disk in the clear: berth's data directory (but the
	// tmpfs) and the engine's files of the containers.
	scan := func(root string, skip string) {
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if d.IsDir() && path == skip {
				return filepath.SkipDir
			}
			if !d.Type().IsRegular() {
				return nil
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return nil
			}
			for _, v := range []string{dbValue, apiValue, newValue} {
				if bytes.Contains(data, []byte(v)) {
					t.Errorf("%s holds a secret in the clear", path)
				}
			}
			return nil
		})
	}
	scan(b.dir, filepath.Join(b.dir, "run"))
	info, err := drv.Client().Info(engineCtx())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range b.containers("sec") {
		if c.Labels[api.LabelService] == "web" {
			if _, err := os.Stat(filepath.Join(info.DockerRootDir, "containers", c.ID)); err != nil {
				t.Fatalf("the engine's container directory: %v", err)
			}
			scan(filepath.Join(info.DockerRootDir, "containers", c.ID), "")
		}
	}

	// A secret in use cannot be removed; one that is not, can.
	if out, code := b.cli("secret", "rm", "sec", "db"); code == 0 {
		t.Errorf("removed a secret in use: %s", out)
	}
	b.mustCLI("rm", "sec")
	waitFor(t, 60*time.Second, "every secret file to go with the stack", func() (bool, string) {
		entries, _ := os.ReadDir(filepath.Join(b.dir, "run"))
		return len(entries) == 0, fmt.Sprint(len(entries), " left")
	})
	b.mustCLI("secret", "rm", "sec", "db")
}

var runtimeLogAll = runtime.LogOptions{Tail: "all"}
