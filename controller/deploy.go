// Package controller holds the server's reconcilers: deploy planning, the
// orchestrator that turns services into tasks, and the job scheduler. Each
// decides with a pure function and then applies the decision to the store.
package controller

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"sort"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/store"
)

// Current is the stored state of one stack that a deploy is planned against.
type Current struct {
	Record   *api.StackRecord // nil: new stack
	Version  int64
	Services map[string]api.ServiceState
	Latest   map[string]api.Revision // latest revision of each service, stored or not current
}

// SpecHash identifies a revision's content. Replicas are not part of it:
// scaling is not a new revision.
func SpecHash(spec api.ServiceSpec) string {
	spec.Replicas = 0
	b, _ := json.Marshal(spec)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// PlanDeploy decides what a deploy of stack changes, given the current
// state. It does no I/O. Images must already be resolved (ImageID set).
func PlanDeploy(stack *api.Stack, cur Current, now time.Time) (store.StackWrite, []api.ServiceChange) {
	rec := api.StackRecord{
		Name:      stack.Name,
		Networks:  stack.Networks,
		Volumes:   stack.Volumes,
		Sources:   stack.Sources,
		CreatedAt: now,
		UpdatedAt: now,
	}
	if cur.Record != nil {
		rec.CreatedAt = cur.Record.CreatedAt
	}
	w := store.StackWrite{Version: cur.Version}
	var changes []api.ServiceChange

	names := make([]string, 0, len(stack.Services))
	for name := range stack.Services {
		names = append(names, name)
	}
	sort.Strings(names)
	rec.Services = names

	for _, name := range names {
		spec := *stack.Services[name]
		hash := SpecHash(spec)
		state, exists := cur.Services[name]
		latest, hasLatest := cur.Latest[name]
		ch := api.ServiceChange{Service: name, Replicas: spec.Replicas, ImageID: spec.ImageID}

		switch {
		case exists && hasLatest && latest.Number == state.Revision && latest.Hash == hash:
			// Same spec: only the replica count may differ.
			ch.Revision = state.Revision
			if state.Replicas == spec.Replicas {
				ch.Action = api.ChangeUnchanged
			} else {
				ch.Action = api.ChangeScaled
				state.Replicas = spec.Replicas
				state.UpdatedAt = now
				w.Services = append(w.Services, state)
			}
		default:
			n := 1
			if hasLatest {
				n = latest.Number + 1
			}
			w.Revisions = append(w.Revisions, api.Revision{
				Stack: stack.Name, Service: name, Number: n, Hash: hash, Spec: spec, CreatedAt: now,
			})
			ch.Revision = n
			ch.Action = api.ChangeCreated
			if exists {
				ch.Action = api.ChangeUpdated
			}
			next := api.ServiceState{
				Stack: stack.Name, Name: name, Revision: n, Replicas: spec.Replicas,
				Stopped: state.Stopped, RestartGen: state.RestartGen, UpdatedAt: now,
				Rollout: state.Rollout, History: state.History,
			}
			if exists {
				next.BeginRollout(NewRollout(state.Revision, n, spec.Update, now))
			}
			state = next
			w.Services = append(w.Services, state)
		}
		changes = append(changes, ch)
	}

	var removed []string
	for name := range cur.Services {
		if _, ok := stack.Services[name]; !ok {
			removed = append(removed, name)
		}
	}
	sort.Strings(removed)
	for _, name := range removed {
		changes = append(changes, api.ServiceChange{Service: name, Action: api.ChangeRemoved})
	}
	w.Removed = removed

	// An unchanged deploy keeps the stored record's timestamps so that a
	// redeploy of the same file writes nothing at all.
	if cur.Record != nil && len(w.Services) == 0 && len(w.Removed) == 0 && sameRecord(*cur.Record, rec) {
		rec = *cur.Record
	}
	w.Record = rec
	return w, changes
}

func sameRecord(a, b api.StackRecord) bool {
	aj, _ := json.Marshal(api.StackRecord{Networks: a.Networks, Volumes: a.Volumes, Sources: a.Sources, Services: a.Services})
	bj, _ := json.Marshal(api.StackRecord{Networks: b.Networks, Volumes: b.Volumes, Sources: b.Sources, Services: b.Services})
	return slices.Equal(aj, bj)
}

// NewRollout starts a rollout from one revision to another.
func NewRollout(from, to int, up api.UpdatePolicy, now time.Time) *api.Rollout {
	d := up.Deadline.D()
	if d <= 0 {
		d = api.DefaultRolloutDeadline
	}
	strategy := up.Strategy
	if strategy == "" {
		strategy = api.Rolling
	}
	return &api.Rollout{From: from, To: to, State: api.RolloutInProgress, Started: now, Deadline: now.Add(d),
		Strategy: strategy, TrafficGen: now.UnixNano()}
}

// CanarySteps returns a policy's canary steps, ending at 100.
func CanarySteps(up api.UpdatePolicy) []int {
	steps := up.Steps
	if len(steps) == 0 {
		steps = api.DefaultCanarySteps
	}
	if steps[len(steps)-1] < 100 {
		steps = append(append([]int(nil), steps...), 100)
	}
	return steps
}

// canaryTasks is how many new tasks a canary step runs: its share of the
// replicas, rounded up, at least one.
func canaryTasks(replicas, percent int) int {
	n := (replicas*percent + 99) / 100
	return min(max(n, 1), max(replicas, 1))
}

// split is the traffic split a service's tasks should carry.
func split(svc api.ServiceState, up api.UpdatePolicy) api.TrafficSplit {
	r := svc.Rollout
	if r == nil || r.TrafficGen == 0 {
		return api.TrafficSplit{}
	}
	s := api.TrafficSplit{Gen: r.TrafficGen}
	switch {
	case r.State == api.RolloutRolledBack && svc.Revision == r.From:
		s.Revision, s.Percent = r.From, 100
	case r.State == api.RolloutInProgress && svc.Revision == r.To && r.Strategy == api.Canary:
		if steps := CanarySteps(up); r.Step < len(steps)-1 {
			s.Revision, s.Percent = r.To, steps[r.Step]
		}
	case r.Strategy == api.BlueGreen && svc.Revision == r.To && r.State == api.RolloutInProgress && !r.Switched:
		s.Revision, s.Percent = r.From, 100
	case r.Strategy == api.BlueGreen && svc.Revision == r.To:
		s.Revision, s.Percent = r.To, 100
	}
	return s
}

// Unchanged reports whether a planned deploy changes nothing.
func Unchanged(changes []api.ServiceChange) bool {
	for _, c := range changes {
		if c.Action != api.ChangeUnchanged {
			return false
		}
	}
	return true
}
