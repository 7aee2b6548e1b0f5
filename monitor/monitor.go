// Package monitor watches every public HTTP route the way its users reach
// it: through the public ingress address, with the route's host, from
// outside the containers. Availability and latency become metrics, and a
// route that stops answering (or answers again) becomes an event
// (monitor.down, monitor.up) that alert rules act on.
package monitor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/prometheus/client_golang/prometheus"
)

// Event types the monitor writes.
const (
	EventDown = "monitor.down"
	EventUp   = "monitor.up"
)

// Source is what the monitor reads and writes in the store.
type Source interface {
	ListStacks(ctx context.Context) ([]api.StackRecord, error)
	ListServices(ctx context.Context, stack string) ([]api.ServiceState, error)
	GetRevision(ctx context.Context, stack, svc string, n int) (api.Revision, error)
	AppendEvent(ctx context.Context, e api.Event) error
}

// Config configures a Monitor.
type Config struct {
	// Ingress is the ingress's public HTTP address (host:port).
	Ingress string
	// Interval between two probes of a route (default 10s).
	Interval time.Duration
	// Timeout bounds one probe (default 5s).
	Timeout time.Duration
	// FailAfter consecutive failures make a route down (default 3).
	FailAfter int
	// Grace is how long a route never seen answering may fail before it
	// is reported (a first deploy starting; default 1m).
	Grace time.Duration
	// Node names this node in metrics; NodeID in events.
	Node, NodeID string
	Logger       *slog.Logger
}

// Monitor probes the routes of every running service.
type Monitor struct {
	cfg    Config
	src    Source
	client *http.Client
	log    *slog.Logger

	up       *prometheus.GaugeVec
	latency  *prometheus.HistogramVec
	probes   *prometheus.CounterVec
	failures *prometheus.CounterVec

	mu     sync.Mutex
	routes map[Target]*state
	specs  map[revKey]*api.ServiceSpec
}

// Target is one route as users reach it.
type Target struct {
	Stack, Service string
	Host, Path     string
}

func (t Target) String() string { return t.Host + t.Path }

type revKey struct {
	stack, service string
	rev            int
}

type state struct {
	first   time.Time
	everUp  bool
	down    bool
	fails   int
	lastErr string
	since   time.Time // of the current up or down
}

// New returns a monitor and registers its metrics on reg.
func New(cfg Config, src Source, reg prometheus.Registerer) *Monitor {
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.FailAfter <= 0 {
		cfg.FailAfter = 3
	}
	if cfg.Grace <= 0 {
		cfg.Grace = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	labels := []string{"stack", "service", "node"}
	m := &Monitor{cfg: cfg, src: src, log: cfg.Logger,
		client: &http.Client{Timeout: cfg.Timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "berth", Name: "monitor_up",
			Help: "1 if every HTTP route of the service answers through the public ingress without a server error."}, labels),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "berth", Name: "monitor_probe_duration_seconds",
			Help:    "Time of the outside-in probes of a service's routes through the public ingress.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}, labels),
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "berth", Name: "monitor_probes_total",
			Help: "Outside-in probes of a service's routes."}, labels),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "berth", Name: "monitor_probe_failures_total",
			Help: "Outside-in probes that failed (no answer, a timeout, or a 5xx)."}, labels),
		routes: map[Target]*state{}, specs: map[revKey]*api.ServiceSpec{},
	}
	reg.MustRegister(m.up, m.latency, m.probes, m.failures)
	return m
}

// Run probes every route each interval until ctx ends.
func (m *Monitor) Run(ctx context.Context) error {
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		m.Pass(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Targets lists the public HTTP routes of running services.
func (m *Monitor) Targets(ctx context.Context) ([]Target, error) {
	stacks, err := m.src.ListStacks(ctx)
	if err != nil {
		return nil, err
	}
	var out []Target
	for _, st := range stacks {
		svcs, err := m.src.ListServices(ctx, st.Name)
		if err != nil {
			return nil, err
		}
		for _, svc := range svcs {
			if svc.Stopped || svc.Replicas == 0 {
				continue
			}
			spec, err := m.spec(ctx, svc)
			if err != nil {
				return nil, err
			}
			for _, r := range spec.Routes {
				path := r.PathPrefix
				if path == "" {
					path = "/"
				}
				out = append(out, Target{Stack: svc.Stack, Service: svc.Name, Host: r.Host, Path: path})
			}
		}
	}
	return out, nil
}

func (m *Monitor) spec(ctx context.Context, svc api.ServiceState) (*api.ServiceSpec, error) {
	k := revKey{svc.Stack, svc.Name, svc.Revision}
	m.mu.Lock()
	s, ok := m.specs[k]
	m.mu.Unlock()
	if ok {
		return s, nil
	}
	rev, err := m.src.GetRevision(ctx, svc.Stack, svc.Name, svc.Revision)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.specs[k] = &rev.Spec
	m.mu.Unlock()
	return &rev.Spec, nil
}

type result struct {
	t    Target
	took time.Duration
	err  error
}

// Pass probes every route once, a few at a time, and records the outcome.
func (m *Monitor) Pass(ctx context.Context) {
	targets, err := m.Targets(ctx)
	if err != nil {
		m.log.Debug("list routes to monitor", "err", err)
		return
	}
	results := make([]result, len(targets))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			start := time.Now()
			err := Check(ctx, m.client, m.cfg.Ingress, t.Host, t.Path)
			results[i] = result{t: t, took: time.Since(start), err: err}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	m.record(ctx, results, time.Now())
}

// record updates metrics and states, and writes an event per change.
func (m *Monitor) record(ctx context.Context, results []result, now time.Time) {
	type svcKey struct{ stack, service string }
	svcUp := map[svcKey]bool{}
	var events []api.Event
	m.mu.Lock()
	seen := map[Target]bool{}
	for _, r := range results {
		t := r.t
		seen[t] = true
		k := svcKey{t.Stack, t.Service}
		if _, ok := svcUp[k]; !ok {
			svcUp[k] = true
		}
		lv := []string{t.Stack, t.Service, m.cfg.Node}
		m.probes.WithLabelValues(lv...).Inc()
		m.latency.WithLabelValues(lv...).Observe(r.took.Seconds())
		st := m.routes[t]
		if st == nil {
			st = &state{first: now, since: now}
			m.routes[t] = st
		}
		if r.err == nil {
			if st.down {
				events = append(events, api.Event{Type: EventUp, Stack: t.Stack, Service: t.Service, Node: m.cfg.NodeID,
					Message: fmt.Sprintf("route %s answers again through the ingress (down for %s)", t, now.Sub(st.since).Round(time.Second))})
				st.since = now
			}
			st.down, st.fails, st.everUp = false, 0, true
			continue
		}
		m.failures.WithLabelValues(lv...).Inc()
		st.fails++
		st.lastErr = r.err.Error()
		if !st.down && st.fails >= m.cfg.FailAfter && (st.everUp || now.Sub(st.first) >= m.cfg.Grace) {
			st.down, st.since = true, now
			events = append(events, api.Event{Type: EventDown, Stack: t.Stack, Service: t.Service, Node: m.cfg.NodeID,
				Message: fmt.Sprintf("route %s fails through the ingress (%d checks in a row): %s", t, st.fails, st.lastErr)})
		}
		if st.down || !st.everUp {
			svcUp[k] = false
		}
	}
	for t := range m.routes {
		if !seen[t] {
			delete(m.routes, t)
		}
	}
	m.up.Reset()
	for k, up := range svcUp {
		v := 0.0
		if up {
			v = 1
		}
		m.up.WithLabelValues(k.stack, k.service, m.cfg.Node).Set(v)
	}
	m.mu.Unlock()
	sort.Slice(events, func(i, j int) bool { return events[i].Message < events[j].Message })
	for _, e := range events {
		m.log.Info("monitor", "type", e.Type, "stack", e.Stack, "service", e.Service, "message", e.Message)
		if err := m.src.AppendEvent(ctx, e); err != nil {
			m.log.Warn("record monitor event", "type", e.Type, "err", err)
		}
	}
}

// Check sends one GET to path through the ingress at addr with the
// route's host, as a user's browser would. Any answer below 500 is the
// service answering; a 5xx, a timeout or no answer is a failure.
func Check(ctx context.Context, c *http.Client, addr, host, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	if host != "" && !strings.Contains(host, "*") {
		req.Host = host
	}
	req.Header.Set("User-Agent", "berth-monitor")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("GET %s%s: %s", host, path, resp.Status)
	}
	return nil
}
