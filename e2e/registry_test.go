package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRegistryInterop: the engine's own client (docker login, push,
// pull) and Debian's skopeo work against berth's embedded registry with
// its generated credential and are refused without it; an image copied
// there by skopeo deploys by digest, pulled by the agent.
func TestRegistryInterop(t *testing.T) {
	t.Parallel()
	skopeo := needTool(t, "skopeo", "skopeo")
	token := fmt.Sprintf("e2e%d%d", os.Getpid(), time.Now().UnixNano()%100000)
	// Registered first, so it runs after the cluster's containers are gone.
	removeImages(t, token)
	b := startBerth(t)
	reg, err := b.cl.Registry(context.Background())
	if err != nil || reg.Addr == "" {
		t.Fatalf("registry: %v %+v", err, reg)
	}
	dockerCfg := t.TempDir()
	docker := func(stdin string, args ...string) (string, error) {
		cmd := exec.Command("docker", args...)
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+dockerCfg)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := docker("wrong\n", "login", "-u", reg.Username, "--password-stdin", reg.Addr); err == nil {
		t.Fatalf("docker login with a wrong password succeeded:\n%s", out)
	}
	ref := reg.Addr + "/" + token + "/hello:1"
	if out, err := docker("", "tag", helloImage, ref); err != nil {
		t.Fatalf("docker tag: %v\n%s", err, out)
	}
	if out, err := docker("", "push", ref); err == nil || !strings.Contains(out, "no basic auth credentials") && !strings.Contains(out, "unauthorized") {
		t.Fatalf("docker push without login: %v\n%s", err, out)
	}
	if out, err := docker(reg.Password+"\n", "login", "-u", reg.Username, "--password-stdin", reg.Addr); err != nil {
		t.Fatalf("docker login: %v\n%s", err, out)
	}
	out, err := docker("", "push", ref)
	if err != nil {
		t.Fatalf("docker push: %v\n%s", err, out)
	}
	i := strings.Index(out, "digest: sha256:")
	if i < 0 {
		t.Fatalf("docker push printed no digest:\n%s", out)
	}
	digest := strings.Fields(out[i+len("digest: "):])[0]
	if out, err := docker("", "rmi", ref); err != nil {
		t.Fatalf("docker rmi: %v\n%s", err, out)
	}
	if out, err := docker("", "pull", ref); err != nil || !strings.Contains(out, digest) {
		t.Fatalf("docker pull: %v\n%s", err, out)
	}

	creds := reg.Username + ":" + reg.Password
	if out, err := exec.Command(skopeo, "inspect", "--tls-verify=false", "--creds", reg.Username+":wrong", "docker://"+ref).CombinedOutput(); err == nil {
		t.Fatalf("skopeo with a wrong password succeeded:\n%s", out)
	}
	raw, err := exec.Command(skopeo, "inspect", "--tls-verify=false", "--creds", creds, "docker://"+ref).Output()
	if err != nil {
		t.Fatalf("skopeo inspect: %v", err)
	}
	var info struct{ Digest string }
	if err := json.Unmarshal(raw, &info); err != nil || info.Digest != digest {
		t.Fatalf("skopeo saw digest %q (%v), docker pushed %s", info.Digest, err, digest)
	}
	copyRef := reg.Addr + "/" + token + "/copy:1"
	if out, err := exec.Command(skopeo, "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
		"--src-creds", creds, "--dest-creds", creds, "docker://"+ref, "docker://"+copyRef).CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}
	// API tokens sign in too: a viewer pulls and may not push.
	apiToken := func(role string) string {
		lines := strings.Split(strings.TrimSpace(b.mustCLI("token", "create", "--role", role)), "\n")
		return strings.TrimSpace(lines[len(lines)-1])
	}
	viewer := "ci:" + apiToken("viewer")
	if out, err := exec.Command(skopeo, "inspect", "--tls-verify=false", "--creds", viewer, "docker://"+ref).CombinedOutput(); err != nil {
		t.Fatalf("skopeo inspect with a viewer token: %v\n%s", err, out)
	}
	if out, err := exec.Command(skopeo, "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
		"--src-creds", viewer, "--dest-creds", viewer, "docker://"+ref, "docker://"+reg.Addr+"/"+token+"/viewer:1").CombinedOutput(); err == nil || !strings.Contains(string(out), "may pull, not push") {
		t.Fatalf("skopeo copy with a viewer token: %v\n%s", err, out)
	}
	b.deploy("i"+token, fmt.Sprintf("services:\n  hello:\n    image: %s\n", copyRef))
	svc := b.waitRunning("i"+token, "hello", 1)
	if want := reg.Addr + "/" + token + "/copy@" + digest; svc.ImageDigest != want {
		t.Fatalf("deployed %q, want %s", svc.ImageDigest, want)
	}

	// Garbage collection keeps what is tagged: the deployed image still pulls.
	b.mustCLI("registry", "gc")
	if out, err := exec.Command(skopeo, "inspect", "--tls-verify=false", "--creds", creds, "docker://"+copyRef).CombinedOutput(); err != nil {
		t.Fatalf("after gc: %v\n%s", err, out)
	}
}

// TestDeliveryBadInputs: each mistake gets a clear error and changes
// nothing.
func TestDeliveryBadInputs(t *testing.T) {
	t.Parallel()
	token := fmt.Sprintf("e2e%d%d", os.Getpid(), time.Now().UnixNano()%100000)
	// Registered first, so it runs after the cluster's containers are gone.
	removeImages(t, token)
	b := startBerth(t)
	reg, err := b.cl.Registry(context.Background())
	if err != nil || reg.Addr == "" {
		t.Fatalf("registry: %v %+v", err, reg)
	}

	empty := t.TempDir()
	broken := t.TempDir()
	if err := os.WriteFile(filepath.Join(broken, "Dockerfile"), []byte("FROM scratch\nCOPY nothere /x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		desc string
		args []string
		env  []string
		code int
		want string
	}{
		{"missing Dockerfile", []string{"build", empty, "-t", token + "/x", "--tag", "1"}, nil, 2, "no Dockerfile at " + filepath.Join(empty, "Dockerfile")},
		{"build error", []string{"build", broken, "-t", token + "/x", "--tag", "1"}, nil, 2, " : COPY nothere /x: COPY failed"},
		{"not a git tree, no tag", []string{"build", broken, "-t", token + "/x"}, nil, 2, "not in a git work tree"},
		{"unknown registry", []string{"push", helloImage, "127.0.0.1:1"}, nil, 5, "registry 127.0.0.1:1 is not reachable"},
		{"wrong credentials", []string{"push", helloImage, reg.Addr}, []string{"BERTH_HOST=unix:///nonexistent/berth.sock"}, 2, "refused the credential"},
		{"promote from an unknown registry", []string{"promote", "127.0.0.1:1/" + token + "/x:1", reg.Addr}, nil, 5, "not reachable"},
	}
	for _, tc := range cases {
		cmd := exec.Command(berthBin, tc.args...)
		cmd.Env = append(os.Environ(), "BERTH_HOST=unix://"+filepath.Join(b.dir, "berth.sock"), "BERTH_DATA_DIR="+b.dir)
		cmd.Env = append(cmd.Env, tc.env...)
		out, _ := cmd.CombinedOutput()
		code := cmd.ProcessState.ExitCode()
		if code != tc.code || !strings.Contains(string(out), tc.want) {
			t.Errorf("%s: exit %d, want %d with %q:\n%s", tc.desc, code, tc.code, tc.want, out)
		}
	}

	deploys := []struct {
		desc, doc, want string
	}{
		{"unknown registry", "services:\n  web:\n    image: 127.0.0.1:1/" + token + "/web:1\n", `service "web"`},
		{"digest the registry does not have", "services:\n  web:\n    image: " + reg.Addr + "/" + token + "/web@sha256:" + strings.Repeat("0", 64) + "\n", `service "web"`},
		{"latest in production", "x-berth:\n  environment: production\nservices:\n  web:\n    image: " + helloImage + "\n  api:\n    image: " + reg.Addr + "/" + token + "/api:latest\n",
			`compose.yaml:7:5: services.api.image: image "` + reg.Addr + "/" + token + `/api:latest": x-berth.environment is production`},
	}
	for _, d := range deploys {
		out, code := b.cli("deploy", "-f", writeCompose(t, d.doc), "--stack", "b"+token, "--timeout", "30s")
		if code == 0 || !strings.Contains(out, d.want) {
			t.Errorf("%s: exit %d, want an error with %q:\n%s", d.desc, code, d.want, out)
		}
	}
	if out := b.mustCLI("ls"); strings.Contains(out, "b"+token) {
		t.Fatalf("a refused deploy left a stack:\n%s", out)
	}
	if left := b.containers(""); len(left) != 0 {
		t.Fatalf("refused deploys left containers: %+v", left)
	}
}
