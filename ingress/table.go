// Package ingress is berth's user-space proxy: published TCP ports and
// HTTP routes forwarded to healthy tasks only. Routing state is a Table
// that is replaced as a whole (a new generation), never edited in place, so
// a request sees one consistent set of endpoints. Removing an endpoint
// drains it: requests already on it finish; new ones go elsewhere.
package ingress

import (
	"bytes"
	"fmt"
	"net/http/httputil"
	"sort"
	"strings"
	"time"
)

// Endpoint is one task's address behind a route.
type Endpoint struct {
	TaskID   string // the task; Drain waits on its in-flight requests
	Addr     string // host:port
	Revision int    // for per-revision metrics and weighted pools
	// Weight is the endpoint's share relative to the others of its route
	// (0 counts as 1). Canary rollouts weight the new revision's tasks.
	Weight int
}

// Route sends requests for Host (empty: any) whose path starts with
// PathPrefix (empty: "/") to Endpoints.
type Route struct {
	Name       string // stack/service, for errors and metrics
	Host       string
	PathPrefix string
	Endpoints  []Endpoint
	// Timeout bounds a whole request (0: no limit beyond the server's).
	Timeout time.Duration
}

// Table is one generation of routing state.
type Table struct {
	Routes []Route
}

// compiled is a Table prepared for lookups: routes by host, longest path
// prefix first.
type compiled struct {
	byHost map[string][]*route // host → routes, longest prefix first; "" for any host
}

type route struct {
	Route
	eps   []*endpoint
	total int  // sum of weights
	mixed bool // endpoints of more than one revision
	rp    *httputil.ReverseProxy
	stats map[int]*revCounters // by revision; set by Proxy.Update
}

func (r *route) observe(revision, status int, took time.Duration) {
	if c := r.stats[revision]; c != nil {
		c.observe(status, took)
	}
}

func compile(t Table, states func(Endpoint) *endpoint) (*compiled, error) {
	c := &compiled{byHost: map[string][]*route{}}
	seen := map[string]bool{}
	for _, r := range t.Routes {
		prefix := r.PathPrefix
		if prefix == "" {
			prefix = "/"
		}
		if !strings.HasPrefix(prefix, "/") {
			return nil, fmt.Errorf("route %s: path prefix %q must start with /", r.Name, prefix)
		}
		host := strings.ToLower(r.Host)
		key := host + " " + prefix
		if seen[key] {
			return nil, fmt.Errorf("route %s: host %q and path %q are already routed", r.Name, r.Host, prefix)
		}
		seen[key] = true
		rr := &route{Route: r}
		rr.PathPrefix = prefix
		for _, ep := range r.Endpoints {
			w := ep.Weight
			if w <= 0 {
				w = 1
			}
			ep.Weight = w
			rr.eps = append(rr.eps, states(ep))
			rr.total += w
			if ep.Revision != rr.eps[0].Revision {
				rr.mixed = true
			}
		}
		c.byHost[host] = append(c.byHost[host], rr)
	}
	for _, rs := range c.byHost {
		sort.SliceStable(rs, func(i, j int) bool { return len(rs[i].PathPrefix) > len(rs[j].PathPrefix) })
	}
	return c, nil
}

// match finds the route for a host and path: an exact host first, then
// routes for any host.
func (c *compiled) match(host, path string) *route {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	host = strings.ToLower(host)
	for _, h := range []string{host, ""} {
		for _, r := range c.byHost[h] {
			if pathHasPrefix(path, r.PathPrefix) {
				return r
			}
		}
	}
	return nil
}

// pathHasPrefix matches whole segments: /api matches /api and /api/x, not /apix.
func pathHasPrefix(path, prefix string) bool {
	if prefix == "/" {
		return true
	}
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || strings.HasSuffix(prefix, "/") || path[len(prefix)] == '/'
}

// matchBytes is match for the fast path's in-place head: no allocation
// for hosts up to 128 bytes.
func (c *compiled) matchBytes(host, path []byte) *route {
	if i := bytes.LastIndexByte(host, ':'); i >= 0 && bytes.IndexByte(host[i:], ']') < 0 {
		host = host[:i]
	}
	var buf [128]byte
	lower := buf[:0]
	if len(host) > len(buf) {
		lower = make([]byte, 0, len(host))
	}
	for _, ch := range host {
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		lower = append(lower, ch)
	}
	for _, r := range c.byHost[string(lower)] {
		if pathHasPrefixBytes(path, r.PathPrefix) {
			return r
		}
	}
	for _, r := range c.byHost[""] {
		if pathHasPrefixBytes(path, r.PathPrefix) {
			return r
		}
	}
	return nil
}

func pathHasPrefixBytes(path []byte, prefix string) bool {
	if prefix == "/" {
		return true
	}
	if len(path) < len(prefix) || string(path[:len(prefix)]) != prefix {
		return false
	}
	return len(path) == len(prefix) || strings.HasSuffix(prefix, "/") || path[len(prefix)] == '/'
}
