package metrics

import (
	"github.com/berth-dev/berth/logs"
	"github.com/prometheus/client_golang/prometheus"
)

// logsCollector exports the log store's disk use and the sinks' counters.
type logsCollector struct {
	node                         string
	store                        *logs.Store
	ship                         *logs.Shipper
	lines                        func() uint64
	bytes, budget, collected     *prometheus.Desc
	sent, dropped, fail, backlog *prometheus.Desc
}

// RegisterLogs exports the disk use of the log store per stack, its
// budget, lines collected, and per sink the lines sent, dropped and
// waiting and the failed sends. lines may be nil.
func RegisterLogs(reg *Registry, st *logs.Store, ship *logs.Shipper, lines func() uint64) {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, labels, nil)
	}
	reg.MustRegister(&logsCollector{node: reg.Node, store: st, ship: ship, lines: lines,
		bytes:     d("log_store_bytes", "Disk space taken by a stack's kept container output.", "stack", "node"),
		budget:    d("log_store_budget_bytes", "Disk budget of all kept container output.", "node"),
		collected: d("log_lines_collected_total", "Lines of container output collected since berth started.", "node"),
		sent:      d("log_sink_sent_total", "Lines a log sink accepted.", "sink", "node"),
		dropped:   d("log_sink_dropped_total", "Lines not shipped to a sink: its queue was full, or it refused them.", "sink", "node"),
		fail:      d("log_sink_failures_total", "Failed sends to a sink (each retried with backoff).", "sink", "node"),
		backlog:   d("log_sink_queued", "Lines waiting for a sink.", "sink", "node"),
	})
}

func (c *logsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.bytes, c.budget, c.collected, c.sent, c.dropped, c.fail, c.backlog} {
		ch <- d
	}
}

func (c *logsCollector) Collect(ch chan<- prometheus.Metric) {
	node := c.node
	u := c.store.Usage()
	for stack, n := range u.Stacks {
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(n), stack, node)
	}
	ch <- prometheus.MustNewConstMetric(c.budget, prometheus.GaugeValue, float64(u.Budget), node)
	if c.lines != nil {
		ch <- prometheus.MustNewConstMetric(c.collected, prometheus.CounterValue, float64(c.lines()), node)
	}
	if c.ship == nil {
		return
	}
	for _, s := range c.ship.Stats() {
		ch <- prometheus.MustNewConstMetric(c.sent, prometheus.CounterValue, float64(s.Sent), s.Name, node)
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(s.Dropped), s.Name, node)
		ch <- prometheus.MustNewConstMetric(c.fail, prometheus.CounterValue, float64(s.Failures), s.Name, node)
		ch <- prometheus.MustNewConstMetric(c.backlog, prometheus.GaugeValue, float64(s.Buffered), s.Name, node)
	}
}
