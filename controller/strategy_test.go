package controller

import (
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/ingress"
)

// rolloutOf returns a service at revision 2 mid-rollout from 1.
func rolloutOf(strategy string, replicas int) api.ServiceState {
	start := time.Unix(1000, 0)
	return api.ServiceState{Stack: "s", Name: "web", Revision: 2, Replicas: replicas,
		Rollout: &api.Rollout{From: 1, To: 2, State: api.RolloutInProgress, Strategy: strategy,
			Started: start, Deadline: start.Add(time.Minute), TrafficGen: 7}}
}

func planOf(svc api.ServiceState, up api.UpdatePolicy, tasks []api.Task, ready ...string) TaskPlan {
	specs := map[RevKey]*api.ServiceSpec{{"s", "web", 1}: {Name: "web"}, {"s", "web", 2}: {Name: "web", Update: up}}
	r := map[string]bool{}
	for _, id := range ready {
		r[id] = true
	}
	return PlanTasks([]api.ServiceState{svc}, specs, tasks, r, ids(), time.Unix(2000, 0))
}

func TestPlanCanary(t *testing.T) {
	t.Parallel()
	up := api.UpdatePolicy{Strategy: api.Canary, Steps: []int{10, 50}}
	old := []api.Task{task("a", "web", 1, 1), task("b", "web", 2, 1), task("c", "web", 3, 1), task("d", "web", 4, 1)}

	// Step 1 (10% of 4 replicas): one new task beside all old ones, and
	// every task carries the split.
	svc := rolloutOf(api.Canary, 4)
	plan := planOf(svc, up, old, "a", "b", "c", "d")
	if len(plan.Delete) != 0 {
		t.Fatalf("step 1 deletes %v; a canary keeps every old task", plan.Delete)
	}
	var fresh []api.Task
	for _, p := range plan.Put {
		if p.Traffic != (api.TrafficSplit{Gen: 7, Revision: 2, Percent: 10}) {
			t.Errorf("task %s carries %+v, want revision 2 at 10%%", p.ID, p.Traffic)
		}
		if p.Revision == 2 {
			fresh = append(fresh, p)
		}
	}
	if len(fresh) != 1 || fresh[0].Slot != 1 || len(plan.Put) != 5 {
		t.Fatalf("step 1 puts %+v; want one new task in slot 1 and the split on the 4 old ones", plan.Put)
	}

	// Step 2 (50%): a second new task; still nothing deleted even once
	// the first is ready.
	n1 := fresh[0]
	n1.ID, n1.Node = "n1", "n1"
	tasks := append(old, n1)
	for i := range tasks {
		tasks[i].Traffic = api.TrafficSplit{Gen: 7, Revision: 2, Percent: 10}
	}
	svc.Rollout.Step, svc.Rollout.TrafficGen = 1, 8
	plan = planOf(svc, up, tasks, "a", "b", "c", "d", n1.ID)
	if len(plan.Delete) != 0 {
		t.Fatalf("step 2 deletes %v", plan.Delete)
	}
	news := 0
	for _, p := range plan.Put {
		if p.Revision == 2 && p.ID != n1.ID {
			news++
			if p.Slot != 2 {
				t.Errorf("step 2 starts slot %d, want 2", p.Slot)
			}
		}
		if p.Traffic.Percent != 50 || p.Traffic.Gen != 8 {
			t.Errorf("task %s carries %+v at step 2", p.ID, p.Traffic)
		}
	}
	if news != 1 {
		t.Fatalf("step 2 starts %d new tasks, want 1: %+v", news, plan.Put)
	}

	// The last step (100%) rolls the rest: the ready canary slot drops its
	// old task, traffic is spread evenly.
	svc.Rollout.Step = 2
	plan = planOf(svc, up, tasks, "a", "b", "c", "d", n1.ID)
	if len(plan.Delete) != 1 || plan.Delete[0].ID != "a" {
		t.Fatalf("last step deletes %v, want the old task of the ready slot 1", plan.Delete)
	}
	for _, p := range plan.Put {
		if p.Traffic.Revision != 0 {
			t.Errorf("last step: task %s carries %+v, want an even split", p.ID, p.Traffic)
		}
	}
}

func TestPlanBlueGreen(t *testing.T) {
	t.Parallel()
	up := api.UpdatePolicy{Strategy: api.BlueGreen, RollbackWindow: api.Duration(time.Minute)}
	old := []api.Task{task("a", "web", 1, 1), task("b", "web", 2, 1)}
	svc := rolloutOf(api.BlueGreen, 2)

	// Staging: the whole new set starts, out of traffic.
	plan := planOf(svc, up, old, "a", "b")
	if len(plan.Delete) != 0 {
		t.Fatalf("staging deletes %v", plan.Delete)
	}
	fresh := 0
	for _, p := range plan.Put {
		if p.Revision == 2 {
			fresh++
		}
		if p.Traffic != (api.TrafficSplit{Gen: 7, Revision: 1, Percent: 100}) {
			t.Errorf("staging: task %s carries %+v, want all traffic on revision 1", p.ID, p.Traffic)
		}
	}
	if fresh != 2 {
		t.Fatalf("staging starts %d new tasks, want 2", fresh)
	}

	// Switched: traffic moves to revision 2; the old set still runs.
	tasks := append(old, task("n", "web", 1, 2), task("m", "web", 2, 2))
	svc.Rollout.Switched, svc.Rollout.TrafficGen = true, 9
	plan = planOf(svc, up, tasks, "a", "b", "n", "m")
	if len(plan.Delete) != 0 {
		t.Fatalf("switched deletes %v", plan.Delete)
	}
	for _, p := range plan.Put {
		if p.Traffic != (api.TrafficSplit{Gen: 9, Revision: 2, Percent: 100}) || p.Desired != api.DesiredRunning {
			t.Errorf("switched: task %s: %+v", p.ID, p)
		}
	}

	// Done: the old set is stopped and kept for the rollback window.
	for i := range tasks {
		tasks[i].Traffic = api.TrafficSplit{Gen: 9, Revision: 2, Percent: 100}
	}
	svc.Rollout.State, svc.Rollout.Ended = api.RolloutDone, time.Unix(1990, 0)
	plan = planOf(svc, up, tasks, "a", "b", "n", "m")
	if len(plan.Delete) != 0 || len(plan.Put) != 2 {
		t.Fatalf("done: put %+v delete %+v; want the old set stopped, nothing deleted", plan.Put, plan.Delete)
	}
	for _, p := range plan.Put {
		if p.Revision != 1 || p.Desired != api.DesiredStopped {
			t.Errorf("done: %+v", p)
		}
	}

	// After the window the old set goes.
	svc.Rollout.Ended = time.Unix(1000, 0)
	plan = planOf(svc, up, tasks, "a", "b", "n", "m")
	if len(plan.Delete) != 2 {
		t.Fatalf("after the window: delete %+v, want the old set", plan.Delete)
	}

	// A rollback within the window starts the stopped set again.
	tasks[0].Desired, tasks[1].Desired = api.DesiredStopped, api.DesiredStopped
	back := rolloutOf(api.BlueGreen, 2)
	back.Revision, back.Rollout.From, back.Rollout.To = 1, 2, 1
	specs := map[RevKey]*api.ServiceSpec{{"s", "web", 1}: {Name: "web", Update: up}, {"s", "web", 2}: {Name: "web", Update: up}}
	plan = PlanTasks([]api.ServiceState{back}, specs, tasks, map[string]bool{"n": true, "m": true}, ids(), time.Unix(2000, 0))
	started := 0
	for _, p := range plan.Put {
		if p.Revision == 1 && p.Desired == api.DesiredRunning && (p.ID == "a" || p.ID == "b") {
			started++
		}
		if p.Revision == 1 && p.ID != "a" && p.ID != "b" {
			t.Errorf("rollback creates %+v instead of starting the kept task", p)
		}
	}
	if started != 2 || len(plan.Delete) != 0 {
		t.Fatalf("rollback: put %+v delete %+v; want the 2 kept tasks started", plan.Put, plan.Delete)
	}
}

func stats(requests, errors int64, latency time.Duration) ingress.RevisionStats {
	s := ingress.RevisionStats{Requests: requests, Errors: errors, Buckets: make([]int64, len(ingress.LatencyBuckets)+1)}
	i := 0
	for i < len(ingress.LatencyBuckets) && latency > ingress.LatencyBuckets[i] {
		i++
	}
	s.Buckets[i] = requests
	return s
}

// mixed is the counters of a and b together.
func mixed(a, b ingress.RevisionStats) ingress.RevisionStats {
	a.Buckets = append([]int64(nil), a.Buckets...)
	a.Merge(b)
	return a
}

func TestCheckCanary(t *testing.T) {
	t.Parallel()
	up := api.UpdatePolicy{Strategy: api.Canary, Steps: []int{10, 50}, Interval: api.Duration(30 * time.Second), MaxP99: api.Duration(time.Second)}
	tasks := []api.Task{task("a", "web", 1, 1), task("b", "web", 2, 1), task("n", "web", 1, 2)}
	running := map[string]api.TaskStatus{"a": {State: api.StateRunning}, "b": {State: api.StateRunning}, "n": {State: api.StateRunning}}
	t0 := time.Unix(1010, 0)
	watched := func() api.ServiceState {
		svc := rolloutOf(api.Canary, 2)
		svc.Rollout.Observing = t0
		return svc
	}
	tests := []struct {
		desc   string
		svc    api.ServiceState
		win    *Window
		now    time.Time
		state  string // "" unchanged, "step" next step, or a rollout state
		reason string
	}{
		{desc: "the step's tasks ready start the watch", svc: rolloutOf(api.Canary, 2), now: t0, state: "watch"},
		{desc: "within the interval, healthy: wait", svc: watched(), win: &Window{New: stats(50, 0, 3*time.Millisecond), Old: stats(500, 0, 3*time.Millisecond)}, now: t0.Add(10 * time.Second)},
		{desc: "after the interval, healthy: next step", svc: watched(), win: &Window{New: stats(50, 0, 3*time.Millisecond), Old: stats(500, 0, 3*time.Millisecond)}, now: t0.Add(30 * time.Second), state: "step"},
		{desc: "no window this pass: nothing judged", svc: watched(), now: t0.Add(31 * time.Second)},
		{desc: "5xx fail the step early", svc: watched(), win: &Window{New: stats(40, 10, 3*time.Millisecond), Old: stats(500, 0, 3*time.Millisecond)}, now: t0.Add(5 * time.Second),
			state: api.RolloutRolledBack, reason: "errors gate failed: 5xx 25.0%"},
		{desc: "the old revision's own errors are the baseline", svc: watched(), win: &Window{New: stats(100, 10, 3*time.Millisecond), Old: stats(500, 50, 3*time.Millisecond)}, now: t0.Add(30 * time.Second), state: "step"},
		{desc: "twice as slow fails the latency gate", svc: watched(), win: &Window{New: stats(50, 0, 400*time.Millisecond), Old: stats(500, 0, 3*time.Millisecond)}, now: t0.Add(30 * time.Second),
			state: api.RolloutRolledBack, reason: "latency gate failed"},
		{desc: "a baseline of few requests judges no latency", svc: watched(), win: &Window{New: stats(3745, 0, 43*time.Millisecond), Old: stats(24, 0, 2*time.Millisecond)}, now: t0.Add(30 * time.Second), state: "step"},
		{desc: "scheduling noise within the slack passes", svc: watched(), win: &Window{New: stats(500, 0, 60*time.Millisecond), Old: stats(500, 0, 3*time.Millisecond)}, now: t0.Add(30 * time.Second), state: "step"},
		{desc: "a few stragglers past twice the old p99 pass", svc: watched(), win: &Window{New: mixed(stats(200, 0, 3*time.Millisecond), stats(4, 0, 220*time.Millisecond)), Old: stats(500, 0, 3*time.Millisecond)}, now: t0.Add(30 * time.Second), state: "step"},
		{desc: "as many slow requests as a slow revision's fail", svc: watched(), win: &Window{New: mixed(stats(200, 0, 3*time.Millisecond), stats(40, 0, 220*time.Millisecond)), Old: stats(500, 0, 3*time.Millisecond)}, now: t0.Add(30 * time.Second),
			state: api.RolloutRolledBack, reason: "more than twice as slow"},
		{desc: "slow is judged only at the end of the interval", svc: watched(), win: &Window{New: stats(50, 0, 400*time.Millisecond), Old: stats(500, 0, 3*time.Millisecond)}, now: t0.Add(5 * time.Second)},
		{desc: "the p99 bound", svc: watched(), win: &Window{New: stats(50, 0, 2*time.Second)}, now: t0.Add(30 * time.Second),
			state: api.RolloutRolledBack, reason: "above the 1s bound"},
		{desc: "probes through the ingress failing fail the step early", svc: watched(), win: &Window{New: stats(50, 0, 3*time.Millisecond), Probed: true, Probes: ProbeResult{OK: 3, Failed: 5, LastError: "GET /: 502 Bad Gateway"}}, now: t0.Add(5 * time.Second),
			state: api.RolloutRolledBack, reason: "probe gate failed: 5 of 8 requests through the public ingress failed; last: GET /: 502"},
		{desc: "one failed probe in many passes", svc: watched(), win: &Window{New: stats(50, 0, 3*time.Millisecond), Probed: true, Probes: ProbeResult{OK: 100, Failed: 1}}, now: t0.Add(30 * time.Second), state: "step"},
		{desc: "a restarted orchestrator watches a full interval again", svc: watched(), win: &Window{New: stats(50, 0, 3*time.Millisecond), Since: t0.Add(20 * time.Second)}, now: t0.Add(35 * time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			next, ev, changed := CheckRollout(tt.svc, up, tasks, running, tt.win, tt.now)
			r := next.Rollout
			switch tt.state {
			case "":
				if changed {
					t.Fatalf("changed: %+v %+v", r, ev)
				}
			case "watch":
				if !changed || r.Observing.IsZero() || r.Step != 0 {
					t.Fatalf("want the watch started: %+v", r)
				}
			case "step":
				if !changed || r.Step != 1 || !r.Observing.IsZero() || r.TrafficGen == tt.svc.Rollout.TrafficGen || r.State != api.RolloutInProgress {
					t.Fatalf("want the next step: %+v", r)
				}
			default:
				if !changed || r.State != tt.state || next.Revision != 1 || !strings.Contains(r.Reason, tt.reason) {
					t.Fatalf("want %s with %q: revision %d %+v", tt.state, tt.reason, next.Revision, r)
				}
				if r.TrafficGen == tt.svc.Rollout.TrafficGen {
					t.Errorf("a rollback must write a new traffic split")
				}
			}
		})
	}
}

func TestCheckBlueGreen(t *testing.T) {
	t.Parallel()
	up := api.UpdatePolicy{Strategy: api.BlueGreen, Interval: api.Duration(10 * time.Second)}
	tasks := []api.Task{task("a", "web", 1, 1), task("n", "web", 1, 2)}
	svc := rolloutOf(api.BlueGreen, 1)
	st := map[string]api.TaskStatus{"a": {State: api.StateRunning}, "n": {State: api.StateStarting}}
	if _, _, changed := CheckRollout(svc, up, tasks, st, nil, time.Unix(1005, 0)); changed {
		t.Fatal("switched before the new set was ready")
	}
	st["n"] = api.TaskStatus{State: api.StateRunning}
	next, ev, changed := CheckRollout(svc, up, tasks, st, nil, time.Unix(1006, 0))
	if !changed || !next.Rollout.Switched || ev.Type != "rollout.switched" || next.Rollout.TrafficGen == svc.Rollout.TrafficGen {
		t.Fatalf("want the switch: %+v %+v", next.Rollout, ev)
	}
	done, ev, changed := CheckRollout(next, up, tasks, st, &Window{New: stats(30, 0, time.Millisecond)}, time.Unix(1016, 0))
	if !changed || done.Rollout.State != api.RolloutDone || done.Revision != 2 {
		t.Fatalf("want done after the interval: %+v %+v", done.Rollout, ev)
	}
	bad, _, changed := CheckRollout(next, up, tasks, st, &Window{New: stats(30, 30, time.Millisecond)}, time.Unix(1008, 0))
	if !changed || bad.Rollout.State != api.RolloutRolledBack || bad.Revision != 1 {
		t.Fatalf("5xx after the switch must roll back: %+v", bad.Rollout)
	}
}
