package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/volume"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/runtime/docker"
)

// TestGCCollectsOnlyBerthObjects deploys seven revisions of a service
// whose images berth owns, beside images, containers and a volume berth
// did not create (some labelled like another cluster's), and checks that
// `berth gc` removes exactly the images of the revisions past the newest
// five and berth's dangling image, that `berth df` accounts for them, and
// that named volumes go only when no revision references them and only
// with --volumes. Nothing foreign is touched.
func TestGCCollectsOnlyBerthObjects(t *testing.T) {
	t.Parallel()
	// Untagged images are spared while a build may still be making them:
	// 2 s here instead of the default 10 minutes.
	b := startBerth(t, "--config", writeConfig(t, "housekeeping: {dangling_min_age: 2s}\n"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cli := drv.Client()
	testLabel := fmt.Sprintf("gc-%d", os.Getpid())
	mine := map[string]string{"io.berth.test": testLabel}
	b.afterCleanup(func() { removeLabelled(t, "io.berth.test="+testLabel) })
	b.afterCleanup(func() { removeLabelled(t, api.LabelCluster+"="+b.cluster) })

	build := func(tag string, labels map[string]string) string {
		t.Helper()
		id, err := docker.BuildFrom(ctx, drv, tag, probeImage, labels)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	with := func(extra map[string]string) map[string]string {
		l := map[string]string{"io.berth.test": testLabel}
		for k, v := range extra {
			l[k] = v
		}
		return l
	}
	// Foreign: an image, a dangling one, one labelled as another
	// cluster's and made dangling, an exited "task" container of another
	// cluster, a created container, a volume.
	tag := fmt.Sprintf("berth-test/foreign:%s", testLabel)
	foreign := []string{
		build(tag, with(map[string]string{"v": "1"})),
		build(tag, with(map[string]string{"v": "2"})),
		build(tag+"-other", with(map[string]string{api.LabelCluster: "another-cluster", "v": "1"})),
	}
	build(tag+"-other", with(map[string]string{api.LabelCluster: "another-cluster", "v": "2"}))
	exited, err := cli.ContainerCreate(ctx, &container.Config{Image: probeImage, Cmd: []string{"-echo", "hi"},
		Labels: with(map[string]string{api.LabelCluster: "another-cluster", api.LabelTask: "gone"})}, &container.HostConfig{NetworkMode: "none"}, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.ContainerStart(ctx, exited.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	created, err := cli.ContainerCreate(ctx, &container.Config{Image: foreign[0], Labels: mine}, &container.HostConfig{NetworkMode: "none"}, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	vol, err := cli.VolumeCreate(ctx, volume.CreateOptions{Labels: mine})
	if err != nil {
		t.Fatal(err)
	}

	// berth's: seven revisions, each its own image built for this cluster.
	var revImages []string
	for i := 1; i <= 7; i++ {
		rtag := fmt.Sprintf("berth-test/gc:%s-%d", testLabel, i)
		revImages = append(revImages, build(rtag, map[string]string{api.LabelCluster: b.cluster, "rev": fmt.Sprint(i)}))
		b.deploy("gc", fmt.Sprintf(`
services:
  web:
    image: %s
    volumes: ["data:/data"]
volumes:
  data: {}
`, rtag))
	}
	b.waitRunning("gc", "web", 1)
	dtag := fmt.Sprintf("berth-test/gc:%s-dangling", testLabel)
	dangling := build(dtag, map[string]string{api.LabelCluster: b.cluster, "d": "1"})
	build(dtag, map[string]string{api.LabelCluster: b.cluster, "d": "2"}) // the first is dangling now
	// Past dangling_min_age (image times have 1 s resolution).
	time.Sleep(3 * time.Second)

	gc := func(args ...string) api.GCReport {
		t.Helper()
		var rep api.GCReport
		out := b.mustCLI(append([]string{"gc", "--json"}, args...)...)
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("gc output %q: %v", out, err)
		}
		return rep
	}
	idsOf := func(rep api.GCReport, kind string) string {
		var ids []string
		for _, o := range rep.Objects {
			if o.Kind == kind {
				ids = append(ids, o.ID)
			}
		}
		sort.Strings(ids)
		return strings.Join(ids, ",")
	}
	wantImages := []string{revImages[0], revImages[1], dangling}
	sort.Strings(wantImages)

	plan := gc("--dry-run")
	if got := idsOf(plan, api.ObjectImage); got != strings.Join(wantImages, ",") {
		t.Fatalf("dry run would collect images %s, want %s\n%+v", got, strings.Join(wantImages, ","), plan)
	}
	if plan.Freed <= 0 || !plan.DryRun {
		t.Errorf("dry run report %+v", plan)
	}
	if _, err := cli.ImageInspect(ctx, revImages[0]); err != nil {
		t.Fatalf("dry run removed an image: %v", err)
	}
	var du api.DiskUsage
	if err := json.Unmarshal([]byte(b.mustCLI("df", "--json")), &du); err != nil {
		t.Fatal(err)
	}
	if len(du.Stacks) != 1 || du.Stacks[0].Stack != "gc" || du.Stacks[0].Images <= 0 || du.Stacks[0].Reclaim <= 0 || du.Reclaim != plan.Freed {
		t.Errorf("df %+v (dry run frees %d)", du, plan.Freed)
	}
	if out := b.mustCLI("df"); !strings.Contains(out, "gc") || !strings.Contains(out, "reclaimable") {
		t.Errorf("berth df:\n%s", out)
	}

	rep := gc()
	if got := idsOf(rep, api.ObjectImage); got != strings.Join(wantImages, ",") {
		t.Fatalf("gc collected images %s", got)
	}
	for _, o := range rep.Objects {
		if o.Error != "" {
			t.Errorf("not removed: %+v", o)
		}
	}
	for i, id := range revImages {
		_, err := cli.ImageInspect(ctx, id)
		if gone := err != nil; gone != (i < 2) {
			t.Errorf("image of revision %d: gone=%v", i+1, gone)
		}
	}
	if _, err := cli.ImageInspect(ctx, dangling); err == nil {
		t.Errorf("berth's dangling image is still there")
	}
	if got := idsOf(gc("--volumes", "--dry-run"), api.ObjectVolume); got != "" {
		t.Fatalf("a referenced volume would be collected: %s", got)
	}

	// Once the stack is gone, its volume is unreferenced: only --volumes
	// collects it.
	b.mustCLI("rm", "gc")
	waitFor(t, 60*time.Second, "stack containers gone", func() (bool, string) { return len(b.containers("gc")) == 0, "" })
	if got := idsOf(gc(), api.ObjectVolume); got != "" {
		t.Fatalf("gc without --volumes collected %s", got)
	}
	if got := idsOf(gc("--volumes"), api.ObjectVolume); got != "gc_data" {
		t.Fatalf("gc --volumes collected volumes %q, want gc_data", got)
	}

	// Every foreign object is still there.
	for _, id := range foreign {
		if _, err := cli.ImageInspect(ctx, id); err != nil {
			t.Errorf("foreign image %s was removed: %v", id, err)
		}
	}
	for _, id := range []string{exited.ID, created.ID} {
		if _, err := cli.ContainerInspect(ctx, id); err != nil {
			t.Errorf("foreign container %s was removed: %v", id, err)
		}
	}
	if _, err := cli.VolumeInspect(ctx, vol.Name); err != nil {
		t.Errorf("foreign volume %s was removed: %v", vol.Name, err)
	}
	if _, err := cli.ImageInspect(ctx, probeImage); err != nil {
		t.Errorf("the test image was removed: %v", err)
	}
}

// removeLabelled removes the containers, images and volumes carrying a
// label (key=value).
func removeLabelled(t *testing.T, label string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cli := drv.Client()
	f := filters.NewArgs(filters.Arg("label", label))
	cs, _ := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	for _, c := range cs {
		_ = cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
	}
	f2 := filters.NewArgs(filters.Arg("label", label), filters.Arg("dangling", "false"))
	for _, ff := range []filters.Args{f2, filters.NewArgs(filters.Arg("label", label), filters.Arg("dangling", "true"))} {
		is, _ := cli.ImageList(ctx, image.ListOptions{Filters: ff})
		for _, i := range is {
			if _, err := cli.ImageRemove(ctx, i.ID, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
				t.Logf("cleanup: remove image %s: %v", i.ID, err)
			}
		}
	}
	vs, _ := cli.VolumeList(ctx, volume.ListOptions{Filters: f})
	for _, v := range vs.Volumes {
		_ = cli.VolumeRemove(ctx, v.Name, true)
	}
}

// TestAutomaticCollectionOverBudget: with a budget berth's objects
// exceed, the housekeeper collects by itself (berth's dangling image
// goes, a foreign dangling image stays), records disk.over_budget since
// the images in use still exceed it, and the alert reaches the webhook.
func TestAutomaticCollectionOverBudget(t *testing.T) {
	t.Parallel()
	hook := newHookReceiver(t)
	cfg := writeConfig(t, fmt.Sprintf(`
housekeeping: {budget: 1k, interval: 1s, disk_threshold: -1, dangling_min_age: 20s}
alerts:
  notifiers:
    - {name: test, type: webhook, url: %q}
`, hook.srv.URL))
	b := startBerth(t, "--config", cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	testLabel := fmt.Sprintf("auto-%d", os.Getpid())
	b.afterCleanup(func() { removeLabelled(t, "io.berth.test="+testLabel) })
	b.afterCleanup(func() { removeLabelled(t, api.LabelCluster+"="+b.cluster) })
	tag := "berth-test/auto:" + testLabel
	own, err := docker.BuildFrom(ctx, drv, tag, probeImage, map[string]string{api.LabelCluster: b.cluster, "v": "1"})
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := docker.BuildFrom(ctx, drv, tag+"-foreign", probeImage, map[string]string{"io.berth.test": testLabel, "v": "1"})
	if err != nil {
		t.Fatal(err)
	}
	// Retag both so that the first builds are dangling.
	if _, err := docker.BuildFrom(ctx, drv, tag, probeImage, map[string]string{api.LabelCluster: b.cluster, "v": "2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := docker.BuildFrom(ctx, drv, tag+"-foreign", probeImage, map[string]string{"io.berth.test": testLabel, "v": "2"}); err != nil {
		t.Fatal(err)
	}
	b.deploy("auto", fmt.Sprintf("services:\n  web:\n    image: %s\n", tag))

	fired := hook.wait(t, "disk_over_budget", api.AlertFiring, 2*time.Minute)
	if !strings.Contains(fired.Alert.LastEvent.Message, "over the budget of 1KiB") {
		t.Errorf("alert %+v", fired.Alert)
	}
	waitFor(t, 2*time.Minute, "berth's dangling image collected", func() (bool, string) {
		_, err := drv.Client().ImageInspect(ctx, own)
		return err != nil, "still there"
	})
	if _, err := drv.Client().ImageInspect(ctx, foreign); err != nil {
		t.Errorf("the foreign dangling image was collected: %v", err)
	}
	b.waitRunning("auto", "web", 1)
}
