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
			}
			if exists {
				next.Rollout = NewRollout(state.Revision, n, spec.Update, now)
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
	return &api.Rollout{From: from, To: to, State: api.RolloutInProgress, Started: now, Deadline: now.Add(d)}
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
