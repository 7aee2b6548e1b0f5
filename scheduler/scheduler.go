// Package scheduler places tasks on nodes. Schedule is a pure function:
// the same snapshot and requests always give the same plan, whatever the
// order of the slices in them; it does no I/O, reads no clock, draws no
// random numbers and starts no goroutines, so it is table-tested and
// benchmarked without an engine, and a simulation at 10,000 nodes is just a
// call. It decides and commits nothing: the caller writes the plan.
package scheduler

import (
	"cmp"
	"slices"

	"github.com/berth-dev/berth/api"
)

// HostPortMin and HostPortMax bound the ports Schedule gives to
// network_mode: host tasks (env PORT). The range is above the usual service
// ports and below Linux's default ephemeral range (32768–60999), so a host
// port never collides with an outgoing connection's local port.
const (
	HostPortMin uint16 = 20000
	HostPortMax uint16 = 29999
)

// Request is a task to place. Task.Node is ignored: every request is placed
// (or reported unplaced) afresh. Spec is the task's revision's spec; nil
// means no reservations, constraints or ports.
type Request struct {
	Task api.Task
	Spec *api.ServiceSpec
}

// Placed is a task already on a node, with its revision's spec (nil: no
// reservations or ports).
type Placed struct {
	Task api.Task
	Spec *api.ServiceSpec
}

// Snapshot is the state Schedule decides against.
//
// Every task in Tasks holds its reservations, its host ports and its place
// in the spread counts, whatever its desired or observed state: the caller
// leaves out the tasks that no longer occupy their node. Tasks on nodes
// that are missing or not ready are ignored. Node IDs are unique; of two
// nodes with one ID, one is ignored.
type Snapshot struct {
	Nodes []api.Node
	Tasks []Placed
}

// Assignment puts a task on a node. HostPort is set for network_mode: host
// tasks only.
type Assignment struct {
	TaskID   string
	NodeID   string
	HostPort uint16
}

// Unplaced is a task no node can take, with the reason in words for the
// person who deployed it.
type Unplaced struct {
	TaskID string
	Reason string
}

// Plan is Schedule's decision. Every request appears exactly once, in
// Assignments or in Unplaced, each sorted by (stack, service, revision,
// slot, task ID).
type Plan struct {
	Assignments []Assignment
	Unplaced    []Unplaced
}

// Schedule places reqs on the nodes of s and returns the plan; it does not
// modify its arguments.
//
// A node is eligible when its State is api.NodeReady and Degraded is empty.
// A task fits an eligible node when the node matches every placement
// constraint of its spec; has the task's CPU and memory reservations free
// (capacity minus the reservations of the tasks in s and of the tasks
// placed earlier in the same plan; a task without reservations always fits,
// and limits are not reserved, as in Swarm); runs fewer than
// Placement.MaxPerNode tasks of the service (stack and name, across
// revisions); and, for network_mode: host, has the target ports of the
// spec's Ports free and a free port in [HostPortMin, HostPortMax].
//
// Among the nodes a task fits, Schedule picks the one with the fewest tasks
// of the same service (so replicas spread), then the fewest tasks, then the
// most free memory, then the lowest node ID. A host-networked task gets the
// lowest port of the range not bound on that node by a host-networked task
// (its HostPort or the targets of its Ports), not one of its own targets,
// and not a published port of any service in s or reqs (the ingress listens
// on those on every node).
//
// Requests are placed in (stack, service, revision, slot, task ID) order.
func Schedule(s Snapshot, reqs []Request) Plan {
	st := newState(s, reqs)
	order := make([]int32, len(reqs))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortStableFunc(order, func(a, b int32) int { return compareTasks(&reqs[a].Task, &reqs[b].Task) })

	plan := Plan{Assignments: make([]Assignment, 0, len(reqs))}
	// Consecutive requests of one service with the same scheduling
	// inputs are placed as a group: within a group a node only ever loses
	// room, so the group keeps one heap of the nodes it fits and drops a
	// node for good once it no longer fits. A plan then costs
	// O(nodes + tasks·log nodes) per group rather than nodes × tasks.
	for start := 0; start < len(order); {
		end := start + 1
		for end < len(order) && sameGroup(&reqs[order[start]], &reqs[order[end]]) {
			end++
		}
		st.placeGroup(&plan, reqs, order[start:end])
		start = end
	}
	return plan
}

func compareTasks(a, b *api.Task) int {
	if c := cmp.Compare(a.Stack, b.Stack); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Service, b.Service); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Revision, b.Revision); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Slot, b.Slot); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// sameGroup reports whether two requests are of one service and would be
// placed by the same rules. It compares the spec's scheduling fields rather
// than the pointer, so that callers holding one copy of a spec per task do
// not lose the grouping.
func sameGroup(a, b *Request) bool {
	if a.Task.Stack != b.Task.Stack || a.Task.Service != b.Task.Service {
		return false
	}
	x, y := specOf(a.Spec), specOf(b.Spec)
	if x == y {
		return true
	}
	return x.Resources.ReserveNanoCPUs == y.Resources.ReserveNanoCPUs &&
		x.Resources.ReserveMemoryBytes == y.Resources.ReserveMemoryBytes &&
		x.Placement.MaxPerNode == y.Placement.MaxPerNode &&
		slices.Equal(x.Placement.Constraints, y.Placement.Constraints) &&
		isHost(x) == isHost(y) &&
		slices.Equal(x.Ports, y.Ports)
}

var noSpec = &api.ServiceSpec{}

func specOf(s *api.ServiceSpec) *api.ServiceSpec {
	if s == nil {
		return noSpec
	}
	return s
}

func isHost(s *api.ServiceSpec) bool { return s.NetworkMode == "host" }

// reservations returns a spec's CPU and memory reservations; negative
// values (invalid, but not worth a panic or a free node) count as none.
func reservations(s *api.ServiceSpec) (cpu, mem int64) {
	return max(s.Resources.ReserveNanoCPUs, 0), max(s.Resources.ReserveMemoryBytes, 0)
}

// placeGroup places the requests order[...] of one group, appending to plan.
func (st *state) placeGroup(plan *Plan, reqs []Request, group []int32) {
	first := &reqs[group[0]]
	spec := specOf(first.Spec)
	cons, err := parseConstraints(spec.Placement.Constraints)
	if err != nil {
		for _, r := range group {
			plan.Unplaced = append(plan.Unplaced, Unplaced{TaskID: reqs[r].Task.ID, Reason: err.Error()})
		}
		return
	}
	nd := needOf(spec)
	key := svcKey{first.Task.Stack, first.Task.Service}
	onNode := st.services[key]
	if onNode == nil {
		onNode = map[int32]int32{}
		st.services[key] = onNode
	}
	// svcCount mirrors onNode in a slice for the heap's comparisons; it
	// is all zeros between groups. Map order does not matter here.
	for n, c := range onNode {
		st.svcCount[n] = c
	}
	defer func() {
		for n := range onNode {
			st.svcCount[n] = 0
		}
	}()

	// A group of one task (a rolling update's usual step) needs only the
	// best node, not a heap of them all.
	single := len(group) == 1
	h := st.heap[:0]
	for _, n := range st.matching(spec.Placement.Constraints, cons) {
		switch {
		case !st.fits(n, &nd):
		case !single || len(h) == 0:
			h = append(h, n)
		case st.less(n, h[0]):
			h[0] = n
		}
	}
	for i := len(h)/2 - 1; i >= 0; i-- {
		st.down(h, i)
	}
	for k, r := range group {
		for len(h) > 0 && !st.fits(h[0], &nd) {
			last := len(h) - 1
			h[0] = h[last]
			h = h[:last]
			st.down(h, 0)
		}
		if len(h) == 0 {
			// Nothing changes for this group any more, so one reason
			// serves every request left.
			reason := st.explain(spec, &nd, cons, key)
			for _, r := range group[k:] {
				plan.Unplaced = append(plan.Unplaced, Unplaced{TaskID: reqs[r].Task.ID, Reason: reason})
			}
			break
		}
		n := h[0]
		port := st.place(n, &nd, onNode)
		plan.Assignments = append(plan.Assignments, Assignment{TaskID: reqs[r].Task.ID, NodeID: st.nodes[n].node.ID, HostPort: port})
		// The chosen node only got worse (one more task, less memory), so
		// it can only move down.
		st.down(h, 0)
	}
	st.heap = h[:0]
}
