package controller

import (
	"sort"
	"time"

	"github.com/berth-dev/berth/api"
)

// RevKey names one revision of one service.
type RevKey struct {
	Stack, Service string
	Revision       int
}

// TaskPlan is what the orchestrator decided for one pass.
type TaskPlan struct {
	Put    []api.Task // new or changed tasks (new ones still need a node when Node is "")
	Delete []api.Task // tasks whose containers must go
}

// PlanTasks computes the tasks that should exist for the given services:
// one task per slot of the current revision and restart generation. It is
// pure: ready says which tasks their agents report running (and healthy),
// newID supplies task IDs, now the creation time.
//
// A slot whose task is of an older revision or generation is replaced as
// its service's update policy says: start-first (the default) starts the
// new task and deletes the old one only once the new one is ready, so the
// slot never stops serving; stop-first deletes the old one at once. At
// most update.parallelism slots (default 1) are being replaced at a time;
// as many of the slots waiting their turn get their new task ahead, with
// desired state created (the agent creates the container and does not
// start it), so a slot's turn costs only the container's start. A new
// revision that never becomes ready leaves the old tasks serving.
func PlanTasks(services []api.ServiceState, specs map[RevKey]*api.ServiceSpec, tasks []api.Task, ready map[string]bool, newID func() string, now time.Time) TaskPlan {
	var plan TaskPlan
	byService := map[string][]api.Task{}
	for _, t := range tasks {
		k := t.Stack + "/" + t.Service
		byService[k] = append(byService[k], t)
	}
	live := map[string]bool{}
	for _, svc := range services {
		k := svc.Stack + "/" + svc.Name
		live[k] = true
		spec := specs[RevKey{svc.Stack, svc.Name, svc.Revision}]
		existing := byService[k]
		if spec == nil || spec.Schedule != "" {
			// Scheduled jobs run as job containers, not tasks; a missing
			// spec (revision not yet readable) leaves the tasks alone.
			if spec != nil {
				plan.Delete = append(plan.Delete, existing...)
			}
			continue
		}
		planService(&plan, svc, spec.Update, existing, ready, newID, now)
	}
	for k, ts := range byService {
		if !live[k] {
			plan.Delete = append(plan.Delete, ts...)
		}
	}
	sortTasks(plan.Put)
	sortTasks(plan.Delete)
	return plan
}

type slotTasks struct {
	cur *api.Task  // the task of the current revision and generation
	old []api.Task // anything else in the slot
}

func planService(plan *TaskPlan, svc api.ServiceState, up api.UpdatePolicy, existing []api.Task, ready map[string]bool, newID func() string, now time.Time) {
	puts, dels := len(plan.Put), len(plan.Delete)
	r := svc.Rollout
	inProgress := r != nil && r.State == api.RolloutInProgress && r.To == svc.Revision && !svc.Stopped
	switch {
	case inProgress && r.Strategy == api.Canary && canaryStep(up, r) < 100:
		planSurge(plan, svc, existing, canaryTasks(svc.Replicas, canaryStep(up, r)), newID, now)
	case inProgress && r.Strategy == api.BlueGreen:
		planSurge(plan, svc, existing, svc.Replicas, newID, now)
	case r != nil && r.Strategy == api.BlueGreen && r.State == api.RolloutDone && r.To == svc.Revision:
		planKeepStopped(plan, svc, up, existing, ready, newID, now)
	default:
		planRolling(plan, svc, up, existing, ready, newID, now)
	}
	// Every task that stays carries the service's traffic split.
	want := split(svc, up)
	gone := map[string]bool{}
	for _, t := range plan.Delete[dels:] {
		gone[t.ID] = true
	}
	putAt := map[string]int{}
	for i := puts; i < len(plan.Put); i++ {
		plan.Put[i].Traffic = want
		putAt[plan.Put[i].ID] = i
	}
	for _, t := range existing {
		if gone[t.ID] || t.Traffic == want {
			continue
		}
		if _, ok := putAt[t.ID]; ok {
			continue
		}
		t.Traffic = want
		plan.Put = append(plan.Put, t)
	}
}

// canaryStep is the traffic share (percent) of a canary's current step.
func canaryStep(up api.UpdatePolicy, r *api.Rollout) int {
	steps := CanarySteps(up)
	return steps[min(r.Step, len(steps)-1)]
}

// planSurge runs a new task beside the old ones in the first n slots and
// deletes nothing of the previous revision: a canary step (the traffic
// split gives the new tasks their share) or a blue-green staging (the new
// set gets no traffic until the switch). Tasks of any third revision go.
func planSurge(plan *TaskPlan, svc api.ServiceState, existing []api.Task, n int, newID func() string, now time.Time) {
	bySlot := map[int][]api.Task{}
	for _, t := range existing {
		bySlot[t.Slot] = append(bySlot[t.Slot], t)
	}
	for slot := 1; slot <= svc.Replicas; slot++ {
		ts := bySlot[slot]
		sortTasks(ts)
		var cur *api.Task
		for i := range ts {
			t := ts[i]
			switch {
			case t.Revision == svc.Revision && t.RestartGen == svc.RestartGen && cur == nil:
				cur = &ts[i]
				if t.Desired != api.DesiredRunning {
					t.Desired = api.DesiredRunning
					plan.Put = append(plan.Put, t)
				}
			case t.Revision == svc.Revision && t.RestartGen == svc.RestartGen:
				plan.Delete = append(plan.Delete, t)
			case t.Revision != svc.Rollout.From:
				plan.Delete = append(plan.Delete, t)
			case t.Desired != api.DesiredRunning:
				t.Desired = api.DesiredRunning
				plan.Put = append(plan.Put, t)
			}
		}
		if cur == nil && slot <= n {
			plan.Put = append(plan.Put, api.Task{ID: newID(), Stack: svc.Stack, Service: svc.Name, Slot: slot,
				Revision: svc.Revision, RestartGen: svc.RestartGen, Desired: api.DesiredRunning, CreatedAt: now})
		}
	}
	for slot, ts := range bySlot {
		if slot < 1 || slot > svc.Replicas {
			plan.Delete = append(plan.Delete, ts...)
		}
	}
}

// planKeepStopped follows a finished blue-green rollout: the new set runs
// as usual and the previous one stays, stopped, for the rollback window
// (a rollback then only starts containers); after it, it goes.
func planKeepStopped(plan *TaskPlan, svc api.ServiceState, up api.UpdatePolicy, existing []api.Task, ready map[string]bool, newID func() string, now time.Time) {
	window := up.RollbackWindow.D()
	if window <= 0 {
		window = api.DefaultRollbackWindow
	}
	if !now.Before(svc.Rollout.Ended.Add(window)) {
		planRolling(plan, svc, up, existing, ready, newID, now)
		return
	}
	var current []api.Task
	for _, t := range existing {
		switch {
		case t.Revision == svc.Revision && t.RestartGen == svc.RestartGen:
			current = append(current, t)
		case t.Revision == svc.Rollout.From && t.Desired != api.DesiredStopped:
			t.Desired = api.DesiredStopped
			plan.Put = append(plan.Put, t)
		case t.Revision != svc.Rollout.From:
			plan.Delete = append(plan.Delete, t)
		}
	}
	planRolling(plan, svc, up, current, ready, newID, now)
}

func planRolling(plan *TaskPlan, svc api.ServiceState, up api.UpdatePolicy, existing []api.Task, ready map[string]bool, newID func() string, now time.Time) {
	desired := api.DesiredRunning
	if svc.Stopped {
		desired = api.DesiredStopped
	}
	parallel := up.Parallelism
	if parallel <= 0 {
		parallel = 1
	}
	stopFirst := up.Order == api.StopFirst
	paused := svc.Rollout != nil && svc.Rollout.State == api.RolloutInProgress && svc.Rollout.Paused
	bySlot := map[int][]api.Task{}
	for _, t := range existing {
		bySlot[t.Slot] = append(bySlot[t.Slot], t)
	}
	slots := make([]slotTasks, svc.Replicas+1)
	inFlight, ahead := 0, 0
	for slot := 1; slot <= svc.Replicas; slot++ {
		ts := bySlot[slot]
		sortTasks(ts)
		st := &slots[slot]
		for i := range ts {
			current := ts[i].Revision == svc.Revision && ts[i].RestartGen == svc.RestartGen
			switch {
			case current && st.cur == nil:
				st.cur = &ts[i]
			case current:
				plan.Delete = append(plan.Delete, ts[i]) // a duplicate, from a crash between writes
			default:
				st.old = append(st.old, ts[i])
			}
		}
		// A replacement under way: the new task is not ready yet and the
		// old one still serves (start-first), or was just stopped. One
		// created ahead waits for its turn.
		switch {
		case st.cur == nil:
		case st.cur.Desired == api.DesiredCreated:
			ahead++
		case !ready[st.cur.ID] && (len(st.old) > 0 || stopFirst) && !svc.Stopped:
			inFlight++
		}
	}
	newTask := func(slot int) api.Task {
		return api.Task{ID: newID(), Stack: svc.Stack, Service: svc.Name, Slot: slot,
			Revision: svc.Revision, RestartGen: svc.RestartGen, Desired: desired, CreatedAt: now}
	}
	for slot := 1; slot <= svc.Replicas; slot++ {
		st := slots[slot]
		switch {
		case st.cur == nil && len(st.old) == 0:
			// A new slot (first deploy, scale up): nothing to keep serving.
			plan.Put = append(plan.Put, newTask(slot))
		case st.cur == nil:
			if !svc.Stopped && (inFlight >= parallel || paused) {
				// Wait for the replacements under way, or for resume;
				// the next slots' containers are created meanwhile.
				if ahead < parallel && !paused {
					ahead++
					t := newTask(slot)
					t.Desired = api.DesiredCreated
					plan.Put = append(plan.Put, t)
				}
				continue
			}
			inFlight++
			plan.Put = append(plan.Put, newTask(slot))
			if stopFirst || svc.Stopped {
				plan.Delete = append(plan.Delete, st.old...)
			}
		case st.cur.Desired == api.DesiredCreated && len(st.old) > 0 && !svc.Stopped:
			// Created ahead: its turn comes like a new task's.
			if inFlight >= parallel || paused {
				continue
			}
			inFlight++
			ahead--
			t := *st.cur
			t.Desired = desired
			plan.Put = append(plan.Put, t)
			if stopFirst {
				plan.Delete = append(plan.Delete, st.old...)
			}
		default:
			if len(st.old) > 0 && (ready[st.cur.ID] || stopFirst || svc.Stopped) {
				plan.Delete = append(plan.Delete, st.old...)
			}
			if st.cur.Desired != desired || st.cur.Node == "" {
				t := *st.cur
				t.Desired = desired
				plan.Put = append(plan.Put, t)
			}
		}
	}
	for slot, ts := range bySlot {
		if slot < 1 || slot > svc.Replicas {
			plan.Delete = append(plan.Delete, ts...)
		}
	}
}

func sortTasks(ts []api.Task) {
	sort.Slice(ts, func(i, j int) bool {
		a, b := ts[i], ts[j]
		if a.Stack != b.Stack {
			return a.Stack < b.Stack
		}
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		if a.Slot != b.Slot {
			return a.Slot < b.Slot
		}
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.Before(b.CreatedAt)
		}
		return a.ID < b.ID
	})
}
