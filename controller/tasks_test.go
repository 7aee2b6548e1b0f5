package controller

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
)

func ids() func() string {
	n := 0
	return func() string { n++; return fmt.Sprintf("t%d", n) }
}

func task(id, svc string, slot, rev int) api.Task {
	return api.Task{ID: id, Stack: "s", Service: svc, Slot: slot, Revision: rev, Node: "n1", Desired: api.DesiredRunning}
}

// ahead is a task created ahead of its turn in a rolling update.
func ahead(id, svc string, slot, rev int) api.Task {
	t := task(id, svc, slot, rev)
	t.Desired = api.DesiredCreated
	return t
}

func TestPlanTasks(t *testing.T) {
	t.Parallel()
	specs := map[RevKey]*api.ServiceSpec{
		{"s", "web", 1}:  {Name: "web"},
		{"s", "web", 2}:  {Name: "web"},
		{"s", "cron", 1}: {Name: "cron", Schedule: "@hourly"},
		{"s", "sf", 1}:   {Name: "sf"},
		{"s", "sf", 2}:   {Name: "sf", Update: api.UpdatePolicy{Order: api.StopFirst}},
		{"s", "par", 1}:  {Name: "par"},
		{"s", "par", 2}:  {Name: "par", Update: api.UpdatePolicy{Parallelism: 2}},
	}
	svc := func(name string, rev, replicas int) api.ServiceState {
		return api.ServiceState{Stack: "s", Name: name, Revision: rev, Replicas: replicas}
	}
	web := func(rev, replicas int) api.ServiceState {
		return api.ServiceState{Stack: "s", Name: "web", Revision: rev, Replicas: replicas}
	}
	tests := []struct {
		desc     string
		services []api.ServiceState
		tasks    []api.Task
		ready    []string
		put      []string // "slot/rev/desired" of put tasks
		del      []string // IDs
	}{
		{desc: "empty to three", services: []api.ServiceState{web(1, 3)},
			put: []string{"1/1/running", "2/1/running", "3/1/running"}},
		{desc: "converged changes nothing", services: []api.ServiceState{web(1, 2)},
			tasks: []api.Task{task("a", "web", 1, 1), task("b", "web", 2, 1)}},
		{desc: "scale down deletes the highest slots", services: []api.ServiceState{web(1, 1)},
			tasks: []api.Task{task("a", "web", 1, 1), task("b", "web", 2, 1), task("c", "web", 3, 1)}, del: []string{"b", "c"}},
		{desc: "a new revision starts one slot's task first", services: []api.ServiceState{web(2, 2)},
			tasks: []api.Task{task("a", "web", 1, 1), task("b", "web", 2, 1)}, ready: []string{"a", "b"},
			put: []string{"1/2/running", "2/2/created"}},
		{desc: "the old task goes once its replacement is ready, and the next slot starts", services: []api.ServiceState{web(2, 2)},
			tasks: []api.Task{task("a", "web", 1, 1), task("n", "web", 1, 2), task("b", "web", 2, 1)}, ready: []string{"a", "b", "n"},
			put: []string{"2/2/running"}, del: []string{"a"}},
		{desc: "a replacement that is not ready keeps the old task and holds the rollout", services: []api.ServiceState{web(2, 2)},
			tasks: []api.Task{task("a", "web", 1, 1), task("n", "web", 1, 2), task("b", "web", 2, 1), ahead("m", "web", 2, 2)}, ready: []string{"a", "b"}},
		{desc: "the next slot's container is created while a replacement starts", services: []api.ServiceState{web(2, 3)},
			tasks: []api.Task{task("a", "web", 1, 1), task("n", "web", 1, 2), task("b", "web", 2, 1), task("c", "web", 3, 1)}, ready: []string{"a", "b", "c"},
			put: []string{"2/2/created"}},
		{desc: "a task created ahead starts at its turn and the one after is created", services: []api.ServiceState{web(2, 3)},
			tasks: []api.Task{task("a", "web", 1, 1), task("n", "web", 1, 2), task("b", "web", 2, 1), ahead("m", "web", 2, 2), task("c", "web", 3, 1)},
			ready: []string{"a", "b", "c", "n"}, put: []string{"2/2/running", "3/2/created"}, del: []string{"a"}},
		{desc: "a paused rollout creates nothing ahead", services: []api.ServiceState{{Stack: "s", Name: "web", Revision: 2, Replicas: 2,
			Rollout: &api.Rollout{State: api.RolloutInProgress, From: 1, To: 2, Paused: true}}},
			tasks: []api.Task{task("a", "web", 1, 1), task("n", "web", 1, 2), task("b", "web", 2, 1)}, ready: []string{"a", "b", "n"},
			del: []string{"a"}},
		{desc: "a rollback deletes the tasks created ahead", services: []api.ServiceState{web(1, 2)},
			tasks: []api.Task{task("a", "web", 1, 1), task("n", "web", 1, 2), task("b", "web", 2, 1), ahead("m", "web", 2, 2)}, ready: []string{"a", "b"},
			del: []string{"m", "n"}},
		{desc: "stop-first stops the old task when the one created ahead starts", services: []api.ServiceState{svc("sf", 2, 2)},
			tasks: []api.Task{task("n", "sf", 1, 2), task("b", "sf", 2, 1), ahead("m", "sf", 2, 2)}, ready: []string{"b", "n"},
			put: []string{"2/2/running"}, del: []string{"b"}},
		{desc: "stop-first replaces a slot at once", services: []api.ServiceState{svc("sf", 2, 2)},
			tasks: []api.Task{task("a", "sf", 1, 1), task("b", "sf", 2, 1)}, ready: []string{"a", "b"},
			put: []string{"1/2/running", "2/2/created"}, del: []string{"a"}},
		{desc: "parallelism 2 replaces two slots at a time", services: []api.ServiceState{svc("par", 2, 3)},
			tasks: []api.Task{task("a", "par", 1, 1), task("b", "par", 2, 1), task("c", "par", 3, 1)}, ready: []string{"a", "b", "c"},
			put: []string{"1/2/running", "2/2/running", "3/2/created"}},
		{desc: "a stopped service is replaced without waiting", services: []api.ServiceState{{Stack: "s", Name: "web", Revision: 2, Replicas: 2, Stopped: true}},
			tasks: []api.Task{task("a", "web", 1, 1), task("b", "web", 2, 1)},
			put:   []string{"1/2/stopped", "2/2/stopped"}, del: []string{"a", "b"}},
		{desc: "duplicate in a slot is deleted", services: []api.ServiceState{web(1, 1)},
			tasks: []api.Task{task("a", "web", 1, 1), task("b", "web", 1, 1)}, del: []string{"b"}},
		{desc: "stopped service marks tasks stopped", services: []api.ServiceState{{Stack: "s", Name: "web", Revision: 1, Replicas: 1, Stopped: true}},
			tasks: []api.Task{task("a", "web", 1, 1)}, put: []string{"1/1/stopped"}},
		{desc: "a restart generation starts a fresh task first", services: []api.ServiceState{{Stack: "s", Name: "web", Revision: 1, Replicas: 1, RestartGen: 1}},
			tasks: []api.Task{task("a", "web", 1, 1)}, ready: []string{"a"}, put: []string{"1/1/running"}},
		{desc: "removed service's tasks go", services: nil,
			tasks: []api.Task{task("a", "web", 1, 1)}, del: []string{"a"}},
		{desc: "scheduled services have no tasks", services: []api.ServiceState{{Stack: "s", Name: "cron", Revision: 1, Replicas: 1}}},
		{desc: "unplaced task is offered again", services: []api.ServiceState{web(1, 1)},
			tasks: []api.Task{{ID: "a", Stack: "s", Service: "web", Slot: 1, Revision: 1, Desired: api.DesiredRunning}}, put: []string{"1/1/running"}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			ready := map[string]bool{}
			for _, id := range tt.ready {
				ready[id] = true
			}
			plan := PlanTasks(tt.services, specs, tt.tasks, ready, ids(), time.Unix(0, 0))
			var put, del []string
			for _, p := range plan.Put {
				put = append(put, fmt.Sprintf("%d/%d/%s", p.Slot, p.Revision, p.Desired))
			}
			for _, d := range plan.Delete {
				del = append(del, d.ID)
			}
			sort.Strings(del)
			if fmt.Sprint(put) != fmt.Sprint(tt.put) {
				t.Errorf("put = %v, want %v", put, tt.put)
			}
			if fmt.Sprint(del) != fmt.Sprint(tt.del) {
				t.Errorf("delete = %v, want %v", del, tt.del)
			}
		})
	}
}
