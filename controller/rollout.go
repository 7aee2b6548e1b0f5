package controller

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/berth-dev/berth/api"
)

// CheckRollout judges a service's rollout in progress: done once every
// slot runs a ready task of the new revision and nothing else is left;
// rolled back to the previous revision when a new task crash-loops or
// fails, or when the deadline passes first. It is pure; changed says
// whether svc must be written back, and ev is the event to record.
func CheckRollout(svc api.ServiceState, tasks []api.Task, status map[string]api.TaskStatus, now time.Time) (next api.ServiceState, ev *api.Event, changed bool) {
	r := svc.Rollout
	if r == nil || r.State != api.RolloutInProgress || svc.Revision != r.To || svc.Stopped || r.Paused {
		return svc, nil, false
	}
	var ready, others int
	var failures []string
	for _, t := range tasks {
		if t.Stack != svc.Stack || t.Service != svc.Name {
			continue
		}
		if t.Revision != r.To || t.RestartGen != svc.RestartGen {
			others++
			continue
		}
		st, ok := status[t.ID]
		if !ok {
			continue
		}
		switch st.State {
		case api.StateRunning:
			ready++
		case api.StateCrashLoop, api.StateFailed:
			failures = append(failures, fmt.Sprintf("task %d %s: %s", t.Slot, st.State, st.Reason))
		}
	}
	out := svc
	rr := *r
	out.Rollout = &rr
	switch {
	case len(failures) > 0:
		sort.Strings(failures)
		return rollBack(out, "new revision failing: "+strings.Join(failures, "; "), now)
	case ready >= svc.Replicas && others == 0:
		rr.State, rr.Ended = api.RolloutDone, now
		out.UpdatedAt = now
		return out, &api.Event{Type: "rollout.done", Stack: svc.Stack, Service: svc.Name,
			Message: fmt.Sprintf("revision %d serves all %d replicas (from revision %d in %s)", r.To, svc.Replicas, r.From, now.Sub(r.Started).Round(time.Millisecond))}, true
	case !now.Before(r.Deadline):
		return rollBack(out, fmt.Sprintf("%d of %d tasks of revision %d ready after the %s deadline", ready, svc.Replicas, r.To, r.Deadline.Sub(r.Started).Round(time.Second)), now)
	}
	return svc, nil, false
}

// AbortRollout rolls a rollout in progress back at once.
func AbortRollout(svc api.ServiceState, reason string, now time.Time) (api.ServiceState, *api.Event, error) {
	r := svc.Rollout
	if r == nil || r.State != api.RolloutInProgress || svc.Revision != r.To {
		return svc, nil, api.Conflictf("service %q has no rollout in progress", svc.Name)
	}
	rr := *r
	svc.Rollout = &rr
	next, ev, _ := rollBack(svc, reason, now)
	return next, ev, nil
}

func rollBack(svc api.ServiceState, reason string, now time.Time) (api.ServiceState, *api.Event, bool) {
	r := svc.Rollout
	r.State, r.Reason, r.Ended = api.RolloutRolledBack, reason, now
	svc.Revision = r.From
	svc.UpdatedAt = now
	return svc, &api.Event{Type: "rollout.rolled_back", Stack: svc.Stack, Service: svc.Name,
		Message: fmt.Sprintf("revision %d rolled back to %d: %s", r.To, r.From, reason)}, true
}
