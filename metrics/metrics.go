// Package metrics is berth's Prometheus side: one registry per process,
// handed to every part that has something to count, served as /metrics
// (on the API and, optionally, a TCP address). Workload metrics carry
// only the labels stack, service, revision and node, never a per-request
// or per-task value, so their number stays bounded by what is deployed.
//
// It also keeps a short in-memory history (an hour) per service of CPU,
// memory and traffic, which `berth top` reads.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every berth metric.
const Namespace = "berth"

// Registry is the process's metrics registry. Parts register their
// collectors on it (Registry.MustRegister); Handler serves them all.
type Registry struct {
	*prometheus.Registry
	// Node is this node's name, the value of the node label.
	Node string
}

// New returns a registry with the Go runtime and process collectors.
func New(node string) *Registry {
	r := &Registry{Registry: prometheus.NewRegistry(), Node: node}
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Handler serves the registry in the Prometheus text format. A collector
// that fails is reported in the body and does not hide the others.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.Registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Labels of workload metrics.
var (
	serviceLabels  = []string{"stack", "service", "node"}
	revisionLabels = []string{"stack", "service", "revision", "node"}
)
