package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/logs"
	"github.com/berth-dev/berth/metrics"
	"github.com/berth-dev/berth/monitor"
	"github.com/berth-dev/berth/runtime/docker"
	"github.com/berth-dev/berth/server"
	"github.com/berth-dev/berth/store"
)

// OpsConfig configures logs, metrics and monitors of `berth up`.
type OpsConfig struct {
	// LogRetention bounds the log store (zero fields: defaults).
	LogRetention logs.Retention
	// LogSinks are URLs of outside log sinks (see logs.ParseSink).
	LogSinks []string
	// MetricsAddr, if set, serves /metrics on TCP too.
	MetricsAddr string
	// MetricsInterval is the period of container readings (default 10s).
	MetricsInterval time.Duration
	// MonitorInterval is the period of the outside-in probes (0: none).
	MonitorInterval time.Duration
}

// ops is the operational side of one berth up process: the log store,
// collector and sinks, the metrics registry and what fills it, and the
// outside-in monitors.
type ops struct {
	logs    *logs.Store
	ship    *logs.Shipper
	collect *logs.Collector
	// Metrics is the registry other parts add their metrics to.
	Metrics *metrics.Registry
	poller  *metrics.Poller
}

type opsDeps struct {
	cluster, node, nodeName string
	drv                     *docker.Driver
	store                   *store.Store
	traffic                 metrics.Traffic
	ingressAddr             string
	nodeMetrics             metrics.NodeSources
}

// startOps opens the log store and builds the collector, the sinks, the
// metrics and the monitors. Nothing runs until the returned parts run.
func startOps(cfg Config, d opsDeps, log *slog.Logger) (*ops, map[string]func(context.Context) error, error) {
	var sinks []logs.Sink
	for _, raw := range cfg.Ops.LogSinks {
		s, err := logs.ParseSink(raw, d.nodeName)
		if err != nil {
			return nil, nil, err
		}
		sinks = append(sinks, s)
	}
	var mln net.Listener
	if cfg.Ops.MetricsAddr != "" {
		var err error
		if mln, err = net.Listen("tcp", cfg.Ops.MetricsAddr); err != nil {
			return nil, nil, fmt.Errorf("%w: --metrics-addr %s: %v", api.ErrInvalid, cfg.Ops.MetricsAddr, err)
		}
		writeAddrFile(cfg.DataDir, "metrics-addr", mln.Addr().String(), log)
	}
	st, err := logs.Open(logs.Options{Dir: filepath.Join(cfg.DataDir, "logs"), Retention: cfg.Ops.LogRetention, Logger: log.With("component", "logs")})
	if err != nil {
		if mln != nil {
			mln.Close()
		}
		return nil, nil, fmt.Errorf("open the log store: %w", err)
	}
	own := map[string]string{api.LabelCluster: d.cluster, api.LabelNode: d.node}
	o := &ops{logs: st, Metrics: metrics.New(d.nodeName)}
	o.ship = logs.NewShipper(logs.ShipperConfig{Logger: log.With("component", "log-sinks")}, sinks)
	var offer logs.Offerer
	if len(sinks) > 0 {
		offer = o.ship
	}
	o.collect = logs.NewCollector(logs.CollectorConfig{
		Labels:     own,
		CursorFile: filepath.Join(cfg.DataDir, "logs", "cursors.json"),
		Logger:     log.With("component", "log-collector"),
	}, d.drv, st, offer)
	o.poller = metrics.NewPoller(metrics.PollerConfig{Labels: own, NodeID: d.node, Interval: cfg.Ops.MetricsInterval, Logger: log.With("component", "metrics")},
		o.Metrics, d.drv, d.traffic, d.store)
	metrics.RegisterIngress(o.Metrics, d.traffic)
	metrics.RegisterLogs(o.Metrics, st, o.ship, o.collect.Lines)
	metrics.RegisterNode(o.Metrics, d.nodeMetrics)
	events := metrics.NewEventCounter(o.Metrics, d.store, d.node)

	parts := map[string]func(context.Context) error{
		"log-store":      st.Run,
		"log-collector":  o.collect.Run,
		"log-sinks":      o.ship.Run,
		"metrics-poller": o.poller.Run,
		"metrics-events": events.Run,
	}
	if cfg.Ops.MonitorInterval > 0 && d.ingressAddr != "" {
		mon := monitor.New(monitor.Config{Ingress: d.ingressAddr, Interval: cfg.Ops.MonitorInterval, Node: d.nodeName, NodeID: d.node,
			Logger: log.With("component", "monitor")}, d.store, o.Metrics)
		parts["monitor"] = mon.Run
	}
	if mln != nil {
		h := http.NewServeMux()
		h.Handle("GET /metrics", o.Metrics.Handler())
		hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		parts["metrics-listener"] = func(ctx context.Context) error { return server.ServeHTTP(ctx, mln, hs, 2*time.Second) }
	}
	return o, parts, nil
}

func (o *ops) serverOps() server.Ops {
	return server.Ops{Logs: o.logs, Metrics: o.Metrics.Handler(), Top: o.poller.History()}
}

func (o *ops) close() { _ = o.logs.Close() }

// writeAddrFile records the address a listener got (port 0 in tests).
func writeAddrFile(dir, name, addr string, log *slog.Logger) {
	if err := os.WriteFile(filepath.Join(dir, name), []byte(addr+"\n"), 0o600); err != nil {
		log.Warn("record listener address", "file", name, "err", err)
	}
}
