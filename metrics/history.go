package metrics

import (
	"sort"
	"sync"
	"time"

	"github.com/berth-dev/berth/api"
)

// History keeps per service the samples of the last hour (HistoryLen
// samples, one per poll) in memory: the data of `berth top`.
type History struct {
	interval time.Duration
	size     int

	mu   sync.Mutex
	svcs map[svcKey]*ring
}

type svcKey struct{ stack, service string }

type ring struct {
	tasks   int
	samples []api.TopSample // oldest first, at most size
	seen    time.Time
}

// NewHistory keeps an hour of samples taken every interval.
func NewHistory(interval time.Duration) *History {
	n := int(time.Hour / interval)
	return &History{interval: interval, size: max(n, 1), svcs: map[svcKey]*ring{}}
}

// record adds one sample per service; services not sampled for an hour
// are forgotten.
func (h *History) record(now time.Time, samples map[svcKey]api.TopSample, tasks map[svcKey]int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, s := range samples {
		r := h.svcs[k]
		if r == nil {
			r = &ring{}
			h.svcs[k] = r
		}
		s.Time = now
		r.samples = append(r.samples, s)
		if len(r.samples) > h.size {
			r.samples = append(r.samples[:0], r.samples[len(r.samples)-h.size:]...)
		}
		r.tasks = tasks[k]
		r.seen = now
	}
	for k, r := range h.svcs {
		if now.Sub(r.seen) > time.Hour {
			delete(h.svcs, k)
		}
	}
}

// Top reports the services of one stack (all when stack is ""), with
// their last hour of samples when history is set.
func (h *History) Top(stack string, history bool) api.TopReport {
	h.mu.Lock()
	defer h.mu.Unlock()
	rep := api.TopReport{Interval: api.Duration(h.interval), Services: []api.ServiceTop{}}
	for k, r := range h.svcs {
		if (stack != "" && k.stack != stack) || len(r.samples) == 0 {
			continue
		}
		st := api.ServiceTop{Stack: k.stack, Service: k.service, Tasks: r.tasks, Latest: r.samples[len(r.samples)-1]}
		if history {
			st.History = append([]api.TopSample(nil), r.samples...)
		}
		rep.Services = append(rep.Services, st)
	}
	sort.Slice(rep.Services, func(i, j int) bool {
		a, b := rep.Services[i], rep.Services[j]
		if a.Stack != b.Stack {
			return a.Stack < b.Stack
		}
		return a.Service < b.Service
	})
	return rep
}
