package scheduler

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/api"
)

// state is what Schedule knows of the nodes while it builds one plan. It is
// indexed once from the snapshot, then updated as tasks are placed, so that
// no request rescans the snapshot's tasks.
type state struct {
	// nodes are the eligible nodes sorted by ID: a node's index is its
	// rank in the final tie break.
	nodes []nodeState
	// notReady are the other nodes, kept to explain why nothing fits.
	notReady []*api.Node
	// services counts, per service, the tasks on each node index that has
	// any.
	services map[svcKey]map[int32]int32
	// svcCount and heap are scratch space of placeGroup, reused across
	// groups.
	svcCount []int32
	heap     []int32
	// all lists every node index; byConstraints caches the nodes that
	// match a set of constraints (see matching).
	all           []int32
	byConstraints map[string][]int32
	cached        int
	scratch       []int32
	// published are the ports the ingress listens on, on every node: no
	// host-networked task may be given one.
	published portSet
}

type svcKey struct{ stack, service string }

type nodeState struct {
	node    *api.Node
	freeCPU int64
	freeMem int64
	tasks   int32
	// bound are the ports bound on the host by host-networked tasks
	// (HostPort and the targets of Ports); nil until there is one.
	bound map[uint16]struct{}
	// nextPort is the lowest port of the host port range that is free
	// for a HostPort on this node, or HostPortMax+1 when none is. Ports
	// are only ever taken while a plan is built, so it only moves up.
	nextPort uint32
}

// portSet is a set of all 65536 ports, 8 KiB.
type portSet [1024]uint64

func (s *portSet) add(p uint16)      { s[p>>6] |= 1 << (p & 63) }
func (s *portSet) has(p uint16) bool { return s[p>>6]&(1<<(p&63)) != 0 }

func newState(s Snapshot, reqs []Request) *state {
	st := &state{services: map[svcKey]map[int32]int32{}}
	ready := make([]*api.Node, 0, len(s.Nodes))
	for i := range s.Nodes {
		n := &s.Nodes[i]
		if n.State == api.NodeReady && n.Degraded == "" {
			ready = append(ready, n)
		} else {
			st.notReady = append(st.notReady, n)
		}
	}
	slices.SortStableFunc(ready, func(a, b *api.Node) int { return cmp.Compare(a.ID, b.ID) })
	ready = slices.CompactFunc(ready, func(a, b *api.Node) bool { return a.ID == b.ID })
	slices.SortFunc(st.notReady, func(a, b *api.Node) int { return cmp.Compare(a.ID, b.ID) })

	st.nodes = make([]nodeState, len(ready))
	st.svcCount = make([]int32, len(ready))
	st.heap = make([]int32, 0, len(ready))
	st.all = make([]int32, len(ready))
	for i := range st.all {
		st.all[i] = int32(i)
	}
	byID := make(map[string]int32, len(ready))
	for i, n := range ready {
		st.nodes[i] = nodeState{node: n, freeCPU: n.NanoCPUs, freeMem: n.Memory}
		byID[n.ID] = int32(i)
	}

	for i := range s.Tasks {
		st.addPublished(s.Tasks[i].Spec)
	}
	for i := range reqs {
		st.addPublished(reqs[i].Spec)
	}
	for i := range st.nodes {
		st.advance(&st.nodes[i])
	}

	for i := range s.Tasks {
		p := &s.Tasks[i]
		n, ok := byID[p.Task.Node]
		if !ok {
			continue
		}
		spec := specOf(p.Spec)
		ns := &st.nodes[n]
		ns.tasks++
		key := svcKey{p.Task.Stack, p.Task.Service}
		onNode := st.services[key]
		if onNode == nil {
			onNode = map[int32]int32{}
			st.services[key] = onNode
		}
		onNode[n]++
		cpu, mem := reservations(spec)
		ns.freeCPU -= cpu
		ns.freeMem -= mem
		if isHost(spec) {
			st.bind(ns, p.Task.HostPort, spec.Ports)
		}
	}
	return st
}

// matching returns the indices of the nodes that match cons (parsed from
// raw), in index order. The result is read-only and valid until the next
// call. Services of a fleet share few constraint sets (a zone, a disk
// type), and testing labels was most of the cost of placing one task, so
// each set is evaluated once per plan. The cache holds at most
// cacheBudget × len(nodes) indices, so that a thousand distinct broad
// constraints cannot make one plan hold a thousand node lists; past that,
// sets are evaluated into scratch space every time.
func (st *state) matching(raw []string, cons []Constraint) []int32 {
	if len(cons) == 0 {
		return st.all
	}
	var key strings.Builder
	for _, c := range raw {
		// Length-prefixed: no two different lists give one key.
		key.WriteString(strconv.Itoa(len(c)))
		key.WriteByte(':')
		key.WriteString(c)
	}
	if l, ok := st.byConstraints[key.String()]; ok {
		return l
	}
	out := st.scratch[:0]
	for n := range st.nodes {
		if matchAll(cons, st.nodes[n].node) {
			out = append(out, int32(n))
		}
	}
	if st.cached+len(out) > cacheBudget*len(st.nodes) {
		st.scratch = out
		return out
	}
	l := slices.Clone(out)
	st.scratch = out[:0]
	if st.byConstraints == nil {
		st.byConstraints = map[string][]int32{}
	}
	st.byConstraints[key.String()] = l
	st.cached += len(l)
	return l
}

const cacheBudget = 8

func (st *state) addPublished(spec *api.ServiceSpec) {
	if spec == nil {
		return
	}
	for _, p := range spec.Ports {
		if p.Published != 0 {
			st.published.add(p.Published)
		}
	}
}

// bind records the ports a host-networked task binds on a node.
func (st *state) bind(ns *nodeState, hostPort uint16, ports []api.Port) {
	if ns.bound == nil {
		ns.bound = map[uint16]struct{}{}
	}
	if hostPort != 0 {
		ns.bound[hostPort] = struct{}{}
	}
	for _, p := range ports {
		if p.Target != 0 {
			ns.bound[p.Target] = struct{}{}
		}
	}
	st.advance(ns)
}

func (st *state) taken(ns *nodeState, p uint16) bool {
	if st.published.has(p) {
		return true
	}
	_, ok := ns.bound[p]
	return ok
}

// advance moves ns.nextPort to the lowest free port of the range.
func (st *state) advance(ns *nodeState) {
	if ns.nextPort < uint32(HostPortMin) {
		ns.nextPort = uint32(HostPortMin)
	}
	for ns.nextPort <= uint32(HostPortMax) && st.taken(ns, uint16(ns.nextPort)) {
		ns.nextPort++
	}
}

// hostPortFor returns the port a host-networked task with these ports would
// get on ns: the lowest free one that is not one of its own targets. It
// returns HostPortMax+1 when there is none.
func (st *state) hostPortFor(ns *nodeState, ports []api.Port) uint32 {
	p := ns.nextPort
	for p <= uint32(HostPortMax) && (st.taken(ns, uint16(p)) || isTarget(ports, uint16(p))) {
		p++
	}
	return p
}

func isTarget(ports []api.Port, p uint16) bool {
	for i := range ports {
		if ports[i].Target == p {
			return true
		}
	}
	return false
}

// why a task does not fit a node that matches its constraints; fitOK when
// it fits. The order of the checks is the order reasons are reported in.
type misfit int

const (
	fitOK misfit = iota
	lackCPU
	lackMemory
	atMaxPerNode
	portConflict
	noHostPort
	numMisfits
)

// need is what one task of a group asks of a node, read from its spec once
// per group because it is tested against every node.
type need struct {
	cpu, mem   int64
	maxPerNode int32
	host       bool
	ports      []api.Port
}

func needOf(spec *api.ServiceSpec) need {
	cpu, mem := reservations(spec)
	return need{cpu: cpu, mem: mem, maxPerNode: int32(min(max(spec.Placement.MaxPerNode, 0), 1<<31-1)),
		host: isHost(spec), ports: spec.Ports}
}

// misfitOn says whether the next task of the current group (with svcCount
// filled for its service) fits node n.
func (st *state) misfitOn(n int32, nd *need) misfit {
	ns := &st.nodes[n]
	switch {
	case nd.cpu > 0 && ns.freeCPU < nd.cpu:
		return lackCPU
	case nd.mem > 0 && ns.freeMem < nd.mem:
		return lackMemory
	case nd.maxPerNode > 0 && st.svcCount[n] >= nd.maxPerNode:
		return atMaxPerNode
	case !nd.host:
		return fitOK
	case st.targetInUse(ns, nd.ports) != 0:
		return portConflict
	case st.hostPortFor(ns, nd.ports) > uint32(HostPortMax):
		return noHostPort
	}
	return fitOK
}

func (st *state) fits(n int32, nd *need) bool { return st.misfitOn(n, nd) == fitOK }

// targetInUse returns the first target of ports already bound on ns by a
// host-networked task, or 0.
func (st *state) targetInUse(ns *nodeState, ports []api.Port) uint16 {
	if ns.bound == nil {
		return 0
	}
	for _, p := range ports {
		if _, ok := ns.bound[p.Target]; ok && p.Target != 0 {
			return p.Target
		}
	}
	return 0
}

// place puts the next task of the current group on node n, which it fits,
// and returns its host port (0 unless host-networked).
func (st *state) place(n int32, nd *need, onNode map[int32]int32) uint16 {
	ns := &st.nodes[n]
	ns.tasks++
	st.svcCount[n]++
	onNode[n]++
	ns.freeCPU -= nd.cpu
	ns.freeMem -= nd.mem
	if !nd.host {
		return 0
	}
	port := uint16(st.hostPortFor(ns, nd.ports))
	st.bind(ns, port, nd.ports)
	return port
}

// less orders candidate nodes for the current group, best first.
func (st *state) less(a, b int32) bool {
	if ca, cb := st.svcCount[a], st.svcCount[b]; ca != cb {
		return ca < cb
	}
	na, nb := &st.nodes[a], &st.nodes[b]
	if na.tasks != nb.tasks {
		return na.tasks < nb.tasks
	}
	if na.freeMem != nb.freeMem {
		return na.freeMem > nb.freeMem
	}
	return a < b
}

// down restores the heap order of h below position i. A hand-written heap
// of node indices: container/heap would box every index it pops.
func (st *state) down(h []int32, i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		best := l
		if r := l + 1; r < len(h) && st.less(h[r], h[l]) {
			best = r
		}
		if !st.less(h[best], h[i]) {
			return
		}
		h[i], h[best] = h[best], h[i]
		i = best
	}
}
