package scheduler

import (
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"

	"github.com/berth-dev/berth/api"
)

func node(id string, labels ...string) api.Node {
	n := api.Node{ID: id, Name: id, State: api.NodeReady, NanoCPUs: 4e9, Memory: 8 << 30, Labels: map[string]string{}}
	for _, l := range labels {
		k, v, _ := strings.Cut(l, "=")
		n.Labels[k] = v
	}
	return n
}

func reqs(svc string, n int, spec *api.ServiceSpec) []Request {
	out := make([]Request, n)
	for i := range out {
		out[i] = Request{Task: api.Task{ID: fmt.Sprintf("%s-%d", svc, i+1), Stack: "s", Service: svc, Slot: i + 1}, Spec: spec}
	}
	return out
}

func placement(p Plan) map[string]string {
	m := map[string]string{}
	for _, a := range p.Assignments {
		m[a.TaskID] = a.NodeID
	}
	return m
}

func perNode(p Plan) map[string]int {
	m := map[string]int{}
	for _, a := range p.Assignments {
		m[a.NodeID]++
	}
	return m
}

func TestSchedule(t *testing.T) {
	t.Parallel()
	web := &api.ServiceSpec{Name: "web"}
	big := &api.ServiceSpec{Name: "big", Resources: api.Resources{ReserveMemoryBytes: 5 << 30}}
	down := node("down")
	down.State = api.NodeDown
	degraded := node("sick")
	degraded.Degraded = "engine wedged"
	tests := []struct {
		desc      string
		snap      Snapshot
		reqs      []Request
		perNode   map[string]int
		unplaced  int
		reasonHas string
	}{
		{desc: "one node takes all", snap: Snapshot{Nodes: []api.Node{node("a")}}, reqs: reqs("web", 3, web), perNode: map[string]int{"a": 3}},
		{desc: "spread over three nodes", snap: Snapshot{Nodes: []api.Node{node("a"), node("b"), node("c")}}, reqs: reqs("web", 6, web), perNode: map[string]int{"a": 2, "b": 2, "c": 2}},
		{desc: "down and degraded nodes are skipped", snap: Snapshot{Nodes: []api.Node{down, degraded, node("a")}}, reqs: reqs("web", 2, web), perNode: map[string]int{"a": 2}},
		{desc: "no ready node", snap: Snapshot{Nodes: []api.Node{down}}, reqs: reqs("web", 1, web), unplaced: 1, reasonHas: "no ready node"},
		{desc: "label constraint", snap: Snapshot{Nodes: []api.Node{node("a", "zone=eu"), node("b", "zone=us")}},
			reqs: reqs("web", 2, &api.ServiceSpec{Placement: api.Placement{Constraints: []string{"node.labels.zone==eu"}}}), perNode: map[string]int{"a": 2}},
		{desc: "negative constraint", snap: Snapshot{Nodes: []api.Node{node("a"), node("b")}},
			reqs: reqs("web", 2, &api.ServiceSpec{Placement: api.Placement{Constraints: []string{"node.name!=a"}}}), perNode: map[string]int{"b": 2}},
		{desc: "constraint matching nothing", snap: Snapshot{Nodes: []api.Node{node("a")}},
			reqs: reqs("web", 1, &api.ServiceSpec{Placement: api.Placement{Constraints: []string{"node.labels.gpu==yes"}}}), unplaced: 1, reasonHas: "match no ready node"},
		{desc: "invalid constraint", snap: Snapshot{Nodes: []api.Node{node("a")}},
			reqs: reqs("web", 1, &api.ServiceSpec{Placement: api.Placement{Constraints: []string{"zone=eu"}}}), unplaced: 1, reasonHas: "placement constraint"},
		{desc: "memory reservations exhaust a node", snap: Snapshot{Nodes: []api.Node{node("a"), node("b")}}, reqs: reqs("big", 3, big),
			perNode: map[string]int{"a": 1, "b": 1}, unplaced: 1, reasonHas: "free memory"},
		{desc: "existing reservations count", snap: Snapshot{Nodes: []api.Node{node("a"), node("b")},
			Tasks: []Placed{{Task: api.Task{ID: "x", Stack: "s", Service: "big", Node: "a"}, Spec: big}}},
			reqs: reqs("big", 1, big), perNode: map[string]int{"b": 1}},
		{desc: "max per node", snap: Snapshot{Nodes: []api.Node{node("a"), node("b")}},
			reqs: reqs("web", 3, &api.ServiceSpec{Placement: api.Placement{MaxPerNode: 1}}), perNode: map[string]int{"a": 1, "b": 1}, unplaced: 1, reasonHas: "max_replicas_per_node"},
		{desc: "spread accounts for running tasks", snap: Snapshot{Nodes: []api.Node{node("a"), node("b")},
			Tasks: []Placed{{Task: api.Task{ID: "x", Stack: "s", Service: "web", Node: "a"}, Spec: web}}},
			reqs: reqs("web", 1, web), perNode: map[string]int{"b": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			p := Schedule(tt.snap, tt.reqs)
			if got := perNode(p); len(tt.perNode) > 0 && !reflect.DeepEqual(got, tt.perNode) {
				t.Errorf("per node = %v, want %v", got, tt.perNode)
			}
			if len(p.Unplaced) != tt.unplaced {
				t.Fatalf("unplaced = %v, want %d", p.Unplaced, tt.unplaced)
			}
			if tt.unplaced > 0 && !strings.Contains(p.Unplaced[0].Reason, tt.reasonHas) {
				t.Errorf("reason %q lacks %q", p.Unplaced[0].Reason, tt.reasonHas)
			}
		})
	}
}

func TestHostPorts(t *testing.T) {
	t.Parallel()
	host := &api.ServiceSpec{NetworkMode: "host"}
	snap := Snapshot{Nodes: []api.Node{node("a")},
		Tasks: []Placed{{Task: api.Task{ID: "x", Stack: "s", Service: "h", Node: "a", HostPort: HostPortMin}, Spec: host}}}
	p := Schedule(snap, reqs("h", 2, host))
	seen := map[uint16]bool{HostPortMin: true}
	for _, a := range p.Assignments {
		if a.HostPort == 0 || seen[a.HostPort] {
			t.Fatalf("host port %d reused or missing: %+v", a.HostPort, p.Assignments)
		}
		seen[a.HostPort] = true
	}
	// Two nodes may use the same port.
	p = Schedule(Snapshot{Nodes: []api.Node{node("a"), node("b")}}, reqs("h", 2, host))
	if p.Assignments[0].HostPort != p.Assignments[1].HostPort {
		t.Errorf("ports on different nodes need not differ: %+v", p.Assignments)
	}
}

func TestDeterministic(t *testing.T) {
	t.Parallel()
	var nodes []api.Node
	for i := 0; i < 20; i++ {
		nodes = append(nodes, node(fmt.Sprintf("n%02d", i)))
	}
	rs := reqs("web", 50, &api.ServiceSpec{})
	want := placement(Schedule(Snapshot{Nodes: nodes}, rs))
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 10; i++ {
		shuffled := append([]api.Node(nil), nodes...)
		rng.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
		rr := append([]Request(nil), rs...)
		rng.Shuffle(len(rr), func(a, b int) { rr[a], rr[b] = rr[b], rr[a] })
		if got := placement(Schedule(Snapshot{Nodes: shuffled}, rr)); !reflect.DeepEqual(got, want) {
			t.Fatal("a shuffled input gave a different plan")
		}
	}
}

// TestInvariants checks random snapshots: no node over its memory, every
// constraint and max-per-node respected.
func TestInvariants(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewSource(42))
	for round := 0; round < 200; round++ {
		var nodes []api.Node
		for i := 0; i < 1+rng.Intn(10); i++ {
			n := node(fmt.Sprintf("n%d", i), fmt.Sprintf("zone=z%d", rng.Intn(3)))
			n.Memory = int64(1+rng.Intn(8)) << 30
			nodes = append(nodes, n)
		}
		spec := &api.ServiceSpec{Resources: api.Resources{ReserveMemoryBytes: int64(rng.Intn(3)) << 30},
			Placement: api.Placement{MaxPerNode: rng.Intn(3)}}
		if rng.Intn(2) == 0 {
			spec.Placement.Constraints = []string{"node.labels.zone==z1"}
		}
		p := Schedule(Snapshot{Nodes: nodes}, reqs("svc", rng.Intn(30), spec))
		used := map[string]int64{}
		count := map[string]int{}
		for _, a := range p.Assignments {
			used[a.NodeID] += spec.Resources.ReserveMemoryBytes
			count[a.NodeID]++
		}
		for _, n := range nodes {
			if used[n.ID] > n.Memory {
				t.Fatalf("round %d: node %s over memory", round, n.ID)
			}
			if spec.Placement.MaxPerNode > 0 && count[n.ID] > spec.Placement.MaxPerNode {
				t.Fatalf("round %d: node %s over max per node", round, n.ID)
			}
			if count[n.ID] > 0 && len(spec.Placement.Constraints) > 0 && n.Labels["zone"] != "z1" {
				t.Fatalf("round %d: constraint violated on %s", round, n.ID)
			}
		}
	}
}

func benchSchedule(b *testing.B, nodes, tasks int) {
	var ns []api.Node
	for i := 0; i < nodes; i++ {
		ns = append(ns, node(fmt.Sprintf("n%05d", i), fmt.Sprintf("zone=z%d", i%3)))
	}
	var placed []Placed
	spec := &api.ServiceSpec{Resources: api.Resources{ReserveMemoryBytes: 64 << 20}}
	for i := 0; i < nodes*2; i++ {
		placed = append(placed, Placed{Task: api.Task{ID: fmt.Sprint("p", i), Stack: "s", Service: fmt.Sprint("svc", i%50), Node: ns[i%nodes].ID}, Spec: spec})
	}
	rs := reqs("new", tasks, spec)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := Schedule(Snapshot{Nodes: ns, Tasks: placed}, rs)
		if len(p.Assignments) != tasks {
			b.Fatalf("placed %d of %d", len(p.Assignments), tasks)
		}
	}
}

func BenchmarkSchedule10kNodes1kTasks(b *testing.B)  { benchSchedule(b, 10000, 1000) }
func BenchmarkSchedule10kNodes10kTasks(b *testing.B) { benchSchedule(b, 10000, 10000) }
