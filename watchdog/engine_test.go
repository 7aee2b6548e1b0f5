package watchdog

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/runtime/docker"
	"github.com/berth-dev/berth/runtime/faultproxy"
)

// TestWatchdogRealEngine puts the fault proxy in front of the real
// engine's socket and checks each fault is classified as it should be,
// and that the engine is healthy again once the fault is lifted.
func TestWatchdogRealEngine(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a Docker Engine")
	}
	real, err := docker.New(docker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := real.Info(ctx); err != nil {
		t.Fatalf("this test needs a Docker Engine (go test -short skips it): %v", err)
	}
	sock := strings.TrimPrefix(real.Host(), "unix://")
	if !strings.HasPrefix(real.Host(), "unix://") {
		t.Skipf("engine at %s is not a unix socket", real.Host())
	}

	// One created (never started) container of the test's own, so that
	// probes inspect something.
	label := map[string]string{"io.berth.test": "watchdog-" + t.Name()}
	dir := t.TempDir()
	bin := filepath.Join(dir, "idle")
	if err := os.WriteFile(bin, []byte("never run"), 0o755); err != nil {
		t.Fatal(err)
	}
	tag := "berth-test/watchdog:" + time.Now().Format("20060102150405.000000")
	imgID, err := docker.BuildScratchImage(ctx, real, tag, bin, label, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := real.Client().ContainerCreate(ctx, &container.Config{Image: imgID, Labels: label}, nil, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = real.Client().ContainerRemove(ctx, resp.ID, container.RemoveOptions{Force: true})
		_, _ = real.Client().ImageRemove(ctx, imgID, image.RemoveOptions{Force: true, PruneChildren: true})
	})

	proxy, err := faultproxy.Start(filepath.Join(dir, "engine.sock"), sock)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	drv, err := docker.New(docker.Options{Host: proxy.Host(), CallTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Interval: 200 * time.Millisecond, Slow: 400 * time.Millisecond, Hang: time.Second}
	w, rec := startWatchdogLabels(t, cfg, drv, label)
	time.Sleep(time.Second) // a few healthy probes
	if st := w.Status(); st.State != api.EngineHealthy || st.Latency["inspect"] == 0 {
		t.Fatalf("before any fault: %+v", st)
	}

	for _, tc := range []struct {
		desc   string
		mode   faultproxy.Mode
		delay  time.Duration
		match  string
		want   string
		reason string
	}{
		{"every call hangs", faultproxy.Hang, 0, "", api.EngineWedged, "hung: ping"},
		{"only inspect hangs (two probes in a row)", faultproxy.Hang, 0, "/containers/" + resp.ID, api.EngineWedged, "hung: inspect"},
		{"calls are slow", faultproxy.Slow, 600 * time.Millisecond, "", api.EngineSlow, "slow: "},
		{"calls fail", faultproxy.Error, 0, "", api.EngineWedged, "failing: ping"},
		{"connections drop", faultproxy.Drop, 0, "", api.EngineWedged, "failing: ping"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			proxy.Set(tc.mode, tc.delay, tc.match)
			took := waitState(t, rec, tc.want, 10*time.Second)
			if r := rec.last().Reason; !strings.Contains(r, tc.reason) {
				t.Errorf("reason %q, want it to contain %q", r, tc.reason)
			}
			t.Logf("%s: %s after %s", tc.desc, tc.want, took.Round(time.Millisecond))
			proxy.Set(faultproxy.Pass, 0, "")
			waitState(t, rec, api.EngineHealthy, 10*time.Second)
		})
	}
	if got := w.MaxInFlight(); got != 1 {
		t.Errorf("calls in flight at once: %d, want 1", got)
	}
}
