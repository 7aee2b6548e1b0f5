package agent

import (
	"context"
	"strings"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/runtime"
)

// heartbeat keeps the node registered under an etcd lease. If the lease is
// lost (etcd restarted, network cut), it registers again.
func (a *Agent) heartbeat(ctx context.Context) {
	for ctx.Err() == nil {
		a.registerOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (a *Agent) registerOnce(ctx context.Context) {
	node := api.Node{
		ID: a.cfg.NodeID, Name: a.cfg.NodeName, Labels: a.cfg.Labels,
		State: api.NodeReady, Since: time.Now().UTC(),
	}
	if !a.engineWedged() {
		ictx, cancel := a.engineCtx(ctx)
		info, err := a.drv.Info(ictx)
		cancel()
		if err != nil {
			node.Degraded = "engine unreachable: " + err.Error()
		} else {
			node.NanoCPUs, node.Memory, node.Engine = info.NanoCPUs, info.Memory, info.Version
		}
	}
	a.nodeHealth(&node)
	lctx, lcancel := context.WithCancel(ctx)
	defer lcancel()
	lease, alive, err := a.store.NodeLease(lctx, a.cfg.LeaseTTL)
	if err != nil {
		a.log.Warn("node lease", "err", err)
		return
	}
	if err := a.store.PutNode(ctx, node, lease); err != nil {
		a.log.Warn("register node", "err", err)
		return
	}
	a.log.Debug("node registered", "node", node.ID)
	refresh := time.NewTicker(30 * time.Second)
	defer refresh.Stop()
	// The refresh's engine call runs beside the loop (at most one at a
	// time), so that a hung engine never holds up the node record: the
	// watchdog's judgement is written as soon as it changes.
	type infoResult struct {
		info runtime.EngineInfo
		err  error
	}
	infos := make(chan infoResult, 1)
	asking := false
	defer func() {
		if asking {
			<-infos
		}
	}()
	write := func(updated api.Node) {
		a.nodeHealth(&updated)
		if updated.Degraded != node.Degraded || updated.Memory != node.Memory || updated.Engine != node.Engine ||
			updated.EngineHealth.State != node.EngineHealth.State {
			if err := a.store.PutNode(ctx, updated, lease); err == nil {
				node = updated
			}
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-alive:
			if !ok {
				a.log.Warn("node lease lost; registering again")
				return
			}
		case <-a.nodeKick:
			updated := node
			a.nodeHealth(&updated)
			if err := a.store.PutNode(ctx, updated, lease); err == nil {
				node = updated
			}
		case <-refresh.C:
			// Keep capacity and engine state current (a wedged engine
			// is not asked: the watchdog's judgement stands).
			if asking || a.engineWedged() {
				write(node)
				continue
			}
			asking = true
			go func() {
				ictx, cancel := a.engineCtx(ctx)
				info, err := a.drv.Info(ictx)
				cancel()
				infos <- infoResult{info, err}
			}()
		case r := <-infos:
			asking = false
			updated := node
			if r.err != nil {
				if ctx.Err() != nil {
					return
				}
				updated.Degraded = "engine unreachable: " + r.err.Error()
			} else {
				if strings.HasPrefix(updated.Degraded, "engine unreachable: ") {
					updated.Degraded = ""
				}
				updated.NanoCPUs, updated.Memory, updated.Engine = r.info.NanoCPUs, r.info.Memory, r.info.Version
			}
			write(updated)
		}
	}
}

// watchEngine follows the engine's container events for this cluster and
// node and re-syncs the task an event concerns. A broken stream is
// resubscribed, followed by a full pass for whatever was missed.
func (a *Agent) watchEngine(ctx context.Context) {
	for ctx.Err() == nil {
		ectx, cancel := context.WithCancel(ctx)
		events, errs := a.drv.Events(ectx, a.ownLabels())
		a.Kick()
	stream:
		for {
			select {
			case <-ctx.Done():
				cancel()
				return
			case e, ok := <-events:
				if !ok {
					break stream
				}
				a.onEngineEvent(e)
			case err := <-errs:
				if err != nil && ctx.Err() == nil {
					a.log.Warn("engine event stream broke; resubscribing", "err", err)
				}
				break stream
			}
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (a *Agent) onEngineEvent(e runtime.Event) {
	id := e.Labels[api.LabelTask]
	if id == "" {
		return
	}
	switch e.Action {
	case runtime.EventOOM:
		// The engine may report a container's exit before its OOM kill
		// (and then never set OOMKilled): remember it for the task.
		a.mu.Lock()
		a.ooms[id] = true
		a.mu.Unlock()
		a.kickTask(id)
	case runtime.EventDie, runtime.EventDestroy, runtime.EventHealth, runtime.EventStart:
		a.kickTask(id)
	}
}

// takeOOM reports, once, whether an OOM kill of the task was seen.
func (a *Agent) takeOOM(task string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	seen := a.ooms[task]
	delete(a.ooms, task)
	return seen
}
