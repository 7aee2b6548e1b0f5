package agent

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/watchdog"
)

// startWatchdog creates the engine watchdog if the configuration asks for
// one; Run runs it beside the reconciler.
func (a *Agent) startWatchdog() *watchdog.Watchdog {
	if a.cfg.Watchdog == nil || a.cfg.Watchdog.Disabled {
		return nil
	}
	w := watchdog.New(*a.cfg.Watchdog, a.drv, a.ownLabels(), a.log.With("part", "watchdog"))
	w.OnChange = a.onEngineChange
	w.OnRemediate = a.onRemediate
	a.mu.Lock()
	a.watchdog = w
	a.mu.Unlock()
	return w
}

// EngineHealth is the watchdog's last judgement of the engine (healthy
// when no watchdog runs). Metrics read probe latencies from here.
func (a *Agent) EngineHealth() api.EngineHealth {
	if w := a.engineWatchdog(); w != nil {
		return w.Status()
	}
	return api.EngineHealth{State: api.EngineHealthy}
}

func (a *Agent) engineWatchdog() *watchdog.Watchdog {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.watchdog
}

// engineWedged reports whether the watchdog judges the engine wedged: the
// agent then sends it nothing but the watchdog's own probes, instead of a
// pile of calls that would each hang until their timeout.
func (a *Agent) engineWedged() bool {
	w := a.engineWatchdog()
	return w != nil && w.Wedged()
}

func (a *Agent) onEngineChange(prev, cur api.EngineHealth) {
	a.load.engineHealth(cur)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msg := cur.Reason
	if cur.State == api.EngineHealthy {
		msg = fmt.Sprintf("engine healthy again (was %s for %s)", prev.State, cur.Since.Sub(prev.Since).Round(time.Second))
	}
	e := api.Event{Type: "engine." + cur.State, Node: a.cfg.NodeID, Subject: a.cfg.NodeName, Message: msg}
	if err := a.store.AppendEvent(ctx, e); err != nil {
		a.log.Warn("record event", "type", e.Type, "err", err)
	}
	select {
	case a.nodeKick <- struct{}{}:
	default:
	}
	if cur.State != api.EngineWedged {
		a.Kick() // catch up on what the wedge held back
	}
}

func (a *Agent) onRemediate(r watchdog.Remediation) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msg := fmt.Sprintf("ran %q in %s", strings.Join(r.Command, " "), r.Took.Round(time.Millisecond))
	if r.Err != nil {
		msg += ": " + r.Err.Error()
	}
	if r.Output != "" {
		msg += "; output: " + r.Output
	}
	e := api.Event{Type: "engine.remediation", Node: a.cfg.NodeID, Subject: a.cfg.NodeName, Message: msg}
	if err := a.store.AppendEvent(ctx, e); err != nil {
		a.log.Warn("record event", "type", e.Type, "err", err)
	}
}

// nodeHealth fills in the node record's engine health and degraded mark.
func (a *Agent) nodeHealth(n *api.Node) {
	w := a.engineWatchdog()
	if w == nil {
		return
	}
	h := w.Status()
	n.EngineHealth = h
	if h.State == api.EngineWedged {
		n.Degraded = "engine wedged: " + h.Reason
	} else if strings.HasPrefix(n.Degraded, "engine wedged: ") {
		n.Degraded = ""
	}
}
