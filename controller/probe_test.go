package controller

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
)

func TestProbesGoThroughTheIngressAddress(t *testing.T) {
	t.Parallel()
	var hosts atomic.Value
	var fail atomic.Bool
	ingress := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hosts.Store(r.Host + r.URL.Path)
		if fail.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusNotFound) // below 500: the service answered
	}))
	t.Cleanup(ingress.Close)

	p := newProbes(strings.TrimPrefix(ingress.URL, "http://"))
	t.Cleanup(p.stop)
	spec := &api.ServiceSpec{Routes: []api.HTTPRoute{{Host: "shop.example.com", PathPrefix: "/api"}}}
	tg, ok := p.target(spec)
	if !ok {
		t.Fatal("a service with a route has a probe target")
	}
	if _, ok := p.target(&api.ServiceSpec{}); ok {
		t.Fatal("a service without routes has no probe target")
	}
	k := baselineKey{"s", "web", 1}
	p.sync(context.Background(), map[baselineKey]probeTarget{k: tg})
	waitProbes(t, p, k, func(r ProbeResult) bool { return r.OK >= 2 })
	if got := hosts.Load(); got != "shop.example.com/api" {
		t.Fatalf("probe reached %v; want host shop.example.com, path /api", got)
	}
	fail.Store(true)
	waitProbes(t, p, k, func(r ProbeResult) bool { return r.Failed >= 2 && strings.Contains(r.LastError, "502") })

	p.sync(context.Background(), nil)
	if _, ok := p.result(k); ok {
		t.Fatal("a step no longer watched keeps its probe")
	}
}

func waitProbes(t *testing.T, p *probes, k baselineKey, ok func(ProbeResult) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, _ := p.result(k)
		if ok(r) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("probes: %+v", r)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
