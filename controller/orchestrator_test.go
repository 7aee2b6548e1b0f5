package controller

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/store"
)

// oneNode opens a store with one ready node, n1.
func oneNode(t *testing.T) (*store.Store, context.Context) {
	t.Helper()
	st := store.OpenTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	if err := st.PutNode(ctx, api.Node{ID: "n1", State: api.NodeReady, NanoCPUs: 2e9, Memory: 1 << 30}, 0); err != nil {
		t.Fatal(err)
	}
	return st, ctx
}

// deploy stores spec as service web of stack s, over what is stored of it.
func deploy(t *testing.T, ctx context.Context, st *store.Store, spec *api.ServiceSpec) {
	t.Helper()
	cur := Current{}
	if rec, ver, err := st.GetStack(ctx, "s"); err == nil {
		svcs, _ := st.ListServices(ctx, "s")
		latest, _ := st.LatestRevision(ctx, "s", "web")
		cur = Current{Record: &rec, Version: ver, Services: map[string]api.ServiceState{"web": svcs[0]}, Latest: map[string]api.Revision{"web": latest}}
	}
	w, _ := PlanDeploy(stackOf(spec), cur, time.Now())
	if err := st.ApplyStack(ctx, w); err != nil {
		t.Fatal(err)
	}
}

// capped is service web with replicas and at most max of them per node.
func capped(replicas, max int) func(env string) *api.ServiceSpec {
	return func(env string) *api.ServiceSpec {
		s := svcSpec("web", env, replicas)
		s.Placement.MaxPerNode = max
		return s
	}
}

func reconcile(t *testing.T, ctx context.Context, o *Orchestrator) {
	t.Helper()
	if err := o.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestOrchestratorCreatesAndPlacesTasks(t *testing.T) {
	st, ctx := oneNode(t)
	deploy(t, ctx, st, svcSpec("web", "1", 3))
	o := NewOrchestrator(st, nil, slog.New(slog.DiscardHandler))
	if err := o.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	tasks, err := st.ListTasks(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 3 {
		t.Fatalf("%d tasks, want 3", len(tasks))
	}
	for _, task := range tasks {
		if task.Node != "n1" {
			t.Errorf("task %s on node %q (unplaced: %s)", task.ID, task.Node, task.Unplaced)
		}
	}
	// A second pass changes nothing.
	if err := o.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	again, _ := st.ListTasks(ctx, "s")
	if len(again) != 3 || again[0].ID != tasks[0].ID {
		t.Fatalf("second pass changed tasks: %v", again)
	}
}

// TestStopFirstWhenTheNewTaskOnlyFitsAlone: one node, max_replicas_per_node
// 1: the replacement cannot run beside the old task, so the slot is
// replaced stop-first instead of waiting for a deadline.
func TestStopFirstWhenTheNewTaskOnlyFitsAlone(t *testing.T) {
	st, ctx := oneNode(t)
	spec := capped(1, 1)
	o := NewOrchestrator(st, nil, slog.New(slog.DiscardHandler))
	deploy(t, ctx, st, spec("1"))
	reconcile(t, ctx, o)
	first, _ := st.ListTasks(ctx, "s")
	if len(first) != 1 || first[0].Node != "n1" {
		t.Fatalf("first deploy: %+v", first)
	}
	deploy(t, ctx, st, spec("2"))
	reconcile(t, ctx, o)
	tasks, _ := st.ListTasks(ctx, "s")
	if len(tasks) != 1 || tasks[0].Revision != 2 || tasks[0].Node != "n1" {
		t.Fatalf("after the update: %+v, want only revision 2 on n1", tasks)
	}
}

// TestTaskCreatedAheadOnlyWhereItFits: one node, max_replicas_per_node 3,
// 2 replicas. The first slot's replacement takes the third place; the
// next slot's task, created ahead, does not fit and is not written (no
// unplaced task, no event), and it never takes the place of the task
// that is to run now.
func TestTaskCreatedAheadOnlyWhereItFits(t *testing.T) {
	st, ctx := oneNode(t)
	spec := capped(2, 3)
	o := NewOrchestrator(st, nil, slog.New(slog.DiscardHandler))
	deploy(t, ctx, st, spec("1"))
	reconcile(t, ctx, o)
	first, _ := st.ListTasks(ctx, "s")
	for _, task := range first {
		if err := st.PutStatus(ctx, api.TaskStatus{TaskID: task.ID, Node: "n1", State: api.StateRunning, StartedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	deploy(t, ctx, st, spec("2"))
	reconcile(t, ctx, o)
	tasks, _ := st.ListTasks(ctx, "s")
	var news []api.Task
	for _, task := range tasks {
		if task.Revision == 2 {
			news = append(news, task)
		}
	}
	if len(tasks) != 3 || len(news) != 1 || news[0].Slot != 1 || news[0].Desired != api.DesiredRunning || news[0].Node != "n1" {
		t.Fatalf("after the update: %+v, want both revision 1 tasks and slot 1 of revision 2 running on n1", tasks)
	}
	evs, _ := st.ListEvents(ctx, 0, 1000)
	for _, e := range evs {
		if e.Type == "task.unplaced" {
			t.Errorf("event %s: %s", e.Type, e.Message)
		}
	}
}
