// Package agent runs on every node: it reads the tasks the server assigned
// to its node, makes the engine's containers match them, applies restart
// policies, and reports what it observed. It adopts containers it finds by
// their labels after a restart and never touches objects of other clusters
// or objects berth did not create.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/secrets"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/watchdog"
)

// Config configures an agent.
type Config struct {
	ClusterID string
	NodeID    string
	NodeName  string
	Labels    map[string]string
	Defaults  Defaults
	// CallTimeout bounds each engine call (default 30s).
	CallTimeout time.Duration
	// Resync is the period of a full pass without any trigger (default 10s).
	Resync time.Duration
	// Workers bounds concurrent container operations in a pass (default 16).
	Workers int
	// LeaseTTL is how long the node stays registered without a heartbeat.
	LeaseTTL time.Duration
	// Watchdog, when set, probes the engine (see package watchdog).
	Watchdog *watchdog.Config
	// Secrets opens secret values and SecretFiles puts them on the tmpfs;
	// without them, tasks that use secrets fail with a clear reason.
	Secrets     SecretValues
	SecretFiles *secrets.Files
	// PullImage pulls an image pinned to a registry digest (nil: images
	// must already be on the engine).
	PullImage func(ctx context.Context, ref string) error
}

// Hooks let other parts of the node (the ingress) follow task lifecycles.
//
// TaskReady is called whenever a task is seen running and healthy (it must
// be cheap and idempotent: it is called on every pass); TaskNotReady when
// it is not (starting, unhealthy, exited, gone). TaskStopping is called,
// and returns, before a running task's container is signalled: that is
// where traffic is drained.
type Hooks interface {
	TaskReady(t api.Task, spec *api.ServiceSpec, addr string)
	TaskNotReady(t api.Task)
	TaskStopping(ctx context.Context, t api.Task)
}

type noHooks struct{}

func (noHooks) TaskReady(api.Task, *api.ServiceSpec, string) {}
func (noHooks) TaskNotReady(api.Task)                        {}
func (noHooks) TaskStopping(context.Context, api.Task)       {}

// Agent reconciles one node's containers with its tasks.
type Agent struct {
	cfg   Config
	store *store.Store
	drv   runtime.Driver
	log   *slog.Logger
	hooks Hooks

	kick     chan struct{}
	taskKick chan string
	nodeKick chan struct{} // the node record needs writing (engine health changed)
	watchdog *watchdog.Watchdog
	load     engineLoad // when the engine was slow, for judging health checks
	ensureMu sync.Mutex // serialises creation of networks and volumes

	mu      sync.Mutex
	tasks   map[string]api.Task         // desired tasks of this node, from the last pass
	local   map[string]*taskState       // per-task memory (restart counts, last status)
	specs   map[revKey]*api.ServiceSpec // immutable revisions, cached
	stacks  map[string]api.StackRecord
	nets    map[string]string // stack → its network, ensured in this process
	vols    map[string]bool   // volumes ensured in this process
	jobs    map[string]bool   // job containers run by this process
	ooms    map[string]bool   // tasks whose OOM kill event was seen and not yet judged
	syncing map[string]bool   // tasks with a sync goroutine running
	dirty   map[string]bool   // tasks kicked again while syncing
	// removing holds the containers being drained, stopped and removed
	// in the background; removals bounds how many at a time.
	removing map[string]bool
	removals chan struct{}
	// creating counts containers being created and started; idle wakes
	// its waiters whenever it drops to zero. A removal waits
	// for it before stopping its container: in a rolling update the
	// next task's start is what the rollout waits for, and the engine
	// does one network teardown and one setup faster in turn than at
	// once.
	creating int
	idle     idleSignal
	// createsNow holds the tasks to run now whose container a pass found
	// missing, until their create returns; nowDone wakes its waiters
	// when it empties. A container created ahead of its turn waits for them, so
	// it never delays the slot that is starting.
	createsNow map[string]bool
	nowDone    idleSignal
	syncs      sync.WaitGroup
	lastErr    error

	timersMu sync.Mutex
	timers   map[string]*time.Timer
}

type revKey struct {
	stack, service string
	rev            int
}

type taskState struct {
	mu            sync.Mutex // serialises work on one task
	restart       restartState
	status        api.TaskStatus
	written       bool
	unhealthyStop bool
	// heldContainer's unhealthy verdict has been held since heldSince
	// (see engineload.go).
	heldContainer string
	heldSince     time.Time
}

// New returns an agent. hooks may be nil.
func New(cfg Config, st *store.Store, drv runtime.Driver, logger *slog.Logger, hooks Hooks) *Agent {
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 30 * time.Second
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 10 * time.Second
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 16
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 15 * time.Second
	}
	if cfg.Defaults == (Defaults{}) {
		cfg.Defaults = DefaultDefaults()
	}
	if hooks == nil {
		hooks = noHooks{}
	}
	return &Agent{
		cfg: cfg, store: st, drv: drv, log: logger, hooks: hooks,
		kick:       make(chan struct{}, 1),
		nodeKick:   make(chan struct{}, 1),
		taskKick:   make(chan string, 256),
		tasks:      map[string]api.Task{},
		local:      map[string]*taskState{},
		specs:      map[revKey]*api.ServiceSpec{},
		stacks:     map[string]api.StackRecord{},
		nets:       map[string]string{},
		vols:       map[string]bool{},
		jobs:       map[string]bool{},
		syncing:    map[string]bool{},
		removing:   map[string]bool{},
		createsNow: map[string]bool{},
		ooms:       map[string]bool{},
		dirty:      map[string]bool{},
		timers:     map[string]*time.Timer{},
	}
}

// ownLabels are on every object this agent creates and select the objects
// it may touch.
func (a *Agent) ownLabels() map[string]string {
	return map[string]string{api.LabelCluster: a.cfg.ClusterID, api.LabelNode: a.cfg.NodeID}
}

// Run registers the node and reconciles until ctx ends. Containers keep
// running when it returns: the data plane does not depend on the agent.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.loadStatuses(ctx); err != nil {
		a.log.Warn("load previous task statuses", "err", err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer a.syncs.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer a.stopTimers()

	wg.Add(2)
	go func() { defer wg.Done(); a.heartbeat(ctx) }()
	go func() { defer wg.Done(); a.watchEngine(ctx) }()
	if w := a.startWatchdog(); w != nil {
		wg.Add(1)
		go func() { defer wg.Done(); _ = w.Run(ctx) }()
	}

	tasks := a.store.Watch(ctx, store.Tasks)
	tick := time.NewTicker(a.cfg.Resync)
	defer tick.Stop()
	// A pass runs in its own goroutine, one at a time; asks for a pass
	// while one runs are folded into one more after it. Meanwhile task
	// kicks (an exit, a health change) are served at once: a pass waits
	// for its slowest start, which a busy engine can stretch to seconds.
	passDone := make(chan struct{}, 1)
	passing, again := false, false
	startPass := func() {
		if passing {
			again = true
			return
		}
		passing = true
		a.syncs.Add(1)
		go func() {
			defer a.syncs.Done()
			a.pass(ctx)
			passDone <- struct{}{}
		}()
	}
	startPass()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tasks:
			startPass()
		case <-a.kick:
			startPass()
		case <-tick.C:
			startPass()
		case id := <-a.taskKick:
			a.syncAsync(ctx, id)
		case <-passDone:
			passing = false
			if again {
				again = false
				startPass()
			}
		}
	}
}

// Kick asks for a full pass soon.
func (a *Agent) Kick() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

func (a *Agent) kickTask(id string) {
	select {
	case a.taskKick <- id:
	default:
		a.Kick()
	}
}

// engineCtx bounds one engine call.
func (a *Agent) engineCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, a.cfg.CallTimeout)
}

// loadStatuses restores restart counts after a restart of the agent.
func (a *Agent) loadStatuses(ctx context.Context) error {
	sts, err := a.store.ListStatus(ctx, a.cfg.NodeID)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, st := range sts {
		a.local[st.TaskID] = &taskState{status: st, written: true, restart: restartState{Restarts: st.Restarts}}
	}
	return nil
}

// pass is one full reconciliation of the node.
func (a *Agent) pass(ctx context.Context) {
	if a.engineWedged() {
		a.log.Debug("agent pass skipped: engine wedged")
		return
	}
	err := a.reconcile(ctx)
	a.mu.Lock()
	changed := (err == nil) != (a.lastErr == nil)
	a.lastErr = err
	a.mu.Unlock()
	if err != nil && ctx.Err() == nil {
		lvl := slog.LevelDebug
		if changed {
			lvl = slog.LevelWarn
		}
		a.log.Log(ctx, lvl, "agent pass failed", "err", err)
	}
}

func (a *Agent) reconcile(ctx context.Context) error {
	all, err := a.store.ListTasks(ctx, "")
	if err != nil {
		return err
	}
	stacks, err := a.store.ListStacks(ctx)
	if err != nil {
		return err
	}
	lctx, cancel := a.engineCtx(ctx)
	containers, err := a.drv.List(lctx, a.ownLabels())
	cancel()
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}

	desired := map[string]api.Task{}
	for _, t := range all {
		if t.Node == a.cfg.NodeID {
			desired[t.ID] = t
		}
	}
	a.mu.Lock()
	a.tasks = desired
	a.stacks = map[string]api.StackRecord{}
	for _, s := range stacks {
		a.stacks[s.Name] = s
	}
	a.mu.Unlock()

	byTask := map[string][]runtime.Container{}
	var orphans []runtime.Container
	for _, c := range containers {
		id := c.Labels[api.LabelTask]
		if id == "" {
			if job := c.Labels[api.LabelJob]; job != "" && !a.jobRunning(job) {
				orphans = append(orphans, c)
			}
			continue
		}
		if _, ok := desired[id]; ok {
			byTask[id] = append(byTask[id], c)
		} else {
			orphans = append(orphans, c)
		}
	}

	a.mu.Lock()
	for id, t := range desired {
		if t.Desired == api.DesiredRunning && len(byTask[id]) == 0 {
			a.createsNow[id] = true
		}
	}
	a.mu.Unlock()
	a.log.Debug("agent pass", "desired", len(desired), "containers", len(containers), "orphans", len(orphans))
	sem := make(chan struct{}, a.cfg.Workers)
	var wg sync.WaitGroup
	run := func(f func()) {
		sem <- struct{}{}
		wg.Add(1)
		go func() { defer wg.Done(); defer func() { <-sem }(); f() }()
	}
	for _, c := range orphans {
		a.removeAsync(ctx, c)
	}
	for id, t := range desired {
		cs := byTask[id]
		run(func() { a.syncTask(ctx, t, cs) })
	}
	wg.Wait()
	a.forgetGone(ctx, desired)
	a.cleanupNetworks(ctx, desired, containers)
	a.sweepSecrets(desired, containers)
	return nil
}

// syncAsync syncs one task in its own goroutine, so that a slow task (a
// drain, a stop with a long grace) never delays another task's restart.
// Kicks that arrive while the task is syncing coalesce into one more run.
func (a *Agent) syncAsync(ctx context.Context, id string) {
	a.mu.Lock()
	if a.syncing[id] {
		a.dirty[id] = true
		a.mu.Unlock()
		return
	}
	a.syncing[id] = true
	a.mu.Unlock()
	a.syncs.Add(1)
	go func() {
		defer a.syncs.Done()
		for {
			a.syncOne(ctx, id)
			a.mu.Lock()
			if !a.dirty[id] || ctx.Err() != nil {
				delete(a.syncing, id)
				delete(a.dirty, id)
				a.mu.Unlock()
				return
			}
			delete(a.dirty, id)
			a.mu.Unlock()
		}
	}()
}

// syncOne re-examines one task after an engine event or a backoff timer.
func (a *Agent) syncOne(ctx context.Context, id string) {
	if a.engineWedged() {
		return // the pass after the engine recovers looks again
	}
	a.mu.Lock()
	t, ok := a.tasks[id]
	a.mu.Unlock()
	if !ok {
		return
	}
	lctx, cancel := a.engineCtx(ctx)
	cs, err := a.drv.List(lctx, map[string]string{api.LabelCluster: a.cfg.ClusterID, api.LabelTask: id})
	cancel()
	if err != nil {
		a.log.Warn("list task containers", "task", id, "err", err)
		return
	}
	a.syncTask(ctx, t, cs)
}

func (a *Agent) state(id string) *taskState {
	a.mu.Lock()
	defer a.mu.Unlock()
	st, ok := a.local[id]
	if !ok {
		st = &taskState{}
		a.local[id] = st
	}
	return st
}

// forgetGone drops local state and statuses of tasks no longer desired.
func (a *Agent) forgetGone(ctx context.Context, desired map[string]api.Task) {
	a.mu.Lock()
	var gone []string
	for id := range a.local {
		if _, ok := desired[id]; !ok {
			gone = append(gone, id)
			delete(a.local, id)
			delete(a.ooms, id)
		}
	}
	a.mu.Unlock()
	for _, id := range gone {
		a.hooks.TaskNotReady(api.Task{ID: id})
		a.cancelTimer(id)
		if err := a.store.DeleteStatus(ctx, a.cfg.NodeID, id); err != nil {
			a.log.Warn("delete status", "task", id, "err", err)
		}
	}
}

func (a *Agent) jobRunning(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.jobs[id]
}

func (a *Agent) stackVolumes(stack string) map[string]api.VolumeSpec {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stacks[stack].Volumes
}

// removeAsync removes an orphan in the background: its drain and stop
// grace can take many seconds, and the pass must not wait on them (a new
// task's readiness is judged by the same loop).
func (a *Agent) removeAsync(ctx context.Context, c runtime.Container) {
	a.mu.Lock()
	if a.removing[c.ID] {
		a.mu.Unlock()
		return
	}
	a.removing[c.ID] = true
	if a.removals == nil {
		a.removals = make(chan struct{}, max(a.cfg.Workers, 1))
	}
	sem := a.removals
	a.mu.Unlock()
	a.syncs.Add(1)
	go func() {
		defer a.syncs.Done()
		defer func() {
			a.mu.Lock()
			delete(a.removing, c.ID)
			a.mu.Unlock()
		}()
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		defer func() { <-sem }()
		a.removeOrphan(ctx, c)
		a.Kick() // the next pass removes a network this container was the last on
	}()
}

// yieldMax bounds how long a drained container waits for creates.
const yieldMax = 2 * time.Second

// beginCreate marks a container creation under way; the returned func
// ends it.
func (a *Agent) beginCreate() func() {
	a.mu.Lock()
	a.creating++
	a.mu.Unlock()
	return func() {
		a.mu.Lock()
		a.creating--
		if a.creating == 0 {
			a.idle.wake()
		}
		a.mu.Unlock()
	}
}

// mayYield reports whether a drained container's stop may wait: its
// revision replaces start-first and does not use the host's network.
func (a *Agent) mayYield(ctx context.Context, c runtime.Container) bool {
	rev, err := strconv.Atoi(c.Labels[api.LabelRevision])
	if err != nil || c.Labels[api.LabelTask] == "" {
		return false
	}
	spec, err := a.spec(ctx, api.Task{Stack: c.Labels[api.LabelStack], Service: c.Labels[api.LabelService], Revision: rev})
	return err == nil && spec.Update.Order != api.StopFirst && spec.NetworkMode != "host"
}

// createdNow records that task id's create returned (or that its sync
// ended without one).
func (a *Agent) createdNow(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.createsNow[id] {
		return
	}
	delete(a.createsNow, id)
	if len(a.createsNow) == 0 {
		a.nowDone.wake()
	}
}

// waitCreatesNow waits, at most max, until every task to run now has its
// container.
func (a *Agent) waitCreatesNow(ctx context.Context, max time.Duration) {
	a.waitIdle(ctx, func() bool { return len(a.createsNow) > 0 }, &a.nowDone, max)
}

// yieldToCreates waits, at most max, until no container is being created.
func (a *Agent) yieldToCreates(ctx context.Context, max time.Duration) {
	a.waitIdle(ctx, func() bool { return a.creating > 0 }, &a.idle, max)
}

// idleSignal wakes those waiting for some work of the agent's (counted
// under a.mu) to end.
type idleSignal struct{ ch chan struct{} }

// wake ends the current wait; call with a.mu held.
func (s *idleSignal) wake() {
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// waitIdle waits, at most max, until busy (read under a.mu) is false.
func (a *Agent) waitIdle(ctx context.Context, busy func() bool, sig *idleSignal, max time.Duration) {
	a.mu.Lock()
	if !busy() {
		a.mu.Unlock()
		return
	}
	if sig.ch == nil {
		sig.ch = make(chan struct{})
	}
	idle := sig.ch
	a.mu.Unlock()
	t := time.NewTimer(max)
	defer t.Stop()
	select {
	case <-idle:
	case <-t.C:
	case <-ctx.Done():
	}
}

// removeOrphan stops and removes a container of this cluster and node that
// no task wants any more.
func (a *Agent) removeOrphan(ctx context.Context, c runtime.Container) {
	if c.Running() {
		grace, err := time.ParseDuration(c.Labels[labelStopGrace])
		if err != nil {
			grace = a.cfg.Defaults.StopGrace
		}
		if id := c.Labels[api.LabelTask]; id != "" {
			a.hooks.TaskStopping(ctx, api.Task{ID: id, Stack: c.Labels[api.LabelStack], Service: c.Labels[api.LabelService]})
		}
		// Out of traffic now: unless the service replaces stop-first (the
		// new task may need what this one holds), its stop can wait for
		// a start under way.
		if a.mayYield(ctx, c) {
			a.yieldToCreates(ctx, yieldMax)
		}
		sctx, cancel := context.WithTimeout(ctx, grace+a.cfg.CallTimeout)
		err = a.drv.Stop(sctx, c.ID, grace)
		cancel()
		if err != nil && !errors.Is(err, runtime.ErrNotFound) {
			a.log.Warn("stop orphan container", "container", c.Name, "err", err)
		}
	}
	rctx, cancel := a.engineCtx(ctx)
	defer cancel()
	if err := a.drv.Remove(rctx, c.ID); err != nil && !errors.Is(err, runtime.ErrNotFound) {
		a.log.Warn("remove orphan container", "container", c.Name, "err", err)
		return
	}
	a.removeSecrets(c.Labels[api.LabelTask])
	a.log.Info("removed container", "container", c.Name, "task", c.Labels[api.LabelTask])
}

// cleanupNetworks removes stack networks of this cluster that no desired
// task and no container of this node uses any more.
func (a *Agent) cleanupNetworks(ctx context.Context, desired map[string]api.Task, containers []runtime.Container) {
	inUse := map[string]bool{}
	use := func(stack string) {
		inUse[networkName(stack)] = true
		inUse[clusterNetworkName(stack, a.cfg.ClusterID)] = true
	}
	for _, t := range desired {
		use(t.Stack)
	}
	for _, c := range containers {
		if s := c.Labels[api.LabelStack]; s != "" {
			use(s)
		}
	}
	lctx, cancel := a.engineCtx(ctx)
	nets, err := a.drv.ListNetworks(lctx, map[string]string{api.LabelCluster: a.cfg.ClusterID})
	cancel()
	if err != nil {
		return
	}
	for _, n := range nets {
		if inUse[n.Name] {
			continue
		}
		rctx, cancel := a.engineCtx(ctx)
		err := a.drv.RemoveNetwork(rctx, n.ID)
		cancel()
		if err == nil {
			a.mu.Lock()
			for stack, name := range a.nets {
				if name == n.Name {
					delete(a.nets, stack)
				}
			}
			a.mu.Unlock()
			a.log.Info("removed network", "network", n.Name)
		}
	}
}

// RemoveVolumes removes the named volumes of a stack that this cluster
// created. It is called after the stack is deleted, with --volumes.
func (a *Agent) RemoveVolumes(ctx context.Context, stack string) error {
	lctx, cancel := a.engineCtx(ctx)
	vols, err := a.drv.ListVolumes(lctx, map[string]string{api.LabelCluster: a.cfg.ClusterID, api.LabelStack: stack})
	cancel()
	if err != nil {
		return err
	}
	var errs []error
	for _, v := range vols {
		// Containers of the stack may still be stopping; retry briefly.
		var err error
		for i := 0; i < 60; i++ {
			rctx, cancel := a.engineCtx(ctx)
			err = a.drv.RemoveVolume(rctx, v.Name)
			cancel()
			if err == nil || errors.Is(err, runtime.ErrNotFound) {
				err = nil
				break
			}
			a.Kick()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("remove volume %s: %w", v.Name, err))
		}
		a.mu.Lock()
		delete(a.vols, v.Name)
		a.mu.Unlock()
	}
	return errors.Join(errs...)
}
