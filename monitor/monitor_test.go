package monitor

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/berth-dev/berth/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

type fakeSource struct {
	mu     sync.Mutex
	events []api.Event
}

func (f *fakeSource) ListStacks(ctx context.Context) ([]api.StackRecord, error) {
	return []api.StackRecord{{Name: "shop"}}, nil
}

func (f *fakeSource) ListServices(ctx context.Context, stack string) ([]api.ServiceState, error) {
	return []api.ServiceState{
		{Stack: "shop", Name: "web", Revision: 1, Replicas: 2},
		{Stack: "shop", Name: "off", Revision: 1, Replicas: 1, Stopped: true},
	}, nil
}

func (f *fakeSource) GetRevision(ctx context.Context, stack, svc string, n int) (api.Revision, error) {
	return api.Revision{Spec: api.ServiceSpec{Routes: []api.HTTPRoute{{Host: "shop.test", PathPrefix: "/"}, {Host: "shop.test", PathPrefix: "/api"}}}}, nil
}

func (f *fakeSource) AppendEvent(ctx context.Context, e api.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, e)
	return nil
}

func (f *fakeSource) types() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ts []string
	for _, e := range f.events {
		ts = append(ts, e.Type)
	}
	return strings.Join(ts, ",")
}

// A route that fails FailAfter probes in a row goes down (one event), a
// route that answers again comes up (one event); probes carry the route's
// host; stopped services are not probed.
func TestDownAndUp(t *testing.T) {
	var failing atomic.Bool
	var hosts sync.Map
	ingress := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hosts.Store(r.Host+r.URL.Path, true)
		if r.URL.Path == "/api" && failing.Load() {
			http.Error(w, "boom", http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusNotFound) // an answer below 500 is an answer
	}))
	defer ingress.Close()
	src := &fakeSource{}
	reg := prometheus.NewRegistry()
	m := New(Config{Ingress: strings.TrimPrefix(ingress.URL, "http://"), FailAfter: 2, Node: "n"}, src, reg)
	ctx := context.Background()
	up := func() float64 { return testutil.ToFloat64(m.up.WithLabelValues("shop", "web", "n")) }

	m.Pass(ctx)
	if up() != 1 || src.types() != "" {
		t.Fatalf("healthy: up %v, events %q", up(), src.types())
	}
	if _, ok := hosts.Load("shop.test/api"); !ok {
		t.Fatal("the probe did not carry the route's host")
	}
	failing.Store(true)
	m.Pass(ctx)
	if src.types() != "" {
		t.Fatalf("one failure is not an outage: %q", src.types())
	}
	m.Pass(ctx)
	m.Pass(ctx)
	if up() != 0 || src.types() != EventDown {
		t.Fatalf("after failures: up %v, events %q", up(), src.types())
	}
	failing.Store(false)
	m.Pass(ctx)
	m.Pass(ctx)
	if up() != 1 || src.types() != EventDown+","+EventUp {
		t.Fatalf("after recovery: up %v, events %q", up(), src.types())
	}
	if e := src.events[0]; e.Stack != "shop" || e.Service != "web" || !strings.Contains(e.Message, "502") || !strings.Contains(e.Message, "shop.test/api") {
		t.Fatalf("down event %+v", e)
	}
	if n := testutil.ToFloat64(m.failures.WithLabelValues("shop", "web", "n")); n != 3 {
		t.Fatalf("failures counted %v, want 3", n)
	}
	if n := testutil.ToFloat64(m.probes.WithLabelValues("shop", "web", "n")); n != 12 {
		t.Fatalf("probes counted %v, want 12 (2 routes × 6 passes)", n)
	}
}
