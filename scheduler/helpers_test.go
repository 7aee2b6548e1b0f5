package scheduler

import (
	"fmt"
	"strings"

	"github.com/berth-dev/berth/api"
)

// node returns a ready node with 4 CPUs, 8GiB and labels given as "k=v".
func node(id string, labels ...string) api.Node {
	n := api.Node{ID: id, Name: "host-" + id, State: api.NodeReady, NanoCPUs: 4e9, Memory: 8 << 30, Labels: map[string]string{}}
	for _, l := range labels {
		k, v, _ := strings.Cut(l, "=")
		n.Labels[k] = v
	}
	return n
}

func withState(n api.Node, state string) api.Node {
	n.State = state
	return n
}

func degraded(n api.Node) api.Node {
	n.Degraded = "engine does not answer"
	return n
}

func nodes(ids ...string) []api.Node {
	out := make([]api.Node, len(ids))
	for i, id := range ids {
		out[i] = node(id)
	}
	return out
}

// reqs returns n requests for slots 1..n of service svc of stack "s".
func reqs(svc string, n int, spec *api.ServiceSpec) []Request {
	out := make([]Request, n)
	for i := range out {
		out[i] = Request{Task: api.Task{ID: fmt.Sprintf("%s-%d", svc, i+1), Stack: "s", Service: svc, Slot: i + 1, Revision: 1}, Spec: spec}
	}
	return out
}

// on returns a task of service svc of stack "s" already on node.
func on(nodeID, svc string, spec *api.ServiceSpec) Placed {
	return Placed{Task: api.Task{ID: "old-" + svc + "-" + nodeID, Stack: "s", Service: svc, Node: nodeID, Revision: 1}, Spec: spec}
}

func join(rs ...[]Request) []Request {
	var out []Request
	for _, r := range rs {
		out = append(out, r...)
	}
	return out
}

// where returns task ID → node ID.
func where(p Plan) map[string]string {
	m := map[string]string{}
	for _, a := range p.Assignments {
		m[a.TaskID] = a.NodeID
	}
	return m
}

// perNode returns node ID → number of tasks assigned to it.
func perNode(p Plan) map[string]int {
	m := map[string]int{}
	for _, a := range p.Assignments {
		m[a.NodeID]++
	}
	return m
}

func ports(p Plan) map[string]uint16 {
	m := map[string]uint16{}
	for _, a := range p.Assignments {
		m[a.TaskID] = a.HostPort
	}
	return m
}

func reserve(cpus float64, mem int64) *api.ServiceSpec {
	return &api.ServiceSpec{Resources: api.Resources{ReserveNanoCPUs: int64(cpus * 1e9), ReserveMemoryBytes: mem}}
}

func constrained(cs ...string) *api.ServiceSpec {
	return &api.ServiceSpec{Placement: api.Placement{Constraints: cs}}
}

func maxPerNode(m int) *api.ServiceSpec {
	return &api.ServiceSpec{Placement: api.Placement{MaxPerNode: m}}
}

func host(ps ...api.Port) *api.ServiceSpec {
	return &api.ServiceSpec{NetworkMode: "host", Ports: ps}
}
