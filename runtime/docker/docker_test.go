package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"

	"github.com/berth-dev/berth/runtime"
)

func TestInfo(t *testing.T) {
	e := newEnv(t)
	info, err := e.d.Info(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Version == "" || info.APIVersion == "" || info.NanoCPUs < 1e9 || info.Memory <= 0 || info.OS != "linux" {
		t.Fatalf("info = %+v", info)
	}
}

// TestContainerLifecycle creates a container from a full spec, checks the
// engine got every setting, and runs it through start, inspect, list,
// stop, kill and remove.
func TestContainerLifecycle(t *testing.T) {
	e := newEnv(t)
	net := e.name("net")
	if _, err := e.d.EnsureNetwork(e.ctx, net, e.labels, false); err != nil {
		t.Fatal(err)
	}
	vol := e.name("data")
	if err := e.d.EnsureVolume(e.ctx, runtime.VolumeSpec{Name: vol, Labels: e.labels}); err != nil {
		t.Fatal(err)
	}
	spec := e.spec("web")
	spec.Env = []string{"TERM_EXIT=7"}
	spec.User = "65534:65534"
	spec.WorkingDir = "/"
	spec.Hostname = "web-host"
	spec.Network, spec.Aliases = net, []string{"web"}
	spec.Mounts = []runtime.Mount{
		{Type: "volume", Source: vol, Target: "/data"},
		{Type: "tmpfs", Target: "/scratch"},
	}
	spec.Tmpfs = map[string]string{"/run/secrets": "rw,noexec,nosuid,size=1m"}
	spec.Memory, spec.NanoCPUs, spec.CPUShares, spec.PidsLimit = 64<<20, 5e8, 512, 64
	spec.CapDrop, spec.SecurityOpt, spec.ReadOnly = []string{"ALL"}, []string{"no-new-privileges"}, true
	spec.Sysctls = map[string]string{"net.ipv4.ip_unprivileged_port_start": "0"}
	spec.Ulimits = []runtime.Ulimit{{Name: "nofile", Soft: 1024, Hard: 2048}}
	spec.StopSignal, spec.StopTimeout = "SIGTERM", 2500*time.Millisecond
	spec.LogMaxSize, spec.LogMaxFiles = "1m", 2
	id := e.create(spec)

	raw, err := e.d.Client().ContainerInspect(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	hc, cfg := raw.HostConfig, raw.Config
	checks := []struct {
		what string
		ok   bool
	}{
		{"env", slices.Contains(cfg.Env, "TERM_EXIT=7")},
		{"user", cfg.User == "65534:65534"},
		{"hostname", cfg.Hostname == "web-host"},
		{"stop signal", cfg.StopSignal == "SIGTERM"},
		{"stop timeout rounded up", cfg.StopTimeout != nil && *cfg.StopTimeout == 3},
		{"labels", cfg.Labels[labelCluster] == e.cluster},
		{"network mode", string(hc.NetworkMode) == net},
		{"memory", hc.Memory == 64<<20 && hc.MemorySwap == 64<<20},
		{"cpus", hc.NanoCPUs == 5e8 && hc.CPUShares == 512},
		{"pids", hc.PidsLimit != nil && *hc.PidsLimit == 64},
		{"ulimits", len(hc.Ulimits) == 1 && hc.Ulimits[0].Name == "nofile" && hc.Ulimits[0].Hard == 2048},
		{"caps", slices.Equal(hc.CapDrop, []string{"ALL"}) && len(hc.CapAdd) == 0},
		{"security opt", slices.Contains(hc.SecurityOpt, "no-new-privileges")},
		{"read-only", hc.ReadonlyRootfs},
		{"not privileged", !hc.Privileged},
		{"sysctls", hc.Sysctls["net.ipv4.ip_unprivileged_port_start"] == "0"},
		{"tmpfs", hc.Tmpfs["/run/secrets"] == "rw,noexec,nosuid,size=1m"},
		{"mounts", len(hc.Mounts) == 2 && hc.Mounts[0].Source == vol && string(hc.Mounts[1].Type) == "tmpfs"},
		{"restart policy", hc.RestartPolicy.Name == "no"},
		{"log config", hc.LogConfig.Type == "json-file" && hc.LogConfig.Config["max-size"] == "1m" && hc.LogConfig.Config["max-file"] == "2"},
		{"no published ports", len(hc.PortBindings) == 0 && !hc.PublishAllPorts},
		{"aliases", raw.NetworkSettings.Networks[net] != nil && slices.Contains(raw.NetworkSettings.Networks[net].Aliases, "web")},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("create did not pass on %s", c.what)
		}
	}

	if c := e.inspect(id); c.State != runtime.StateCreated || c.Image != testImageID || c.Name != spec.Name {
		t.Fatalf("created container = %+v", c)
	}
	if err := e.d.Start(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	c := e.inspect(id)
	if !c.Running() || c.Pid == 0 || c.StartedAt.IsZero() || c.Addresses[net] == "" || c.Labels[labelCluster] != e.cluster {
		t.Fatalf("running container = %+v", c)
	}
	if c.LogDriver != "json-file" || !strings.HasSuffix(c.LogPath, id+"-json.log") {
		t.Fatalf("log driver %q at %q, want json-file at …/%s-json.log", c.LogDriver, c.LogPath, id)
	}
	cs, err := e.d.List(e.ctx, e.labels)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].ID != id || cs[0].Name != spec.Name || cs[0].State != runtime.StateRunning ||
		cs[0].Image != testImageID || cs[0].Addresses[net] != c.Addresses[net] {
		t.Fatalf("list = %+v, want the running container %+v", cs, c)
	}

	e.ready(id)
	waited := make(chan int, 1)
	go func() { code, _ := e.d.Wait(e.ctx, id); waited <- code }()
	if err := e.d.Stop(e.ctx, id, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if code := <-waited; code != 7 {
		t.Fatalf("wait = %d, want 7 (TERM_EXIT)", code)
	}
	c = e.inspect(id)
	if c.State != runtime.StateExited || c.ExitCode != 7 || c.FinishedAt.Before(c.StartedAt) {
		t.Fatalf("stopped container = %+v", c)
	}
	if err := e.d.Stop(e.ctx, id, time.Second); err != nil {
		t.Fatalf("stopping a stopped container: %v", err)
	}

	// Kill ignores the handler.
	if err := e.d.Start(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := e.d.Kill(e.ctx, id, "KILL"); err != nil {
		t.Fatal(err)
	}
	if code := e.wait(id); code != 137 {
		t.Fatalf("exit code after KILL = %d, want 137", code)
	}

	if err := e.d.Remove(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Inspect(e.ctx, id); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("inspect removed container: %v, want ErrNotFound", err)
	}
	if err := e.d.Remove(e.ctx, id); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("remove removed container: %v, want ErrNotFound", err)
	}
	if vs, err := e.d.ListVolumes(e.ctx, e.labels); err != nil || len(vs) != 1 || vs[0].Name != vol {
		t.Fatalf("named volume after container removal: %v %v", vs, err)
	}
}

func TestRemoveRunning(t *testing.T) {
	e := newEnv(t)
	id := e.run(e.spec("victim"))
	if err := e.d.Remove(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Inspect(e.ctx, id); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("inspect: %v, want ErrNotFound", err)
	}
}

func TestListByLabel(t *testing.T) {
	e := newEnv(t)
	a := e.spec("a", "-exit", "3")
	a.Labels = e.withLabels("io.berth.service", "a")
	b := e.spec("b")
	b.Labels = e.withLabels("io.berth.service", "b")
	aID, bID := e.run(a), e.create(b)
	if code := e.wait(aID); code != 3 {
		t.Fatalf("exit code %d, want 3", code)
	}

	all, err := e.d.List(e.ctx, e.labels)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 {
		t.Fatalf("list by cluster: %d containers, want 2", len(all))
	}
	onlyA, err := e.d.List(e.ctx, e.withLabels("io.berth.service", "a"))
	if err != nil {
		t.Fatal(err)
	}
	if len(onlyA) != 1 || onlyA[0].ID != aID || onlyA[0].State != runtime.StateExited || onlyA[0].ExitCode != 3 {
		t.Fatalf("list service a = %+v", onlyA)
	}
	onlyB, err := e.d.List(e.ctx, map[string]string{labelCluster: e.cluster, "io.berth.service": "b"})
	if err != nil {
		t.Fatal(err)
	}
	if len(onlyB) != 1 || onlyB[0].ID != bID || onlyB[0].State != runtime.StateCreated {
		t.Fatalf("list service b = %+v", onlyB)
	}
	none, err := e.d.List(e.ctx, map[string]string{labelCluster: e.cluster + "-other"})
	if err != nil || len(none) != 0 {
		t.Fatalf("list of another cluster = %v, %v", none, err)
	}
}

func TestEvents(t *testing.T) {
	e := newEnv(t)
	events := e.subscribe()
	id := e.run(e.spec("dies", "-exit", "3"))
	events.waitFor(id, runtime.EventCreate, nil)
	events.waitFor(id, runtime.EventStart, nil)
	die := events.waitFor(id, runtime.EventDie, nil)
	if die.ExitCode != 3 || die.Labels[labelCluster] != e.cluster || die.Time.IsZero() {
		t.Fatalf("die event = %+v", die)
	}
	if err := e.d.Remove(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	events.waitFor(id, runtime.EventDestroy, nil)
}

func TestEventsEndWithContext(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(e.ctx)
	events, errs := e.d.Events(ctx, e.labels)
	cancel()
	select {
	case _, open := <-events:
		if open {
			t.Fatal("an event arrived for a test that created nothing")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("event channel still open 10s after its ctx ended")
	}
	select {
	case err := <-errs:
		t.Fatalf("cancelling the subscription sent an error: %v", err)
	default:
	}
}

func TestOOMKilled(t *testing.T) {
	e := newEnv(t)
	events := e.subscribe()
	spec := e.spec("hog", "-alloc", "64")
	spec.Memory = 8 << 20
	id := e.run(spec)
	if code := e.wait(id); code != 137 {
		t.Fatalf("exit code %d, want 137", code)
	}
	events.waitFor(id, runtime.EventDie, func(ev runtime.Event) bool { return ev.ExitCode == 137 })
	// Under load the engine may send oom after die, and then record
	// OOMKilled false; the driver remembers the event for Inspect.
	events.waitFor(id, runtime.EventOOM, nil)
	if c := e.inspect(id); !c.OOMKilled {
		t.Fatalf("container = %+v, want OOMKilled", c)
	}
}

func TestHealthEvents(t *testing.T) {
	e := newEnv(t)
	events := e.subscribe()
	health := &runtime.HealthConfig{Test: []string{"CMD", "/app", "-health"}, Interval: 200 * time.Millisecond, Timeout: 5 * time.Second, Retries: 1}
	good := e.spec("good")
	good.Health = health
	bad := e.spec("bad")
	bad.Health = health
	bad.Env = []string{"HEALTH_EXIT=1"}
	hung := e.spec("hung")
	h := *health
	h.Timeout = 300 * time.Millisecond
	hung.Health = &h
	hung.Env = []string{"HEALTH_SLEEP=5000"}
	goodID, badID, hungID := e.run(good), e.run(bad), e.run(hung)

	if ev := events.waitFor(goodID, runtime.EventHealth, nil); ev.Health != "healthy" {
		t.Fatalf("health event of the healthy container = %+v", ev)
	}
	if ev := events.waitFor(badID, runtime.EventHealth, nil); ev.Health != "unhealthy" {
		t.Fatalf("health event of the unhealthy container = %+v", ev)
	}
	if ev := events.waitFor(hungID, runtime.EventHealth, nil); ev.Health != "unhealthy" {
		t.Fatalf("health event of the container whose check hangs = %+v", ev)
	}
	if c := e.inspect(goodID); c.Health != "healthy" {
		t.Fatalf("inspect health = %q, want healthy", c.Health)
	}
	// The check's own answer, and no answer at all, are told apart.
	lastCheck := func(id string) runtime.HealthResult {
		t.Helper()
		c := e.inspect(id)
		if len(c.HealthLog) == 0 {
			t.Fatalf("inspect of %s: no health check results", short(id))
		}
		r := c.HealthLog[len(c.HealthLog)-1]
		if r.Start.IsZero() || r.End.Before(r.Start) {
			t.Fatalf("health check result without its times: %+v", r)
		}
		return r
	}
	if r := lastCheck(badID); r.ExitCode != 1 {
		t.Errorf("the failing check's result = %+v, want exit code 1", r)
	}
	if r := lastCheck(hungID); r.ExitCode != runtime.NoVerdict || !strings.Contains(r.Output, "timeout") {
		t.Errorf("the hung check's result = %+v, want no verdict", r)
	}
	cs, err := e.d.List(e.ctx, e.labels)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		want := map[string]string{goodID: "healthy", badID: "unhealthy", hungID: "unhealthy"}[c.ID]
		if c.Health != want {
			t.Errorf("list health of %s = %q, want %q", c.Name, c.Health, want)
		}
	}
}

func TestLogs(t *testing.T) {
	e := newEnv(t)
	id := e.run(e.spec("talker", "-exit", "0"))
	e.wait(id)
	var stdout, stderr bytes.Buffer
	if err := e.d.Logs(e.ctx, id, runtime.LogOptions{}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if stdout.String() != "hello stdout\n" || stderr.String() != "hello stderr\n" {
		t.Fatalf("stdout %q, stderr %q", stdout.String(), stderr.String())
	}

	var later bytes.Buffer
	if err := e.d.Logs(e.ctx, id, runtime.LogOptions{Since: time.Now().Add(time.Hour)}, &later, &later); err != nil || later.Len() != 0 {
		t.Fatalf("logs since an hour from now: %q, %v", later.String(), err)
	}

	// Following returns when the container stops.
	id = e.run(e.spec("follow"))
	e.ready(id)
	done := make(chan error, 1)
	var out bytes.Buffer
	go func() { done <- e.d.Logs(e.ctx, id, runtime.LogOptions{Follow: true}, &out, nil) }()
	if err := e.d.Stop(e.ctx, id, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil || !strings.Contains(out.String(), "hello stdout") {
			t.Fatalf("follow: %v, output %q", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("following logs did not end when the container stopped")
	}
}

func TestNameConflict(t *testing.T) {
	e := newEnv(t)
	spec := e.spec("twice")
	e.create(spec)
	_, err := e.d.Create(e.ctx, spec)
	if !errors.Is(err, runtime.ErrConflict) || !strings.HasPrefix(err.Error(), "create container "+spec.Name+": ") {
		t.Fatalf("second create: %v, want ErrConflict prefixed with the operation", err)
	}
}

func TestNetworkEnsure(t *testing.T) {
	e := newEnv(t)
	name := e.name("net")
	id, err := e.d.EnsureNetwork(e.ctx, name, e.labels, true)
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.d.EnsureNetwork(e.ctx, name, e.labels, true)
	if err != nil || again != id {
		t.Fatalf("second ensure = %s, %v; want %s", again, err, id)
	}
	raw, err := e.d.Client().NetworkInspect(e.ctx, id, network.InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if raw.Driver != "bridge" || !raw.Internal {
		t.Fatalf("network driver %q internal %v, want an internal bridge", raw.Driver, raw.Internal)
	}
	// A network whose labels lack one we ask for is not ours.
	_, err = e.d.EnsureNetwork(e.ctx, name, e.withLabels("io.berth.stack", "other"), true)
	if !errors.Is(err, runtime.ErrConflict) || !strings.Contains(err.Error(), "network "+name+" exists and was not created by this berth cluster") {
		t.Fatalf("ensure over a foreign network: %v, want ErrConflict", err)
	}
	ns, err := e.d.ListNetworks(e.ctx, e.labels)
	if err != nil || len(ns) != 1 || ns[0].ID != id || ns[0].Name != name {
		t.Fatalf("list networks = %+v, %v", ns, err)
	}
	if err := e.d.RemoveNetwork(e.ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := e.d.RemoveNetwork(e.ctx, name); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("remove a removed network: %v, want ErrNotFound", err)
	}
}

func TestVolumeEnsure(t *testing.T) {
	e := newEnv(t)
	name := e.name("vol")
	v := runtime.VolumeSpec{Name: name, Labels: e.labels}
	if err := e.d.EnsureVolume(e.ctx, v); err != nil {
		t.Fatal(err)
	}
	if err := e.d.EnsureVolume(e.ctx, v); err != nil {
		t.Fatalf("second ensure: %v", err)
	}
	err := e.d.EnsureVolume(e.ctx, runtime.VolumeSpec{Name: name, Labels: e.withLabels("io.berth.stack", "other")})
	if !errors.Is(err, runtime.ErrConflict) || !strings.Contains(err.Error(), "volume "+name+" exists and was not created by this berth cluster") {
		t.Fatalf("ensure over a foreign volume: %v, want ErrConflict", err)
	}
	vs, err := e.d.ListVolumes(e.ctx, e.labels)
	if err != nil || len(vs) != 1 || vs[0].Name != name || vs[0].Labels[labelCluster] != e.cluster {
		t.Fatalf("list volumes = %+v, %v", vs, err)
	}

	// A volume in use, even by a stopped container, stays.
	spec := e.spec("user")
	spec.Mounts = []runtime.Mount{{Type: "volume", Source: name, Target: "/data"}}
	id := e.create(spec)
	if err := e.d.RemoveVolume(e.ctx, name); !errors.Is(err, runtime.ErrConflict) {
		t.Fatalf("remove a volume in use: %v, want ErrConflict", err)
	}
	if err := e.d.Remove(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := e.d.RemoveVolume(e.ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := e.d.RemoveVolume(e.ctx, name); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("remove a removed volume: %v, want ErrNotFound", err)
	}
}

func TestImageInspect(t *testing.T) {
	e := newEnv(t)
	img, err := e.d.ImageInspect(e.ctx, testImage)
	if err != nil {
		t.Fatal(err)
	}
	if img.ID != testImageID || !slices.Contains(img.RepoTags, testImage) || img.Created.IsZero() || img.Size <= 0 {
		t.Fatalf("image = %+v", img)
	}

	missing := "berth-test/runtime:missing-" + randomID()
	_, err = e.d.ImageInspect(e.ctx, missing)
	want := "image " + missing + " not found on this engine: build it (berth build / docker build) or push it to a registry berth can pull from"
	if !errors.Is(err, runtime.ErrNotFound) || err.Error() != want {
		t.Fatalf("inspect a missing image: %v, want ErrNotFound: %s", err, want)
	}
	spec := e.spec("nothing")
	spec.Image = missing
	if _, err := e.d.Create(e.ctx, spec); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("create from a missing image: %v, want ErrNotFound", err)
	}
}

func TestBuildScratchImage(t *testing.T) {
	e := newEnv(t)
	tag := "berth-test/runtime:build-" + randomID()
	id, err := BuildScratchImage(e.ctx, e.d, tag, testBinary, map[string]string{labelTest: "1", "extra": "x"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := e.d.Client().ImageRemove(ctx, id, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
			t.Errorf("remove %s: %v", tag, err)
		}
	})
	raw, err := e.d.Client().ImageInspect(e.ctx, tag)
	if err != nil {
		t.Fatal(err)
	}
	if raw.ID != id || !slices.Equal(raw.Config.Entrypoint, []string{"/app"}) || raw.Config.Labels["extra"] != "x" {
		t.Fatalf("image %s: entrypoint %v, labels %v", raw.ID, raw.Config.Entrypoint, raw.Config.Labels)
	}

	if _, err := BuildScratchImage(e.ctx, e.d, tag, filepath.Join(t.TempDir(), "missing"), nil, nil); err == nil {
		t.Fatal("built from a missing binary")
	}
	cancelled, cancel := context.WithCancel(e.ctx)
	cancel()
	if _, err := BuildScratchImage(cancelled, e.d, tag+"-x", testBinary, nil, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("build with a cancelled ctx: %v, want context.Canceled", err)
	}
}

// A network name created twice (engine 20.10's duplicate check is not
// atomic) is ambiguous to every call by name: ensure keeps the oldest of
// ours and removes the other.
func TestNetworkEnsureHealsDuplicateName(t *testing.T) {
	e := newEnv(t)
	name := e.name("dup")
	var ids []string
	for i := 0; i < 2; i++ {
		// The moby client always asks old engines to check duplicates;
		// the raw API lets the test make the duplicate the race makes.
		body, _ := json.Marshal(map[string]any{"Name": name, "CheckDuplicate": false, "Labels": e.labels})
		req, _ := http.NewRequestWithContext(e.ctx, http.MethodPost, "http://engine/v1.41/networks/create", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		hc := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", "/var/run/docker.sock")
		}}}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("raw engine API: %v", err)
		}
		var out struct{ ID string }
		_ = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("raw network create: %s", resp.Status)
		}
		ids = append(ids, out.ID)
		time.Sleep(10 * time.Millisecond)
	}
	id, err := e.d.EnsureNetwork(e.ctx, name, e.labels, false)
	if err != nil || id != ids[0] {
		t.Fatalf("ensure over a duplicate name = %s, %v; want the oldest, %s", id, err, ids[0])
	}
	ns, err := e.d.ListNetworks(e.ctx, e.labels)
	if err != nil || len(ns) != 1 || ns[0].ID != ids[0] {
		t.Fatalf("networks after ensure = %+v, %v; want only %s", ns, err, ids[0])
	}
	if err := e.d.RemoveNetwork(e.ctx, id); err != nil {
		t.Fatal(err)
	}
}

// Engine 20.10 refuses a disk usage call while another runs; concurrent
// callers (housekeeping, berth df, another berth) all get their answer.
func TestDiskUsageConcurrent(t *testing.T) {
	e := newEnv(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			_, err := e.d.DiskUsage(e.ctx)
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent disk usage: %v", err)
		}
	}
}
