package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-dev/berth/api"
)

// Disk is the housekeeper's last reading of the disk berth watches.
type Disk struct {
	Used, Budget        int64 // berth's own objects and their budget
	HostUsed, HostTotal int64 // the filesystem under the engine's data root
	LastRun             int64 // unix seconds of the last collection, 0 before one
	LastFreed           int64
}

// Notifier is one alert notifier's counters.
type Notifier struct {
	Name                  string
	Sent, Failed, Dropped int
}

// NodeSources read the node's own health when /metrics is scraped. Any
// may be nil.
type NodeSources struct {
	Engine    func() api.EngineHealth
	Disk      func() Disk
	Notifiers func() []Notifier
}

// engineStates are the states berth_engine_state reports, one series
// each, so an alert can match state="wedged" without knowing the others.
var engineStates = []string{api.EngineHealthy, api.EngineSlow, api.EngineWedged}

type nodeCollector struct {
	node                                    string
	src                                     NodeSources
	engState, engProbe                      *prometheus.Desc
	used, budget, hostUsed, hostTotal       *prometheus.Desc
	lastRun, lastFreed                      *prometheus.Desc
	notifySent, notifyFailed, notifyDropped *prometheus.Desc
}

// RegisterNode exports the engine watchdog's verdict and probe latency,
// the disk berth uses against its budget, the housekeeper's last run and
// the alert notifiers' counters.
func RegisterNode(reg *Registry, src NodeSources) {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, append(labels, "node"), nil)
	}
	reg.MustRegister(&nodeCollector{node: reg.Node, src: src,
		engState:      d("engine_state", "1 for the watchdog's current verdict on the Docker Engine (healthy, slow, wedged), 0 for the others.", "state"),
		engProbe:      d("engine_probe_seconds", "How long each call of the watchdog's last probe of the Docker Engine took.", "call"),
		used:          d("disk_berth_bytes", "Disk space taken by berth's own images, containers and logs."),
		budget:        d("disk_budget_bytes", "Disk budget of berth's own objects (0: none set)."),
		hostUsed:      d("disk_host_used_bytes", "Used space of the filesystem holding the engine's data root."),
		hostTotal:     d("disk_host_size_bytes", "Size of the filesystem holding the engine's data root."),
		lastRun:       d("housekeeping_last_run_timestamp_seconds", "When housekeeping last collected (unix time)."),
		lastFreed:     d("housekeeping_last_freed_bytes", "Bytes the last housekeeping run freed."),
		notifySent:    d("alert_notifications_sent_total", "Alert notifications a notifier delivered.", "notifier"),
		notifyFailed:  d("alert_notification_failures_total", "Failed deliveries to a notifier (each retried).", "notifier"),
		notifyDropped: d("alert_notifications_dropped_total", "Alert notifications dropped: the notifier's queue was full or it was rate limited.", "notifier"),
	})
}

func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.engState, c.engProbe, c.used, c.budget, c.hostUsed, c.hostTotal,
		c.lastRun, c.lastFreed, c.notifySent, c.notifyFailed, c.notifyDropped} {
		ch <- d
	}
}

func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append(labels, c.node)...)
	}
	if c.src.Engine != nil {
		h := c.src.Engine()
		for _, s := range engineStates {
			v := 0.0
			if h.State == s {
				v = 1
			}
			gauge(c.engState, v, s)
		}
		for call, ms := range h.Latency {
			gauge(c.engProbe, ms/1000, call)
		}
	}
	if c.src.Disk != nil {
		u := c.src.Disk()
		gauge(c.used, float64(u.Used))
		gauge(c.budget, float64(u.Budget))
		if u.HostTotal > 0 {
			gauge(c.hostUsed, float64(u.HostUsed))
			gauge(c.hostTotal, float64(u.HostTotal))
		}
		if u.LastRun > 0 {
			gauge(c.lastRun, float64(u.LastRun))
			gauge(c.lastFreed, float64(u.LastFreed))
		}
	}
	if c.src.Notifiers != nil {
		for _, n := range c.src.Notifiers() {
			ch <- prometheus.MustNewConstMetric(c.notifySent, prometheus.CounterValue, float64(n.Sent), n.Name, c.node)
			ch <- prometheus.MustNewConstMetric(c.notifyFailed, prometheus.CounterValue, float64(n.Failed), n.Name, c.node)
			ch <- prometheus.MustNewConstMetric(c.notifyDropped, prometheus.CounterValue, float64(n.Dropped), n.Name, c.node)
		}
	}
}
