package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// cosignBin finds the real cosign CLI (.ci/run installs it with go
// install); CI fails without it, a developer's run skips.
func cosignBin(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("cosign"); err == nil {
		return p
	}
	if gp, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(gp)), "bin", "cosign")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("cosign is required in CI: go install github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5 (.ci/run does)")
	}
	t.Skip("cosign not installed; go install github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5")
	return ""
}

// pushLocal tags a local image into the registry and pushes it; the
// engine then knows its repo digest.
func pushLocal(t *testing.T, src, ref string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cli := drv.Client()
	if err := cli.ImageTag(ctx, src, ref); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", ref).Run() })
	rc, err := cli.ImagePush(ctx, ref, image.PushOptions{RegistryAuth: base64.URLEncoding.EncodeToString([]byte("{}"))})
	if err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	defer rc.Close()
	out, _ := io.ReadAll(rc)
	if strings.Contains(string(out), `"error"`) {
		t.Fatalf("push %s: %s", ref, out)
	}
}

func runCmd(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestImageSignatures: interop with the real cosign CLI. Signed by
// cosign → berth runs it; signed by berth → cosign verifies it;
// unsigned, signed by another key, or tampered → refused with a clear
// error and nothing started.
func TestImageSignatures(t *testing.T) {
	t.Parallel()
	cosign := cosignBin(t)
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	reg := strings.TrimPrefix(srv.URL, "http://")
	tag := fmt.Sprintf("e2e-%d", os.Getpid())
	signedRef := reg + "/berth-test/signed:" + tag
	unsignedRef := reg + "/berth-test/unsigned:" + tag
	berthRef := reg + "/berth-test/hello:" + tag
	pushLocal(t, probeImage, signedRef)
	pushLocal(t, probeImage, unsignedRef)
	pushLocal(t, helloImage, berthRef)

	dir := t.TempDir()
	cosignEnv := []string{"COSIGN_PASSWORD=e2e-password", "HOME=" + dir}
	if out, err := runCmd(t, append(cosignEnv, "PWD="+dir), "sh", "-c", "cd "+dir+" && "+cosign+" generate-key-pair"); err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
	}
	if out, err := runCmd(t, cosignEnv, cosign, "sign", "--key", filepath.Join(dir, "cosign.key"), "--tlog-upload=false",
		"--allow-http-registry", "--yes", signedRef); err != nil {
		t.Fatalf("cosign sign: %v\n%s", err, out)
	}
	b := startBerth(t)
	b.mustCLI("keygen", filepath.Join(dir, "berth"))
	if out := b.mustCLI("sign", berthRef, "--key", filepath.Join(dir, "berth.key")); !strings.Contains(out, "signed "+reg+"/berth-test/hello@sha256:") {
		t.Fatalf("berth sign: %s", out)
	}
	// Signed by berth → verified by cosign.
	if out, err := runCmd(t, cosignEnv, cosign, "verify", "--key", filepath.Join(dir, "berth.pub"), "--insecure-ignore-tlog=true",
		"--allow-http-registry", berthRef); err != nil {
		t.Fatalf("cosign verify of berth's signature: %v\n%s", err, out)
	}
	// berth also signs with cosign's own (encrypted) key.
	cmd := exec.Command(berthBin, "sign", berthRef, "--key", filepath.Join(dir, "cosign.key"))
	cmd.Env = append(os.Environ(), cosignEnv...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("berth sign with cosign.key: %v\n%s", err, out)
	}

	stack := func(stackName, ref, key string) string {
		doc := fmt.Sprintf("services:\n  web:\n    image: %s\nx-berth:\n  trust:\n    keys: [%s]\n", ref, key)
		path := filepath.Join(t.TempDir(), "compose.yaml")
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		out, code := b.cli("deploy", "-f", path, "--stack", stackName, "--timeout", "90s")
		if code != 0 {
			return out
		}
		return ""
	}
	// Signed by cosign → accepted by berth, pinned to the verified digest.
	if out := stack("signed", signedRef, filepath.Join(dir, "cosign.pub")); out != "" {
		t.Fatalf("deploy of a cosign-signed image: %s", out)
	}
	svc := b.waitRunning("signed", "web", 1)
	if !strings.HasPrefix(svc.Image, reg+"/berth-test/signed@sha256:") {
		t.Errorf("revision runs %s, not the verified digest", svc.Image)
	}
	if out := stack("bysberth", berthRef, filepath.Join(dir, "berth.pub")); out != "" {
		t.Fatalf("deploy of a berth-signed image: %s", out)
	}
	b.waitRunning("bysberth", "web", 1)

	refused := func(stackName, ref, key, want string) {
		t.Helper()
		out := stack(stackName, ref, key)
		if out == "" || !strings.Contains(out, want) || !strings.Contains(out, "nothing was deployed") {
			t.Errorf("deploy of %s with %s: want a refusal containing %q, got:\n%s", ref, filepath.Base(key), want, out)
		}
		if st, code := b.cli("status", stackName); code == 0 {
			t.Errorf("refused stack %s exists:\n%s", stackName, st)
		}
		for _, c := range b.containers(stackName) {
			t.Errorf("refused stack %s started container %s", stackName, c.Name)
		}
	}
	refused("unsigned", unsignedRef, filepath.Join(dir, "cosign.pub"), "is not signed")
	refused("otherkey", signedRef, filepath.Join(dir, "berth.pub"), "does not verify with any trusted key")

	// Tampered: the signature bytes in the registry are changed.
	sigTag := tamper(t, signedRef)
	refused("tampered", signedRef, filepath.Join(dir, "cosign.pub"), "does not verify")
	if out, err := runCmd(t, cosignEnv, cosign, "verify", "--key", filepath.Join(dir, "cosign.pub"), "--insecure-ignore-tlog=true",
		"--allow-http-registry", signedRef); err == nil {
		t.Errorf("cosign verified the tampered signature (%s):\n%s", sigTag, out)
	}
}

// tamper rewrites the signature manifest of ref with every signature's
// bytes changed, and returns its tag.
func tamper(t *testing.T, ref string) string {
	t.Helper()
	r, _ := name.ParseReference(ref)
	desc, err := remote.Head(r)
	if err != nil {
		t.Fatal(err)
	}
	sigTag := r.Context().Tag(strings.Replace(desc.Digest.String(), ":", "-", 1) + ".sig")
	img, err := remote.Image(sigTag)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := img.Manifest()
	fresh := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	for _, l := range m.Layers {
		layer, err := img.LayerByDigest(l.Digest)
		if err != nil {
			t.Fatal(err)
		}
		sig, _ := base64.StdEncoding.DecodeString(l.Annotations["dev.cosignproject.cosign/signature"])
		sig[len(sig)/2] ^= 0x55
		ann := map[string]string{}
		for k, v := range l.Annotations {
			ann[k] = v
		}
		ann["dev.cosignproject.cosign/signature"] = base64.StdEncoding.EncodeToString(sig)
		if fresh, err = mutate.Append(fresh, mutate.Addendum{Layer: layer, MediaType: l.MediaType, Annotations: ann}); err != nil {
			t.Fatal(err)
		}
	}
	if err := remote.Write(sigTag, fresh); err != nil {
		t.Fatal(err)
	}
	return sigTag.String()
}
