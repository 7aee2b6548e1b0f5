package scheduler

import (
	"fmt"
	"testing"

	"github.com/berth-dev/berth/api"
)

// BenchmarkSchedule10kNodes plans on 10,000 ready nodes in three zones that
// already run 20,000 tasks of 50 services, every task reserving 64MiB:
//   - tasks=N: N replicas of one new service (a deploy or a scale-up);
//   - services=1000: one task of each of 1,000 services, every other one
//     constrained to a zone (a rolling update's wave across a fleet, the
//     case where per-service work dominates);
//   - host=1000: 1,000 host-networked tasks of 10 services (port choice);
//   - unplaceable=10000: 10,000 replicas of a service whose constraint
//     matches no node (the orchestrator retries those on every pass).
func BenchmarkSchedule10kNodes(b *testing.B) {
	const numNodes = 10000
	ns := make([]api.Node, numNodes)
	for i := range ns {
		ns[i] = node(fmt.Sprintf("n%05d", i), fmt.Sprintf("zone=z%d", i%3))
	}
	spec := reserve(0, 64<<20)
	placed := make([]Placed, 0, 2*numNodes)
	for i := 0; i < 2*numNodes; i++ {
		placed = append(placed, Placed{Task: api.Task{ID: fmt.Sprint("p", i), Stack: "s", Service: fmt.Sprint("svc", i%50), Node: ns[i%numNodes].ID}, Spec: spec})
	}
	snap := Snapshot{Nodes: ns, Tasks: placed}

	var wave []Request
	for i := 0; i < 1000; i++ {
		s := reserve(0.1, 64<<20)
		if i%2 == 0 {
			s.Placement.Constraints = []string{fmt.Sprintf("node.labels.zone==z%d", i%3)}
		}
		wave = append(wave, Request{Task: api.Task{ID: fmt.Sprint("w", i), Stack: "s", Service: fmt.Sprint("wave", i), Slot: 1}, Spec: s})
	}
	var hosts []Request
	for i := 0; i < 10; i++ {
		hosts = append(hosts, reqs(fmt.Sprint("host", i), 100, host(api.Port{Target: uint16(8000 + i)}))...)
	}

	for _, bc := range []struct {
		name   string
		reqs   []Request
		placed int
	}{
		{"tasks=1000", reqs("new", 1000, spec), 1000},
		{"tasks=10000", reqs("new", 10000, spec), 10000},
		{"services=1000", wave, len(wave)},
		{"host=1000", hosts, len(hosts)},
		{"unplaceable=10000", reqs("gpu", 10000, constrained("node.labels.gpu==yes")), 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p := Schedule(snap, bc.reqs)
				if len(p.Assignments) != bc.placed || len(p.Unplaced) != len(bc.reqs)-bc.placed {
					b.Fatalf("placed %d of %d, want %d", len(p.Assignments), len(bc.reqs), bc.placed)
				}
			}
		})
	}
}
