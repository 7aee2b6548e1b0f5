package ingress

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// The proxy counts what users see, per route and per revision: requests,
// server errors (5xx, including the proxy's own 502/503/504) and the time
// to the response's headers. Canary gates compare the new revision with
// the old one on these; /metrics exports them. Counters are cumulative for
// the life of the proxy process; readers take differences.

// LatencyBuckets are the upper bounds of the latency histogram. The last
// bucket (not listed) counts everything slower.
var LatencyBuckets = []time.Duration{
	1 * time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, 1 * time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// RevisionStats are one route's counters for one revision.
type RevisionStats struct {
	Route    string  `json:"route"` // stack/service
	Host     string  `json:"host,omitempty"`
	Path     string  `json:"path"`
	Revision int     `json:"revision"`
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`  // 5xx answered to the client
	Buckets  []int64 `json:"buckets"` // per LatencyBuckets, plus one for slower
	// LatencySum is the total time to headers, for averages.
	LatencySum time.Duration `json:"latency_sum"`
}

// Merge adds o's counters to s (same bucket layout).
func (s *RevisionStats) Merge(o RevisionStats) {
	s.Requests += o.Requests
	s.Errors += o.Errors
	s.LatencySum += o.LatencySum
	if len(s.Buckets) < len(o.Buckets) {
		s.Buckets = append(s.Buckets, make([]int64, len(o.Buckets)-len(s.Buckets))...)
	}
	for i, n := range o.Buckets {
		s.Buckets[i] += n
	}
}

// Sub returns s minus an earlier reading of the same counters. A reading
// from before the proxy restarted (counters went down) counts as zero.
func (s RevisionStats) Sub(earlier RevisionStats) RevisionStats {
	if s.Requests < earlier.Requests {
		return s
	}
	out := s
	out.Requests -= earlier.Requests
	out.Errors -= earlier.Errors
	out.LatencySum -= earlier.LatencySum
	out.Buckets = append([]int64(nil), s.Buckets...)
	for i := range out.Buckets {
		if i < len(earlier.Buckets) {
			out.Buckets[i] -= earlier.Buckets[i]
		}
	}
	return out
}

// ErrorRate is the share of requests that got a 5xx (0 with no requests).
func (s RevisionStats) ErrorRate() float64 {
	if s.Requests == 0 {
		return 0
	}
	return float64(s.Errors) / float64(s.Requests)
}

// Quantile estimates the q-quantile of the latency (0 with no requests),
// interpolating linearly inside the bucket it falls in.
func (s RevisionStats) Quantile(q float64) time.Duration {
	var total int64
	for _, n := range s.Buckets {
		total += n
	}
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var seen float64
	for i, n := range s.Buckets {
		if n == 0 {
			continue
		}
		if seen+float64(n) >= rank {
			lo, hi, last := bucketBounds(i)
			if last {
				return lo // slower than the last bound: report the bound
			}
			frac := (rank - seen) / float64(n)
			return lo + time.Duration(frac*float64(hi-lo))
		}
		seen += float64(n)
	}
	return LatencyBuckets[len(LatencyBuckets)-1]
}

// Slower estimates how many requests took longer than d, interpolating
// linearly inside the bucket d falls in, as Quantile does. Requests past
// the last bound count as slower than any d.
func (s RevisionStats) Slower(d time.Duration) float64 {
	var n float64
	for i, c := range s.Buckets {
		if c == 0 {
			continue
		}
		lo, hi, last := bucketBounds(i)
		switch {
		case d <= lo || last:
			n += float64(c)
		case d < hi:
			n += float64(c) * float64(hi-d) / float64(hi-lo)
		}
	}
	return n
}

// bucketBounds returns the latencies bucket i spans; last is the bucket
// past the last bound, which has no upper one.
func bucketBounds(i int) (lo, hi time.Duration, last bool) {
	if i > 0 {
		lo = LatencyBuckets[i-1]
	}
	if i == len(LatencyBuckets) {
		return lo, 0, true
	}
	return lo, LatencyBuckets[i], false
}

// revCounters are the live counters behind a RevisionStats.
type revCounters struct {
	requests   atomic.Int64
	errors     atomic.Int64
	latencySum atomic.Int64
	buckets    [14]atomic.Int64 // len(LatencyBuckets)+1
}

func (c *revCounters) observe(status int, took time.Duration) {
	c.requests.Add(1)
	if status >= 500 {
		c.errors.Add(1)
	}
	c.latencySum.Add(int64(took))
	i := sort.Search(len(LatencyBuckets), func(i int) bool { return took <= LatencyBuckets[i] })
	c.buckets[i].Add(1)
}

type statsKey struct {
	route, host, path string
	revision          int
}

// statsSet keeps counters across table generations.
type statsSet struct {
	mu sync.Mutex
	m  map[statsKey]*revCounters
}

func (s *statsSet) get(k statsKey) *revCounters {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[statsKey]*revCounters{}
	}
	c, ok := s.m[k]
	if !ok {
		c = &revCounters{}
		s.m[k] = c
	}
	return c
}

func (s *statsSet) snapshot() []RevisionStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]RevisionStats, 0, len(s.m))
	for k, c := range s.m {
		st := RevisionStats{Route: k.route, Host: k.host, Path: k.path, Revision: k.revision,
			Requests: c.requests.Load(), Errors: c.errors.Load(), LatencySum: time.Duration(c.latencySum.Load()),
			Buckets: make([]int64, len(c.buckets))}
		for i := range c.buckets {
			st.Buckets[i] = c.buckets[i].Load()
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Route != b.Route {
			return a.Route < b.Route
		}
		if a.Host+a.Path != b.Host+b.Path {
			return a.Host+a.Path < b.Host+b.Path
		}
		return a.Revision < b.Revision
	})
	return out
}

// ByRevision sums stats per stack/service and revision over all routes.
func ByRevision(stats []RevisionStats) map[string]map[int]RevisionStats {
	out := map[string]map[int]RevisionStats{}
	for _, s := range stats {
		m := out[s.Route]
		if m == nil {
			m = map[int]RevisionStats{}
			out[s.Route] = m
		}
		cur := m[s.Revision]
		cur.Route, cur.Revision = s.Route, s.Revision
		cur.Merge(s)
		m[s.Revision] = cur
	}
	return out
}
