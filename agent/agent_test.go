package agent

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/runtime/fake"
	"github.com/berth-dev/berth/store"
)

type harness struct {
	t    *testing.T
	st   *store.Store
	drv  *fake.Driver
	ag   *Agent
	stop func()
}

// newHarness runs an agent over an embedded store and the fake engine.
// setup runs before the agent starts (to place containers it must adopt).
func newHarness(t *testing.T, setup func(h *harness)) *harness {
	t.Helper()
	return newHarnessConfig(t, Config{}, setup)
}

// newHarnessConfig is newHarness with extra agent configuration (the
// identity and timings are the harness's).
func newHarnessConfig(t *testing.T, cfg Config, setup func(h *harness)) *harness {
	t.Helper()
	h := &harness{t: t, st: store.OpenTest(t), drv: fake.New()}
	h.drv.AddImage("img:1", "sha256:img1")
	if setup != nil {
		setup(h)
	}
	cfg.ClusterID, cfg.NodeID, cfg.NodeName, cfg.Resync, cfg.CallTimeout = "c1", "n1", "n1", 200*time.Millisecond, 5*time.Second
	h.ag = New(cfg, h.st, h.drv, slog.New(slog.DiscardHandler), nil)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = h.ag.Run(ctx) }()
	h.stop = func() { cancel(); wg.Wait() }
	t.Cleanup(h.stop)
	return h
}

func (h *harness) deploy(tasks ...api.Task) {
	h.t.Helper()
	h.deploySpec(api.ServiceSpec{Name: "web", Image: "img:1", ImageID: "sha256:img1", Restart: api.RestartPolicy{Condition: api.RestartAny}}, tasks...)
}

// deploySpec stores revision 1 of stack s's service web as spec, with the
// given tasks.
func (h *harness) deploySpec(spec api.ServiceSpec, tasks ...api.Task) {
	h.t.Helper()
	ctx := context.Background()
	spec.Replicas = len(tasks)
	if err := h.st.ApplyStack(ctx, store.StackWrite{
		Record:    api.StackRecord{Name: "s", Services: []string{"web"}},
		Services:  []api.ServiceState{{Stack: "s", Name: "web", Revision: 1, Replicas: len(tasks)}},
		Revisions: []api.Revision{{Stack: "s", Service: "web", Number: 1, Spec: spec}},
	}); err != nil {
		h.t.Fatal(err)
	}
	if err := h.st.ApplyTasks(ctx, tasks, nil); err != nil {
		h.t.Fatal(err)
	}
}

func task(id string, slot int) api.Task {
	return api.Task{ID: id, Stack: "s", Service: "web", Slot: slot, Revision: 1, Node: "n1", Desired: api.DesiredRunning}
}

func (h *harness) status(id string) api.TaskStatus {
	sts, _ := h.st.ListStatus(context.Background(), "n1")
	for _, s := range sts {
		if s.TaskID == id {
			return s
		}
	}
	return api.TaskStatus{}
}

func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s; containers %v", what, h.drv.Names())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *harness) containerOf(id string) string {
	cs, _ := h.drv.List(context.Background(), map[string]string{api.LabelTask: id})
	if len(cs) != 1 {
		return ""
	}
	return cs[0].ID
}

func TestRunsTasksAndRestartsCrashes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.deploy(task("a", 1), task("b", 2))
	h.waitFor("both tasks running", func() bool {
		return h.status("a").State == api.StateRunning && h.status("b").State == api.StateRunning
	})
	id := h.containerOf("a")
	if err := h.drv.Crash(id, 1); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the crashed task restarted in place", func() bool {
		s := h.status("a")
		return s.State == api.StateRunning && s.Restarts == 1 && s.ContainerID == id
	})
	if r := h.status("a").Reason; !strings.Contains(r, "exited with code 1") {
		t.Errorf("reason = %q", r)
	}
}

func TestCrashLoopBacksOff(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.deploy(task("a", 1))
	h.waitFor("running", func() bool { return h.status("a").State == api.StateRunning })
	for i := 0; i < 3; i++ {
		// Running again after the crash before: a status still saying
		// running from before that crash was read is not enough.
		h.waitFor("running again", func() bool { s := h.status("a"); return s.State == api.StateRunning && s.Restarts == i })
		if err := h.drv.Crash(h.containerOf("a"), 2); err != nil {
			t.Fatalf("crash %d: %v", i+1, err)
		}
		if i < 2 {
			h.waitFor("the restart", func() bool { return h.status("a").Restarts == i+1 })
		}
	}
	h.waitFor("crash loop", func() bool { return h.status("a").State == api.StateCrashLoop })
	s := h.status("a")
	if s.NextRestart.IsZero() || !strings.Contains(s.Reason, "times in a row") {
		t.Fatalf("status %+v", s)
	}
}

// TestExitIsRecordedBeforeASlowRestart: on an engine that takes seconds to
// start a container, the exit shows as restarting while the restart is
// under way, not as the run before it going on (which a rollout would
// count towards the new task's stability).
func TestExitIsRecordedBeforeASlowRestart(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.deploy(task("a", 1))
	h.waitFor("running", func() bool { return h.status("a").State == api.StateRunning })
	id := h.containerOf("a")
	h.drv.SetMethodLatency("Start", 3*time.Second)
	if err := h.drv.Crash(id, 1); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the exit recorded while the restart is under way", func() bool {
		s := h.status("a")
		return s.State == api.StateRestarting && s.ContainerID == id && strings.Contains(s.Reason, "exited with code 1")
	})
	if n := h.drv.Calls("Start"); n != 2 {
		t.Fatalf("restarting shown after %d starts, want it during the second", n)
	}
	h.waitFor("running again", func() bool { s := h.status("a"); return s.State == api.StateRunning && s.Restarts == 1 })
}

// TestCrashServedDuringASlowStart: while one task's start takes seconds,
// another task's exit is recorded at once, not after the start.
func TestCrashServedDuringASlowStart(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.deploy(task("a", 1))
	h.waitFor("a running", func() bool { return h.status("a").State == api.StateRunning })
	h.drv.SetMethodLatency("Start", 3*time.Second) // within the harness's 5 s call timeout
	if err := h.st.ApplyTasks(context.Background(), []api.Task{task("b", 2)}, nil); err != nil {
		t.Fatal(err)
	}
	h.waitFor("b's start under way", func() bool { return h.drv.Calls("Start") == 2 })
	if err := h.drv.Crash(h.containerOf("a"), 1); err != nil {
		t.Fatal(err)
	}
	h.waitFor("a's exit recorded", func() bool { return h.status("a").State == api.StateRestarting })
	if s := h.status("b"); s.State != "" {
		t.Fatalf("a's exit was recorded only after b's start returned (b %s)", s.State)
	}
}

func TestOOMReason(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.deploy(task("a", 1))
	h.waitFor("running", func() bool { return h.status("a").State == api.StateRunning })
	_ = h.drv.OOM(h.containerOf("a"))
	h.waitFor("OOM reported", func() bool { s := h.status("a"); return s.OOMKilled && strings.Contains(s.Reason, "OOMKilled") })
}

func TestAdoptsWithoutRestart(t *testing.T) {
	t.Parallel()
	var existing string
	h := newHarness(t, func(h *harness) {
		// The task is stored and its container left running by a
		// previous agent process.
		h.deploy(task("a", 1))
		ctx := context.Background()
		ag := New(Config{ClusterID: "c1", NodeID: "n1"}, h.st, h.drv, slog.New(slog.DiscardHandler), nil)
		spec := &api.ServiceSpec{Name: "web", Image: "img:1", ImageID: "sha256:img1"}
		id, err := h.drv.Create(ctx, ag.containerSpec(task("a", 1), spec))
		if err != nil {
			t.Fatal(err)
		}
		if err := h.drv.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
		existing = id
	})
	starts := h.drv.Calls("Start")
	h.waitFor("adopted", func() bool { return h.status("a").State == api.StateRunning })
	if h.status("a").ContainerID != existing {
		t.Fatalf("task runs %s, want the adopted %s", h.status("a").ContainerID, existing)
	}
	if n := h.drv.Calls("Start") - starts; n != 0 {
		t.Fatalf("%d starts: the running container was restarted", n)
	}
	if n := h.drv.Calls("Create"); n != 1 {
		t.Fatalf("%d creates: a duplicate was created", n)
	}
}

func TestRecreatesRemovedAndRemovesOrphansOnly(t *testing.T) {
	t.Parallel()
	var foreign, orphan string
	h := newHarness(t, func(h *harness) {
		foreign = h.drv.AddForeign("other", map[string]string{api.LabelCluster: "someone-else", api.LabelNode: "n1", api.LabelTask: "zzz"})
		orphan = h.drv.AddForeign("orphan", map[string]string{api.LabelCluster: "c1", api.LabelNode: "n1", api.LabelTask: "gone"})
	})
	h.deploy(task("a", 1))
	h.waitFor("running", func() bool { return h.status("a").State == api.StateRunning })
	h.waitFor("orphan removed", func() bool {
		_, err := h.drv.Inspect(context.Background(), orphan)
		return err != nil
	})
	old := h.containerOf("a")
	h.drv.RemoveBehindBack(old)
	h.waitFor("recreated", func() bool {
		id := h.containerOf("a")
		return id != "" && id != old && h.status("a").State == api.StateRunning
	})
	if _, err := h.drv.Inspect(context.Background(), foreign); err != nil {
		t.Fatalf("a container of another cluster was touched: %v", err)
	}
}

func TestStopAndDelete(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.deploy(task("a", 1))
	h.waitFor("running", func() bool { return h.status("a").State == api.StateRunning })
	stopped := task("a", 1)
	stopped.Desired = api.DesiredStopped
	if err := h.st.ApplyTasks(context.Background(), []api.Task{stopped}, nil); err != nil {
		t.Fatal(err)
	}
	h.waitFor("stopped", func() bool { return h.status("a").State == api.StateStopped })
	if err := h.st.ApplyTasks(context.Background(), nil, []api.Task{stopped}); err != nil {
		t.Fatal(err)
	}
	h.waitFor("container removed", func() bool { return len(h.drv.Names()) == 0 })
	h.waitFor("status forgotten", func() bool { return h.status("a").TaskID == "" })
}

func TestEngineFaultIsReported(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.drv.FailNext("Create", fmt.Errorf("disk full"))
	h.deploy(task("a", 1))
	h.waitFor("failure event", func() bool {
		evs, _ := h.st.ListEvents(context.Background(), 0, 100)
		for _, e := range evs {
			if e.Type == "task.failed" && strings.Contains(e.Message, "disk full") {
				return true
			}
		}
		return false
	})
	h.waitFor("retried and running", func() bool { return h.status("a").State == api.StateRunning })
}

// A stack network name another cluster holds on the same engine: the
// agent uses a cluster-qualified name instead, and reports the task's
// address on it.
func TestStackNetworkTakenByAnotherCluster(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(h *harness) {
		if _, err := h.drv.EnsureNetwork(context.Background(), "berth_s", map[string]string{api.LabelCluster: "other"}, false); err != nil {
			t.Fatal(err)
		}
	})
	h.deploy(task("a", 1))
	h.waitFor("the task running", func() bool { return h.status("a").State == api.StateRunning })
	cs, _ := h.drv.List(context.Background(), map[string]string{api.LabelTask: "a"})
	if len(cs) != 1 || cs[0].Addresses["berth_s_c1"] == "" || h.status("a").Address != cs[0].Addresses["berth_s_c1"] {
		t.Fatalf("container %+v, status address %q: want an address on berth_s_c1", cs, h.status("a").Address)
	}
	nets, _ := h.drv.ListNetworks(context.Background(), map[string]string{api.LabelCluster: "other"})
	if len(nets) != 1 || nets[0].Name != "berth_s" {
		t.Fatalf("the other cluster's network: %+v", nets)
	}
}

// TestCreatedAheadStartsAtItsTurn: a task whose desired state is created
// gets its container made and not started; once desired running, that
// same container starts.
func TestCreatedAheadStartsAtItsTurn(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	ahead := task("a", 1)
	ahead.Desired = api.DesiredCreated
	h.deploy(ahead)
	h.waitFor("the container created", func() bool { return h.status("a").State == api.StateCreated })
	id := h.containerOf("a")
	c, err := h.drv.Inspect(context.Background(), id)
	if err != nil || c.Running() {
		t.Fatalf("container %s: %+v, %v; want created, not running", id, c, err)
	}
	ahead.Desired = api.DesiredRunning
	if err := h.st.ApplyTasks(context.Background(), []api.Task{ahead}, nil); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the same container running", func() bool {
		s := h.status("a")
		return s.State == api.StateRunning && s.ContainerID == id
	})
}

// TestTaskToRunNowIsCreatedBeforeOneAhead: a slot to start now and the
// next slot's task, created ahead, arrive together; the engine creates
// the one to run now first, so the one ahead never delays it.
func TestTaskToRunNowIsCreatedBeforeOneAhead(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(h *harness) { h.drv.SetLatency(20 * time.Millisecond) })
	ahead := task("b", 2)
	ahead.Desired = api.DesiredCreated
	h.deploy(task("a", 1), ahead)
	h.waitFor("a running and b created", func() bool {
		return h.status("a").State == api.StateRunning && h.status("b").State == api.StateCreated
	})
	// The fake engine numbers containers in the order it creates them.
	if a, b := h.containerOf("a"), h.containerOf("b"); a > b {
		t.Errorf("created ahead first: %s (ahead) before %s (to run now)", b, a)
	}
}
