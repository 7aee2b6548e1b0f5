package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
)

// TestAutoUpdateApproval: two services follow one tag of berth's own
// registry, checked only every 10 minutes, so only the registry's push
// notification can move them in time. On a push, the one with approval
// auto rolls out; the one with approval required shows the update as
// pending in berth status and rolls out on berth update approve.
func TestAutoUpdateApproval(t *testing.T) {
	t.Parallel()
	token := fmt.Sprintf("e2e%d%d", os.Getpid(), time.Now().UnixNano()%100000)
	// Registered first, so it runs after the cluster's containers are gone.
	removeImages(t, token)
	b := startBerth(t)
	reg, err := b.cl.Registry(context.Background())
	if err != nil || reg.Addr == "" {
		t.Fatalf("registry: %v %+v", err, reg)
	}
	repo := reg.Addr + "/" + token + "/shipit"
	stack := "u" + token
	src := appRepo(t, "v1")
	b.mustCLI("build", src, "-t", repo, "--tag", "stable", "-q")
	d1 := lastLine(b.mustCLI("push", repo+":stable", "-q"))
	b.deploy(stack, fmt.Sprintf(`services:
  auto:
    image: %[1]s:stable
    x-berth:
      update: {follow: true, approval: auto, interval: 10m}
  held:
    image: %[1]s:stable
    x-berth:
      update: {follow: true, approval: required, interval: 10m}
`, repo))
	for _, s := range []string{"auto", "held"} {
		if got := b.waitRunning(stack, s, 1).ImageDigest; got != d1 {
			t.Fatalf("%s runs %q, want %s", s, got, d1)
		}
	}

	setVersion(t, src, "v2")
	b.mustCLI("build", src, "-t", repo, "--tag", "stable", "-q")
	d2 := lastLine(b.mustCLI("push", repo+":stable", "-q"))
	service := func(name string) api.ServiceStatus {
		for _, s := range b.status(stack).Services {
			if s.Name == name {
				return s
			}
		}
		t.Fatalf("no service %s", name)
		return api.ServiceStatus{}
	}
	waitFor(t, 60*time.Second, "auto to roll out the pushed digest", func() (bool, string) {
		s := service("auto")
		return s.ImageDigest == d2 && s.Rollout != nil && s.Rollout.State == api.RolloutDone, fmt.Sprintf("%s %+v", s.ImageDigest, s.Rollout)
	})
	waitFor(t, 30*time.Second, "held to record the update", func() (bool, string) {
		s := service("held")
		return s.PendingUpdate != nil && s.PendingUpdate.To == d2, fmt.Sprintf("%+v", s.PendingUpdate)
	})
	held := service("held")
	if held.ImageDigest != d1 || held.Revision != 1 {
		t.Fatalf("held moved without approval: %s revision %d", held.ImageDigest, held.Revision)
	}
	if out := b.mustCLI("status", stack); !strings.Contains(out, "pending: berth update approve "+stack+" held") {
		t.Fatalf("berth status does not show the pending update:\n%s", out)
	}
	evs, _ := b.cl.Events(context.Background(), stack, 100)
	if !hasEvent(evs, "image.update.pending", d1, d2) || !hasEvent(evs, "image.update", d1, d2) {
		t.Fatalf("events lack the updates with both digests: %+v", evs)
	}

	b.mustCLI("update", "approve", stack, "held")
	waitFor(t, 60*time.Second, "held to roll out after approval", func() (bool, string) {
		s := service("held")
		return s.ImageDigest == d2 && s.PendingUpdate == nil && s.Rollout != nil && s.Rollout.State == api.RolloutDone, fmt.Sprintf("%s %+v", s.ImageDigest, s.Rollout)
	})
	if out, code := b.cli("update", "approve", stack, "held"); code != 4 || !strings.Contains(out, "no update waiting") {
		t.Fatalf("second approve: exit %d\n%s", code, out)
	}
}
