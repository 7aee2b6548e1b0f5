package metrics

import (
	"context"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/prometheus/client_golang/prometheus"
)

// EventSource is the store's event stream and service records.
type EventSource interface {
	ListEvents(ctx context.Context, since int64, limit int) ([]api.Event, error)
	WatchEvents(ctx context.Context, since int64) <-chan api.Event
	GetService(ctx context.Context, stack, name string) (api.ServiceState, int64, error)
}

// EventCounter counts what events tell: rollouts by outcome and their
// durations, and OOM kills of this node's tasks.
type EventCounter struct {
	src              EventSource
	nodeID, node     string
	done, rolledBack *prometheus.CounterVec
	duration         *prometheus.HistogramVec
	ooms             *prometheus.CounterVec
}

// NewEventCounter registers rollout and OOM metrics on reg.
func NewEventCounter(reg *Registry, src EventSource, nodeID string) *EventCounter {
	labels := []string{"stack", "service"}
	e := &EventCounter{src: src, nodeID: nodeID, node: reg.Node,
		done: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "rollouts_completed_total",
			Help: "Rollouts that reached their new revision."}, labels),
		rolledBack: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "rollouts_rolled_back_total",
			Help: "Rollouts rolled back (a failed gate, a crash loop, a deadline, or by hand)."}, labels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "rollout_duration_seconds",
			Help:    "Time from a rollout's start to its end, whatever the outcome.",
			Buckets: []float64{1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800}}, labels),
		ooms: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "task_oom_kills_total",
			Help: "Tasks of a service on the node killed for running out of memory."}, serviceLabels),
	}
	reg.MustRegister(e.done, e.rolledBack, e.duration, e.ooms)
	return e
}

// Run follows events from now on until ctx ends.
func (e *EventCounter) Run(ctx context.Context) error {
	var since int64
	for ctx.Err() == nil {
		if since == 0 {
			if cur, err := e.src.ListEvents(ctx, 0, 1); err == nil && len(cur) > 0 {
				since = cur[0].Seq
			}
		}
		for ev := range e.src.WatchEvents(ctx, since) {
			since = ev.Seq
			e.count(ctx, ev)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return nil
}

func (e *EventCounter) count(ctx context.Context, ev api.Event) {
	switch ev.Type {
	case "rollout.done", "rollout.rolled_back":
		c := e.done
		if ev.Type == "rollout.rolled_back" {
			c = e.rolledBack
		}
		c.WithLabelValues(ev.Stack, ev.Service).Inc()
		svc, _, err := e.src.GetService(ctx, ev.Stack, ev.Service)
		if err == nil && svc.Rollout != nil && !svc.Rollout.Ended.IsZero() {
			e.duration.WithLabelValues(ev.Stack, ev.Service).Observe(svc.Rollout.Ended.Sub(svc.Rollout.Started).Seconds())
		}
	case "task.oom":
		if ev.Node == e.nodeID {
			e.ooms.WithLabelValues(ev.Stack, ev.Service, e.node).Inc()
		}
	}
}
