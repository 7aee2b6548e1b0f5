package scheduler

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/api"
)

// explain says why no node fits the next task of the current group: which
// nodes were ruled out and by what, with the figures a person needs to fix
// it (the largest free memory and where). It runs once per group that runs
// out of nodes, so it may scan every node.
func (st *state) explain(spec *api.ServiceSpec, nd *need, cons []Constraint, key svcKey) string {
	if len(st.nodes) == 0 {
		return noReadyNode(st.notReady)
	}
	var matching int
	var count [numMisfits]int
	// The nodes with the most free CPU and memory among those matching the
	// constraints: what the task would have to shrink to.
	var mostCPU, mostMem *nodeState
	for i := range st.nodes {
		ns := &st.nodes[i]
		if !matchAll(cons, ns.node) {
			continue
		}
		matching++
		if mostCPU == nil || ns.freeCPU > mostCPU.freeCPU {
			mostCPU = ns
		}
		if mostMem == nil || ns.freeMem > mostMem.freeMem {
			mostMem = ns
		}
		count[st.misfitOn(int32(i), nd)]++
	}
	if matching == 0 {
		return constraintsMatchNothing(st, cons)
	}

	var parts []string
	if c := count[lackCPU]; c > 0 {
		parts = append(parts, fmt.Sprintf("%s less than %s free (most free: %s on %s)",
			nodesHave(c), cpus(nd.cpu), cpus(mostCPU.freeCPU), mostCPU.node.ID))
	}
	if c := count[lackMemory]; c > 0 {
		parts = append(parts, fmt.Sprintf("%s less than %s memory free (largest free: %s on %s)",
			nodesHave(c), bytes(nd.mem), bytes(mostMem.freeMem), mostMem.node.ID))
	}
	if c := count[atMaxPerNode]; c > 0 {
		parts = append(parts, fmt.Sprintf("%s already the most tasks of %s/%s allowed on one node (max_replicas_per_node: %d)",
			nodesHave(c), key.stack, key.service, spec.Placement.MaxPerNode))
	}
	if c := count[portConflict]; c > 0 {
		parts = append(parts, fmt.Sprintf("%s host port(s) %s bound by another host-networked task",
			nodesHave(c), targets(spec.Ports)))
	}
	if c := count[noHostPort]; c > 0 {
		parts = append(parts, fmt.Sprintf("%s no free host port in %d-%d", nodesHave(c), HostPortMin, HostPortMax))
	}
	if c := len(st.nodes) - matching; c > 0 {
		parts = append(parts, fmt.Sprintf("%d excluded by constraints %s", c, strings.Join(spec.Placement.Constraints, ", ")))
	}
	if c := len(st.notReady); c > 0 {
		parts = append(parts, fmt.Sprintf("%d not ready", c))
	}
	return "no node fits: " + strings.Join(parts, "; ")
}

// nodesHave returns "1 node has" or "N nodes have", to begin a clause.
func nodesHave(n int) string {
	if n == 1 {
		return "1 node has"
	}
	return strconv.Itoa(n) + " nodes have"
}

func noReadyNode(notReady []*api.Node) string {
	if len(notReady) == 0 {
		return "no ready node: the cluster has no nodes"
	}
	var down, draining, degraded, other int
	for _, n := range notReady {
		switch {
		case n.State == api.NodeDown:
			down++
		case n.State == api.NodeDraining:
			draining++
		case n.Degraded != "":
			degraded++
		default:
			other++
		}
	}
	var parts []string
	for _, p := range []struct {
		n    int
		what string
	}{{down, "down"}, {draining, "draining"}, {degraded, "degraded"}, {other, "in another state"}} {
		if p.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", p.n, p.what))
		}
	}
	return "no ready node: " + strings.Join(parts, ", ")
}

// constraintsMatchNothing names the constraint that rules out every ready
// node, or says that they do so together, and mentions the nodes they
// would match that are not ready (a drained node is a common cause).
func constraintsMatchNothing(st *state, cons []Constraint) string {
	var msg string
	for _, c := range cons {
		if !st.anyReady(c) {
			msg = "placement constraint " + c.String() + " matches no ready node"
			break
		}
	}
	if msg == "" {
		ss := make([]string, len(cons))
		for i, c := range cons {
			ss[i] = c.String()
		}
		msg = "placement constraints " + strings.Join(ss, ", ") + " together match no ready node"
	}
	var idle []string
	for _, n := range st.notReady {
		if matchAll(cons, n) {
			why := n.State
			switch {
			case why == "":
				why = "no state"
			case n.State == api.NodeReady:
				why = "degraded: " + n.Degraded
			}
			idle = append(idle, n.ID+" ("+why+")")
		}
	}
	if len(idle) > 0 {
		const most = 5
		more := ""
		if len(idle) > most {
			more = fmt.Sprintf(" and %d more", len(idle)-most)
			idle = idle[:most]
		}
		msg += "; matching nodes not ready: " + strings.Join(idle, ", ") + more
	}
	return msg
}

func (st *state) anyReady(c Constraint) bool {
	for i := range st.nodes {
		if c.Matches(st.nodes[i].node) {
			return true
		}
	}
	return false
}

func targets(ports []api.Port) string {
	var ss []string
	for _, p := range ports {
		if p.Target != 0 {
			ss = append(ss, strconv.Itoa(int(p.Target)))
		}
	}
	return strings.Join(ss, ", ")
}

// cpus formats nano-CPUs as a count of CPUs: "0.5 CPUs", "1 CPU".
func cpus(n int64) string {
	if n == 1e9 {
		return "1 CPU"
	}
	return strconv.FormatFloat(float64(max(n, 0))/1e9, 'f', -1, 64) + " CPUs"
}

// bytes formats a byte count in the largest binary unit it reaches, with
// one decimal when it is not a whole number of that unit. The decimal is
// rounded down, so that a node one byte short of 4GiB never shows as
// having 4GiB free. Negative counts (an overcommitted node) show as 0B.
func bytes(b int64) string {
	if b <= 0 {
		return "0B"
	}
	units := []struct {
		size int64
		name string
	}{{1 << 40, "TiB"}, {1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}}
	for _, u := range units {
		if b >= u.size {
			if b%u.size == 0 {
				return strconv.FormatInt(b/u.size, 10) + u.name
			}
			return strconv.FormatFloat(math.Floor(float64(b)*10/float64(u.size))/10, 'f', 1, 64) + u.name
		}
	}
	return strconv.FormatInt(b, 10) + "B"
}
