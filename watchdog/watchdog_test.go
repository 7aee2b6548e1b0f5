package watchdog

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/runtime/fake"
)

// recorder collects state changes.
type recorder struct {
	mu      sync.Mutex
	changes []api.EngineHealth
	fixes   []Remediation
}

func (r *recorder) last() api.EngineHealth {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.changes) == 0 {
		return api.EngineHealth{}
	}
	return r.changes[len(r.changes)-1]
}

func (r *recorder) fixCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.fixes)
}

func startWatchdog(t *testing.T, cfg Config, drv runtime.Driver) (*Watchdog, *recorder) {
	t.Helper()
	return startWatchdogLabels(t, cfg, drv, map[string]string{"io.berth.cluster": "c1"})
}

func startWatchdogLabels(t *testing.T, cfg Config, drv runtime.Driver, labels map[string]string) (*Watchdog, *recorder) {
	t.Helper()
	w := New(cfg, drv, labels, nil)
	rec := &recorder{}
	w.OnChange = func(_, cur api.EngineHealth) { rec.mu.Lock(); rec.changes = append(rec.changes, cur); rec.mu.Unlock() }
	w.OnRemediate = func(r Remediation) { rec.mu.Lock(); rec.fixes = append(rec.fixes, r); rec.mu.Unlock() }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return w, rec
}

func waitState(t *testing.T, rec *recorder, state string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		if rec.last().State == state {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("engine not %s within %s; last change %+v", state, within, rec.last())
	return 0
}

func TestWatchdogFakeHangAndRecovery(t *testing.T) {
	drv := fake.New()
	cfg := Config{Interval: 20 * time.Millisecond, Slow: 50 * time.Millisecond, Hang: 200 * time.Millisecond, Recover: 2,
		Remediation: []string{"restart-engine"}, RemediationInterval: time.Hour}
	w, rec := startWatchdog(t, cfg, drv)
	var ran []string
	var mu sync.Mutex
	w.runCmd = func(_ context.Context, argv []string) ([]byte, error) {
		mu.Lock()
		ran = append(ran, argv[0])
		mu.Unlock()
		return []byte("restarted"), nil
	}
	time.Sleep(100 * time.Millisecond)
	drv.SetLatency(10 * time.Second) // every call hangs
	took := waitState(t, rec, api.EngineWedged, 2*time.Second)
	if took > time.Second {
		t.Errorf("wedge took %s to detect with hang=200ms", took)
	}
	// Let it stay wedged for many intervals: one remediation, one call
	// in flight at a time.
	time.Sleep(time.Second)
	if n := rec.fixCount(); n != 1 {
		t.Errorf("remediation ran %d times within its interval, want 1", n)
	}
	if got := w.MaxInFlight(); got != 1 {
		t.Errorf("calls in flight at once: %d, want 1", got)
	}
	if !w.Wedged() || w.Status().State != api.EngineWedged {
		t.Errorf("status %+v", w.Status())
	}
	drv.SetLatency(100 * time.Millisecond)
	waitState(t, rec, api.EngineSlow, 3*time.Second)
	drv.SetLatency(0)
	waitState(t, rec, api.EngineHealthy, 3*time.Second)
	if lat := w.Status().Latency; lat["ping"] < 0 || len(lat) == 0 {
		t.Errorf("latency %v", lat)
	}
}

func TestWatchdogFakeErrors(t *testing.T) {
	drv := fake.New()
	cfg := Config{Interval: 20 * time.Millisecond, Hang: 200 * time.Millisecond}
	_, rec := startWatchdog(t, cfg, drv)
	for i := 0; i < 50; i++ {
		drv.FailNext("Info", runtime.ErrEngine)
	}
	waitState(t, rec, api.EngineWedged, 2*time.Second)
	if r := rec.last().Reason; r == "" {
		t.Fatal("no reason")
	}
}
