package metrics

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/ingress"
	"github.com/berth-dev/berth/runtime"
	"github.com/prometheus/client_golang/prometheus"
)

// Engine is what the poller reads of the container engine.
type Engine interface {
	List(ctx context.Context, labels map[string]string) ([]runtime.Container, error)
	Stats(ctx context.Context, id string) (runtime.ContainerStats, error)
}

// Traffic reads the ingress's counters per route and revision.
type Traffic interface {
	Stats(ctx context.Context) ([]ingress.RevisionStats, error)
}

// Statuses reads the node's task statuses (restart counts).
type Statuses interface {
	ListStatus(ctx context.Context, node string) ([]api.TaskStatus, error)
}

// PollerConfig configures a Poller.
type PollerConfig struct {
	// Labels select this node's berth containers.
	Labels map[string]string
	// NodeID selects the node's task statuses.
	NodeID string
	// Interval between polls (default 10s).
	Interval time.Duration
	// Timeout bounds each engine call (default 5s).
	Timeout time.Duration
	// Workers bounds concurrent stats calls (default 4).
	Workers int
	Logger  *slog.Logger
}

// Poller reads every running berth container's resource use once per
// interval (the engine's one-shot stats, a few at a time, each with a
// deadline), the tasks' restart counts, and the ingress's request counts,
// into counters and gauges and into the History.
type Poller struct {
	cfg     PollerConfig
	reg     *Registry
	engine  Engine
	traffic Traffic
	status  Statuses
	hist    *History
	log     *slog.Logger

	cpu, rx, tx, restarts *prometheus.CounterVec
	memory, running       *prometheus.GaugeVec
	pollErrors            prometheus.Counter

	mu       sync.Mutex
	last     map[string]runtime.ContainerStats // by container ID
	restart  map[string]int                    // by task ID
	lastReq  map[svcKey]ingress.RevisionStats
	lastTime time.Time
}

// NewPoller registers the container metrics on reg.
func NewPoller(cfg PollerConfig, reg *Registry, engine Engine, traffic Traffic, status Statuses) *Poller {
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, revisionLabels)
	}
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: name, Help: help}, revisionLabels)
	}
	p := &Poller{cfg: cfg, reg: reg, engine: engine, traffic: traffic, status: status, hist: NewHistory(cfg.Interval), log: cfg.Logger,
		cpu:      counter("container_cpu_seconds_total", "CPU time used by the containers of a service revision on the node."),
		rx:       counter("container_network_receive_bytes_total", "Network bytes received by the containers of a service revision on the node."),
		tx:       counter("container_network_transmit_bytes_total", "Network bytes sent by the containers of a service revision on the node."),
		restarts: counter("task_restarts_total", "Restarts of tasks of a service revision on the node (crashes, OOM kills, failed health checks)."),
		memory:   gauge("container_memory_bytes", "Memory in use by the containers of a service revision on the node (reclaimable page cache excluded)."),
		running:  gauge("containers_running", "Running containers of a service revision on the node."),
		pollErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "container_stats_errors_total",
			Help: "Container stats reads that failed or timed out."}),
		last: map[string]runtime.ContainerStats{}, restart: map[string]int{}, lastReq: map[svcKey]ingress.RevisionStats{},
	}
	reg.MustRegister(p.cpu, p.rx, p.tx, p.restarts, p.memory, p.running, p.pollErrors)
	return p
}

// History is the in-memory history the poller fills.
func (p *Poller) History() *History { return p.hist }

// Run polls until ctx ends.
func (p *Poller) Run(ctx context.Context) error {
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		p.Poll(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

type reading struct {
	c  runtime.Container
	st runtime.ContainerStats
	ok bool
}

// Poll takes one reading of everything.
func (p *Poller) Poll(ctx context.Context) {
	lctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	cs, err := p.engine.List(lctx, p.cfg.Labels)
	cancel()
	if err != nil {
		p.pollErrors.Inc()
		p.log.Debug("list containers for metrics", "err", err)
		return
	}
	var readings []reading
	taskLv := map[string][]string{}
	for _, c := range cs {
		if id := c.Labels[api.LabelTask]; id != "" {
			taskLv[id] = []string{c.Labels[api.LabelStack], c.Labels[api.LabelService], c.Labels[api.LabelRevision], p.reg.Node}
			if c.Running() {
				readings = append(readings, reading{c: c})
			}
		}
	}
	sem := make(chan struct{}, p.cfg.Workers)
	var wg sync.WaitGroup
	for i := range readings {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			sctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
			defer cancel()
			st, err := p.engine.Stats(sctx, readings[i].c.ID)
			if err != nil {
				p.pollErrors.Inc()
				return
			}
			readings[i].st, readings[i].ok = st, true
		}()
	}
	wg.Wait()
	now := time.Now()
	samples, tasks := p.account(readings, now)
	p.pollRestarts(ctx, taskLv)
	p.pollTraffic(ctx, now, samples)
	p.hist.record(now, samples, tasks)
}

// account turns readings into counters (monotonic across containers that
// come and go, and across restarts in place) and the history's CPU and
// memory per service.
func (p *Poller) account(readings []reading, now time.Time) (map[svcKey]api.TopSample, map[svcKey]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.memory.Reset()
	p.running.Reset()
	samples := map[svcKey]api.TopSample{}
	tasks := map[svcKey]int{}
	seen := map[string]bool{}
	for _, r := range readings {
		c := r.c
		lv := []string{c.Labels[api.LabelStack], c.Labels[api.LabelService], c.Labels[api.LabelRevision], p.reg.Node}
		k := svcKey{lv[0], lv[1]}
		tasks[k]++
		p.running.WithLabelValues(lv...).Inc()
		if !r.ok {
			continue
		}
		seen[c.ID] = true
		prev, had := p.last[c.ID]
		p.last[c.ID] = r.st
		cpu, rx, tx := r.st.CPU, r.st.RxBytes, r.st.TxBytes
		if had && cpu >= prev.CPU && rx >= prev.RxBytes && tx >= prev.TxBytes {
			cpu, rx, tx = cpu-prev.CPU, rx-prev.RxBytes, tx-prev.TxBytes
		}
		p.cpu.WithLabelValues(lv...).Add(cpu.Seconds())
		p.rx.WithLabelValues(lv...).Add(float64(rx))
		p.tx.WithLabelValues(lv...).Add(float64(tx))
		p.memory.WithLabelValues(lv...).Add(float64(r.st.MemoryBytes))
		s := samples[k]
		s.MemoryBytes += r.st.MemoryBytes
		if had {
			if dt := r.st.Time.Sub(prev.Time); dt > 0 {
				s.CPU += cpu.Seconds() / dt.Seconds()
			}
		}
		samples[k] = s
	}
	for id := range p.last {
		if !seen[id] {
			delete(p.last, id)
		}
	}
	return samples, tasks
}

func (p *Poller) pollRestarts(ctx context.Context, taskLv map[string][]string) {
	if p.status == nil {
		return
	}
	sts, err := p.status.ListStatus(ctx, p.cfg.NodeID)
	if err != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := map[string]bool{}
	for _, st := range sts {
		seen[st.TaskID] = true
		prev, had := p.restart[st.TaskID]
		p.restart[st.TaskID] = st.Restarts
		d := st.Restarts - prev
		if !had || d <= 0 {
			continue
		}
		if lv, ok := taskLv[st.TaskID]; ok {
			p.restarts.WithLabelValues(lv...).Add(float64(d))
		}
	}
	for id := range p.restart {
		if !seen[id] {
			delete(p.restart, id)
		}
	}
}

// pollTraffic adds requests and errors per second through the ingress to
// the services' samples.
func (p *Poller) pollTraffic(ctx context.Context, now time.Time, samples map[svcKey]api.TopSample) {
	if p.traffic == nil {
		return
	}
	tctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	stats, err := p.traffic.Stats(tctx)
	cancel()
	if err != nil {
		return
	}
	cur := map[svcKey]ingress.RevisionStats{}
	for _, s := range stats {
		stack, svc, ok := strings.Cut(s.Route, "/")
		if !ok {
			continue
		}
		k := svcKey{stack, svc}
		t := cur[k]
		t.Merge(s)
		cur[k] = t
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	dt := now.Sub(p.lastTime).Seconds()
	for k, c := range cur {
		prev, had := p.lastReq[k]
		if had && p.lastTime.After(time.Time{}) && dt > 0 && c.Requests >= prev.Requests {
			s := samples[k]
			s.Requests = float64(c.Requests-prev.Requests) / dt
			s.Errors = float64(c.Errors-prev.Errors) / dt
			samples[k] = s
		}
	}
	p.lastReq, p.lastTime = cur, now
}
