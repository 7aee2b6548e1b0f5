package metrics

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/ingress"
	"github.com/prometheus/client_golang/prometheus"
)

// ingressCollector exports the proxy's own counters per route and
// revision at scrape time (they are cumulative for the proxy's life, as
// Prometheus counters are).
type ingressCollector struct {
	traffic            Traffic
	node               string
	requests, errors   *prometheus.Desc
	latency, scrapeErr *prometheus.Desc
}

// RegisterIngress exports the ingress's request counts, server errors and
// latency histograms per stack, service and revision.
func RegisterIngress(reg *Registry, traffic Traffic) {
	d := func(name, help string, labels []string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, labels, nil)
	}
	reg.MustRegister(&ingressCollector{traffic: traffic, node: reg.Node,
		requests:  d("http_requests_total", "Requests the ingress answered for a service revision (its HTTP routes).", revisionLabels),
		errors:    d("http_server_errors_total", "Requests answered with a 5xx (the ingress's own 502/503/504 included).", revisionLabels),
		latency:   d("http_request_duration_seconds", "Time from the request to the response's headers, through the ingress.", revisionLabels),
		scrapeErr: d("ingress_up", "1 if the ingress answered with its counters at this scrape.", []string{"node"}),
	})
}

func (c *ingressCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.requests
	ch <- c.errors
	ch <- c.latency
	ch <- c.scrapeErr
}

func (c *ingressCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	stats, err := c.traffic.Stats(ctx)
	up := 1.0
	if err != nil {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(c.scrapeErr, prometheus.GaugeValue, up, c.node)
	for route, revs := range ingress.ByRevision(stats) {
		stack, svc, ok := strings.Cut(route, "/")
		if !ok {
			continue
		}
		for rev, s := range revs {
			lv := []string{stack, svc, strconv.Itoa(rev), c.node}
			ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(s.Requests), lv...)
			ch <- prometheus.MustNewConstMetric(c.errors, prometheus.CounterValue, float64(s.Errors), lv...)
			buckets := make(map[float64]uint64, len(ingress.LatencyBuckets))
			var cum uint64
			for i, ub := range ingress.LatencyBuckets {
				if i < len(s.Buckets) {
					cum += uint64(s.Buckets[i])
				}
				buckets[ub.Seconds()] = cum
			}
			ch <- prometheus.MustNewConstHistogram(c.latency, uint64(s.Requests), s.LatencySum.Seconds(), buckets, lv...)
		}
	}
}
