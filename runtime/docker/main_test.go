package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"

	"github.com/berth-dev/berth/runtime"
)

// The engine tests share one driver and one image built FROM scratch
// around testdata/app. They need a Docker Engine; -short skips them.
var (
	engine      *Driver
	testImage   string // tag
	testImageID string
	testBinary  string // testdata/app, built static
	setupErr    error
)

const (
	labelTest    = "io.berth.test"
	labelCluster = "io.berth.cluster"
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "berth-runtime-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	setupErr = setup(dir)
	code := m.Run()
	os.RemoveAll(dir)
	if testImageID != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := engine.Client().ImageRemove(ctx, testImageID, image.RemoveOptions{Force: true, PruneChildren: true})
		cancel()
		if err != nil {
			fmt.Fprintf(os.Stderr, "remove test image %s: %v\n", testImage, err)
		}
	}
	os.Exit(code)
}

func setup(dir string) error {
	d, err := New(Options{})
	if err != nil {
		return err
	}
	engine = d
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := d.Info(ctx); err != nil {
		return fmt.Errorf("these tests need a Docker Engine (run with -short to skip them): %w", err)
	}
	bin := filepath.Join(dir, "app")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./testdata/app")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build testdata/app: %v\n%s", err, out)
	}
	tag := "berth-test/runtime:" + randomID()
	id, err := BuildScratchImage(ctx, d, tag, bin, map[string]string{labelTest: "1"}, []string{"/app"})
	if err != nil {
		return err
	}
	testImage, testImageID, testBinary = tag, id, bin
	return nil
}

func randomID() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// env is one engine test's world: every object it creates carries labels,
// and cleanup removes everything carrying them, even after a failure.
type env struct {
	t       *testing.T
	d       *Driver
	ctx     context.Context
	cluster string
	labels  map[string]string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the Docker Engine")
	}
	if setupErr != nil {
		t.Fatal(setupErr)
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cluster := "test-" + randomID()
	e := &env{t: t, d: engine, ctx: ctx, cluster: cluster, labels: map[string]string{labelCluster: cluster, labelTest: "1"}}
	t.Cleanup(e.cleanup)
	return e
}

func (e *env) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	own := map[string]string{labelCluster: e.cluster}
	cs, err := e.d.List(ctx, own)
	if err != nil {
		e.t.Errorf("cleanup: %v", err)
	}
	for _, c := range cs {
		if err := e.d.Remove(ctx, c.ID); err != nil && !errors.Is(err, runtime.ErrNotFound) {
			e.t.Errorf("cleanup: %v", err)
		}
	}
	ns, _ := e.d.ListNetworks(ctx, own)
	for _, n := range ns {
		if err := e.d.RemoveNetwork(ctx, n.ID); err != nil && !errors.Is(err, runtime.ErrNotFound) {
			e.t.Errorf("cleanup: %v", err)
		}
	}
	vs, _ := e.d.ListVolumes(ctx, own)
	for _, v := range vs {
		if err := e.d.RemoveVolume(ctx, v.Name); err != nil && !errors.Is(err, runtime.ErrNotFound) {
			e.t.Errorf("cleanup: %v", err)
		}
	}
}

// name returns a name unique to this test.
func (e *env) name(s string) string { return e.cluster + "-" + s }

// withLabels returns the test's labels plus extra.
func (e *env) withLabels(extra ...string) map[string]string {
	out := map[string]string{}
	for k, v := range e.labels {
		out[k] = v
	}
	for i := 0; i+1 < len(extra); i += 2 {
		out[extra[i]] = extra[i+1]
	}
	return out
}

// spec is a minimal container of the test image running app with args.
func (e *env) spec(name string, args ...string) runtime.ContainerSpec {
	return runtime.ContainerSpec{Name: e.name(name), Image: testImage, Cmd: args, Labels: e.withLabels()}
}

func (e *env) create(spec runtime.ContainerSpec) string {
	e.t.Helper()
	id, err := e.d.Create(e.ctx, spec)
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

func (e *env) run(spec runtime.ContainerSpec) string {
	e.t.Helper()
	id := e.create(spec)
	if err := e.d.Start(e.ctx, id); err != nil {
		e.t.Fatal(err)
	}
	return id
}

// ready waits until app in container id has said hello: it handles
// SIGTERM from then on.
func (e *env) ready(id string) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var out strings.Builder
		err := e.d.Logs(e.ctx, id, runtime.LogOptions{}, &out, nil)
		if err == nil && strings.Contains(out.String(), "hello stdout") {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("container %s not ready after 30s (logs %q, %v)", short(id), out.String(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) inspect(id string) runtime.Container {
	e.t.Helper()
	c, err := e.d.Inspect(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) wait(id string) int {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	code, err := e.d.Wait(ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return code
}

// eventLog follows an event subscription in the background so tests can
// wait for an event without losing the others.
type eventLog struct {
	t      *testing.T
	events chan runtime.Event
	errs   <-chan error
	seen   []runtime.Event
}

func (e *env) subscribe() *eventLog {
	e.t.Helper()
	ctx, cancel := context.WithCancel(e.ctx)
	e.t.Cleanup(cancel)
	events, errs := e.d.Events(ctx, e.labels)
	buf := make(chan runtime.Event, 256)
	go func() {
		defer close(buf)
		for ev := range events {
			buf <- ev
		}
	}()
	return &eventLog{t: e.t, events: buf, errs: errs}
}

// waitFor returns the first event (seen before or arriving within 30s)
// for container id with the action, that also satisfies match if given.
func (l *eventLog) waitFor(id, action string, match func(runtime.Event) bool) runtime.Event {
	l.t.Helper()
	ok := func(ev runtime.Event) bool {
		return ev.ID == id && ev.Action == action && (match == nil || match(ev))
	}
	for _, ev := range l.seen {
		if ok(ev) {
			return ev
		}
	}
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev, open := <-l.events:
			if !open {
				l.t.Fatalf("event stream closed waiting for %s of %s; saw %v", action, short(id), l.actions())
			}
			l.seen = append(l.seen, ev)
			if ok(ev) {
				return ev
			}
		case err := <-l.errs:
			l.t.Fatalf("event stream broke waiting for %s of %s: %v", action, short(id), err)
		case <-timeout:
			l.t.Fatalf("no %s event for %s within 30s; saw %v", action, short(id), l.actions())
		}
	}
}

func (l *eventLog) actions() []string {
	var out []string
	for _, ev := range l.seen {
		out = append(out, ev.Action+"/"+short(ev.ID))
	}
	return out
}
