package agent

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/runtime"
)

// syncTask makes one task's container match the task. cs are the
// containers carrying the task's label (normally zero or one).
func (a *Agent) syncTask(ctx context.Context, t api.Task, cs []runtime.Container) {
	defer a.createdNow(t.ID)
	st := a.state(t.ID)
	st.mu.Lock()
	defer st.mu.Unlock()

	// Two containers for one task can only come from a crash between
	// create and record; keep the running (or newest) one.
	if len(cs) > 1 {
		keep := 0
		for i, c := range cs {
			if c.Running() {
				keep = i
			}
		}
		for i, c := range cs {
			if i != keep {
				a.removeOrphan(ctx, c)
			}
		}
		cs = cs[keep : keep+1]
	}

	spec, err := a.spec(ctx, t)
	if err != nil {
		a.report(ctx, t, st, api.TaskStatus{State: api.StateFailed, Reason: err.Error()})
		return
	}

	if len(cs) == 0 {
		if t.Desired == api.DesiredStopped {
			a.report(ctx, t, st, api.TaskStatus{State: api.StateStopped, Reason: "stopped (berth stop)"})
			return
		}
		if st.written && st.status.ContainerID != "" {
			a.log.Info("task container disappeared; recreating", "task", t.ID, "container", st.status.ContainerID)
			a.event(ctx, t, "task.recreated", "container "+short(st.status.ContainerID)+" was removed outside berth; recreated")
		}
		a.createAndStart(ctx, t, spec, st)
		return
	}

	c := cs[0]
	if c.Labels[api.LabelTask] != "" && cs[0].ID != "" {
		// Inspect for the fields List does not carry (exit code, OOM, health).
		ictx, cancel := a.engineCtx(ctx)
		full, err := a.drv.Inspect(ictx, c.ID)
		cancel()
		if errors.Is(err, runtime.ErrNotFound) {
			a.createAndStart(ctx, t, spec, st)
			return
		}
		if err == nil {
			c = full
		}
	}

	switch {
	case t.Desired == api.DesiredStopped:
		if c.Running() {
			a.stopContainer(ctx, t, c, spec) // drains first
		} else {
			a.hooks.TaskNotReady(t)
		}
		a.report(ctx, t, st, api.TaskStatus{ContainerID: c.ID, State: api.StateStopped, Reason: "stopped (berth stop)"})

	case t.Desired == api.DesiredCreated && c.State == runtime.StateCreated:
		// Created ahead of its turn: started when the task's desired
		// state becomes running.
		a.report(ctx, t, st, api.TaskStatus{ContainerID: c.ID, State: api.StateCreated})

	case c.Running():
		held := ""
		if c.Health == "unhealthy" {
			held = a.heldHealth(spec, c, st, time.Now())
			if held == "" {
				// Out of traffic at once: an unhealthy task has nothing to drain.
				a.hooks.TaskNotReady(t)
				args := []any{"task", t.ID}
				if st.heldContainer == c.ID {
					args = append(args, "held", time.Since(st.heldSince).Round(time.Second))
				}
				a.log.Warn("task unhealthy; restarting", args...)
				st.heldContainer, st.heldSince = "", time.Time{}
				st.unhealthyStop = true
				a.stopContainer(ctx, t, c, spec)
				a.kickTask(t.ID)
				return
			}
			if st.heldContainer != c.ID {
				st.heldContainer, st.heldSince = c.ID, time.Now()
				a.log.Warn("task unhealthy on a slow engine; not restarted", "task", t.ID, "reason", held)
				a.event(ctx, t, "task.health_held", held)
			}
			a.afterFunc(t.ID, heldRecheck(spec))
		} else if st.heldContainer != "" {
			st.heldContainer, st.heldSince = "", time.Time{}
		}
		state := api.StateRunning
		if c.Health == "starting" {
			state = api.StateStarting
		}
		if hasProbe(spec) {
			// Once ready, a container stays ready (liveness is the health
			// check's job); until then it must answer from outside.
			switch {
			case wasReady(st, c) || probeReady(ctx, spec, stackAddress(c, t.Stack, a.cfg.ClusterID)):
				state = api.StateRunning
			default:
				state = api.StateStarting
				a.afterFunc(t.ID, probeInterval)
			}
		}
		if st.restart.Restarts > 0 && !st.status.OOMKilled && a.takeOOM(t.ID) {
			// The OOM kill was reported after the exit was judged.
			st.status.OOMKilled = true
			st.status.Reason = exitReason(exitInfo{OOMKilled: true})
			a.event(ctx, t, "task.oom", st.status.Reason)
		}
		// The last exit stays visible while the task runs again, so
		// berth ps shows why it was restarted.
		reason := ""
		if st.restart.Restarts > 0 {
			reason = lastExit(st.status.Reason)
		}
		if held != "" {
			reason = held
		}
		if st.restart.Consecutive > 0 {
			stable := spec.Restart.Window.D()
			if stable <= 0 {
				stable = defaultStable
			}
			if time.Since(c.StartedAt) >= stable {
				a.event(ctx, t, "task.recovered", fmt.Sprintf("running for %s after %d failures in a row (%s)",
					stable, st.restart.Consecutive, lastExit(st.status.Reason)))
				st.restart.Consecutive = 0
			} else {
				a.afterFunc(t.ID, stable-time.Since(c.StartedAt)+50*time.Millisecond)
			}
		}
		s := api.TaskStatus{ContainerID: c.ID, State: state, Health: c.Health, StartedAt: c.StartedAt,
			Address: stackAddress(c, t.Stack, a.cfg.ClusterID), Reason: reason, ExitCode: st.status.ExitCode, OOMKilled: st.status.OOMKilled}
		a.report(ctx, t, st, s)
		if state == api.StateRunning {
			a.hooks.TaskReady(t, spec, s.Address)
		} else {
			a.hooks.TaskNotReady(t)
		}

	case c.State == runtime.StateCreated:
		// Created ahead of its turn, or a crash between create and start.
		end := a.beginCreate()
		a.start(ctx, t, c.ID, st, false)
		end()

	default:
		a.handleExit(ctx, t, spec, c, st)
	}
}

// wasReady reports whether the task's last status is this run of c, ready.
func wasReady(st *taskState, c runtime.Container) bool {
	return st.status.ContainerID == c.ID && st.status.State == api.StateRunning && st.status.StartedAt.Equal(c.StartedAt)
}

// handleExit applies the restart policy to a container that is not running.
func (a *Agent) handleExit(ctx context.Context, t api.Task, spec *api.ServiceSpec, c runtime.Container, st *taskState) {
	a.hooks.TaskNotReady(t)
	now := time.Now()
	if !st.status.NextRestart.IsZero() && st.status.ContainerID == c.ID && st.status.StartedAt.Equal(c.StartedAt) {
		// A restart is already scheduled for this exit.
		if now.Before(st.status.NextRestart) {
			a.afterFunc(t.ID, st.status.NextRestart.Sub(now))
			return
		}
		a.start(ctx, t, c.ID, st, true)
		return
	}
	if st.status.ContainerID == c.ID && st.status.StartedAt.Equal(c.StartedAt) &&
		(st.status.State == api.StateExited || st.status.State == api.StateFailed) {
		return // this exit was already judged final
	}
	exit := exitInfo{Code: c.ExitCode, OOMKilled: c.OOMKilled || a.takeOOM(t.ID), Unhealthy: st.unhealthyStop,
		StartedAt: c.StartedAt, FinishedAt: c.FinishedAt}
	st.unhealthyStop = false
	d := decideRestart(spec.Restart, st.restart, exit, now)
	st.restart = d.Next
	s := api.TaskStatus{ContainerID: c.ID, State: d.State, Reason: d.Reason, ExitCode: c.ExitCode,
		OOMKilled: exit.OOMKilled, StartedAt: c.StartedAt}
	evType := "task.exited"
	switch {
	case exit.OOMKilled:
		evType = "task.oom"
	case d.State == api.StateCrashLoop:
		evType = "task.crashloop"
	case d.State == api.StateFailed:
		evType = "task.failed"
	}
	a.event(ctx, t, evType, d.Reason)
	if !d.Restart {
		a.report(ctx, t, st, s)
		return
	}
	if !d.At.After(now) {
		// The exit is recorded before the restart: a start can take
		// seconds on a busy engine, and until it returns the task must
		// not look as if it had been running all along (a rollout would
		// count it as stable and replace the task it was to replace).
		a.report(ctx, t, st, s)
		st.status.Reason, st.status.ExitCode, st.status.OOMKilled = d.Reason, c.ExitCode, exit.OOMKilled
		a.start(ctx, t, c.ID, st, true)
		return
	}
	s.NextRestart = d.At
	a.report(ctx, t, st, s)
	a.afterFunc(t.ID, d.At.Sub(now))
}

// createAndStart creates the task's container (adopting one left by a crash
// between create and record) and starts it.
func (a *Agent) createAndStart(ctx context.Context, t api.Task, spec *api.ServiceSpec, st *taskState) {
	defer a.beginCreate()()
	if err := a.ensureStackObjects(ctx, t.Stack, spec); err != nil {
		a.report(ctx, t, st, api.TaskStatus{State: api.StateFailed, Reason: err.Error()})
		a.afterFunc(t.ID, 5*time.Second)
		return
	}
	if err := a.ensureImage(ctx, spec); err != nil {
		a.report(ctx, t, st, api.TaskStatus{State: api.StateFailed, Reason: err.Error()})
		a.event(ctx, t, "task.failed", err.Error())
		a.afterFunc(t.ID, 5*time.Second)
		return
	}
	cs := a.containerSpec(t, spec)
	if err := a.deliverSecrets(ctx, t.ID, t.Stack, spec, &cs); err != nil {
		a.report(ctx, t, st, api.TaskStatus{State: api.StateFailed, Reason: err.Error()})
		a.event(ctx, t, "task.failed", err.Error())
		a.afterFunc(t.ID, 5*time.Second)
		return
	}
	if t.Desired == api.DesiredCreated {
		a.waitCreatesNow(ctx, 2*time.Second) // the slot starting now first
	}
	cctx, cancel := a.engineCtx(ctx)
	done := a.load.begin("create of task " + t.ID)
	id, err := a.drv.Create(cctx, cs)
	took := done()
	cancel()
	a.createdNow(t.ID)
	a.log.Debug("container created", "task", t.ID, "took", took.Round(time.Millisecond))
	if errors.Is(err, runtime.ErrConflict) {
		id, err = a.adoptByName(ctx, t, cs.Name)
	}
	if err != nil {
		a.report(ctx, t, st, api.TaskStatus{State: api.StateFailed, Reason: "create container: " + err.Error()})
		a.event(ctx, t, "task.failed", "create container: "+err.Error())
		a.afterFunc(t.ID, 5*time.Second)
		return
	}
	if t.Desired == api.DesiredCreated {
		a.report(ctx, t, st, api.TaskStatus{ContainerID: id, State: api.StateCreated})
		return
	}
	a.start(ctx, t, id, st, false)
}

// adoptByName returns the container named name if it belongs to task t.
func (a *Agent) adoptByName(ctx context.Context, t api.Task, name string) (string, error) {
	lctx, cancel := a.engineCtx(ctx)
	defer cancel()
	cs, err := a.drv.List(lctx, map[string]string{api.LabelCluster: a.cfg.ClusterID, api.LabelTask: t.ID})
	if err != nil {
		return "", err
	}
	for _, c := range cs {
		if c.Name == name {
			return c.ID, nil
		}
	}
	return "", fmt.Errorf("a container named %s exists and does not belong to this berth cluster; rename or remove it", name)
}

// start starts a created or exited container and records the result.
func (a *Agent) start(ctx context.Context, t api.Task, id string, st *taskState, restart bool) {
	err := a.redeliverSecrets(ctx, t)
	if err == nil {
		sctx, cancel := a.engineCtx(ctx)
		done := a.load.begin("start of task " + t.ID)
		err = a.drv.Start(sctx, id)
		took := done()
		cancel()
		a.log.Debug("container started", "task", t.ID, "took", took.Round(time.Millisecond))
	}
	if err != nil {
		reason := "start container: " + err.Error()
		a.report(ctx, t, st, api.TaskStatus{ContainerID: id, State: api.StateFailed, Reason: reason})
		a.event(ctx, t, "task.failed", reason)
		a.afterFunc(t.ID, 5*time.Second)
		return
	}
	ictx, cancel := a.engineCtx(ctx)
	c, err := a.drv.Inspect(ictx, id)
	cancel()
	if err != nil {
		c = runtime.Container{ID: id, State: runtime.StateRunning, StartedAt: time.Now()}
	}
	state := api.StateRunning
	if c.Health == "starting" || (c.Health == "" && c.State != runtime.StateRunning) {
		state = api.StateStarting
	}
	addr := stackAddress(c, t.Stack, a.cfg.ClusterID)
	spec, err := a.spec(ctx, t)
	probed := err == nil && hasProbe(spec)
	if probed {
		// Not ready until it answers from outside. Most programs listen
		// within milliseconds of their start, and a rollout waits on
		// this answer slot by slot: ask at once, then look again shortly.
		if c.Running() && probeSoon(ctx, spec, addr) {
			state = api.StateRunning
		} else {
			state = api.StateStarting
			a.afterFunc(t.ID, probeInterval)
		}
	}
	s := api.TaskStatus{ContainerID: id, State: state, Health: c.Health, StartedAt: c.StartedAt, Address: addr}
	if restart {
		s.Reason = lastExit(st.status.Reason)
		s.ExitCode = st.status.ExitCode
		s.OOMKilled = st.status.OOMKilled
		a.event(ctx, t, "task.restarted", fmt.Sprintf("restart %d after: %s", st.restart.Restarts, st.status.Reason))
	}
	a.report(ctx, t, st, s)
	if probed && state == api.StateRunning {
		a.hooks.TaskReady(t, spec, addr)
	}
	if !c.Running() {
		a.kickTask(t.ID) // exited already: judge the exit now
	}
}

// stopContainer drains the task and stops its container with its grace.
func (a *Agent) stopContainer(ctx context.Context, t api.Task, c runtime.Container, spec *api.ServiceSpec) {
	a.hooks.TaskStopping(ctx, t)
	grace := spec.StopGracePeriod.D()
	if grace <= 0 {
		grace = a.cfg.Defaults.StopGrace
	}
	sctx, cancel := context.WithTimeout(ctx, grace+a.cfg.CallTimeout)
	defer cancel()
	if err := a.drv.Stop(sctx, c.ID, grace); err != nil && !errors.Is(err, runtime.ErrNotFound) {
		a.log.Warn("stop container", "task", t.ID, "err", err)
	}
}

// ensureStackObjects creates the stack's network and the named volumes the
// service mounts, once per process.
// stackNetwork is the network ensureStackObjects settled on for a stack.
func (a *Agent) stackNetwork(stack string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if n, ok := a.nets[stack]; ok {
		return n
	}
	return networkName(stack)
}

func (a *Agent) ensureStackObjects(ctx context.Context, stack string, spec *api.ServiceSpec) error {
	// One at a time: the engine's duplicate-name check for networks is not
	// atomic, so two tasks of a new stack starting together would each
	// create a network of the same name.
	a.ensureMu.Lock()
	defer a.ensureMu.Unlock()
	labels := map[string]string{api.LabelCluster: a.cfg.ClusterID, api.LabelStack: stack}
	if spec.NetworkMode != "host" {
		a.mu.Lock()
		_, done := a.nets[stack]
		a.mu.Unlock()
		if !done {
			nctx, cancel := a.engineCtx(ctx)
			name := networkName(stack)
			_, err := a.drv.EnsureNetwork(nctx, name, labels, false)
			if errors.Is(err, runtime.ErrConflict) {
				name = clusterNetworkName(stack, a.cfg.ClusterID)
				a.log.Info("stack network name taken by another cluster; using a cluster-qualified one", "stack", stack, "network", name)
				_, err = a.drv.EnsureNetwork(nctx, name, labels, false)
			}
			cancel()
			if err != nil {
				return err
			}
			a.mu.Lock()
			a.nets[stack] = name
			a.mu.Unlock()
		}
	}
	vols := a.stackVolumes(stack)
	for _, m := range spec.Mounts {
		if m.Type != api.MountVolume || m.Source == "" {
			continue
		}
		v := vols[m.Source]
		if v.External {
			continue
		}
		name := volumeName(stack, m.Source)
		a.mu.Lock()
		done := a.vols[name]
		a.mu.Unlock()
		if done {
			continue
		}
		vl := map[string]string{}
		for k, val := range v.Labels {
			vl[k] = val
		}
		for k, val := range labels {
			vl[k] = val
		}
		vctx, cancel := a.engineCtx(ctx)
		err := a.drv.EnsureVolume(vctx, runtime.VolumeSpec{Name: name, Driver: v.Driver, DriverOpts: v.DriverOpts, Labels: vl})
		cancel()
		if err != nil {
			return err
		}
		a.mu.Lock()
		a.vols[name] = true
		a.mu.Unlock()
	}
	return nil
}

// spec returns the service spec of a task's revision.
func (a *Agent) spec(ctx context.Context, t api.Task) (*api.ServiceSpec, error) {
	k := revKey{t.Stack, t.Service, t.Revision}
	a.mu.Lock()
	s, ok := a.specs[k]
	a.mu.Unlock()
	if ok {
		return s, nil
	}
	rev, err := a.store.GetRevision(ctx, t.Stack, t.Service, t.Revision)
	if err != nil {
		return nil, fmt.Errorf("revision %d of %s/%s: %w", t.Revision, t.Stack, t.Service, err)
	}
	a.mu.Lock()
	a.specs[k] = &rev.Spec
	a.mu.Unlock()
	return &rev.Spec, nil
}

// report writes a task's status if it changed.
func (a *Agent) report(ctx context.Context, t api.Task, st *taskState, s api.TaskStatus) {
	s.TaskID = t.ID
	s.Node = a.cfg.NodeID
	s.Restarts = st.restart.Restarts
	prev := st.status
	prev.UpdatedAt = time.Time{}
	if st.written && reflect.DeepEqual(prev, s) {
		return
	}
	s.UpdatedAt = time.Now().UTC()
	if s.State != st.status.State {
		a.log.Debug("task state", "task", t.ID, "slot", t.Slot, "revision", t.Revision, "state", s.State)
	}
	if err := a.store.PutStatus(ctx, s); err != nil {
		a.log.Warn("write task status", "task", t.ID, "err", err)
		return
	}
	st.status = s
	st.written = true
}

func (a *Agent) event(ctx context.Context, t api.Task, typ, msg string) {
	e := api.Event{Type: typ, Stack: t.Stack, Service: t.Service, Task: t.ID, Node: a.cfg.NodeID, Message: msg}
	if err := a.store.AppendEvent(ctx, e); err != nil {
		a.log.Warn("record event", "type", typ, "err", err)
	}
}

// afterFunc kicks a task's sync after d; a later call replaces an earlier one.
func (a *Agent) afterFunc(id string, d time.Duration) {
	a.timersMu.Lock()
	defer a.timersMu.Unlock()
	if old, ok := a.timers[id]; ok {
		old.Stop()
	}
	a.timers[id] = time.AfterFunc(d, func() { a.kickTask(id) })
}

func (a *Agent) cancelTimer(id string) {
	a.timersMu.Lock()
	defer a.timersMu.Unlock()
	if t, ok := a.timers[id]; ok {
		t.Stop()
		delete(a.timers, id)
	}
}

func (a *Agent) stopTimers() {
	a.timersMu.Lock()
	defer a.timersMu.Unlock()
	for id, t := range a.timers {
		t.Stop()
		delete(a.timers, id)
	}
}

// lastExit labels a failure reason as history once the task runs again.
func lastExit(reason string) string {
	if reason == "" || strings.HasPrefix(reason, "last exit: ") {
		return reason
	}
	return "last exit: " + reason
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
