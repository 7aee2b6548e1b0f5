package docker

// Tests that need no engine: they run with -short too.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/events"

	"github.com/berth-dev/berth/runtime"
)

// hangingEngine listens on a unix socket, accepts connections and never
// answers: a wedged dockerd.
func hangingEngine(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "bhang") // short: socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "docker.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		os.RemoveAll(dir)
	})
	return "unix://" + path
}

func TestUnreachableWithinCallTimeout(t *testing.T) {
	t.Parallel()
	host := hangingEngine(t)
	d, err := New(Options{Host: host, CallTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	calls := []struct {
		name string
		call func() error
	}{
		{"info", func() error { _, err := d.Info(ctx); return err }},
		{"create", func() error {
			_, err := d.Create(ctx, runtime.ContainerSpec{Name: "web-1", Image: "x"})
			return err
		}},
		{"list", func() error { _, err := d.List(ctx, nil); return err }},
		{"stop", func() error { return d.Stop(ctx, "web-1", 0) }},
		{"wait", func() error { _, err := d.Wait(ctx, "web-1"); return err }},
		{"logs follow", func() error { return d.Logs(ctx, "web-1", runtime.LogOptions{Follow: true}, nil, nil) }},
		{"events", func() error {
			evs, errs := d.Events(ctx, map[string]string{"a": "b"})
			select {
			case err := <-errs:
				if _, open := <-evs; open {
					return errors.New("event channel open after the error")
				}
				return err
			case <-time.After(5 * time.Second):
				return errors.New("no error from events within 5s")
			}
		}},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			err := c.call()
			took := time.Since(start)
			if !errors.Is(err, runtime.ErrUnreachable) {
				t.Fatalf("err = %v, want ErrUnreachable", err)
			}
			if !strings.Contains(err.Error(), host) || !strings.Contains(err.Error(), "start dockerd") {
				t.Errorf("message %q does not name the engine and say what to do", err)
			}
			if took > 2*time.Second {
				t.Errorf("took %s with a 200ms call timeout", took)
			}
		})
	}
}

func TestCallerDeadlineSooner(t *testing.T) {
	t.Parallel()
	d, err := New(Options{Host: hangingEngine(t), CallTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := d.Inspect(ctx, "x"); !errors.Is(err, runtime.ErrUnreachable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrUnreachable wrapping the deadline", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("took %s: the caller's 100ms deadline was not honoured", took)
	}
}

func TestNoEngine(t *testing.T) {
	t.Parallel()
	host := "unix://" + filepath.Join(t.TempDir(), "absent.sock")
	d, err := New(Options{Host: host, CallTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	_, err = d.Info(context.Background())
	if !errors.Is(err, runtime.ErrUnreachable) || !strings.Contains(err.Error(), host) {
		t.Fatalf("err = %v, want ErrUnreachable naming %s", err, host)
	}
}

func TestWrap(t *testing.T) {
	d := &Driver{host: "unix:///x.sock"}
	tests := []struct {
		desc string
		err  error
		want error
	}{
		{"not found", cerrdefs.ErrNotFound.WithMessage("No such container: web-1"), runtime.ErrNotFound},
		{"conflict", cerrdefs.ErrConflict.WithMessage("name in use"), runtime.ErrConflict},
		{"deadline", fmt.Errorf("get: %w", context.DeadlineExceeded), runtime.ErrUnreachable},
		{"engine", cerrdefs.ErrInternal.WithMessage("boom"), runtime.ErrEngine},
		{"cancelled", context.Canceled, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			err := d.wrap("create container web-1", tt.err)
			if !errors.Is(err, tt.want) || !errors.Is(err, tt.err) {
				t.Fatalf("wrap(%v) = %v, want %v keeping the cause", tt.err, err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "create container web-1: ") {
				t.Fatalf("message %q lacks the operation prefix", err)
			}
		})
	}
	if errors.Is(d.wrap("x", context.Canceled), runtime.ErrUnreachable) {
		t.Fatal("a caller's cancellation is not an unreachable engine")
	}
	if d.wrap("x", nil) != nil {
		t.Fatal("wrap(nil) != nil")
	}
}

func TestContainerConfig(t *testing.T) {
	t.Run("user network", func(t *testing.T) {
		cfg, hc, nc := containerConfig(runtime.ContainerSpec{
			Name: "web-1", Image: "sha256:abc", Network: "berth-shop", Aliases: []string{"web"},
			Memory: 1 << 30, StopTimeout: 1500 * time.Millisecond, PidsLimit: 100,
			Health: &runtime.HealthConfig{Test: []string{"CMD", "/app", "-health"}, Interval: time.Second, Retries: 3},
		})
		if cfg.Image != "sha256:abc" || *cfg.StopTimeout != 2 || cfg.Healthcheck.Retries != 3 {
			t.Fatalf("config = %+v", cfg)
		}
		if hc.NetworkMode != "berth-shop" || hc.MemorySwap != 1<<30 || *hc.PidsLimit != 100 || hc.RestartPolicy.Name != "no" || hc.Privileged {
			t.Fatalf("host config = %+v", hc)
		}
		if ep := nc.EndpointsConfig["berth-shop"]; ep == nil || ep.Aliases[0] != "web" {
			t.Fatalf("networking config = %+v", nc)
		}
		if hc.LogConfig.Type != "" {
			t.Fatalf("log config %+v set without limits", hc.LogConfig)
		}
	})
	t.Run("host network", func(t *testing.T) {
		_, hc, nc := containerConfig(runtime.ContainerSpec{Name: "edge", Image: "x", HostNetwork: true})
		if hc.NetworkMode != "host" || nc != nil {
			t.Fatalf("network mode %q, networking config %+v", hc.NetworkMode, nc)
		}
		if hc.MemorySwap != 0 || hc.PidsLimit != nil {
			t.Fatalf("limits set without a spec: %+v", hc.Resources)
		}
	})
}

func TestToEvent(t *testing.T) {
	attrs := map[string]string{"io.berth.task": "t1", "exitCode": "143", "name": "web-1"}
	tests := []struct {
		action string
		want   runtime.Event
		ok     bool
	}{
		{"start", runtime.Event{Action: "start"}, true},
		{"die", runtime.Event{Action: "die", ExitCode: 143}, true},
		{"oom", runtime.Event{Action: "oom"}, true},
		{"destroy", runtime.Event{Action: "destroy"}, true},
		{"create", runtime.Event{Action: "create"}, true},
		{"stop", runtime.Event{Action: "stop"}, true},
		{"kill", runtime.Event{Action: "kill"}, true},
		{"health_status: healthy", runtime.Event{Action: "health_status", Health: "healthy"}, true},
		{"health_status: unhealthy", runtime.Event{Action: "health_status", Health: "unhealthy"}, true},
		{"exec_start: /app -health", runtime.Event{}, false},
		{"exec_die", runtime.Event{}, false},
		{"attach", runtime.Event{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.action, func(t *testing.T) {
			e, ok := toEvent(events.Message{Action: events.Action(tt.action), Actor: events.Actor{ID: "abc", Attributes: attrs}, TimeNano: 42})
			if ok != tt.ok {
				t.Fatalf("ok = %v", ok)
			}
			if !ok {
				return
			}
			if e.Action != tt.want.Action || e.ExitCode != tt.want.ExitCode || e.Health != tt.want.Health ||
				e.ID != "abc" || e.Labels["io.berth.task"] != "t1" || e.Time.UnixNano() != 42 {
				t.Fatalf("event = %+v", e)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		status string
		code   int
		health string
	}{
		{"Up 2 minutes", 0, ""},
		{"Up 2 minutes (healthy)", 0, "healthy"},
		{"Up 3 seconds (health: starting)", 0, "starting"},
		{"Up About a minute (unhealthy)", 0, "unhealthy"},
		{"Exited (137) 5 seconds ago", 137, ""},
		{"Exited (0) About an hour ago", 0, ""},
		{"Created", 0, ""},
	}
	for _, tt := range tests {
		code, health := parseStatus(tt.status)
		if code != tt.code || health != tt.health {
			t.Errorf("parseStatus(%q) = %d, %q; want %d, %q", tt.status, code, health, tt.code, tt.health)
		}
	}
}

func TestReadBuildOutput(t *testing.T) {
	ok := `{"stream":"Step 1/3 : FROM scratch\n"}
{"stream":"Successfully built 0123\n"}
{"aux":{"ID":"sha256:0123"}}
`
	id, out, err := readBuildOutput(strings.NewReader(ok))
	if err != nil || id != "sha256:0123" || !strings.Contains(out, "Step 1/3") {
		t.Fatalf("id %q, output %q, err %v", id, out, err)
	}
	failed := `{"stream":"Step 2/3 : COPY app /app\n"}
{"errorDetail":{"message":"COPY failed: file not found"},"error":"COPY failed: file not found"}
`
	_, out, err = readBuildOutput(strings.NewReader(failed))
	if err == nil || err.Error() != "COPY failed: file not found" || !strings.Contains(out, "Step 2/3") {
		t.Fatalf("output %q, err %v; want the builder's error", out, err)
	}
	if _, _, err := readBuildOutput(strings.NewReader(`{"stream":`)); err == nil {
		t.Fatal("a truncated stream is not an error")
	}
}

func TestShort(t *testing.T) {
	id := strings.Repeat("ab", 32)
	if short(id) != id[:12] || short("berth-shop-web-1-abcdefghijkl") != "berth-shop-web-1-abcdefghijkl" {
		t.Fatal("short abbreviates only engine IDs")
	}
}

func TestOOMMemory(t *testing.T) {
	d, err := New(Options{Host: "unix:///nonexistent.sock"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	d.noteEvent(runtime.Event{Action: runtime.EventOOM, ID: "a", Time: start.Add(time.Second)})
	d.noteEvent(runtime.Event{Action: runtime.EventDie, ID: "b", Time: start})
	if !d.oomSince("a", start) || d.oomSince("a", start.Add(2*time.Second)) || d.oomSince("b", start) {
		t.Fatal("oom memory answers wrongly")
	}
	d.noteEvent(runtime.Event{Action: runtime.EventDestroy, ID: "a"})
	if d.oomSince("a", start) {
		t.Fatal("oom remembered after destroy")
	}
}
