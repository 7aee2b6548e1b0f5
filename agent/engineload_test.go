package agent

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/runtime"
)

func TestEngineLoadSlowDuring(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	var l engineLoad
	l.add(span{what: "start of task a", from: at(10), to: at(17.7)})
	l.add(span{what: "create of task b", from: at(20), to: at(20.3)})

	cases := []struct {
		name     string
		from, to float64
		bound    time.Duration
		want     string
	}{
		{"window inside a slow start", 15, 16, 2 * time.Second, "start of task a took 7.7s"},
		{"window overlapping its end", 17, 19, 2 * time.Second, "start of task a took 7.7s"},
		{"window after it", 18, 19, 2 * time.Second, ""},
		{"window before it", 5, 9, 2 * time.Second, ""},
		{"a start quicker than the check's timeout", 15, 16, 10 * time.Second, ""},
		{"a short call overlapping", 19.5, 21, 2 * time.Second, ""},
		{"a short call against a shorter timeout", 19.5, 21, 200 * time.Millisecond, "create of task b took 300ms"},
	}
	for _, c := range cases {
		if got := l.slowDuring(at(c.from), at(c.to), c.bound, at(30)); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}

	// The watchdog's judgement counts whatever the bound.
	l.engineHealth(api.EngineHealth{State: api.EngineWedged, Since: at(40)})
	if got := l.slowDuring(at(41), at(42), time.Hour, at(42)); !strings.Contains(got, "watchdog") {
		t.Errorf("while wedged: %q", got)
	}
	if got := l.slowDuring(at(35), at(39), time.Hour, at(42)); got != "" {
		t.Errorf("before the wedge: %q", got)
	}
	l.engineHealth(api.EngineHealth{State: api.EngineHealthy, Since: at(50)})
	if got := l.slowDuring(at(48), at(52), time.Hour, at(60)); !strings.Contains(got, "watchdog") {
		t.Errorf("a window reaching into the wedge: %q", got)
	}
	if got := l.slowDuring(at(51), at(52), time.Hour, at(60)); got != "" {
		t.Errorf("after the engine recovered: %q", got)
	}

	// A call under way counts once it has run for the bound.
	end := l.begin("start of task c")
	now := time.Now()
	if got := l.slowDuring(now.Add(-time.Second), now, time.Second, now.Add(500*time.Millisecond)); got != "" {
		t.Errorf("a call under way for 500ms against a 1s bound: %q", got)
	}
	if got := l.slowDuring(now.Add(-time.Second), now, time.Second, now.Add(1500*time.Millisecond)); !strings.Contains(got, "start of task c has taken") {
		t.Errorf("a call under way for 1.5s: %q", got)
	}
	end()
}

func TestHeldHealth(t *testing.T) {
	now := time.Now()
	spec := &api.ServiceSpec{Health: &api.HealthCheck{Test: []string{"CMD", "/probe"}, Timeout: api.Duration(2 * time.Second), Retries: 2}}
	noAnswer := func(start time.Time) runtime.HealthResult {
		return runtime.HealthResult{Start: start, End: start.Add(2 * time.Second), ExitCode: runtime.NoVerdict, Output: "Health check exceeded timeout (2s)"}
	}
	answered := func(start time.Time, code int) runtime.HealthResult {
		return runtime.HealthResult{Start: start, End: start.Add(10 * time.Millisecond), ExitCode: code}
	}
	c := runtime.Container{ID: "c1", State: runtime.StateRunning, Health: "unhealthy"}
	ready := func() *taskState {
		return &taskState{status: api.TaskStatus{ContainerID: "c1", State: api.StateRunning}}
	}
	a := &Agent{}
	a.load.add(span{what: "start of task b", from: now.Add(-8 * time.Second), to: now.Add(-time.Second)})

	c.HealthLog = []runtime.HealthResult{answered(now.Add(-20*time.Second), 0), noAnswer(now.Add(-6 * time.Second)), noAnswer(now.Add(-3 * time.Second))}
	if got := a.heldHealth(spec, c, ready(), now); !strings.Contains(got, "start of task b took 7s") || !strings.Contains(got, "not restarted") {
		t.Errorf("checks without an answer during a slow start: %q, want held", got)
	}

	c.HealthLog = []runtime.HealthResult{noAnswer(now.Add(-6 * time.Second)), answered(now.Add(-3*time.Second), 1)}
	if got := a.heldHealth(spec, c, ready(), now); got != "" {
		t.Errorf("a check that answered unhealthy: held (%q)", got)
	}

	c.HealthLog = []runtime.HealthResult{noAnswer(now.Add(-30 * time.Second)), noAnswer(now.Add(-27 * time.Second))}
	if got := a.heldHealth(spec, c, ready(), now); got != "" {
		t.Errorf("checks without an answer while the engine was quick: held (%q)", got)
	}

	c.HealthLog = []runtime.HealthResult{noAnswer(now.Add(-6 * time.Second)), noAnswer(now.Add(-3 * time.Second))}
	if got := a.heldHealth(spec, c, &taskState{status: api.TaskStatus{ContainerID: "c1", State: api.StateStarting}}, now); got != "" {
		t.Errorf("a task that never got ready: held (%q)", got)
	}

	st := ready()
	st.heldContainer, st.heldSince = "c1", now.Add(-healthHoldLimit)
	if got := a.heldHealth(spec, c, st, now); got != "" {
		t.Errorf("held for %s already: held again (%q)", healthHoldLimit, got)
	}
	st.heldSince = now.Add(-time.Second)
	if got := a.heldHealth(spec, c, st, now); got == "" {
		t.Error("held for a second: not held any more")
	}
}

// TestUnhealthyOnASlowEngineIsHeld: a ready task whose health checks time
// out while the engine takes seconds to start another container keeps
// running; the same verdict on a quick engine restarts it.
func TestUnhealthyOnASlowEngineIsHeld(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	spec := api.ServiceSpec{Name: "web", Image: "img:1", ImageID: "sha256:img1", Restart: api.RestartPolicy{Condition: api.RestartAny},
		Health: &api.HealthCheck{Test: []string{"CMD", "/probe"}, Interval: api.Duration(time.Second), Timeout: api.Duration(500 * time.Millisecond), Retries: 2}}
	h.deploySpec(spec, task("a", 1))
	h.waitFor("a created", func() bool { return h.containerOf("a") != "" })
	id := h.containerOf("a")
	h.waitFor("a starting", func() bool { return h.status("a").State == api.StateStarting })
	h.drv.SetHealth(id, "healthy")
	h.waitFor("a running", func() bool { return h.status("a").State == api.StateRunning })

	// Another task's start takes 2 s; a's checks time out meanwhile.
	h.drv.SetMethodLatency("Start", 2*time.Second)
	if err := h.st.ApplyTasks(context.Background(), []api.Task{task("b", 2)}, nil); err != nil {
		t.Fatal(err)
	}
	h.waitFor("b's start under way", func() bool { return h.drv.Calls("Start") == 2 })
	time.Sleep(800 * time.Millisecond)
	now := time.Now()
	h.drv.SetHealth(id, "unhealthy",
		runtime.HealthResult{Start: now.Add(-1500 * time.Millisecond), End: now.Add(-time.Second), ExitCode: runtime.NoVerdict, Output: "Health check exceeded timeout (500ms)"},
		runtime.HealthResult{Start: now.Add(-500 * time.Millisecond), End: now, ExitCode: runtime.NoVerdict, Output: "Health check exceeded timeout (500ms)"})
	h.waitFor("the verdict held", func() bool {
		s := h.status("a")
		return s.State == api.StateRunning && s.Health == "unhealthy" && strings.Contains(s.Reason, "start of task b")
	})
	h.waitFor("b running", func() bool { return h.status("b").ContainerID != "" })
	if s := h.status("a"); s.ContainerID != id || s.Restarts != 0 || h.drv.Calls("Stop") != 0 {
		t.Fatalf("a was restarted: %+v, %d stops", s, h.drv.Calls("Stop"))
	}
	evs, err := h.st.ListEvents(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	heldEvents := 0
	for _, e := range evs {
		if e.Type == "task.health_held" && e.Task == "a" {
			heldEvents++
		}
	}
	if heldEvents != 1 {
		t.Fatalf("%d task.health_held events for a, want 1", heldEvents)
	}

	// Healthy again: the hold ends.
	h.drv.SetHealth(id, "healthy")
	h.waitFor("a healthy, no reason", func() bool { s := h.status("a"); return s.Health == "healthy" && s.Reason == "" })

	// The same kind of verdict, on an engine that has been quick since.
	h.drv.SetMethodLatency("Start", 0)
	time.Sleep(100 * time.Millisecond)
	now = time.Now()
	h.drv.SetHealth(id, "unhealthy",
		runtime.HealthResult{Start: now.Add(-60 * time.Millisecond), End: now.Add(-50 * time.Millisecond), ExitCode: runtime.NoVerdict, Output: "Health check exceeded timeout (500ms)"},
		runtime.HealthResult{Start: now.Add(-10 * time.Millisecond), End: now, ExitCode: runtime.NoVerdict, Output: "Health check exceeded timeout (500ms)"})
	h.waitFor("a restarted", func() bool { s := h.status("a"); return s.Restarts == 1 && strings.Contains(s.Reason, "unhealthy") })
}
