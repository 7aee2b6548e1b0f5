// Package scheduler places tasks on nodes. Schedule is a pure function:
// the same snapshot and requests always give the same plan; it does no
// I/O, reads no clock and draws no random numbers, so it is table-tested
// and benchmarked without an engine, and a simulation at 10,000 nodes is
// just a call.
package scheduler

import (
	"container/heap"
	"fmt"
	"sort"
	"strings"

	"github.com/berth-dev/berth/api"
)

// Host ports given to network_mode: host tasks.
const (
	HostPortMin = 20000
	HostPortMax = 29999
)

// Request is a task to place.
type Request struct {
	Task api.Task
	Spec *api.ServiceSpec
}

// Placed is a task already on a node.
type Placed struct {
	Task api.Task
	Spec *api.ServiceSpec
}

// Snapshot is the state Schedule decides against.
type Snapshot struct {
	Nodes []api.Node
	Tasks []Placed
}

// Assignment puts a task on a node.
type Assignment struct {
	TaskID   string
	NodeID   string
	HostPort uint16
}

// Unplaced is a task no node can take, with the reason in words.
type Unplaced struct {
	TaskID string
	Reason string
}

// Plan is Schedule's decision.
type Plan struct {
	Assignments []Assignment
	Unplaced    []Unplaced
}

type nodeState struct {
	node      api.Node
	freeCPU   int64
	freeMem   int64
	tasks     int
	byService map[string]int
	ports     map[uint16]bool
	nextPort  uint16
}

// Schedule places reqs on the ready nodes of s. Among the nodes that pass
// constraints, capacity (reservations only: limits are not reserved) and
// max-per-node, it prefers the node with the fewest tasks of the same
// service (spread), then the fewest tasks, then the most free memory, then
// the lowest node ID.
func Schedule(s Snapshot, reqs []Request) Plan {
	nodes := make([]*nodeState, 0, len(s.Nodes))
	byID := make(map[string]*nodeState, len(s.Nodes))
	for _, n := range s.Nodes {
		ns := &nodeState{node: n, freeCPU: n.NanoCPUs, freeMem: n.Memory, byService: map[string]int{}, ports: map[uint16]bool{}, nextPort: HostPortMin}
		byID[n.ID] = ns
		if n.State == api.NodeReady && n.Degraded == "" {
			nodes = append(nodes, ns)
		}
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].node.ID < nodes[j].node.ID })
	for _, p := range s.Tasks {
		if ns := byID[p.Task.Node]; ns != nil {
			ns.add(p.Task, p.Spec)
		}
	}

	sorted := append([]Request(nil), reqs...)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i].Task, sorted[j].Task
		if a.Stack+"/"+a.Service != b.Stack+"/"+b.Service {
			return a.Stack+"/"+a.Service < b.Stack+"/"+b.Service
		}
		if a.Slot != b.Slot {
			return a.Slot < b.Slot
		}
		return a.ID < b.ID
	})

	var plan Plan
	// Requests of one service with one spec are placed as a group from a
	// heap of the nodes that pass its (static) constraints: within a group
	// a node only ever loses capacity, so a node found infeasible is
	// dropped for the rest of the group. This keeps a plan at
	// O((nodes + tasks) log nodes) per service instead of nodes × tasks.
	for start := 0; start < len(sorted); {
		end := start + 1
		for end < len(sorted) && sameGroup(sorted[start], sorted[end]) {
			end++
		}
		placeGroup(&plan, nodes, sorted[start:end])
		start = end
	}
	return plan
}

func sameGroup(a, b Request) bool {
	return a.Task.Stack == b.Task.Stack && a.Task.Service == b.Task.Service && a.Spec == b.Spec
}

func placeGroup(plan *Plan, nodes []*nodeState, group []Request) {
	spec := group[0].Spec
	if spec == nil {
		spec = &api.ServiceSpec{}
	}
	cons, err := parseConstraints(spec.Placement.Constraints)
	if err != nil {
		for _, r := range group {
			plan.Unplaced = append(plan.Unplaced, Unplaced{TaskID: r.Task.ID, Reason: err.Error()})
		}
		return
	}
	key := group[0].Task.Stack + "/" + group[0].Task.Service
	h := &nodeHeap{key: key}
	for _, ns := range nodes {
		if matchAll(cons, ns.node) {
			h.nodes = append(h.nodes, ns)
		}
	}
	heap.Init(h)
	for _, r := range group {
		for h.Len() > 0 && !fits(h.nodes[0], key, spec) {
			heap.Pop(h)
		}
		if h.Len() == 0 {
			_, reason := pick(nodes, r.Task, spec, cons)
			plan.Unplaced = append(plan.Unplaced, Unplaced{TaskID: r.Task.ID, Reason: reason})
			continue
		}
		best := h.nodes[0]
		a := Assignment{TaskID: r.Task.ID, NodeID: best.node.ID}
		t := r.Task
		if spec.NetworkMode == "host" {
			a.HostPort = best.freePort()
			t.HostPort = a.HostPort
		}
		t.Node = best.node.ID
		best.add(t, spec)
		heap.Fix(h, 0)
		plan.Assignments = append(plan.Assignments, a)
	}
}

// fits reports whether a node can take one more task of the service.
func fits(ns *nodeState, key string, spec *api.ServiceSpec) bool {
	switch {
	case spec.Resources.ReserveNanoCPUs > 0 && ns.freeCPU < spec.Resources.ReserveNanoCPUs:
		return false
	case spec.Resources.ReserveMemoryBytes > 0 && ns.freeMem < spec.Resources.ReserveMemoryBytes:
		return false
	case spec.Placement.MaxPerNode > 0 && ns.byService[key] >= spec.Placement.MaxPerNode:
		return false
	case spec.NetworkMode == "host" && ns.nextPort > HostPortMax:
		return false
	}
	return true
}

// nodeHeap orders candidate nodes best first (see better).
type nodeHeap struct {
	key   string
	nodes []*nodeState
}

func (h *nodeHeap) Len() int           { return len(h.nodes) }
func (h *nodeHeap) Less(i, j int) bool { return better(h.nodes[i], h.nodes[j], h.key) }
func (h *nodeHeap) Swap(i, j int)      { h.nodes[i], h.nodes[j] = h.nodes[j], h.nodes[i] }
func (h *nodeHeap) Push(x any)         { h.nodes = append(h.nodes, x.(*nodeState)) }
func (h *nodeHeap) Pop() any {
	n := h.nodes[len(h.nodes)-1]
	h.nodes = h.nodes[:len(h.nodes)-1]
	return n
}

func (ns *nodeState) add(t api.Task, spec *api.ServiceSpec) {
	ns.tasks++
	ns.byService[t.Stack+"/"+t.Service]++
	if spec == nil {
		return
	}
	ns.freeCPU -= spec.Resources.ReserveNanoCPUs
	ns.freeMem -= spec.Resources.ReserveMemoryBytes
	if spec.NetworkMode == "host" {
		if t.HostPort != 0 {
			ns.ports[t.HostPort] = true
		}
		for _, p := range spec.Ports {
			ns.ports[p.Target] = true
		}
	}
}

func (ns *nodeState) freePort() uint16 {
	for p := ns.nextPort; p <= HostPortMax; p++ {
		if !ns.ports[p] {
			ns.nextPort = p + 1
			return p
		}
	}
	return 0
}

// pick returns the best node for a task, or a reason why none fits.
func pick(nodes []*nodeState, t api.Task, spec *api.ServiceSpec, cons []Constraint) (*nodeState, string) {
	if len(nodes) == 0 {
		return nil, "no ready node (all nodes are down, draining or degraded)"
	}
	key := t.Stack + "/" + t.Service
	var best *nodeState
	var failCons, failCPU, failMem, failMax, failPorts int
	var maxFreeMem int64
	var maxFreeMemNode string
	for _, ns := range nodes {
		if !matchAll(cons, ns.node) {
			failCons++
			continue
		}
		if ns.freeMem > maxFreeMem || maxFreeMemNode == "" {
			maxFreeMem, maxFreeMemNode = ns.freeMem, ns.node.ID
		}
		if r := spec.Resources.ReserveNanoCPUs; r > 0 && ns.freeCPU < r {
			failCPU++
			continue
		}
		if r := spec.Resources.ReserveMemoryBytes; r > 0 && ns.freeMem < r {
			failMem++
			continue
		}
		if m := spec.Placement.MaxPerNode; m > 0 && ns.byService[key] >= m {
			failMax++
			continue
		}
		if spec.NetworkMode == "host" && ns.nextPort > HostPortMax {
			failPorts++
			continue
		}
		if best == nil || better(ns, best, key) {
			best = ns
		}
	}
	if best != nil {
		return best, ""
	}
	var why []string
	if failCons == len(nodes) {
		return nil, fmt.Sprintf("constraints %s match no ready node", strings.Join(spec.Placement.Constraints, ", "))
	}
	if failCPU > 0 {
		why = append(why, fmt.Sprintf("%d node(s) lack %.2f free CPUs", failCPU, float64(spec.Resources.ReserveNanoCPUs)/1e9))
	}
	if failMem > 0 {
		why = append(why, fmt.Sprintf("%d node(s) lack %dMiB free memory (largest free: %dMiB on %s)",
			failMem, spec.Resources.ReserveMemoryBytes>>20, maxFreeMem>>20, maxFreeMemNode))
	}
	if failMax > 0 {
		why = append(why, fmt.Sprintf("%d node(s) already run max_replicas_per_node=%d", failMax, spec.Placement.MaxPerNode))
	}
	if failPorts > 0 {
		why = append(why, fmt.Sprintf("%d node(s) have no free host port", failPorts))
	}
	if failCons > 0 {
		why = append(why, fmt.Sprintf("%d node(s) excluded by constraints", failCons))
	}
	return nil, "no node fits: " + strings.Join(why, "; ")
}

func better(a, b *nodeState, key string) bool {
	if a.byService[key] != b.byService[key] {
		return a.byService[key] < b.byService[key]
	}
	if a.tasks != b.tasks {
		return a.tasks < b.tasks
	}
	if a.freeMem != b.freeMem {
		return a.freeMem > b.freeMem
	}
	return a.node.ID < b.node.ID
}

// Constraint is one parsed placement constraint.
type Constraint struct {
	Field string // "name", "id" or "labels.KEY"
	Equal bool
	Value string
}

// ParseConstraint parses "node.labels.KEY==VALUE", "node.name!=NAME",
// "node.id==ID" and the like.
func ParseConstraint(s string) (Constraint, error) {
	op, eq := "==", true
	if strings.Contains(s, "!=") {
		op, eq = "!=", false
	}
	lhs, rhs, ok := strings.Cut(s, op)
	lhs, rhs = strings.TrimSpace(lhs), strings.TrimSpace(rhs)
	if !ok || rhs == "" {
		return Constraint{}, fmt.Errorf("placement constraint %q: use node.labels.KEY==VALUE, node.name==NAME or node.id==ID (or !=)", s)
	}
	switch {
	case lhs == "node.name", lhs == "node.hostname":
		return Constraint{Field: "name", Equal: eq, Value: rhs}, nil
	case lhs == "node.id":
		return Constraint{Field: "id", Equal: eq, Value: rhs}, nil
	case strings.HasPrefix(lhs, "node.labels.") && len(lhs) > len("node.labels."):
		return Constraint{Field: strings.TrimPrefix(lhs, "node."), Equal: eq, Value: rhs}, nil
	}
	return Constraint{}, fmt.Errorf("placement constraint %q: unknown attribute %q; use node.labels.KEY, node.name or node.id", s, lhs)
}

func parseConstraints(ss []string) ([]Constraint, error) {
	out := make([]Constraint, 0, len(ss))
	for _, s := range ss {
		c, err := ParseConstraint(s)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func (c Constraint) match(n api.Node) bool {
	var have string
	switch {
	case c.Field == "name":
		have = n.Name
	case c.Field == "id":
		have = n.ID
	default:
		have = n.Labels[strings.TrimPrefix(c.Field, "labels.")]
	}
	return (have == c.Value) == c.Equal
}

func matchAll(cs []Constraint, n api.Node) bool {
	for _, c := range cs {
		if !c.match(n) {
			return false
		}
	}
	return true
}
