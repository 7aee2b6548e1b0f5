package cli

import (
	"fmt"
	"time"

	"github.com/berth-dev/berth/daemon"
	"github.com/berth-dev/berth/logs"
	"github.com/docker/go-units"
	"github.com/spf13/pflag"
)

// opsFlags configure logs, metrics and monitors of `berth up`.
type opsFlags struct {
	sinks               []string
	logAge              time.Duration
	logStack, logBudget string
	metricsAddr         string
	metricsEvery        time.Duration
	monitorEvery        time.Duration
}

func (o *opsFlags) add(f *pflag.FlagSet) {
	def := logs.DefaultRetention()
	f.StringArrayVar(&o.sinks, "log-sink", nil, "also ship containers' output to this sink (repeatable): syslog+tcp://HOST:PORT, syslog+udp://HOST:PORT (RFC 5424), loki+http://HOST:PORT/loki/api/v1/push")
	f.DurationVar(&o.logAge, "log-max-age", def.MaxAge, "drop kept container output older than this")
	f.StringVar(&o.logStack, "log-stack-size", units.BytesSize(float64(def.StackBytes)), "most container output kept per stack")
	f.StringVar(&o.logBudget, "log-budget", units.BytesSize(float64(def.TotalBytes)), "most disk space all kept container output may take")
	f.StringVar(&o.metricsAddr, "metrics-addr", "", "also serve Prometheus /metrics on this TCP address (host:port); always on the API socket")
	f.DurationVar(&o.metricsEvery, "metrics-interval", 10*time.Second, "how often containers' CPU, memory and network are read (berth top keeps an hour of these readings)")
	f.DurationVar(&o.monitorEvery, "monitor-interval", 10*time.Second, "how often every public HTTP route is probed through the ingress (0 turns the monitors off)")
}

func (o *opsFlags) config() (daemon.OpsConfig, error) {
	c := daemon.OpsConfig{LogSinks: o.sinks, MetricsAddr: o.metricsAddr, MetricsInterval: o.metricsEvery, MonitorInterval: o.monitorEvery}
	if o.metricsEvery < time.Second {
		return c, fmt.Errorf("%w: --metrics-interval %s: use 1s or more", errUsage, o.metricsEvery)
	}
	if o.logAge <= 0 {
		return c, fmt.Errorf("%w: --log-max-age %s: use a positive duration such as 168h", errUsage, o.logAge)
	}
	c.LogRetention.MaxAge = o.logAge
	for _, p := range []struct {
		flag, v string
		to      *int64
	}{{"--log-stack-size", o.logStack, &c.LogRetention.StackBytes}, {"--log-budget", o.logBudget, &c.LogRetention.TotalBytes}} {
		n, err := units.RAMInBytes(p.v)
		if err != nil || n < 1<<20 {
			return c, fmt.Errorf("%w: %s %q: use a size such as 512m or 4g (at least 1m)", errUsage, p.flag, p.v)
		}
		*p.to = n
	}
	if c.LogRetention.TotalBytes < c.LogRetention.StackBytes {
		return c, fmt.Errorf("%w: --log-budget %s is smaller than --log-stack-size %s", errUsage, o.logBudget, o.logStack)
	}
	if o.monitorEvery < 0 {
		return c, fmt.Errorf("%w: --monitor-interval %s: use a positive duration, or 0 to turn monitors off", errUsage, o.monitorEvery)
	}
	return c, nil
}
