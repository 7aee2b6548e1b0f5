package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/logs"
	"github.com/berth-dev/berth/runtime/docker"
	"github.com/berth-dev/berth/server"
)

// OpsConfig configures logs, metrics and monitors of `berth up`.
type OpsConfig struct {
	// LogRetention bounds the log store (zero fields: defaults).
	LogRetention logs.Retention
	// LogSinks are URLs of outside log sinks (see logs.ParseSink).
	LogSinks []string
	// MetricsAddr, if set, serves /metrics on TCP too.
	MetricsAddr string
	// MonitorInterval is the period of the outside-in probes (0: none).
	MonitorInterval time.Duration
}

// ops is the operational side of one berth up process.
type ops struct {
	logs    *logs.Store
	ship    *logs.Shipper
	collect *logs.Collector
}

type opsIDs struct{ cluster, node, nodeName string }

// startOps opens the log store and builds the collector and the sinks.
// Nothing runs until the returned parts are started.
func startOps(cfg Config, drv *docker.Driver, ids opsIDs, log *slog.Logger) (*ops, map[string]func(context.Context) error, error) {
	var sinks []logs.Sink
	for _, raw := range cfg.Ops.LogSinks {
		s, err := logs.ParseSink(raw, ids.nodeName)
		if err != nil {
			return nil, nil, err
		}
		sinks = append(sinks, s)
	}
	st, err := logs.Open(logs.Options{Dir: filepath.Join(cfg.DataDir, "logs"), Retention: cfg.Ops.LogRetention, Logger: log.With("component", "logs")})
	if err != nil {
		return nil, nil, fmt.Errorf("open the log store: %w", err)
	}
	o := &ops{logs: st}
	o.ship = logs.NewShipper(logs.ShipperConfig{Logger: log.With("component", "log-sinks")}, sinks)
	var offer logs.Offerer
	if len(sinks) > 0 {
		offer = o.ship
	}
	o.collect = logs.NewCollector(logs.CollectorConfig{
		Labels:     map[string]string{api.LabelCluster: ids.cluster, api.LabelNode: ids.node},
		CursorFile: filepath.Join(cfg.DataDir, "logs", "cursors.json"),
		Logger:     log.With("component", "log-collector"),
	}, drv, st, offer)
	parts := map[string]func(context.Context) error{
		"log-store":     st.Run,
		"log-collector": o.collect.Run,
		"log-sinks":     o.ship.Run,
	}
	return o, parts, nil
}

func (o *ops) serverOps() server.Ops { return server.Ops{Logs: o.logs} }

func (o *ops) close() { _ = o.logs.Close() }
