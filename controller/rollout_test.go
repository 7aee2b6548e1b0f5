package controller

import (
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
)

func TestCheckRollout(t *testing.T) {
	t.Parallel()
	start := time.Unix(1000, 0)
	svc := api.ServiceState{Stack: "s", Name: "web", Revision: 2, Replicas: 2,
		Rollout: &api.Rollout{From: 1, To: 2, State: api.RolloutInProgress, Started: start, Deadline: start.Add(time.Minute)}}
	tk := func(id string, slot, rev int) api.Task {
		return api.Task{ID: id, Stack: "s", Service: "web", Slot: slot, Revision: rev}
	}
	st := func(state, reason string) api.TaskStatus { return api.TaskStatus{State: state, Reason: reason} }
	tests := []struct {
		desc   string
		tasks  []api.Task
		status map[string]api.TaskStatus
		up     api.UpdatePolicy
		now    time.Time
		state  string // "" : unchanged
		rev    int
		reason string
	}{
		{desc: "in progress", tasks: []api.Task{tk("a", 1, 1), tk("n", 1, 2), tk("b", 2, 1)},
			status: map[string]api.TaskStatus{"n": st(api.StateStarting, "")}, now: start.Add(10 * time.Second)},
		{desc: "done when every slot runs the new revision", tasks: []api.Task{tk("n", 1, 2), tk("m", 2, 2)},
			status: map[string]api.TaskStatus{"n": st(api.StateRunning, ""), "m": st(api.StateRunning, "")}, now: start.Add(20 * time.Second),
			state: api.RolloutDone, rev: 2},
		{desc: "not done before the new tasks ran for the stability time", tasks: []api.Task{tk("n", 1, 2), tk("m", 2, 2)},
			status: map[string]api.TaskStatus{"n": {State: api.StateRunning, StartedAt: start.Add(16 * time.Second)}, "m": {State: api.StateRunning, StartedAt: start.Add(10 * time.Second)}},
			up:     api.UpdatePolicy{Stability: api.Duration(5 * time.Second)}, now: start.Add(20 * time.Second)},
		{desc: "done once they did", tasks: []api.Task{tk("n", 1, 2), tk("m", 2, 2)},
			status: map[string]api.TaskStatus{"n": {State: api.StateRunning, StartedAt: start.Add(15 * time.Second)}, "m": {State: api.StateRunning, StartedAt: start.Add(10 * time.Second)}},
			up:     api.UpdatePolicy{Stability: api.Duration(5 * time.Second)}, now: start.Add(20 * time.Second), state: api.RolloutDone, rev: 2},
		{desc: "not done while an old task remains", tasks: []api.Task{tk("a", 1, 1), tk("n", 1, 2), tk("m", 2, 2)},
			status: map[string]api.TaskStatus{"n": st(api.StateRunning, ""), "m": st(api.StateRunning, "")}, now: start.Add(20 * time.Second)},
		{desc: "a crash-looping new task rolls back", tasks: []api.Task{tk("a", 1, 1), tk("n", 1, 2), tk("b", 2, 1)},
			status: map[string]api.TaskStatus{"n": st(api.StateCrashLoop, "exited with code 1 (3 times in a row)")}, now: start.Add(5 * time.Second),
			state: api.RolloutRolledBack, rev: 1, reason: "exited with code 1"},
		{desc: "the deadline rolls back", tasks: []api.Task{tk("a", 1, 1), tk("n", 1, 2), tk("b", 2, 1)},
			status: map[string]api.TaskStatus{"n": st(api.StateStarting, "")}, now: start.Add(time.Minute),
			state: api.RolloutRolledBack, rev: 1, reason: "deadline"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			next, ev, changed := CheckRollout(svc, tt.up, tt.tasks, tt.status, nil, tt.now)
			if tt.state == "" {
				if changed {
					t.Fatalf("changed to %+v", next.Rollout)
				}
				return
			}
			if !changed || ev == nil {
				t.Fatal("no change")
			}
			if next.Rollout.State != tt.state || next.Revision != tt.rev {
				t.Fatalf("state %s revision %d, want %s %d", next.Rollout.State, next.Revision, tt.state, tt.rev)
			}
			if !strings.Contains(next.Rollout.Reason, tt.reason) {
				t.Errorf("reason %q lacks %q", next.Rollout.Reason, tt.reason)
			}
			if svc.Rollout.State != api.RolloutInProgress {
				t.Fatal("CheckRollout modified its input")
			}
		})
	}
}
