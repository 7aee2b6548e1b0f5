package controller

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/ingress"
)

// Window is what the proxy measured of a service's two revisions since a
// rollout step's watch began.
type Window struct {
	New, Old ingress.RevisionStats
	// Since is when the measurement began: the step's watch, or later if
	// the orchestrator restarted and lost its first reading.
	Since time.Time
	// Probes are the requests the orchestrator sent through the public
	// ingress during the watch (Probed: the service has a route to probe).
	Probes ProbeResult
	Probed bool
}

// Gate thresholds that are not per service.
const (
	// minSamples is how many requests a revision needs before its error
	// rate can fail a step early, or its latency be judged at all.
	minSamples = 20
	// minLatencySamples is how many requests the previous revision needs
	// to be the baseline of the latency gate: below 100 its p99 is its
	// fastest-looking slowest request, and a new revision is judged
	// against a lucky few.
	minLatencySamples = 100
	// latencySlack absorbs the histogram's bucket width and the scheduling
	// noise of a busy host (tens of milliseconds at p99 on two loaded
	// cores) when the new p99 is compared with twice the old one: the
	// relative gate is for regressions a user notices. Tighter bounds are
	// the service's max_p99.
	latencySlack = 100 * time.Millisecond
	// minSlowRequests is how many requests must be slower than a latency
	// bound for the gate to fail. Over a short window a p99 is the third
	// slowest of a few hundred requests: a new task's first connections,
	// or a moment when the host's two cores were busy starting containers,
	// put it over a bound that the revision as a whole meets. A revision
	// that is slow is slow for many requests.
	minSlowRequests = 5
)

// CheckRollout judges a service's rollout in progress. Rolling: done once
// every slot runs a ready task of the new revision and nothing else is
// left (a task is ready once it ran for up.Stability). Canary: each step's
// new tasks must all be ready, then the step is
// watched for the interval and its gates judged (5xx rate and p99 latency
// of the new revision against the old one and the thresholds) before the
// next step. Blue-green: the new set must be ready, traffic switches, and
// the new set is watched for the interval. A new task that crash-loops or
// fails, a failed gate or the deadline passing rolls the service back to
// the previous revision. win is nil when nothing measured traffic this
// pass: gates are not judged then. It is pure; changed says whether svc
// must be written back, and ev is the event to record.
func CheckRollout(svc api.ServiceState, up api.UpdatePolicy, tasks []api.Task, status map[string]api.TaskStatus, win *Window, now time.Time) (next api.ServiceState, ev *api.Event, changed bool) {
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
			if isReady(st, up.Stability.D(), now) {
				ready++
			}
		case api.StateCrashLoop, api.StateFailed:
			failures = append(failures, fmt.Sprintf("task %d %s: %s", t.Slot, st.State, st.Reason))
		}
	}
	out := svc
	rr := *r
	rr.Gates = append([]api.GateResult(nil), r.Gates...)
	out.Rollout = &rr
	if len(failures) > 0 {
		sort.Strings(failures)
		return rollBack(out, "new revision failing: "+strings.Join(failures, "; "), now)
	}
	switch r.Strategy {
	case api.Canary:
		steps := CanarySteps(up)
		if r.Step < len(steps)-1 {
			return watchStep(out, up, ready, canaryTasks(svc.Replicas, steps[r.Step]), win, now,
				fmt.Sprintf("canary step %d of %d (%d%% of traffic)", r.Step+1, len(steps), steps[r.Step]))
		}
	case api.BlueGreen:
		return watchStep(out, up, ready, svc.Replicas, win, now, "blue-green cutover")
	}
	switch {
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

// watchStep runs one watched step of a canary or blue-green rollout: wait
// for its want new tasks to be ready (within the deadline), start the
// watch (a blue-green rollout switches traffic here), judge the gates,
// and move on when the interval passed with every gate green.
func watchStep(out api.ServiceState, up api.UpdatePolicy, ready, want int, win *Window, now time.Time, what string) (api.ServiceState, *api.Event, bool) {
	r := out.Rollout
	interval := up.Interval.D()
	if interval <= 0 {
		interval = api.DefaultStepInterval
	}
	if r.Observing.IsZero() {
		switch {
		case ready >= want:
			r.Observing = now
			msg := fmt.Sprintf("%s: %d new tasks ready; watching for %s", what, ready, interval)
			typ := "rollout.step"
			if r.Strategy == api.BlueGreen {
				r.Switched = true
				r.TrafficGen = now.UnixNano()
				typ = "rollout.switched"
				msg = fmt.Sprintf("traffic switched to revision %d (%d tasks); watching for %s, revision %d stays up until then", r.To, ready, interval, r.From)
			}
			r.Gates = append(r.Gates, api.GateResult{Step: r.Step, Gate: "ready", Passed: true, Detail: fmt.Sprintf("%d of %d new tasks ready", ready, want), At: now})
			return out, &api.Event{Type: typ, Stack: out.Stack, Service: out.Name, Message: msg}, true
		case !now.Before(r.Deadline):
			return rollBack(out, fmt.Sprintf("%s: %d of %d new tasks ready after the %s deadline", what, ready, want, r.Deadline.Sub(r.Started).Round(time.Second)), now)
		}
		return out, nil, false
	}
	if win == nil {
		return out, nil, false
	}
	since := r.Observing
	if win.Since.After(since) {
		since = win.Since
	}
	over := !now.Before(since.Add(interval))
	gates := judge(up, *win, r.Step, now)
	for _, g := range gates {
		early := (g.Gate == "errors" && win.New.Requests >= minSamples) || (g.Gate == "probe" && win.Probes.Failed >= 5)
		if !g.Passed && (over || early) {
			r.Gates = append(r.Gates, gates...)
			return rollBack(out, fmt.Sprintf("%s: %s gate failed: %s", what, g.Gate, g.Detail), now)
		}
	}
	if !over {
		return out, nil, false
	}
	r.Gates = append(r.Gates, gates...)
	var details []string
	for _, g := range gates {
		details = append(details, g.Gate+" "+g.Detail)
	}
	if r.Strategy == api.BlueGreen {
		r.State, r.Ended = api.RolloutDone, now
		out.UpdatedAt = now
		return out, &api.Event{Type: "rollout.done", Stack: out.Stack, Service: out.Name,
			Message: fmt.Sprintf("revision %d serves all %d replicas (from revision %d in %s; %s); revision %d kept stopped for rollback",
				r.To, out.Replicas, r.From, now.Sub(r.Started).Round(time.Millisecond), strings.Join(details, "; "), r.From)}, true
	}
	r.Step++
	r.Observing = time.Time{}
	r.TrafficGen = now.UnixNano()
	d := up.Deadline.D()
	if d <= 0 {
		d = api.DefaultRolloutDeadline
	}
	r.Deadline = now.Add(d)
	steps := CanarySteps(up)
	return out, &api.Event{Type: "rollout.step", Stack: out.Stack, Service: out.Name,
		Message: fmt.Sprintf("%s passed (%s); next: %d%% of traffic", what, strings.Join(details, "; "), steps[min(r.Step, len(steps)-1)])}, true
}

// judge evaluates the gates on what the proxy measured: the new
// revision's 5xx rate may exceed the old one's by at most the policy's
// margin, and its p99 latency may not pass the policy's bound nor twice
// the old revision's (plus the histogram's slack).
func judge(up api.UpdatePolicy, w Window, step int, now time.Time) []api.GateResult {
	maxErr := up.MaxErrorRate
	if maxErr <= 0 {
		maxErr = api.DefaultMaxErrorRate
	}
	n, o := w.New, w.Old
	errs := api.GateResult{Step: step, Gate: "errors", Passed: true, At: now}
	oldRate := 0.0
	if o.Requests >= minSamples {
		oldRate = o.ErrorRate()
	}
	errs.Detail = fmt.Sprintf("5xx %.1f%% of %d requests (previous revision %.1f%% of %d; margin %.1f%%)",
		100*n.ErrorRate(), n.Requests, 100*o.ErrorRate(), o.Requests, 100*maxErr)
	if n.Requests == 0 {
		errs.Detail = "no requests reached the new revision"
	} else if n.Errors > 0 && n.ErrorRate() > oldRate+maxErr {
		errs.Passed = false
	}
	lat := api.GateResult{Step: step, Gate: "latency", Passed: true, At: now}
	switch {
	case n.Requests < minSamples:
		lat.Detail = fmt.Sprintf("%d requests: too few to judge", n.Requests)
	default:
		p99 := n.Quantile(0.99)
		lat.Detail = fmt.Sprintf("p99 %s", p99.Round(time.Millisecond))
		// Past a bound, and not by a few stragglers.
		many := func(bound time.Duration) bool { return n.Slower(bound) >= minSlowRequests }
		if bound := up.MaxP99.D(); bound > 0 && p99 > bound {
			lat.Detail += fmt.Sprintf(" above the %s bound", bound)
			if many(bound) {
				lat.Passed = false
			} else {
				lat.Detail += fmt.Sprintf(" by fewer than %d requests", minSlowRequests)
			}
		}
		if o.Requests >= minLatencySamples {
			op99 := o.Quantile(0.99)
			lat.Detail += fmt.Sprintf(" (previous revision %s)", op99.Round(time.Millisecond))
			if bound := 2*op99 + latencySlack; p99 > bound {
				lat.Detail += ", more than twice as slow"
				if many(bound) {
					lat.Passed = false
				} else {
					lat.Detail += fmt.Sprintf(" in fewer than %d requests", minSlowRequests)
				}
			}
		}
	}
	out := []api.GateResult{errs, lat}
	if w.Probed {
		p := w.Probes
		pr := api.GateResult{Step: step, Gate: "probe", Passed: true, At: now,
			Detail: fmt.Sprintf("%d of %d requests through the public ingress answered", p.OK, p.OK+p.Failed)}
		if p.Failed >= 2 && p.Failed*10 >= p.OK+p.Failed {
			pr.Passed = false
			pr.Detail = fmt.Sprintf("%d of %d requests through the public ingress failed; last: %s", p.Failed, p.OK+p.Failed, p.LastError)
		}
		out = append(out, pr)
	}
	return out
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
	r.TrafficGen = now.UnixNano() // all traffic back to the previous revision at once
	svc.Revision = r.From
	svc.UpdatedAt = now
	return svc, &api.Event{Type: "rollout.rolled_back", Stack: svc.Stack, Service: svc.Name,
		Message: fmt.Sprintf("revision %d rolled back to %d: %s", r.To, r.From, reason)}, true
}
