package scheduler

import (
	"math/rand"
	"strings"
	"testing"

	"github.com/berth-dev/berth/api"
)

// TestProperties checks random clusters against the rules, with a checker
// written apart from the scheduler: every request is answered once; tasks
// land only on ready nodes that match their constraints; no node ends over
// its CPU or memory, or over a service's max per node; host ports are in
// the range, distinct per node and never published; and a task is left
// unplaced only if, at the end of the plan, no node could take it (nodes
// only lose room during a plan, so that is a fair test of completeness).
func TestProperties(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewSource(42))
	for round := 0; round < 300; round++ {
		s, rs := randomCluster(rng, 1+rng.Intn(30), rng.Intn(120), rng.Intn(120))
		p := Schedule(s, rs)
		if err := checkPlan(s, rs, p); err != "" {
			t.Fatalf("round %d: %s", round, err)
		}
	}
}

// world is the checker's own bookkeeping of a cluster after a plan.
type world struct {
	nodes     map[string]*api.Node
	cpu, mem  map[string]int64          // reserved per node
	count     map[string]map[string]int // node → stack/service → tasks
	bound     map[string]map[uint16]bool
	published map[uint16]bool
}

func newWorld(s Snapshot, rs []Request) *world {
	w := &world{nodes: map[string]*api.Node{}, cpu: map[string]int64{}, mem: map[string]int64{},
		count: map[string]map[string]int{}, bound: map[string]map[uint16]bool{}, published: map[uint16]bool{}}
	for i := range s.Nodes {
		w.nodes[s.Nodes[i].ID] = &s.Nodes[i]
	}
	for _, spec := range specsOf(s, rs) {
		for _, p := range spec.Ports {
			if p.Published != 0 {
				w.published[p.Published] = true
			}
		}
	}
	for _, t := range s.Tasks {
		if n := w.nodes[t.Task.Node]; n != nil && eligible(n) {
			w.add(t.Task, t.Spec)
		}
	}
	return w
}

func specsOf(s Snapshot, rs []Request) []*api.ServiceSpec {
	var out []*api.ServiceSpec
	for _, t := range s.Tasks {
		if t.Spec != nil {
			out = append(out, t.Spec)
		}
	}
	for _, r := range rs {
		if r.Spec != nil {
			out = append(out, r.Spec)
		}
	}
	return out
}

func eligible(n *api.Node) bool { return n.State == api.NodeReady && n.Degraded == "" }

func (w *world) add(t api.Task, spec *api.ServiceSpec) {
	if spec == nil {
		spec = &api.ServiceSpec{}
	}
	w.cpu[t.Node] += spec.Resources.ReserveNanoCPUs
	w.mem[t.Node] += spec.Resources.ReserveMemoryBytes
	if w.count[t.Node] == nil {
		w.count[t.Node] = map[string]int{}
	}
	w.count[t.Node][t.Stack+"/"+t.Service]++
	if spec.NetworkMode == "host" {
		if w.bound[t.Node] == nil {
			w.bound[t.Node] = map[uint16]bool{}
		}
		w.bound[t.Node][t.HostPort] = true
		for _, p := range spec.Ports {
			w.bound[t.Node][p.Target] = true
		}
	}
}

// admits reports whether node n could take one more task of r.
func (w *world) admits(n *api.Node, r Request) bool {
	spec := r.Spec
	if spec == nil {
		spec = &api.ServiceSpec{}
	}
	if !eligible(n) || !matchesAll(n, spec.Placement.Constraints) {
		return false
	}
	res := spec.Resources
	if res.ReserveNanoCPUs > 0 && w.cpu[n.ID]+res.ReserveNanoCPUs > n.NanoCPUs {
		return false
	}
	if res.ReserveMemoryBytes > 0 && w.mem[n.ID]+res.ReserveMemoryBytes > n.Memory {
		return false
	}
	if m := spec.Placement.MaxPerNode; m > 0 && w.count[n.ID][r.Task.Stack+"/"+r.Task.Service] >= m {
		return false
	}
	if spec.NetworkMode != "host" {
		return true
	}
	own := map[uint16]bool{}
	for _, p := range spec.Ports {
		if w.bound[n.ID][p.Target] {
			return false
		}
		own[p.Target] = true
	}
	for p := int(HostPortMin); p <= int(HostPortMax); p++ {
		if !w.bound[n.ID][uint16(p)] && !w.published[uint16(p)] && !own[uint16(p)] {
			return true
		}
	}
	return false
}

// matchesAll evaluates the constraint forms randomCluster generates, by hand.
func matchesAll(n *api.Node, cs []string) bool {
	for _, c := range cs {
		var ok bool
		switch {
		case strings.HasPrefix(c, "node.labels.zone=="):
			ok = n.Labels["zone"] == strings.TrimPrefix(c, "node.labels.zone==")
		case strings.HasPrefix(c, "node.labels.zone!="):
			ok = n.Labels["zone"] != strings.TrimPrefix(c, "node.labels.zone!=")
		case strings.HasPrefix(c, "node.labels.disk=="):
			ok = n.Labels["disk"] == strings.TrimPrefix(c, "node.labels.disk==")
		case strings.HasPrefix(c, "node.name!="):
			ok = n.Name != strings.TrimPrefix(c, "node.name!=")
		default:
			return false
		}
		if !ok {
			return false
		}
	}
	return true
}

func checkPlan(s Snapshot, rs []Request, p Plan) string {
	w := newWorld(s, rs)
	byID := map[string]Request{}
	for _, r := range rs {
		byID[r.Task.ID] = r
	}
	seen := map[string]bool{}
	for _, a := range p.Assignments {
		r, ok := byID[a.TaskID]
		if !ok || seen[a.TaskID] {
			return "assignment of unknown or repeated task " + a.TaskID
		}
		seen[a.TaskID] = true
		n := w.nodes[a.NodeID]
		if n == nil {
			return "task " + a.TaskID + " on unknown node " + a.NodeID
		}
		// Admission is checked as the plan is replayed: a node must have
		// had room when the task was put on it.
		if !w.admits(n, r) {
			return "task " + a.TaskID + " put on " + a.NodeID + ", which could not take it"
		}
		isHost := r.Spec != nil && r.Spec.NetworkMode == "host"
		if isHost && (a.HostPort < HostPortMin || a.HostPort > HostPortMax || w.bound[n.ID][a.HostPort] || w.published[a.HostPort]) {
			return "task " + a.TaskID + " got a host port in use or out of range"
		}
		if isHost && r.Spec != nil {
			for _, pt := range r.Spec.Ports {
				if pt.Target == a.HostPort {
					return "task " + a.TaskID + " got its own target as host port"
				}
			}
		}
		if !isHost && a.HostPort != 0 {
			return "task " + a.TaskID + " is not host-networked but got a host port"
		}
		t := r.Task
		t.Node, t.HostPort = a.NodeID, a.HostPort
		w.add(t, r.Spec)
	}
	for _, u := range p.Unplaced {
		r, ok := byID[u.TaskID]
		if !ok || seen[u.TaskID] {
			return "unplaced entry of unknown or repeated task " + u.TaskID
		}
		seen[u.TaskID] = true
		if u.Reason == "" {
			return "task " + u.TaskID + " unplaced without a reason"
		}
		if r.Spec != nil && r.Spec.Placement.Constraints != nil {
			if _, err := parseConstraints(r.Spec.Placement.Constraints); err != nil {
				continue
			}
		}
		for _, n := range w.nodes {
			if w.admits(n, r) {
				return "task " + u.TaskID + " unplaced (" + u.Reason + ") but node " + n.ID + " could take it"
			}
		}
	}
	if len(seen) != len(rs) {
		return "not every request is answered"
	}
	return ""
}
