package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
)

// TestDeliveryPipeline walks the seeds' production path with the real
// engine: build a FROM scratch app tagged with its commit, run its
// passing and failing suites inside the image, push it to berth's
// embedded registry, promote the tested digest to Debian's
// docker-registry as the production registry, deploy it there pinned by
// digest, then rebuild with a changed base layer and watch the
// auto-update roll out; a broken rebuild auto-updates and rolls back.
func TestDeliveryPipeline(t *testing.T) {
	t.Parallel()
	prod := startDockerRegistry(t)
	token := fmt.Sprintf("e2e%d%d", os.Getpid(), time.Now().UnixNano()%100000)
	// Registered first, so it runs after the cluster's containers are gone.
	removeImages(t, token)
	b := startBerth(t)
	ctx := context.Background()
	reg, err := b.cl.Registry(ctx)
	if err != nil || reg.Addr == "" {
		t.Fatalf("embedded registry: %v %+v", err, reg)
	}
	repo := reg.Addr + "/" + token + "/shipit"
	// Stack networks are named for the stack on the shared engine: a name
	// of this run's own keeps concurrent runs apart.
	stack := "s" + token

	// Build: tagged with the short commit and "stable", labelled.
	src := appRepo(t, "v1")
	refs := lines(b.mustCLI("build", src, "-t", repo, "--tag", "stable", "-q"))
	commit := git(t, src, "rev-parse", "HEAD")
	short := git(t, src, "rev-parse", "--short", "HEAD")
	if len(refs) != 2 || refs[0] != repo+":"+short || refs[1] != repo+":stable" {
		t.Fatalf("build tagged %v, want [%s:%s %s:stable]", refs, repo, short, repo)
	}
	labels, err := exec.Command("docker", "image", "inspect", "-f", `{{index .Config.Labels "org.opencontainers.image.revision"}} {{index .Config.Labels "io.berth.cluster"}} {{index .Config.Labels "org.opencontainers.image.created"}}`, refs[0]).Output()
	if err != nil || !strings.HasPrefix(string(labels), commit+" "+b.cluster+" 20") {
		t.Fatalf("labels %q (%v), want revision %s, cluster %s (housekeeping collects it once dangling) and a creation time", labels, err, commit, b.cluster)
	}
	// A change in the tree marks the build dirty.
	if err := os.WriteFile(filepath.Join(src, "ctx/keep.txt"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := b.mustCLI("build", src, "-t", repo, "-q"); lastLine(out) != repo+":"+short+"-dirty" {
		t.Fatalf("dirty build tagged %q, want %s:%s-dirty", out, repo, short)
	}
	git(t, src, "checkout", "-q", "--", ".")

	// Test in the image: a passing suite, a failing one (exit code passed
	// through), and the context honoured .dockerignore.
	if out := b.mustCLI("test", repo+":stable", "--label", "io.berth.e2e="+token, "--", "-selftest"); !strings.Contains(out, "--- PASS: TestBase") {
		t.Fatalf("suite output:\n%s", out)
	}
	if out, code := b.cli("test", repo+":stable", "--label", "io.berth.e2e="+token, "--", "-selftest", "-fail"); code != 3 || !strings.Contains(out, "TestFailing") {
		t.Fatalf("failing suite: exit %d, want 3\n%s", code, out)
	}
	if out, code := b.cli("test", repo+":stable", "--", "-cat", "/ctx/secret.txt"); code != 4 {
		t.Fatalf("secret.txt reached the image (exit %d):\n%s", code, out)
	}
	if out := b.mustCLI("test", repo+":stable", "--", "-cat", "/ctx/keep.txt"); !strings.Contains(out, "kept") {
		t.Fatalf("keep.txt: %s", out)
	}
	if left := testContainers(t, token); left != "" {
		t.Fatalf("berth test left containers behind: %s", left)
	}

	// Push to the embedded registry (no REGISTRY: berth's own).
	pinned := lastLine(b.mustCLI("push", repo+":stable", "-q"))
	if !strings.HasPrefix(pinned, repo+"@sha256:") {
		t.Fatalf("push printed %q, want %s@sha256:…", pinned, repo)
	}
	digest1 := pinned[strings.Index(pinned, "@")+1:]

	// Promote the tested tag to production: same digest.
	prodRepo := prod + "/" + token + "/shipit"
	if got := lastLine(b.mustCLI("promote", repo+":stable", prod)); got != prodRepo+"@"+digest1 {
		t.Fatalf("promote printed %q, want %s@%s", got, prodRepo, digest1)
	}

	// Deploy from production by tag: pinned to the digest, following
	// the tag with automatic approval.
	host := token + ".shipit.test"
	doc := fmt.Sprintf(`x-berth:
  environment: production
services:
  web:
    image: %s:stable
    deploy:
      replicas: 2
    x-berth:
      routes:
        - host: %s
          port: 8080
      update: {follow: true, approval: auto, interval: 1s}
      deploy: {deadline: 40s}
`, prodRepo, host)
	b.deploy(stack, doc)
	svc := b.waitRunning(stack, "web", 2)
	if svc.ImageDigest != prodRepo+"@"+digest1 {
		t.Fatalf("revision pins %q, want %s@%s", svc.ImageDigest, prodRepo, digest1)
	}
	waitServing(t, b, host, "shipit v1")

	// A rebuild with a changed base layer, tested and promoted, rolls out
	// by itself.
	setVersion(t, src, "v2")
	b.mustCLI("build", src, "-t", repo, "--tag", "stable", "-q")
	b.mustCLI("test", repo+":stable", "--", "-selftest")
	digest2 := strings.SplitN(lastLine(b.mustCLI("push", repo+":stable", "-q")), "@", 2)[1]
	if digest2 == digest1 {
		t.Fatal("the rebuild kept the digest")
	}
	b.mustCLI("promote", repo+":stable", prod)
	waitFor(t, 90*time.Second, "the auto-update to v2", func() (bool, string) {
		st := b.status(stack).Services[0]
		done := st.Rollout != nil && st.Rollout.State == api.RolloutDone && st.ImageDigest == prodRepo+"@"+digest2
		return done, fmt.Sprintf("%s %+v", st.ImageDigest, st.Rollout)
	})
	waitServing(t, b, host, "shipit v2")
	evs, err := b.cl.Events(ctx, stack, 100)
	if err != nil {
		t.Fatal(err)
	}
	if !hasEvent(evs, "image.update", digest1, digest2) {
		t.Fatalf("no image.update event naming %s and %s: %+v", digest1, digest2, evs)
	}

	// A broken rebuild (its server exits at start) that is untested: the
	// tag moved, so promoting the tag is refused; promoting the digest is
	// the user's decision, and the auto-update rolls out and back.
	setVersion(t, src, "broken")
	b.mustCLI("build", src, "-t", repo, "--tag", "stable", "-q")
	digest3 := strings.SplitN(lastLine(b.mustCLI("push", repo+":stable", "-q")), "@", 2)[1]
	out, code := b.cli("promote", repo+":stable", prod)
	if code != 4 || !strings.Contains(out, "has not passed `berth test`") {
		t.Fatalf("promoting an untested tag: exit %d, want 4 (conflict)\n%s", code, out)
	}
	b.mustCLI("promote", repo+"@"+digest3, prodRepo+":stable")
	waitFor(t, 120*time.Second, "the broken update to roll back", func() (bool, string) {
		st := b.status(stack).Services[0]
		ok := st.Rollout != nil && st.Rollout.State == api.RolloutRolledBack && st.ImageDigest == prodRepo+"@"+digest2
		return ok, fmt.Sprintf("%s %+v", st.ImageDigest, st.Rollout)
	})
	waitServing(t, b, host, "shipit v2")
	// The rolled-back digest is not tried again.
	rev := b.status(stack).Services[0].Revision
	time.Sleep(4 * time.Second)
	if st := b.status(stack).Services[0]; st.Revision != rev || st.Rollout.State != api.RolloutRolledBack {
		t.Fatalf("the rolled-back digest was tried again: revision %d → %d, %+v", rev, st.Revision, st.Rollout)
	}
}

// testContainers lists containers `berth test` left (by its label).
func testContainers(t *testing.T, token string) string {
	t.Helper()
	out, err := exec.Command("docker", "ps", "-a", "--filter", "label=io.berth.e2e="+token, "--format", "{{.Names}}").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

func hasEvent(evs []api.Event, typ string, words ...string) bool {
	for _, e := range evs {
		if e.Type != typ {
			continue
		}
		all := true
		for _, w := range words {
			all = all && strings.Contains(e.Message, w)
		}
		if all {
			return true
		}
	}
	return false
}
