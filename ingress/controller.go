package ingress

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/api"
)

// Controller feeds the proxies from task lifecycles: the agent tells it
// when a task is ready, not ready, or about to stop, and it rebuilds the
// routing table and the published-port listeners as a whole.
type Controller struct {
	http         *Proxy
	log          *slog.Logger
	onHosts      func([]string)
	hosts        string // the hosts last told
	bindHost     string
	drainTimeout time.Duration

	mu     sync.Mutex
	tasks  map[string]readyTask
	splits map[string]api.TrafficSplit // by stack/service: the newest seen
	tcp    map[uint16]*TCPProxy
	// portErrs are published ports that could not be bound (taken by
	// another program, or a privileged port): retried while they last.
	portErrs map[uint16]PortError
}

type readyTask struct {
	stack, service string
	revision       int
	addr           string
	routes         []api.HTTPRoute
	ports          []api.Port
}

// ControllerOptions configure a Controller.
type ControllerOptions struct {
	// BindHost is the address published ports listen on (default 0.0.0.0).
	BindHost string
	// DrainTimeout bounds how long a stopping task's requests and
	// connections may take to finish (default 30s).
	DrainTimeout time.Duration
	// Hosts, if set, is told the routes' hosts whenever they change (TLS
	// certificates are obtained for them). It must not block.
	Hosts  func([]string)
	Logger *slog.Logger
}

// NewController returns a controller driving the HTTP proxy p.
func NewController(p *Proxy, opts ControllerOptions) *Controller {
	if opts.BindHost == "" {
		opts.BindHost = "0.0.0.0"
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Controller{http: p, log: opts.Logger, onHosts: opts.Hosts, bindHost: opts.BindHost, drainTimeout: opts.DrainTimeout,
		tasks: map[string]readyTask{}, splits: map[string]api.TrafficSplit{}, tcp: map[uint16]*TCPProxy{}, portErrs: map[uint16]PortError{}}
}

// noteSplit keeps the newest traffic split heard of for t's service and
// reports whether it changed.
func (c *Controller) noteSplit(t api.Task) bool {
	if t.Traffic.Gen == 0 || t.Stack == "" {
		return false
	}
	k := t.Stack + "/" + t.Service
	if cur, ok := c.splits[k]; ok && cur.Gen >= t.Traffic.Gen {
		return false
	}
	c.splits[k] = t.Traffic
	return true
}

// TaskReady puts a running, healthy task into traffic.
func (c *Controller) TaskReady(t api.Task, spec *api.ServiceSpec, addr string) {
	if addr == "" || (len(spec.Routes) == 0 && len(spec.Ports) == 0) {
		return
	}
	rt := readyTask{stack: t.Stack, service: t.Service, revision: t.Revision, addr: addr, routes: spec.Routes, ports: spec.Ports}
	c.mu.Lock()
	defer c.mu.Unlock()
	split := c.noteSplit(t)
	if old, ok := c.tasks[t.ID]; ok && reflect.DeepEqual(old, rt) && !split {
		return
	}
	c.tasks[t.ID] = rt
	c.applyLocked()
}

// TaskNotReady takes a task out of traffic at once (it crashed or turned
// unhealthy): there is nothing left to drain.
func (c *Controller) TaskNotReady(t api.Task) {
	c.mu.Lock()
	defer c.mu.Unlock()
	split := c.noteSplit(t)
	if _, ok := c.tasks[t.ID]; !ok && !split {
		return
	}
	delete(c.tasks, t.ID)
	c.applyLocked()
}

// TaskStopping takes a task out of traffic and waits until its HTTP
// requests in flight finish (at most the drain timeout). The agent signals
// the container only after it returns.
//
// Connections forwarded on published ports are not waited for: at L4 the
// proxy cannot tell a keep-alive connection between requests from one in
// the middle of one, and a client may hold it open forever. They get no
// new company (the task left the endpoint set) and stay forwarded, and the
// stop signal lets the program close them itself (an HTTP server's
// graceful shutdown does exactly that) within its stop grace period.
func (c *Controller) TaskStopping(ctx context.Context, t api.Task) {
	c.mu.Lock()
	split := c.noteSplit(t)
	_, ok := c.tasks[t.ID]
	if ok || split {
		delete(c.tasks, t.ID)
		c.applyLocked()
	}
	tcp := make([]*TCPProxy, 0, len(c.tcp))
	for _, p := range c.tcp {
		tcp = append(tcp, p)
	}
	c.mu.Unlock()
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, c.drainTimeout)
	defer cancel()
	start := time.Now()
	// HTTP requests in flight, and connections forwarded to the task's
	// published ports: both get the drain timeout, and connections still
	// open then are closed by the proxy rather than cut by the stop.
	var wg sync.WaitGroup
	for _, p := range tcp {
		wg.Add(1)
		go func() { defer wg.Done(); p.Drain(ctx, t.ID) }()
	}
	_ = c.http.Drain(ctx, t.ID)
	wg.Wait()
	c.log.Debug("task drained", "task", t.ID, "took", time.Since(start))
}

// PortError is a published port the ingress could not listen on.
type PortError struct {
	Port    uint16 `json:"port"`
	Service string `json:"service"` // stack/service
	Err     string `json:"error"`
}

// PortErrors tries the published ports that could not be bound again
// and returns those that still cannot be.
func (c *Controller) PortErrors(context.Context) ([]PortError, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.portErrs) > 0 {
		c.applyLocked()
	}
	out := make([]PortError, 0, len(c.portErrs))
	for _, e := range c.portErrs {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Port < out[j].Port })
	return out, nil
}

// applyLocked builds the new generation and swaps it in.
func (c *Controller) applyLocked() {
	type routeKey struct{ host, path string }
	routes := map[routeKey]*Route{}
	ports := map[uint16][]Endpoint{}
	owner := map[uint16]string{}
	ids := make([]string, 0, len(c.tasks))
	for id := range c.tasks {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		t := c.tasks[id]
		name := t.stack + "/" + t.service
		for _, r := range t.routes {
			k := routeKey{r.Host, r.PathPrefix}
			rt, ok := routes[k]
			if !ok {
				rt = &Route{Name: name, Host: r.Host, PathPrefix: r.PathPrefix, Timeout: r.Timeout.D()}
				routes[k] = rt
			}
			if rt.Name != name {
				c.log.Warn("route claimed by two services; keeping the first", "host", r.Host, "path", r.PathPrefix, "kept", rt.Name, "dropped", name)
				continue
			}
			rt.Endpoints = append(rt.Endpoints, Endpoint{TaskID: id, Addr: net.JoinHostPort(t.addr, strconv.Itoa(int(r.Port))), Revision: t.revision})
		}
		for _, p := range t.ports {
			if p.Published == 0 || (p.Protocol != "" && p.Protocol != "tcp") {
				continue
			}
			if o, ok := owner[p.Published]; ok && o != name {
				c.log.Warn("published port claimed by two services; keeping the first", "port", p.Published, "kept", o, "dropped", name)
				continue
			}
			owner[p.Published] = name
			ports[p.Published] = append(ports[p.Published], Endpoint{TaskID: id, Addr: net.JoinHostPort(t.addr, strconv.Itoa(int(p.Target))), Revision: t.revision})
		}
	}
	var table Table
	live := map[string]bool{}
	for _, r := range routes {
		live[r.Name] = true
		r.Endpoints = applySplit(r.Endpoints, c.splits[r.Name])
		table.Routes = append(table.Routes, *r)
	}
	for _, t := range c.tasks {
		live[t.stack+"/"+t.service] = true
	}
	for k := range c.splits {
		if !live[k] {
			delete(c.splits, k)
		}
	}
	sort.Slice(table.Routes, func(i, j int) bool {
		return table.Routes[i].Host+table.Routes[i].PathPrefix < table.Routes[j].Host+table.Routes[j].PathPrefix
	})
	if err := c.http.Update(table); err != nil {
		c.log.Warn("ingress table rejected", "err", err)
	}
	if c.onHosts != nil {
		seen := map[string]bool{}
		var hosts []string
		for _, r := range table.Routes {
			if h := strings.ToLower(r.Host); h != "" && !seen[h] {
				seen[h] = true
				hosts = append(hosts, h)
			}
		}
		sort.Strings(hosts)
		if key := strings.Join(hosts, ","); key != c.hosts {
			c.hosts = key
			c.onHosts(hosts)
		}
	}
	for port, eps := range ports {
		p, ok := c.tcp[port]
		if !ok {
			var err error
			p, err = ListenTCP(net.JoinHostPort(c.bindHost, strconv.Itoa(int(port))), c.log)
			if err != nil {
				if _, known := c.portErrs[port]; !known {
					c.log.Warn("cannot publish port", "port", port, "service", owner[port], "err", err)
				}
				c.portErrs[port] = PortError{Port: port, Service: owner[port], Err: err.Error()}
				continue
			}
			delete(c.portErrs, port)
			c.tcp[port] = p
			c.log.Info("published port", "port", port, "service", owner[port])
		}
		p.Update(applySplit(eps, c.splits[owner[port]]))
	}
	for port := range c.portErrs {
		if _, ok := ports[port]; !ok {
			delete(c.portErrs, port) // no task wants it any more
		}
	}
	for port, p := range c.tcp {
		if _, ok := ports[port]; !ok {
			// Keep the listener while a stopping task drains; an empty
			// endpoint set refuses nothing already forwarded.
			p.Update(nil)
		}
	}
}

// applySplit weights a route's endpoints by a traffic split: the split's
// revision gets its percent, the other revisions share the rest, each
// share spread evenly over the revision's endpoints. Endpoints whose share
// is zero leave the route. When one side of the split has no ready
// endpoint, every ready endpoint serves: a route never goes dark because
// of a split.
func applySplit(eps []Endpoint, s api.TrafficSplit) []Endpoint {
	if s.Revision == 0 {
		return eps
	}
	var in, out int
	for _, e := range eps {
		if e.Revision == s.Revision {
			in++
		} else {
			out++
		}
	}
	if in == 0 || out == 0 {
		return eps
	}
	kept := eps[:0:0]
	for _, e := range eps {
		share, n := 100-s.Percent, out
		if e.Revision == s.Revision {
			share, n = s.Percent, in
		}
		if share <= 0 {
			continue
		}
		e.Weight = max(1, share*1000/n)
		kept = append(kept, e)
	}
	return kept
}

// Stats returns the HTTP proxy's per-route, per-revision counters (the
// same call as Remote.Stats).
func (c *Controller) Stats(context.Context) ([]RevisionStats, error) { return c.http.Stats(), nil }

// Published lists the ports with a listener (tests, status).
func (c *Controller) Published() map[uint16]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[uint16]string{}
	for port, p := range c.tcp {
		out[port] = p.Addr().String()
	}
	return out
}

// Close stops every published-port listener.
func (c *Controller) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var first error
	for port, p := range c.tcp {
		if err := p.Close(); err != nil && first == nil {
			first = fmt.Errorf("close port %d: %w", port, err)
		}
		delete(c.tcp, port)
	}
	return first
}
