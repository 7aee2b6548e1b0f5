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
// pure: newID supplies task IDs, now the creation time.
//
// A slot whose task is of an older revision or generation is replaced at
// once (the old task deleted, a new one created); rollout strategies that
// keep old tasks serving until new ones are ready build on this.
func PlanTasks(services []api.ServiceState, specs map[RevKey]*api.ServiceSpec, tasks []api.Task, newID func() string, now time.Time) TaskPlan {
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
		planService(&plan, svc, existing, newID, now)
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

func planService(plan *TaskPlan, svc api.ServiceState, existing []api.Task, newID func() string, now time.Time) {
	desired := api.DesiredRunning
	if svc.Stopped {
		desired = api.DesiredStopped
	}
	bySlot := map[int][]api.Task{}
	for _, t := range existing {
		bySlot[t.Slot] = append(bySlot[t.Slot], t)
	}
	for slot := 1; slot <= svc.Replicas; slot++ {
		ts := bySlot[slot]
		sortTasks(ts)
		var keep *api.Task
		for i := range ts {
			t := ts[i]
			if keep == nil && t.Revision == svc.Revision && t.RestartGen == svc.RestartGen {
				keep = &ts[i]
				continue
			}
			plan.Delete = append(plan.Delete, t)
		}
		if keep == nil {
			plan.Put = append(plan.Put, api.Task{
				ID: newID(), Stack: svc.Stack, Service: svc.Name, Slot: slot,
				Revision: svc.Revision, RestartGen: svc.RestartGen, Desired: desired, CreatedAt: now,
			})
			continue
		}
		if keep.Desired != desired || keep.Node == "" {
			t := *keep
			t.Desired = desired
			plan.Put = append(plan.Put, t)
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
