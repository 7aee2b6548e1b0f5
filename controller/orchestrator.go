package controller

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/ingress"
	"github.com/berth-dev/berth/scheduler"
	"github.com/berth-dev/berth/store"
)

// Orchestrator keeps the tasks in the store matching the services: it
// creates, places and deletes tasks. It never talks to an engine; agents
// act on the tasks it writes.
type Orchestrator struct {
	store  *store.Store
	log    *slog.Logger
	resync time.Duration

	traffic TrafficSource
	probes  *probes

	mu    sync.Mutex
	specs map[RevKey]*api.ServiceSpec // revisions are immutable: cache forever while in use
	// baselines are the proxy's counters when a watched rollout step was
	// first seen; a window is the counters since.
	baselines map[baselineKey]baseline
	watched   bool      // a rollout step is being watched
	wake      time.Time // when the next running task becomes stable
}

// TrafficSource reads what the ingress measured per route and revision:
// the in-process ingress controller or the proxy process.
type TrafficSource interface {
	Stats(ctx context.Context) ([]ingress.RevisionStats, error)
}

type baselineKey struct {
	stack, service string
	gen            int64
}

type baseline struct {
	at       time.Time
	old, new ingress.RevisionStats
}

// NewOrchestrator returns an orchestrator over st. traffic, if not nil,
// feeds the gates of canary and blue-green rollouts; without it they are
// judged on readiness alone.
func NewOrchestrator(st *store.Store, traffic TrafficSource, logger *slog.Logger) *Orchestrator {
	return &Orchestrator{store: st, log: logger, resync: 10 * time.Second, specs: map[RevKey]*api.ServiceSpec{},
		traffic: traffic, baselines: map[baselineKey]baseline{}, probes: newProbes("")}
}

// ProbeThrough makes watched rollout steps probe their service's first
// route through the ingress's HTTP address (call before Run).
func (o *Orchestrator) ProbeThrough(ingressAddr string) { o.probes = newProbes(ingressAddr) }

// Run reconciles on every change to services, tasks or nodes and on a
// periodic resync, until ctx ends.
func (o *Orchestrator) Run(ctx context.Context) error {
	services := o.store.Watch(ctx, store.Services)
	tasks := o.store.Watch(ctx, store.Tasks)
	nodes := o.store.Watch(ctx, store.Nodes)
	status := o.store.Watch(ctx, store.Status)
	// Watched rollout steps are judged at least every second.
	tick := time.NewTicker(o.resync)
	fast := time.NewTicker(time.Second)
	defer fast.Stop()
	defer o.probes.stop()
	defer tick.Stop()
	wake := time.NewTimer(time.Hour)
	defer wake.Stop()
	for {
		if err := o.Reconcile(ctx); err != nil && ctx.Err() == nil {
			o.log.Warn("orchestrator pass failed", "err", err)
		}
		// A task that becomes stable changes nothing in the store: wake
		// for it.
		wake.Reset(o.untilWake())
		select {
		case <-ctx.Done():
			return nil
		case <-wake.C:
		case <-services:
		case <-tasks:
		case <-nodes:
		case <-status:
		case <-tick.C:
		case <-fast.C:
			if !o.watching() {
				continue
			}
		}
	}
}

// untilWake is the time until the next task becomes stable (an hour when
// none waits).
func (o *Orchestrator) untilWake() time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.wake.IsZero() {
		return time.Hour
	}
	return max(time.Until(o.wake), 0) + 10*time.Millisecond
}

// isReady says whether a task counts as ready: running (and healthy,
// with a health check) for at least its service's stability time.
func isReady(st api.TaskStatus, stability time.Duration, now time.Time) bool {
	return st.State == api.StateRunning && !now.Before(st.StartedAt.Add(stability))
}

// watching reports whether a rollout step is being watched.
func (o *Orchestrator) watching() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.watched
}

// windows returns, for every watched rollout step, what the proxy measured
// since the step's watch began. It returns nil when the proxy could not be
// read this pass (no gate is judged then).
func (o *Orchestrator) windows(ctx context.Context, services []api.ServiceState, specs map[RevKey]*api.ServiceSpec, now time.Time) map[baselineKey]*Window {
	want := map[baselineKey]api.ServiceState{}
	targets := map[baselineKey]probeTarget{}
	for _, svc := range services {
		r := svc.Rollout
		if r != nil && r.State == api.RolloutInProgress && !r.Observing.IsZero() && svc.Revision == r.To {
			k := baselineKey{svc.Stack, svc.Name, r.TrafficGen}
			want[k] = svc
			if t, ok := o.probes.target(specs[RevKey{svc.Stack, svc.Name, r.To}]); ok {
				targets[k] = t
			}
		}
	}
	o.probes.sync(ctx, targets)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.watched = len(want) > 0
	for k := range o.baselines {
		if _, ok := want[k]; !ok {
			delete(o.baselines, k)
		}
	}
	if len(want) == 0 {
		return map[baselineKey]*Window{}
	}
	if o.traffic == nil {
		// Nothing measures traffic: gates see empty windows.
		out := map[baselineKey]*Window{}
		for k, svc := range want {
			out[k] = &Window{Since: svc.Rollout.Observing}
			out[k].Probes, out[k].Probed = o.probes.result(k)
		}
		return out
	}
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	stats, err := o.traffic.Stats(sctx)
	cancel()
	if err != nil {
		o.log.Warn("read ingress stats for rollout gates", "err", err)
		return nil
	}
	byRev := ingress.ByRevision(stats)
	out := map[baselineKey]*Window{}
	for k, svc := range want {
		revs := byRev[k.stack+"/"+k.service]
		cur := baseline{at: now, old: revs[svc.Rollout.From], new: revs[svc.Rollout.To]}
		b, ok := o.baselines[k]
		if !ok {
			o.baselines[k] = cur
			b = cur
		}
		out[k] = &Window{New: cur.new.Sub(b.new), Old: cur.old.Sub(b.old), Since: b.at}
		out[k].Probes, out[k].Probed = o.probes.result(k)
	}
	return out
}

// Reconcile runs one pass: read, decide, write.
func (o *Orchestrator) Reconcile(ctx context.Context) error {
	services, err := o.store.ListServices(ctx, "")
	if err != nil {
		return err
	}
	tasks, err := o.store.ListTasks(ctx, "")
	if err != nil {
		return err
	}
	nodes, err := o.store.ListNodes(ctx)
	if err != nil {
		return err
	}
	specs, err := o.loadSpecs(ctx, services, tasks)
	if err != nil {
		return err
	}
	statuses, err := o.store.ListStatus(ctx, "")
	if err != nil {
		return err
	}
	byTask := make(map[string]api.TaskStatus, len(statuses))
	for _, st := range statuses {
		byTask[st.TaskID] = st
	}
	now := time.Now().UTC()
	ready := make(map[string]bool, len(tasks))
	var wake time.Time // when the next running task becomes stable
	for _, t := range tasks {
		st, ok := byTask[t.ID]
		if !ok {
			continue
		}
		var stability time.Duration
		if spec := specs[RevKey{t.Stack, t.Service, t.Revision}]; spec != nil {
			stability = spec.StabilityTime()
		}
		ready[t.ID] = isReady(st, stability, now)
		if at := st.StartedAt.Add(stability); st.State == api.StateRunning && !ready[t.ID] && (wake.IsZero() || at.Before(wake)) {
			wake = at
		}
	}
	o.mu.Lock()
	o.wake = wake
	o.mu.Unlock()
	wins := o.windows(ctx, services, specs, now)
	for i, svc := range services {
		var up api.UpdatePolicy
		var win *Window
		if r := svc.Rollout; r != nil {
			if spec := specs[RevKey{svc.Stack, svc.Name, r.To}]; spec != nil {
				up = spec.Update
				up.Stability = api.Duration(spec.StabilityTime())
			}
			if wins != nil {
				win = wins[baselineKey{svc.Stack, svc.Name, r.TrafficGen}]
			}
		}
		next, ev, changed := CheckRollout(svc, up, tasks, byTask, win, now)
		if !changed {
			continue
		}
		if err := o.updateService(ctx, next); err != nil {
			return err
		}
		services[i] = next
		o.event(ctx, *ev)
		o.log.Info("rollout", "stack", svc.Stack, "service", svc.Name, "state", next.Rollout.State, "reason", next.Rollout.Reason)
	}
	plan := PlanTasks(services, specs, tasks, ready, NewID, time.Now().UTC())
	if len(plan.Put) == 0 && len(plan.Delete) == 0 {
		return nil
	}
	plan.Put = o.place(plan.Put, tasks, plan.Delete, nodes, specs)
	plan.Delete = append(plan.Delete, o.stopFirstFallback(ctx, plan.Put, tasks, plan.Delete, nodes, specs)...)
	// A task that is still unplaced for the same reason is not written
	// again: the write would wake every watcher for nothing.
	stored := make(map[string]api.Task, len(tasks))
	for _, t := range tasks {
		stored[t.ID] = t
	}
	deleted := make(map[string]bool, len(plan.Delete))
	for _, t := range plan.Delete {
		deleted[t.ID] = true
	}
	put := plan.Put[:0]
	for _, t := range plan.Put {
		if old, ok := stored[t.ID]; (ok && old == t) || deleted[t.ID] {
			continue
		}
		put = append(put, t)
	}
	if len(put) == 0 && len(plan.Delete) == 0 {
		return nil
	}
	o.log.Debug("orchestrator writes tasks", "put", len(put), "delete", len(plan.Delete))
	if err := o.store.ApplyTasks(ctx, put, plan.Delete); err != nil {
		return err
	}
	for _, t := range put {
		if t.Node == "" && stored[t.ID].Unplaced != t.Unplaced {
			o.event(ctx, api.Event{Type: "task.unplaced", Stack: t.Stack, Service: t.Service, Task: t.ID, Message: t.Unplaced})
		}
	}
	return nil
}

// updateService writes a service state decided by a controller, if the
// service was not changed in between (the next pass decides again).
func (o *Orchestrator) updateService(ctx context.Context, next api.ServiceState) error {
	cur, ver, err := o.store.GetService(ctx, next.Stack, next.Name)
	if err != nil {
		return err
	}
	if cur.Revision != next.Rollout.To && cur.Revision != next.Revision {
		return nil
	}
	return o.store.UpdateService(ctx, next, ver)
}

// place assigns nodes to tasks in put that have none. Tasks created
// ahead of their turn are placed last, in what the others leave, and are
// dropped when they do not fit: they never take a place a task that is
// to run now needs, and their slot is placed again when its turn comes.
func (o *Orchestrator) place(put []api.Task, all []api.Task, deleted []api.Task, nodes []api.Node, specs map[RevKey]*api.ServiceSpec) []api.Task {
	gone := map[string]bool{}
	for _, t := range deleted {
		gone[t.ID] = true
	}
	var snap scheduler.Snapshot
	snap.Nodes = nodes
	for _, t := range all {
		if gone[t.ID] || t.Node == "" {
			continue
		}
		snap.Tasks = append(snap.Tasks, scheduler.Placed{Task: t, Spec: specs[RevKey{t.Stack, t.Service, t.Revision}]})
	}
	dropped := map[string]bool{}
	for _, ahead := range []bool{false, true} {
		var reqs []scheduler.Request
		idx := map[string]int{}
		for i, t := range put {
			if t.Node != "" || (t.Desired == api.DesiredCreated) != ahead {
				continue
			}
			idx[t.ID] = i
			reqs = append(reqs, scheduler.Request{Task: t, Spec: specs[RevKey{t.Stack, t.Service, t.Revision}]})
		}
		if len(reqs) == 0 {
			continue
		}
		plan := scheduler.Schedule(snap, reqs)
		for _, a := range plan.Assignments {
			t := &put[idx[a.TaskID]]
			t.Node, t.HostPort, t.Unplaced = a.NodeID, a.HostPort, ""
			snap.Tasks = append(snap.Tasks, scheduler.Placed{Task: *t, Spec: specs[RevKey{t.Stack, t.Service, t.Revision}]})
		}
		for _, u := range plan.Unplaced {
			put[idx[u.TaskID]].Unplaced = u.Reason
			dropped[u.TaskID] = ahead
		}
	}
	kept := put[:0]
	for _, t := range put {
		if !dropped[t.ID] {
			kept = append(kept, t)
		}
	}
	return kept
}

// stopFirstFallback handles a replacement that cannot be placed while the
// task it replaces holds its place (max_replicas_per_node reached, or the
// reservations do not fit twice): if the new task fits once the slot's old
// task is gone, the old one is deleted now and the new one placed where it
// fits — stop-first for that slot. A new task that would not fit even then
// stays unplaced and the old one keeps serving.
func (o *Orchestrator) stopFirstFallback(ctx context.Context, put []api.Task, all []api.Task, deleted []api.Task, nodes []api.Node, specs map[RevKey]*api.ServiceSpec) []api.Task {
	gone := map[string]bool{}
	for _, t := range deleted {
		gone[t.ID] = true
	}
	var extra []api.Task
	for i := range put {
		t := &put[i]
		if t.Node != "" || t.Desired == api.DesiredCreated {
			continue
		}
		var old *api.Task
		for j := range all {
			a := &all[j]
			if a.Stack == t.Stack && a.Service == t.Service && a.Slot == t.Slot && a.ID != t.ID && a.Node != "" && !gone[a.ID] {
				old = a
				break
			}
		}
		if old == nil {
			continue
		}
		var snap scheduler.Snapshot
		snap.Nodes = nodes
		for _, a := range all {
			if gone[a.ID] || a.Node == "" || a.ID == old.ID {
				continue
			}
			snap.Tasks = append(snap.Tasks, scheduler.Placed{Task: a, Spec: specs[RevKey{a.Stack, a.Service, a.Revision}]})
		}
		plan := scheduler.Schedule(snap, []scheduler.Request{{Task: *t, Spec: specs[RevKey{t.Stack, t.Service, t.Revision}]}})
		if len(plan.Assignments) != 1 {
			continue
		}
		a := plan.Assignments[0]
		t.Node, t.HostPort, t.Unplaced = a.NodeID, a.HostPort, ""
		gone[old.ID] = true
		extra = append(extra, *old)
		o.event(ctx, api.Event{Type: "rollout.stop_first", Stack: t.Stack, Service: t.Service, Task: old.ID,
			Message: fmt.Sprintf("slot %d: the new task fits only once the old one is gone; replacing it stop-first", t.Slot)})
	}
	return extra
}

// loadSpecs returns the specs of every revision in use by a service or task.
func (o *Orchestrator) loadSpecs(ctx context.Context, services []api.ServiceState, tasks []api.Task) (map[RevKey]*api.ServiceSpec, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	want := map[RevKey]bool{}
	for _, s := range services {
		want[RevKey{s.Stack, s.Name, s.Revision}] = true
	}
	for _, t := range tasks {
		want[RevKey{t.Stack, t.Service, t.Revision}] = true
	}
	for k := range o.specs {
		if !want[k] {
			delete(o.specs, k)
		}
	}
	out := make(map[RevKey]*api.ServiceSpec, len(want))
	for k := range want {
		if spec, ok := o.specs[k]; ok {
			out[k] = spec
			continue
		}
		rev, err := o.store.GetRevision(ctx, k.Stack, k.Service, k.Revision)
		if err != nil {
			// A deleted stack's tasks may outlive its revisions for a moment.
			continue
		}
		spec := rev.Spec
		o.specs[k] = &spec
		out[k] = &spec
	}
	return out, nil
}

func (o *Orchestrator) event(ctx context.Context, e api.Event) {
	if err := o.store.AppendEvent(ctx, e); err != nil {
		o.log.Warn("record event", "type", e.Type, "err", err)
	}
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns a random 12-character lowercase ID for tasks and jobs.
func NewID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return strings.ToLower(idEncoding.EncodeToString(b[:]))[:12]
}
