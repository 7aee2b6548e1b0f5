package ingress

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
)

func TestApplySplit(t *testing.T) {
	t.Parallel()
	eps := []Endpoint{{TaskID: "a", Revision: 1}, {TaskID: "b", Revision: 1}, {TaskID: "n", Revision: 2}}
	weights := func(es []Endpoint) map[string]int {
		m := map[string]int{}
		for _, e := range es {
			m[e.TaskID] = e.Weight
		}
		return m
	}
	tests := []struct {
		desc  string
		split api.TrafficSplit
		want  map[string]int
	}{
		{"no split: all alike", api.TrafficSplit{}, map[string]int{"a": 0, "b": 0, "n": 0}},
		{"canary 10%", api.TrafficSplit{Gen: 1, Revision: 2, Percent: 10}, map[string]int{"a": 45000, "b": 45000, "n": 10000}},
		{"blue-green staging: new set out", api.TrafficSplit{Gen: 1, Revision: 1, Percent: 100}, map[string]int{"a": 50000, "b": 50000}},
		{"blue-green switched: old set out", api.TrafficSplit{Gen: 1, Revision: 2, Percent: 100}, map[string]int{"n": 100000}},
		{"a split naming a revision with no endpoint serves what is there", api.TrafficSplit{Gen: 1, Revision: 3, Percent: 100}, map[string]int{"a": 0, "b": 0, "n": 0}},
	}
	for _, tt := range tests {
		got := weights(applySplit(eps, tt.split))
		if len(got) != len(tt.want) {
			t.Errorf("%s: %v, want %v", tt.desc, got, tt.want)
			continue
		}
		for k, v := range tt.want {
			if got[k] != v {
				t.Errorf("%s: %v, want %v", tt.desc, got, tt.want)
			}
		}
	}
}

// TestSplitSwitchesAtOnce: the newest split heard of on any task of a
// service applies to the whole service, so a blue-green switch happens in
// one table generation, whichever task the agent reports first.
func TestSplitSwitchesAtOnce(t *testing.T) {
	t.Parallel()
	backend := func(name string) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(name)) }))
		t.Cleanup(s.Close)
		return s
	}
	blue, green := backend("blue"), backend("green")
	p := New(Options{})
	c := NewController(p, ControllerOptions{DrainTimeout: time.Second})
	spec := func(srv *httptest.Server) (*api.ServiceSpec, string) {
		host, port, _ := strings.Cut(strings.TrimPrefix(srv.URL, "http://"), ":")
		var n uint16
		for _, ch := range port {
			n = n*10 + uint16(ch-'0')
		}
		return &api.ServiceSpec{Routes: []api.HTTPRoute{{Port: n}}}, host
	}
	bs, baddr := spec(blue)
	gs, gaddr := spec(green)
	staging := api.TrafficSplit{Gen: 1, Revision: 1, Percent: 100}
	c.TaskReady(api.Task{ID: "b", Stack: "s", Service: "web", Revision: 1, Traffic: staging}, bs, baddr)
	c.TaskReady(api.Task{ID: "g", Stack: "s", Service: "web", Revision: 2, Traffic: staging}, gs, gaddr)
	get := func() string {
		rec := httptest.NewRecorder()
		p.ServeHTTP(rec, httptest.NewRequest("GET", "http://x/", nil))
		return rec.Body.String()
	}
	for range 20 {
		if got := get(); got != "blue" {
			t.Fatalf("staging: %q served; the new set must get no traffic", got)
		}
	}
	// Only the old task hears of the switch: the whole service switches.
	switched := api.TrafficSplit{Gen: 2, Revision: 2, Percent: 100}
	c.TaskReady(api.Task{ID: "b", Stack: "s", Service: "web", Revision: 1, Traffic: switched}, bs, baddr)
	for range 20 {
		if got := get(); got != "green" {
			t.Fatalf("switched: %q served", got)
		}
	}
	// A task still carrying the older split does not switch it back.
	c.TaskReady(api.Task{ID: "g", Stack: "s", Service: "web", Revision: 2, Traffic: staging}, gs, gaddr)
	if got := get(); got != "green" {
		t.Fatalf("an older split switched traffic back: %q", got)
	}
	var found bool
	for _, s := range p.Stats() {
		if s.Route == "s/web" && s.Revision == 2 && s.Requests >= 21 && s.Errors == 0 {
			found = true
		}
	}
	if !found {
		t.Fatalf("stats per revision: %+v", p.Stats())
	}
}

// TestDrainAcrossWeightChange: a request in flight when its endpoint's
// weight changes still ends its count, so a later drain returns at once.
func TestDrainAcrossWeightChange(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		_, _ = w.Write([]byte("done"))
	}))
	defer srv.Close()
	p := New(Options{})
	addr := strings.TrimPrefix(srv.URL, "http://")
	table := func(weight int) Table {
		return Table{Routes: []Route{{Name: "s/web", Endpoints: []Endpoint{{TaskID: "a", Addr: addr, Revision: 1, Weight: weight}}}}}
	}
	if err := p.Update(table(1)); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		rec := httptest.NewRecorder()
		p.ServeHTTP(rec, httptest.NewRequest("GET", "http://x/", nil))
	}()
	for p.inflightOf("a") == 0 {
		time.Sleep(time.Millisecond)
	}
	if err := p.Update(table(500)); err != nil { // a new split's weight
		t.Fatal(err)
	}
	close(release)
	<-done
	if err := p.Update(Table{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := p.Drain(ctx, "a"); err != nil {
		t.Fatalf("drain after a weight change: %v (in flight %d)", err, p.inflightOf("a"))
	}
}
