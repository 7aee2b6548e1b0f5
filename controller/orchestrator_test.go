package controller

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/store"
)

func TestOrchestratorCreatesAndPlacesTasks(t *testing.T) {
	st := store.OpenTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := st.PutNode(ctx, api.Node{ID: "n1", State: api.NodeReady, NanoCPUs: 2e9, Memory: 1 << 30}, 0); err != nil {
		t.Fatal(err)
	}
	w, _ := PlanDeploy(stackOf(svcSpec("web", "1", 3)), Current{}, time.Now())
	if err := st.ApplyStack(ctx, w); err != nil {
		t.Fatal(err)
	}
	o := NewOrchestrator(st, slog.New(slog.DiscardHandler))
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
