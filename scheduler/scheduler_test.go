package scheduler

import (
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"

	"github.com/berth-dev/berth/api"
)

func TestSchedule(t *testing.T) {
	t.Parallel()
	web := &api.ServiceSpec{Name: "web"}
	big := reserve(0, 5<<30)
	tests := []struct {
		desc  string
		nodes []api.Node
		tasks []Placed
		reqs  []Request
		// want is task ID → node ID for the tasks that must be placed so;
		// perNode counts tasks per node. Either may be nil.
		want    map[string]string
		perNode map[string]int
		// unplaced is the number of unplaced tasks; reason holds
		// substrings of the first one's reason.
		unplaced int
		reason   []string
	}{
		{
			desc: "one node takes every replica", nodes: nodes("a"), reqs: reqs("web", 5, web),
			perNode: map[string]int{"a": 5},
		},
		{
			desc: "replicas spread over three nodes in ID order", nodes: nodes("c", "a", "b"), reqs: reqs("web", 3, web),
			want: map[string]string{"web-1": "a", "web-2": "b", "web-3": "c"},
		},
		{
			desc: "six replicas on three nodes, two each", nodes: nodes("a", "b", "c"), reqs: reqs("web", 6, web),
			perNode: map[string]int{"a": 2, "b": 2, "c": 2},
		},
		{
			desc:  "down, draining, degraded and stateless nodes are skipped",
			nodes: []api.Node{withState(node("a"), api.NodeDown), withState(node("b"), api.NodeDraining), degraded(node("c")), withState(node("d"), ""), node("e")},
			reqs:  reqs("web", 3, web), perNode: map[string]int{"e": 3},
		},
		{
			desc:  "no ready node says what the nodes are",
			nodes: []api.Node{withState(node("a"), api.NodeDown), withState(node("b"), api.NodeDraining), degraded(node("c"))},
			reqs:  reqs("web", 2, web), unplaced: 2, reason: []string{"no ready node: 1 down, 1 draining, 1 degraded"},
		},
		{
			desc: "empty cluster", reqs: reqs("web", 1, web), unplaced: 1, reason: []string{"the cluster has no nodes"},
		},
		{
			desc: "label ==", nodes: []api.Node{node("a", "zone=us"), node("b", "zone=eu"), node("c")},
			reqs: reqs("web", 3, constrained("node.labels.zone==eu")), perNode: map[string]int{"b": 3},
		},
		{
			desc: "label != matches nodes without the label", nodes: []api.Node{node("a", "zone=us"), node("b", "zone=eu"), node("c")},
			reqs: reqs("web", 2, constrained("node.labels.zone!=us")), perNode: map[string]int{"b": 1, "c": 1},
		},
		{
			desc: "name ==, with node.hostname as a synonym", nodes: nodes("a", "b"),
			reqs: join(reqs("x", 2, constrained("node.name==host-b")), reqs("y", 2, constrained("node.hostname == host-a"))),
			want: map[string]string{"x-1": "b", "x-2": "b", "y-1": "a", "y-2": "a"},
		},
		{
			desc: "name !=", nodes: nodes("a", "b"), reqs: reqs("web", 2, constrained("node.name!=host-a")),
			perNode: map[string]int{"b": 2},
		},
		{
			desc: "id == and id !=", nodes: nodes("a", "b", "c"),
			reqs:    join(reqs("x", 1, constrained("node.id==c")), reqs("y", 2, constrained("node.id!=a", "node.id!=b"))),
			perNode: map[string]int{"c": 3},
		},
		{
			desc: "unknown label matches no node", nodes: nodes("a", "b"), reqs: reqs("web", 2, constrained("node.labels.gpu==yes")),
			unplaced: 2, reason: []string{"placement constraint node.labels.gpu==yes matches no ready node"},
		},
		{
			desc:  "constraint matching only a drained node names it",
			nodes: []api.Node{node("a"), withState(node("b", "gpu=yes"), api.NodeDraining)},
			reqs:  reqs("web", 1, constrained("node.labels.gpu==yes")), unplaced: 1,
			reason: []string{"node.labels.gpu==yes matches no ready node", "matching nodes not ready: b (draining)"},
		},
		{
			desc:  "constraints that only rule out every node together",
			nodes: []api.Node{node("a", "zone=eu"), node("b", "disk=ssd")},
			reqs:  reqs("web", 1, constrained("node.labels.zone==eu", "node.labels.disk==ssd")), unplaced: 1,
			reason: []string{"placement constraints node.labels.zone==eu, node.labels.disk==ssd together match no ready node"},
		},
		{
			desc: "invalid constraint leaves the task unplaced with the parse error", nodes: nodes("a"),
			reqs: reqs("web", 2, constrained("zone=eu")), unplaced: 2,
			reason: []string{`placement constraint "zone=eu": no == or != operator`, "node.labels.KEY==VALUE"},
		},
		{
			desc: "memory reservations exhaust nodes", nodes: nodes("a", "b"), reqs: reqs("big", 3, big),
			perNode: map[string]int{"a": 1, "b": 1}, unplaced: 1,
			reason: []string{"no node fits: 2 nodes have less than 5GiB memory free (largest free: 3GiB on a)"},
		},
		{
			desc: "cpu reservations exhaust nodes", nodes: nodes("a", "b"), reqs: reqs("cpu", 5, reserve(1.5, 0)),
			perNode: map[string]int{"a": 2, "b": 2}, unplaced: 1,
			reason: []string{"2 nodes have less than 1.5 CPUs free (most free: 1 CPU on a)"},
		},
		{
			desc: "a reservation equal to what is free fits", nodes: nodes("a"),
			reqs: join(reqs("m", 2, reserve(0, 4<<30)), reqs("c", 2, reserve(2, 0))), perNode: map[string]int{"a": 4},
		},
		{
			desc: "a reservation one byte over what is free does not fit", nodes: nodes("a"),
			tasks: []Placed{on("a", "db", reserve(0, 1))}, reqs: reqs("m", 2, reserve(0, 4<<30)),
			perNode: map[string]int{"a": 1}, unplaced: 1, reason: []string{"less than 4GiB memory free (largest free: 3.9GiB on a)"},
		},
		{
			desc: "a reservation one nano-CPU over what is free does not fit", nodes: nodes("a"),
			tasks: []Placed{on("a", "db", &api.ServiceSpec{Resources: api.Resources{ReserveNanoCPUs: 1}})}, reqs: reqs("c", 2, reserve(2, 0)),
			perNode: map[string]int{"a": 1}, unplaced: 1,
		},
		{
			desc: "reservations of existing tasks count", nodes: nodes("a", "b"),
			tasks: []Placed{on("a", "db", big)}, reqs: reqs("big", 2, big),
			want: map[string]string{"big-1": "b"}, unplaced: 1,
			reason: []string{"less than 5GiB memory free (largest free: 3GiB on a)"},
		},
		{
			desc: "existing tasks on a node that is down hold nothing", nodes: []api.Node{withState(node("a"), api.NodeDown), node("b")},
			tasks: []Placed{on("a", "db", big), on("gone", "db", big)}, reqs: reqs("big", 1, big),
			want: map[string]string{"big-1": "b"},
		},
		{
			desc: "tasks without reservations fit a full node", nodes: nodes("a"),
			tasks: []Placed{on("a", "db", reserve(4, 8<<30))}, reqs: reqs("web", 2, web),
			perNode: map[string]int{"a": 2},
		},
		{
			desc: "limits are not reserved", nodes: nodes("a"),
			reqs:    reqs("web", 3, &api.ServiceSpec{Resources: api.Resources{NanoCPUs: 8e9, MemoryBytes: 64 << 30}}),
			perNode: map[string]int{"a": 3},
		},
		{
			desc: "max per node", nodes: nodes("a", "b"), reqs: reqs("web", 3, maxPerNode(1)),
			perNode: map[string]int{"a": 1, "b": 1}, unplaced: 1,
			reason: []string{"2 nodes have already the most tasks of s/web allowed on one node (max_replicas_per_node: 1)"},
		},
		{
			desc: "max per node counts running tasks", nodes: nodes("a", "b"),
			tasks: []Placed{on("a", "web", nil)}, reqs: reqs("web", 2, maxPerNode(1)),
			want: map[string]string{"web-1": "b"}, unplaced: 1,
		},
		{
			desc: "spread counts running tasks of the service", nodes: nodes("a", "b"),
			tasks: []Placed{on("a", "web", nil)}, reqs: reqs("web", 3, web),
			perNode: map[string]int{"a": 1, "b": 2},
		},
		{
			desc: "spread counts tasks of older revisions", nodes: nodes("a", "b"),
			tasks: []Placed{on("a", "web", web)},
			reqs:  []Request{{Task: api.Task{ID: "web-new", Stack: "s", Service: "web", Slot: 1, Revision: 2}, Spec: &api.ServiceSpec{}}},
			want:  map[string]string{"web-new": "b"},
		},
		{
			desc: "a service of another stack does not count as the same service", nodes: nodes("a", "b"),
			tasks: []Placed{{Task: api.Task{ID: "o", Stack: "other", Service: "web", Node: "b"}}, on("a", "db", nil), on("a", "db2", nil)},
			reqs:  reqs("web", 1, web),
			// Both nodes run no task of s/web; b runs fewer tasks.
			want: map[string]string{"web-1": "b"},
		},
		{
			desc: "fewest tasks of the service comes before fewest tasks overall", nodes: nodes("a", "b"),
			tasks: []Placed{on("a", "db", nil), on("a", "cache", nil), on("b", "web", nil)}, reqs: reqs("web", 1, web),
			want: map[string]string{"web-1": "a"},
		},
		{
			desc: "a later revision with max per node is not placed by the rules of the earlier one", nodes: nodes("a"),
			reqs: []Request{
				{Task: api.Task{ID: "r1", Stack: "s", Service: "web", Slot: 1, Revision: 1}, Spec: web},
				{Task: api.Task{ID: "r2", Stack: "s", Service: "web", Slot: 2, Revision: 2}, Spec: maxPerNode(1)},
			},
			want: map[string]string{"r1": "a"}, unplaced: 1, reason: []string{"max_replicas_per_node: 1"},
		},
		{
			desc: "fewest tasks overall breaks a spread tie", nodes: nodes("a", "b", "c"),
			tasks: []Placed{on("a", "db", nil), on("b", "db", nil)}, reqs: reqs("web", 1, web),
			want: map[string]string{"web-1": "c"},
		},
		{
			desc: "most free memory breaks a task-count tie", nodes: nodes("a", "b", "c"),
			tasks: []Placed{on("a", "db", reserve(0, 1<<30)), on("b", "db", reserve(0, 2<<30)), on("c", "db", reserve(0, 1<<30))},
			reqs:  reqs("web", 1, web), want: map[string]string{"web-1": "a"},
		},
		{
			desc: "two services spread independently", nodes: nodes("a", "b"),
			reqs:    join(reqs("api", 2, web), reqs("web", 2, web)),
			perNode: map[string]int{"a": 2, "b": 2},
			want:    map[string]string{"api-1": "a", "api-2": "b", "web-1": "a", "web-2": "b"},
		},
		{
			desc:  "tasks placed earlier in the plan hold their reservations for later services",
			nodes: nodes("a"), reqs: join(reqs("a", 1, reserve(0, 6<<30)), reqs("b", 1, reserve(0, 6<<30))),
			want: map[string]string{"a-1": "a"}, unplaced: 1, reason: []string{"1 node has less than 6GiB memory free (largest free: 2GiB on a)"},
		},
		{
			desc:  "revisions with different reservations in one plan",
			nodes: nodes("a"),
			reqs: []Request{
				{Task: api.Task{ID: "r1", Stack: "s", Service: "web", Slot: 1, Revision: 1}, Spec: reserve(0, 3<<30)},
				{Task: api.Task{ID: "r2", Stack: "s", Service: "web", Slot: 2, Revision: 2}, Spec: reserve(0, 6<<30)},
				{Task: api.Task{ID: "r3", Stack: "s", Service: "web", Slot: 3, Revision: 2}, Spec: reserve(0, 4<<30)},
			},
			want: map[string]string{"r1": "a", "r3": "a"}, unplaced: 1, reason: []string{"less than 6GiB memory free (largest free: 5GiB on a)"},
		},
		{
			desc: "reasons add up the causes", nodes: []api.Node{node("a", "zone=eu"), node("b", "zone=eu"), node("c", "zone=us"), withState(node("d"), api.NodeDown)},
			tasks: []Placed{on("a", "web", nil), on("b", "db", reserve(3.5, 0))},
			reqs: reqs("web", 1, &api.ServiceSpec{Resources: api.Resources{ReserveNanoCPUs: 1e9},
				Placement: api.Placement{MaxPerNode: 1, Constraints: []string{"node.labels.zone==eu"}}}),
			unplaced: 1,
			reason: []string{"no node fits: 1 node has less than 1 CPU free (most free: 4 CPUs on a); " +
				"1 node has already the most tasks of s/web allowed on one node (max_replicas_per_node: 1); " +
				"1 excluded by constraints node.labels.zone==eu; 1 not ready"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			p := Schedule(Snapshot{Nodes: tt.nodes, Tasks: tt.tasks}, tt.reqs)
			if len(p.Assignments)+len(p.Unplaced) != len(tt.reqs) {
				t.Fatalf("plan has %d assignments and %d unplaced for %d requests", len(p.Assignments), len(p.Unplaced), len(tt.reqs))
			}
			got := where(p)
			for id, n := range tt.want {
				if got[id] != n {
					t.Errorf("task %s on %q, want %q (plan %v)", id, got[id], n, got)
				}
			}
			if tt.perNode != nil && !reflect.DeepEqual(perNode(p), tt.perNode) {
				t.Errorf("tasks per node = %v, want %v", perNode(p), tt.perNode)
			}
			if len(p.Unplaced) != tt.unplaced {
				t.Fatalf("unplaced = %v, want %d", p.Unplaced, tt.unplaced)
			}
			for _, r := range tt.reason {
				if !strings.Contains(p.Unplaced[0].Reason, r) {
					t.Errorf("reason %q lacks %q", p.Unplaced[0].Reason, r)
				}
			}
		})
	}
}

func TestHostPorts(t *testing.T) {
	t.Parallel()
	web := &api.ServiceSpec{}
	tests := []struct {
		desc  string
		nodes []api.Node
		tasks []Placed
		reqs  []Request
		// want is task ID → host port; where is task ID → node ID.
		want     map[string]uint16
		where    map[string]string
		unplaced int
		reason   string
	}{
		{
			desc: "distinct ports on one node, lowest first", nodes: nodes("a"), reqs: reqs("h", 3, host()),
			want: map[string]uint16{"h-1": 20000, "h-2": 20001, "h-3": 20002},
		},
		{
			desc: "the same port on different nodes", nodes: nodes("a", "b"), reqs: reqs("h", 2, host()),
			want: map[string]uint16{"h-1": 20000, "h-2": 20000}, where: map[string]string{"h-1": "a", "h-2": "b"},
		},
		{
			desc: "ports of running host tasks are skipped, gaps are filled", nodes: nodes("a"),
			tasks: []Placed{
				{Task: api.Task{ID: "x", Stack: "s", Service: "x", Node: "a", HostPort: 20000}, Spec: host()},
				{Task: api.Task{ID: "y", Stack: "s", Service: "y", Node: "a", HostPort: 20002}, Spec: host()},
			},
			reqs: reqs("h", 2, host()), want: map[string]uint16{"h-1": 20001, "h-2": 20003},
		},
		{
			desc: "targets of running host tasks are skipped", nodes: nodes("a"),
			tasks: []Placed{{Task: api.Task{ID: "x", Stack: "s", Service: "x", Node: "a", HostPort: 20005}, Spec: host(api.Port{Target: 20000})}},
			reqs:  reqs("h", 1, host()), want: map[string]uint16{"h-1": 20001},
		},
		{
			desc: "host ports of tasks that are not host-networked do not count", nodes: nodes("a"),
			tasks: []Placed{{Task: api.Task{ID: "x", Stack: "s", Service: "x", Node: "a", HostPort: 20000}, Spec: web}},
			reqs:  reqs("h", 1, host()), want: map[string]uint16{"h-1": 20000},
		},
		{
			desc: "ports the ingress publishes are never given", nodes: nodes("a"),
			tasks: []Placed{on("b", "lb", &api.ServiceSpec{Ports: []api.Port{{Target: 80, Published: 20000}}})},
			reqs:  join(reqs("h", 1, host()), reqs("z", 1, &api.ServiceSpec{Ports: []api.Port{{Target: 80, Published: 20001}}})),
			want:  map[string]uint16{"h-1": 20002, "z-1": 0},
		},
		{
			desc: "a task's own target is not its host port", nodes: nodes("a"),
			reqs: reqs("h", 1, host(api.Port{Target: 20000})), want: map[string]uint16{"h-1": 20001},
		},
		{
			desc: "a bound target keeps a second replica off the node", nodes: nodes("a", "b"),
			reqs:  reqs("h", 2, host(api.Port{Target: 8080})),
			where: map[string]string{"h-1": "a", "h-2": "b"}, want: map[string]uint16{"h-1": 20000, "h-2": 20000},
		},
		{
			desc: "a bound target with one node leaves the task unplaced", nodes: nodes("a"),
			reqs: reqs("h", 2, host(api.Port{Target: 8080})), want: map[string]uint16{"h-1": 20000},
			unplaced: 1, reason: "1 node has host port(s) 8080 bound by another host-networked task",
		},
		{
			desc: "host tasks on a node that is not ready hold no port", nodes: []api.Node{node("a"), withState(node("b"), api.NodeDown)},
			tasks: []Placed{{Task: api.Task{ID: "x", Stack: "s", Service: "x", Node: "b", HostPort: 20000}, Spec: host()}},
			reqs:  reqs("h", 1, host()), want: map[string]uint16{"h-1": 20000}, where: map[string]string{"h-1": "a"},
		},
		{
			desc: "tasks on the stack network get no host port", nodes: nodes("a"), reqs: reqs("web", 1, web),
			want: map[string]uint16{"web-1": 0},
		},
		{
			desc: "a revision that moves to host networking gets a port", nodes: nodes("a"),
			reqs: []Request{
				{Task: api.Task{ID: "r1", Stack: "s", Service: "h", Slot: 1, Revision: 1}, Spec: web},
				{Task: api.Task{ID: "r2", Stack: "s", Service: "h", Slot: 2, Revision: 2}, Spec: host()},
			},
			want: map[string]uint16{"r1": 0, "r2": 20000},
		},
		{
			desc: "revisions with other ports are placed by their own ports", nodes: nodes("a"),
			reqs: []Request{
				{Task: api.Task{ID: "r1", Stack: "s", Service: "h", Slot: 1, Revision: 1}, Spec: host(api.Port{Target: 20000})},
				{Task: api.Task{ID: "r2", Stack: "s", Service: "h", Slot: 2, Revision: 2}, Spec: host()},
			},
			want: map[string]uint16{"r1": 20001, "r2": 20002},
		},
		{
			desc: "an exhausted range moves tasks to another node", nodes: nodes("a", "b"), tasks: fillPorts("a", 0),
			reqs: reqs("h", 1, host()), where: map[string]string{"h-1": "b"}, want: map[string]uint16{"h-1": 20000},
		},
		{
			desc: "the last free port is given", nodes: nodes("a"), tasks: fillPorts("a", 29998),
			reqs: reqs("h", 2, host()), want: map[string]uint16{"h-1": 29998},
			unplaced: 1, reason: "1 node has no free host port in 20000-29999",
		},
		{
			desc: "a last free port that is the task's own target is not given", nodes: nodes("a"), tasks: fillPorts("a", 29998),
			reqs: reqs("h", 1, host(api.Port{Target: 29998})), unplaced: 1, reason: "no free host port",
		},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			p := Schedule(Snapshot{Nodes: tt.nodes, Tasks: tt.tasks}, tt.reqs)
			got, at := ports(p), where(p)
			for id, port := range tt.want {
				if gp, ok := got[id]; !ok || gp != port {
					t.Errorf("task %s has host port %d (placed: %v), want %d", id, gp, ok, port)
				}
			}
			for id, n := range tt.where {
				if at[id] != n {
					t.Errorf("task %s on %q, want %q", id, at[id], n)
				}
			}
			if len(p.Unplaced) != tt.unplaced {
				t.Fatalf("unplaced = %v, want %d", p.Unplaced, tt.unplaced)
			}
			if tt.unplaced > 0 && !strings.Contains(p.Unplaced[0].Reason, tt.reason) {
				t.Errorf("reason %q lacks %q", p.Unplaced[0].Reason, tt.reason)
			}
		})
	}
}

// fillPorts returns host-networked tasks on node that take every port of
// the range except free (0: none).
func fillPorts(node string, free uint16) []Placed {
	spec := host()
	var out []Placed
	for p := uint32(HostPortMin); p <= uint32(HostPortMax); p++ {
		if uint16(p) == free {
			continue
		}
		out = append(out, Placed{Task: api.Task{ID: fmt.Sprint("fill", p), Stack: "s", Service: "fill", Node: node, HostPort: uint16(p)}, Spec: spec})
	}
	return out
}

// randomCluster returns a varied snapshot and requests: labelled nodes in
// several states, running tasks of several services, and requests with
// reservations, constraints, max per node and host networking.
func randomCluster(rng *rand.Rand, numNodes, numTasks, numReqs int) (Snapshot, []Request) {
	var s Snapshot
	states := []string{api.NodeReady, api.NodeReady, api.NodeReady, api.NodeReady, api.NodeDown, api.NodeDraining}
	for i := 0; i < numNodes; i++ {
		n := node(fmt.Sprintf("n%03d", i), fmt.Sprintf("zone=z%d", rng.Intn(3)))
		if rng.Intn(4) == 0 {
			n.Labels["disk"] = "ssd"
		}
		n.NanoCPUs = int64(1+rng.Intn(8)) * 1e9
		n.Memory = int64(1+rng.Intn(16)) << 30
		n.State = states[rng.Intn(len(states))]
		if rng.Intn(10) == 0 {
			n.Degraded = "wedged"
		}
		s.Nodes = append(s.Nodes, n)
	}
	specs := make([]*api.ServiceSpec, 8)
	for i := range specs {
		spec := &api.ServiceSpec{Name: fmt.Sprint("svc", i)}
		if rng.Intn(2) == 0 {
			spec.Resources.ReserveNanoCPUs = int64(rng.Intn(3)) * 5e8
			spec.Resources.ReserveMemoryBytes = int64(rng.Intn(4)) << 29
		}
		if rng.Intn(2) == 0 {
			spec.Placement.MaxPerNode = 1 + rng.Intn(3)
		}
		switch rng.Intn(6) {
		case 0:
			spec.Placement.Constraints = []string{"node.labels.zone==z1"}
		case 1:
			spec.Placement.Constraints = []string{"node.labels.zone!=z0", "node.labels.disk==ssd"}
		case 2:
			spec.Placement.Constraints = []string{fmt.Sprintf("node.name!=host-n%03d", rng.Intn(numNodes+1))}
		}
		if rng.Intn(3) == 0 {
			spec.NetworkMode = "host"
			if rng.Intn(2) == 0 {
				spec.Ports = []api.Port{{Target: uint16(20000 + rng.Intn(4))}}
			}
		}
		if rng.Intn(4) == 0 {
			spec.Ports = append(spec.Ports, api.Port{Target: 80, Published: uint16(20000 + rng.Intn(4))})
		}
		specs[i] = spec
	}
	// Running tasks are the plan of an earlier round, so they respect every
	// rule, as a real snapshot would.
	var earlier []Request
	for i := 0; i < numTasks; i++ {
		svc := rng.Intn(len(specs))
		earlier = append(earlier, Request{Task: api.Task{ID: fmt.Sprint("t", i), Stack: "s", Service: fmt.Sprint("svc", svc), Slot: i, Revision: 1}, Spec: specs[svc]})
	}
	p := Schedule(Snapshot{Nodes: s.Nodes}, earlier)
	at := where(p)
	port := ports(p)
	for _, r := range earlier {
		if n, ok := at[r.Task.ID]; ok {
			r.Task.Node, r.Task.HostPort = n, port[r.Task.ID]
			s.Tasks = append(s.Tasks, Placed(r))
		}
	}
	// Some nodes changed state since.
	for i := range s.Nodes {
		if rng.Intn(8) == 0 {
			s.Nodes[i].State = states[rng.Intn(len(states))]
		}
	}
	var rs []Request
	for i := 0; i < numReqs; i++ {
		svc := rng.Intn(len(specs))
		rs = append(rs, Request{Task: api.Task{ID: fmt.Sprint("r", i), Stack: "s", Service: fmt.Sprint("svc", svc), Slot: numTasks + i, Revision: 2}, Spec: specs[svc]})
	}
	if rng.Intn(5) == 0 {
		// A service with a constraint that is not valid.
		rs = append(rs, Request{Task: api.Task{ID: "bad", Stack: "s", Service: "bad"}, Spec: constrained("zone==eu")})
	}
	return s, rs
}

// TestDeterministic shuffles every input slice: the plan must not change.
func TestDeterministic(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewSource(7))
	for round := 0; round < 20; round++ {
		s, rs := randomCluster(rng, 40, 150, 100)
		want := Schedule(s, rs)
		for i := 0; i < 5; i++ {
			s2 := Snapshot{Nodes: shuffled(rng, s.Nodes), Tasks: shuffled(rng, s.Tasks)}
			// Callers may hold a copy of a spec per task: grouping must
			// not depend on the pointer.
			rs2 := shuffled(rng, rs)
			for j := range rs2 {
				if rs2[j].Spec != nil && rng.Intn(2) == 0 {
					c := *rs2[j].Spec
					rs2[j].Spec = &c
				}
			}
			if got := Schedule(s2, rs2); !reflect.DeepEqual(got, want) {
				t.Fatalf("round %d: shuffled input gave another plan:\n got %+v\nwant %+v", round, got, want)
			}
		}
	}
}

func shuffled[T any](rng *rand.Rand, in []T) []T {
	out := append([]T(nil), in...)
	rng.Shuffle(len(out), func(a, b int) { out[a], out[b] = out[b], out[a] })
	return out
}

func TestScheduleDoesNotModifyItsInput(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewSource(3))
	s, rs := randomCluster(rng, 20, 50, 50)
	s = Snapshot{Nodes: shuffled(rng, s.Nodes), Tasks: shuffled(rng, s.Tasks)}
	rs = shuffled(rng, rs)
	wantS := Snapshot{Nodes: append([]api.Node(nil), s.Nodes...), Tasks: append([]Placed(nil), s.Tasks...)}
	wantR := append([]Request(nil), rs...)
	Schedule(s, rs)
	if !reflect.DeepEqual(s, wantS) || !reflect.DeepEqual(rs, wantR) {
		t.Fatal("Schedule modified its arguments")
	}
}

func TestPlanOrder(t *testing.T) {
	t.Parallel()
	rs := join(reqs("b", 2, nil), reqs("a", 2, constrained("node.name==none")), reqs("a", 1, nil))
	rs[4].Task.ID, rs[4].Task.Slot = "a-0", 0
	p := Schedule(Snapshot{Nodes: nodes("n")}, shuffled(rand.New(rand.NewSource(1)), rs))
	var got []string
	for _, a := range p.Assignments {
		got = append(got, a.TaskID)
	}
	for _, u := range p.Unplaced {
		got = append(got, u.TaskID)
	}
	if want := []string{"a-0", "b-1", "b-2", "a-1", "a-2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("plan order %v, want %v", got, want)
	}
}

func TestFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc string
		got  string
		want string
	}{
		{desc: "whole GiB", got: bytes(5 << 30), want: "5GiB"},
		{desc: "fraction of GiB", got: bytes(3<<30 + 1<<29), want: "3.5GiB"},
		{desc: "MiB", got: bytes(200 << 20), want: "200MiB"},
		{desc: "rounded down", got: bytes(4<<30 - 1), want: "3.9GiB"},
		{desc: "bytes", got: bytes(512), want: "512B"},
		{desc: "overcommitted", got: bytes(-1 << 30), want: "0B"},
		{desc: "half a CPU", got: cpus(5e8), want: "0.5 CPUs"},
		{desc: "two CPUs", got: cpus(2e9), want: "2 CPUs"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

// TestManyConstraintSets places services with more distinct constraint sets
// than the per-plan cache of matching nodes holds.
func TestManyConstraintSets(t *testing.T) {
	t.Parallel()
	ns := nodes("n0", "n1", "n2")
	var rs []Request
	for i := 0; i < 40; i++ {
		// Distinct sets that match the same two nodes.
		spec := constrained(fmt.Sprintf("node.id!=n%d", i%3), fmt.Sprintf("node.labels.x%d!=y", i))
		rs = append(rs, Request{Task: api.Task{ID: fmt.Sprintf("t%02d", i), Stack: "s", Service: fmt.Sprintf("svc%02d", i), Slot: 1}, Spec: spec})
	}
	p := Schedule(Snapshot{Nodes: ns}, rs)
	if len(p.Assignments) != len(rs) {
		t.Fatalf("placed %d of %d: %v", len(p.Assignments), len(rs), p.Unplaced)
	}
	for i, a := range p.Assignments {
		if a.NodeID == fmt.Sprintf("n%d", i%3) {
			t.Errorf("task %s on excluded node %s", a.TaskID, a.NodeID)
		}
	}
	if got := perNode(p); len(got) != 3 || got["n0"] < 13 || got["n1"] < 13 || got["n2"] < 13 {
		t.Errorf("tasks per node %v, want 13 or 14 each (spread by task count)", got)
	}
}
