package fake

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/runtime"
)

var ctx = context.Background()

// newDriver returns an engine with image "img:1" and a subscription to
// the events of containers labelled cluster=c1.
func newDriver(t *testing.T) (*Driver, *events) {
	t.Helper()
	d := New()
	d.AddImage("img:1", "sha256:img1")
	return d, subscribe(t, d, map[string]string{"cluster": "c1"})
}

type events struct {
	t    *testing.T
	ch   <-chan runtime.Event
	errs <-chan error
}

func subscribe(t *testing.T, d *Driver, labels map[string]string) *events {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	ch, errs := d.Events(ctx, labels)
	return &events{t: t, ch: ch, errs: errs}
}

// next returns the actions of the next n events, failing if they do not come.
func (e *events) next(n int) []string {
	e.t.Helper()
	var out []string
	for len(out) < n {
		select {
		case ev, ok := <-e.ch:
			if !ok {
				e.t.Fatalf("event stream closed after %v", out)
			}
			a := ev.Action
			switch ev.Action {
			case runtime.EventDie:
				a = fmt.Sprintf("die(%d)", ev.ExitCode)
			case runtime.EventHealth:
				a = "health(" + ev.Health + ")"
			}
			out = append(out, a)
		case <-time.After(time.Second):
			e.t.Fatalf("got events %v, want %d", out, n)
		}
	}
	return out
}

// none fails if an event is pending.
func (e *events) none() {
	e.t.Helper()
	select {
	case ev := <-e.ch:
		e.t.Fatalf("unexpected event %+v", ev)
	default:
	}
}

func expect(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("events %v, want %v", got, want)
	}
}

func spec(name string, labels ...string) runtime.ContainerSpec {
	s := runtime.ContainerSpec{Name: name, Image: "img:1", Network: "net", Labels: map[string]string{"cluster": "c1"}}
	for i := 0; i+1 < len(labels); i += 2 {
		s.Labels[labels[i]] = labels[i+1]
	}
	return s
}

func run(t *testing.T, d *Driver, s runtime.ContainerSpec) string {
	t.Helper()
	id, err := d.Create(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	return id
}

func inspect(t *testing.T, d *Driver, id string) runtime.Container {
	t.Helper()
	c, err := d.Inspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	d, ev := newDriver(t)
	id, err := d.Create(ctx, spec("web-1"))
	if err != nil {
		t.Fatal(err)
	}
	if c := inspect(t, d, id); c.State != runtime.StateCreated || c.Image != "sha256:img1" || c.Addresses["net"] != "" {
		t.Fatalf("created = %+v", c)
	}
	if code, err := d.Wait(ctx, id); err != nil || code != 0 {
		t.Fatalf("wait on a created container = %d, %v; want at once 0", code, err)
	}
	if err := d.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	c := inspect(t, d, id)
	if !c.Running() || c.Pid == 0 || c.StartedAt.IsZero() || c.Addresses["net"] == "" || c.Labels["cluster"] != "c1" {
		t.Fatalf("running = %+v", c)
	}
	waited := make(chan int)
	go func() { code, _ := d.Wait(ctx, id); waited <- code }()
	if err := d.Stop(ctx, id, time.Second); err != nil {
		t.Fatal(err)
	}
	if code := <-waited; code != 143 {
		t.Fatalf("wait = %d, want 143", code)
	}
	if c := inspect(t, d, id); c.State != runtime.StateExited || c.ExitCode != 143 || c.Pid != 0 || c.FinishedAt.IsZero() {
		t.Fatalf("stopped = %+v", c)
	}
	if err := d.Stop(ctx, id, time.Second); err != nil {
		t.Fatalf("stop a stopped container: %v", err)
	}
	if err := d.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Inspect(ctx, id); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("inspect removed: %v", err)
	}
	if err := d.Remove(ctx, id); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("remove removed: %v", err)
	}
	expect(t, ev.next(6), "create", "start", "kill", "die(143)", "stop", "destroy")
}

func TestCreateErrors(t *testing.T) {
	t.Parallel()
	d, _ := newDriver(t)
	if _, err := d.Create(ctx, spec("web-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Create(ctx, spec("web-1")); !errors.Is(err, runtime.ErrConflict) {
		t.Fatalf("same name: %v, want ErrConflict", err)
	}
	s := spec("web-2")
	s.Image = "img:missing"
	if _, err := d.Create(ctx, s); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("missing image: %v, want ErrNotFound", err)
	}
	_, err := d.ImageInspect(ctx, "img:missing")
	if !errors.Is(err, runtime.ErrNotFound) || !strings.Contains(err.Error(), "not found on this engine") {
		t.Fatalf("image inspect: %v", err)
	}
	img, err := d.ImageInspect(ctx, "img:1")
	if err != nil || img.ID != "sha256:img1" {
		t.Fatalf("image inspect = %+v, %v", img, err)
	}
}

func TestDeterministicIDs(t *testing.T) {
	t.Parallel()
	ids := func() []string {
		d, _ := newDriver(t)
		var out []string
		for i := range 3 {
			out = append(out, run(t, d, spec(fmt.Sprint("web-", i))))
		}
		return out
	}
	a, b := ids(), ids()
	if strings.Join(a, ",") != strings.Join(b, ",") {
		t.Fatalf("IDs %v then %v", a, b)
	}
}

func TestCrashAndOOM(t *testing.T) {
	t.Parallel()
	d, ev := newDriver(t)
	id := run(t, d, spec("web-1"))
	if err := d.Crash(id, 3); err != nil {
		t.Fatal(err)
	}
	if c := inspect(t, d, id); c.State != runtime.StateExited || c.ExitCode != 3 || c.OOMKilled {
		t.Fatalf("crashed = %+v", c)
	}
	if err := d.Crash(id, 3); !errors.Is(err, runtime.ErrConflict) {
		t.Fatalf("crash a stopped container: %v, want ErrConflict", err)
	}
	if err := d.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := d.OOM(id); err != nil {
		t.Fatal(err)
	}
	if c := inspect(t, d, id); c.ExitCode != 137 || !c.OOMKilled {
		t.Fatalf("OOM killed = %+v", c)
	}
	if err := d.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if c := inspect(t, d, id); c.OOMKilled || c.ExitCode != 0 {
		t.Fatalf("restarted = %+v: the last run's OOM stays", c)
	}
	if err := d.OOM("nope"); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("OOM of a missing container: %v", err)
	}
	expect(t, ev.next(7), "create", "start", "die(3)", "start", "oom", "die(137)", "start")
	if d.Calls("Crash") != 0 || d.Calls("OOM") != 0 {
		t.Fatal("test helpers counted as driver calls")
	}
}

func TestSetHealth(t *testing.T) {
	t.Parallel()
	d, ev := newDriver(t)
	s := spec("web-1")
	s.Health = &runtime.HealthConfig{Test: []string{"CMD", "/app", "-health"}}
	id := run(t, d, s)
	if c := inspect(t, d, id); c.Health != "starting" {
		t.Fatalf("health at start = %q, want starting", c.Health)
	}
	d.SetHealth(id, "healthy")
	d.SetHealth(id, "healthy") // no change, no event
	d.SetHealth(id, "unhealthy")
	expect(t, ev.next(4), "create", "start", "health(healthy)", "health(unhealthy)")
	ev.none()
	if c := inspect(t, d, id); c.Health != "unhealthy" {
		t.Fatalf("health = %q", c.Health)
	}
	if err := d.Crash(id, 1); err != nil {
		t.Fatal(err)
	}
	d.SetHealth(id, "healthy") // not running: ignored
	if err := d.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if c := inspect(t, d, id); c.Health != "starting" {
		t.Fatalf("health after restart = %q, want starting", c.Health)
	}
	expect(t, ev.next(2), "die(1)", "start")
	ev.none()
}

func TestRemoveBehindBack(t *testing.T) {
	t.Parallel()
	d, ev := newDriver(t)
	id := run(t, d, spec("web-1"))
	d.FailNext("Remove", errors.New("must not apply"))
	d.RemoveBehindBack(id)
	if _, err := d.Inspect(ctx, id); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("inspect: %v", err)
	}
	if n := d.Calls("Remove"); n != 0 {
		t.Fatalf("%d Remove calls counted", n)
	}
	expect(t, ev.next(5), "create", "start", "kill", "die(137)", "destroy")
}

func TestLabelFiltering(t *testing.T) {
	t.Parallel()
	d, ev := newDriver(t)
	webEvents := subscribe(t, d, map[string]string{"cluster": "c1", "service": "web"})
	web := run(t, d, spec("web-1", "service", "web"))
	db := run(t, d, spec("db-1", "service", "db"))
	other := d.AddForeign("other", map[string]string{"cluster": "c2", "service": "web"})

	list := func(labels map[string]string) []string {
		t.Helper()
		cs, err := d.List(ctx, labels)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, c := range cs {
			if !c.StartedAt.IsZero() || c.Pid != 0 {
				t.Fatalf("list gave %+v: fields the engine's list does not", c)
			}
			ids = append(ids, c.ID)
		}
		return ids
	}
	tests := []struct {
		desc   string
		labels map[string]string
		want   []string
	}{
		{"all", nil, []string{web, db, other}},
		{"one cluster", map[string]string{"cluster": "c1"}, []string{web, db}},
		{"cluster and service", map[string]string{"cluster": "c1", "service": "web"}, []string{web}},
		{"service across clusters", map[string]string{"service": "web"}, []string{web, other}},
		{"unknown value", map[string]string{"cluster": "c3"}, nil},
		{"empty value is not absence", map[string]string{"service": ""}, nil},
	}
	for _, tt := range tests {
		got := list(tt.labels)
		if fmt.Sprint(sortedIDs(got)) != fmt.Sprint(sortedIDs(tt.want)) {
			t.Errorf("%s: list = %v, want %v", tt.desc, got, tt.want)
		}
	}
	expect(t, ev.next(4), "create", "start", "create", "start")
	expect(t, webEvents.next(2), "create", "start")
	webEvents.none()
}

func sortedIDs(ids []string) []string {
	out := append([]string(nil), ids...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestEventLabels(t *testing.T) {
	t.Parallel()
	d, ev := newDriver(t)
	id := run(t, d, spec("web-1", "task", "t1"))
	e := <-ev.ch
	if e.ID != id || e.Labels["task"] != "t1" || e.Labels["name"] != "web-1" || e.Time.IsZero() {
		t.Fatalf("event = %+v", e)
	}
}

func TestKillSignals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		signal  string
		code    int
		running bool
	}{
		{"KILL", 137, false},
		{"", 137, false},
		{"SIGTERM", 143, false},
		{"2", 130, false},
		{"WINCH", 0, true},
	}
	for _, tt := range tests {
		d, _ := newDriver(t)
		id := run(t, d, spec("web-1"))
		if err := d.Kill(ctx, id, tt.signal); err != nil {
			t.Fatalf("kill %q: %v", tt.signal, err)
		}
		c := inspect(t, d, id)
		if c.Running() != tt.running || (!tt.running && c.ExitCode != tt.code) {
			t.Errorf("after kill %q: %+v, want running %v, exit code %d", tt.signal, c, tt.running, tt.code)
		}
	}
	d, _ := newDriver(t)
	id, _ := d.Create(ctx, spec("web-1"))
	if err := d.Kill(ctx, id, "KILL"); !errors.Is(err, runtime.ErrConflict) {
		t.Fatalf("kill a container that is not running: %v, want ErrConflict", err)
	}
	if err := d.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := d.Kill(ctx, id, "NOPE"); err == nil {
		t.Fatal("an unknown signal was accepted")
	}
}

func TestFailNext(t *testing.T) {
	t.Parallel()
	d, _ := newDriver(t)
	disk := errors.New("disk full")
	d.FailNext("Create", disk)
	d.FailNext("Create", runtime.ErrEngine)
	if _, err := d.Create(ctx, spec("web-1")); !errors.Is(err, disk) {
		t.Fatalf("first create: %v", err)
	}
	if _, err := d.List(ctx, nil); err != nil {
		t.Fatalf("another method failed: %v", err)
	}
	if _, err := d.Create(ctx, spec("web-1")); !errors.Is(err, runtime.ErrEngine) {
		t.Fatalf("second create: %v", err)
	}
	if _, err := d.Create(ctx, spec("web-1")); err != nil {
		t.Fatalf("third create: %v", err)
	}
	if n := d.Calls("Create"); n != 3 {
		t.Fatalf("%d creates counted, want 3", n)
	}
	if names := d.Names(); len(names) != 1 {
		t.Fatalf("names %v: a failed create left a container", names)
	}

	d.FailNext("Events", fmt.Errorf("events: %w", runtime.ErrUnreachable))
	ch, errs := d.Events(ctx, nil)
	if err := <-errs; !errors.Is(err, runtime.ErrUnreachable) {
		t.Fatalf("events error: %v", err)
	}
	if _, open := <-ch; open {
		t.Fatal("event channel open after a failed subscription")
	}
}

func TestSetLatency(t *testing.T) {
	t.Parallel()
	d, _ := newDriver(t)
	d.SetLatency(50 * time.Millisecond)
	start := time.Now()
	if _, err := d.Info(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 50*time.Millisecond {
		t.Fatalf("call took %s, want at least the 50ms latency", took)
	}
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, err := d.List(short, nil); !errors.Is(err, runtime.ErrUnreachable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("call past its deadline: %v, want ErrUnreachable", err)
	}
	d.SetLatency(0)
	if _, err := d.List(short, nil); !errors.Is(err, runtime.ErrUnreachable) {
		t.Fatalf("call with an expired ctx: %v", err)
	}
}

func TestLogs(t *testing.T) {
	t.Parallel()
	d, _ := newDriver(t)
	id := run(t, d, spec("web-1"))
	if err := d.WriteOutput(id, "out 1\n", "err 1\n"); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := d.Logs(ctx, id, runtime.LogOptions{}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if stdout.String() != "out 1\n" || stderr.String() != "err 1\n" {
		t.Fatalf("stdout %q stderr %q", stdout.String(), stderr.String())
	}

	var mu sync.Mutex
	var followed bytes.Buffer
	done := make(chan error)
	go func() {
		done <- d.Logs(ctx, id, runtime.LogOptions{Follow: true}, writerFunc(func(p []byte) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			return followed.Write(p)
		}), nil)
	}()
	_ = d.WriteOutput(id, "out 2\n", "")
	select {
	case err := <-done:
		t.Fatalf("following returned while running: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	if err := d.Crash(id, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Second):
		t.Fatal("following did not end when the container stopped")
	}
	mu.Lock()
	defer mu.Unlock()
	if followed.String() != "out 1\nout 2\n" {
		t.Fatalf("followed %q", followed.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestEventsEnd(t *testing.T) {
	t.Parallel()
	d, _ := newDriver(t)

	cctx, cancel := context.WithCancel(ctx)
	ch, errs := d.Events(cctx, nil)
	cancel()
	if _, open := <-ch; open {
		t.Fatal("event after cancel")
	}
	select {
	case err := <-errs:
		t.Fatalf("cancel sent an error: %v", err)
	default:
	}

	ch, errs = d.Events(ctx, nil)
	d.BreakEvents()
	if err := <-errs; !errors.Is(err, runtime.ErrUnreachable) {
		t.Fatalf("broken stream error: %v", err)
	}
	if _, open := <-ch; open {
		t.Fatal("event channel open after the break")
	}

	// A reader that falls behind loses its stream, not the engine's time.
	ch, errs = d.Events(ctx, nil)
	for i := 0; i <= EventBuffer; i++ {
		if _, err := d.Create(ctx, spec(fmt.Sprint("c-", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-errs; !errors.Is(err, runtime.ErrEngine) {
		t.Fatalf("overflow error: %v", err)
	}
	n := 0
	for range ch {
		n++
	}
	if n != EventBuffer {
		t.Fatalf("%d events delivered before the break, want %d", n, EventBuffer)
	}
}

func TestNetworks(t *testing.T) {
	t.Parallel()
	d, _ := newDriver(t)
	own := map[string]string{"cluster": "c1"}
	id, err := d.EnsureNetwork(ctx, "net", own, false)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := d.EnsureNetwork(ctx, "net", own, false); err != nil || again != id {
		t.Fatalf("second ensure = %s, %v", again, err)
	}
	if _, err := d.EnsureNetwork(ctx, "net", map[string]string{"cluster": "c2"}, false); !errors.Is(err, runtime.ErrConflict) {
		t.Fatalf("foreign network: %v, want ErrConflict", err)
	}
	if ns, err := d.ListNetworks(ctx, own); err != nil || len(ns) != 1 || ns[0].ID != id {
		t.Fatalf("list = %+v, %v", ns, err)
	}
	c := run(t, d, spec("web-1"))
	if err := d.RemoveNetwork(ctx, "net"); !errors.Is(err, runtime.ErrEngine) {
		t.Fatalf("remove a network in use: %v, want ErrEngine", err)
	}
	if err := d.Stop(ctx, c, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := d.RemoveNetwork(ctx, "net"); err != nil {
		t.Fatalf("remove a network of stopped containers: %v", err)
	}
	if err := d.RemoveNetwork(ctx, "net"); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("remove again: %v", err)
	}
}

func TestVolumes(t *testing.T) {
	t.Parallel()
	d, _ := newDriver(t)
	own := map[string]string{"cluster": "c1"}
	if err := d.EnsureVolume(ctx, runtime.VolumeSpec{Name: "data", Labels: own}); err != nil {
		t.Fatal(err)
	}
	if err := d.EnsureVolume(ctx, runtime.VolumeSpec{Name: "data", Labels: own}); err != nil {
		t.Fatal(err)
	}
	if err := d.EnsureVolume(ctx, runtime.VolumeSpec{Name: "data", Labels: map[string]string{"cluster": "c2"}}); !errors.Is(err, runtime.ErrConflict) {
		t.Fatalf("foreign volume: %v", err)
	}
	s := spec("db-1")
	s.Mounts = []runtime.Mount{{Type: "volume", Source: "data", Target: "/data"}, {Type: "volume", Target: "/cache"}, {Type: "volume", Source: "auto", Target: "/auto"}}
	id, err := d.Create(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if vs, _ := d.ListVolumes(ctx, nil); len(vs) != 3 {
		t.Fatalf("volumes %+v, want data, an anonymous one and auto", vs)
	}
	if err := d.RemoveVolume(ctx, "data"); !errors.Is(err, runtime.ErrConflict) {
		t.Fatalf("remove a volume in use: %v, want ErrConflict", err)
	}
	if err := d.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	vs, _ := d.ListVolumes(ctx, nil)
	if len(vs) != 2 || vs[0].Name != "auto" || vs[1].Name != "data" {
		t.Fatalf("volumes after removal %+v, want the named ones only", vs)
	}
	if vs, _ := d.ListVolumes(ctx, own); len(vs) != 1 {
		t.Fatalf("own volumes %+v", vs)
	}
	if err := d.RemoveVolume(ctx, "data"); err != nil {
		t.Fatal(err)
	}
	if err := d.RemoveVolume(ctx, "data"); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("remove again: %v", err)
	}
}

// TestConcurrent drives the engine from many goroutines; run with -race.
func TestConcurrent(t *testing.T) {
	t.Parallel()
	d, _ := newDriver(t)
	ev := subscribe(t, d, nil)
	go func() {
		for range ev.ch {
		}
	}()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				id, err := d.Create(ctx, spec(fmt.Sprintf("g%d-%d", g, i)))
				if err != nil {
					t.Error(err)
					return
				}
				_ = d.Start(ctx, id)
				_, _ = d.List(ctx, map[string]string{"cluster": "c1"})
				d.SetHealth(id, "healthy")
				_ = d.Stop(ctx, id, time.Second)
				_, _ = d.Wait(ctx, id)
				_ = d.Remove(ctx, id)
			}
		}()
	}
	wg.Wait()
	if names := d.Names(); len(names) != 0 {
		t.Fatalf("%d containers left", len(names))
	}
}
