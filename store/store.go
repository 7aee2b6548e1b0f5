// Package store is berth's only door to etcd: the key layout, typed reads
// and writes, transactions and watches. Nothing else imports the etcd client.
//
// Key layout (every key has exactly one writer):
//
//	/berth/cluster-id                         server, once
//	/berth/stacks/STACK                       server: api.StackRecord
//	/berth/services/STACK/SERVICE             server: api.ServiceState
//	/berth/revisions/STACK/SERVICE/NNNNNNNN   server: api.Revision (immutable)
//	/berth/tasks/STACK/TASKID                 server: api.Task (desired)
//	/berth/status/NODE/TASKID                 agent of NODE: api.TaskStatus (observed)
//	/berth/nodes/NODE                         agent of NODE, under its lease: api.Node
//	/berth/events/NNNNNNNNNNNNNNNNNNNN        whoever saw the change: api.Event
//	/berth/jobs/STACK/JOBID                   server: api.JobRun
package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/berth-dev/berth/api"
	clientv3 "go.etcd.io/etcd/client/v3"
)

const root = "/berth/"

// Key prefixes.
const (
	prefixStacks    = root + "stacks/"
	prefixServices  = root + "services/"
	prefixRevisions = root + "revisions/"
	prefixTasks     = root + "tasks/"
	prefixStatus    = root + "status/"
	prefixNodes     = root + "nodes/"
	prefixEvents    = root + "events/"
	prefixJobs      = root + "jobs/"
	keyClusterID    = root + "cluster-id"
)

// Watchable prefixes for Watch.
const (
	Stacks   = prefixStacks
	Services = prefixServices
	Tasks    = prefixTasks
	Status   = prefixStatus
	Nodes    = prefixNodes
	Events   = prefixEvents
	Jobs     = prefixJobs
)

// opTimeout bounds every single etcd request.
const opTimeout = 10 * time.Second

// ErrNotFound is returned (wrapped) for a missing key.
var ErrNotFound = api.ErrNotFound

// ErrChanged is returned when an optimistic transaction lost a race; the
// caller reads again and retries.
var ErrChanged = errors.New("state changed concurrently")

// Store is typed access to berth's state.
type Store struct {
	cli     *clientv3.Client
	log     *slog.Logger
	closeFn func() error
}

func newStore(cli *clientv3.Client, logger *slog.Logger) *Store {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Store{cli: cli, log: logger}
}

// Close releases the client and, for an embedded member, stops etcd.
func (s *Store) Close() error {
	if s.closeFn == nil {
		return nil
	}
	return s.closeFn()
}

// Client exposes the etcd client for leases and elections (controller/).
func (s *Store) Client() *clientv3.Client { return s.cli }

func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, opTimeout)
}

func unavailable(op string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w: store %s: %v", api.ErrUnavailable, op, err)
}

func getJSON[T any](ctx context.Context, s *Store, key string) (T, int64, error) {
	var v T
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return v, 0, unavailable("get "+key, err)
	}
	if len(resp.Kvs) == 0 {
		return v, 0, fmt.Errorf("%w: %s", ErrNotFound, strings.TrimPrefix(key, root))
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, &v); err != nil {
		return v, 0, fmt.Errorf("decode %s: %w", key, err)
	}
	return v, resp.Kvs[0].ModRevision, nil
}

func listJSON[T any](ctx context.Context, s *Store, prefix string) ([]T, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, unavailable("list "+prefix, err)
	}
	out := make([]T, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var v T
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		out = append(out, v)
	}
	return out, nil
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		// Only api types are stored; they always marshal.
		panic(fmt.Sprintf("store: marshal %T: %v", v, err))
	}
	return string(b)
}

func (s *Store) put(ctx context.Context, key string, v any, opts ...clientv3.OpOption) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	if _, err := s.cli.Put(ctx, key, mustJSON(v), opts...); err != nil {
		return unavailable("put "+key, err)
	}
	return nil
}

func (s *Store) del(ctx context.Context, key string, opts ...clientv3.OpOption) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	if _, err := s.cli.Delete(ctx, key, opts...); err != nil {
		return unavailable("delete "+key, err)
	}
	return nil
}

// ClusterID returns the cluster's ID, creating it with candidate if none is
// stored yet. The first writer wins; everyone gets the same ID.
func (s *Store) ClusterID(ctx context.Context, candidate string) (string, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(keyClusterID), "=", 0)).
		Then(clientv3.OpPut(keyClusterID, candidate)).
		Else(clientv3.OpGet(keyClusterID)).
		Commit()
	if err != nil {
		return "", unavailable("cluster id", err)
	}
	if resp.Succeeded {
		return candidate, nil
	}
	return string(resp.Responses[0].GetResponseRange().Kvs[0].Value), nil
}

// --- stacks, services, revisions ---

func stackKey(stack string) string            { return prefixStacks + stack }
func serviceKey(stack, svc string) string     { return prefixServices + stack + "/" + svc }
func revisionPrefix(stack, svc string) string { return prefixRevisions + stack + "/" + svc + "/" }
func revisionKey(stack, svc string, n int) string {
	return fmt.Sprintf("%s%08d", revisionPrefix(stack, svc), n)
}
func taskKey(stack, id string) string    { return prefixTasks + stack + "/" + id }
func statusKey(node, task string) string { return prefixStatus + node + "/" + task }
func nodeKey(node string) string         { return prefixNodes + node }
func jobKey(stack, id string) string     { return prefixJobs + stack + "/" + id }

// GetStack reads a stack record; the int64 is its version for ApplyStack.
func (s *Store) GetStack(ctx context.Context, name string) (api.StackRecord, int64, error) {
	return getJSON[api.StackRecord](ctx, s, stackKey(name))
}

// ListStacks returns all stack records, sorted by name.
func (s *Store) ListStacks(ctx context.Context) ([]api.StackRecord, error) {
	return listJSON[api.StackRecord](ctx, s, prefixStacks)
}

// StackWrite is one atomic change to a stack: its record, the services
// written, the new revisions, and the services removed.
type StackWrite struct {
	Record    api.StackRecord
	Services  []api.ServiceState
	Revisions []api.Revision
	Removed   []string
	// Version is the stack record's version read before computing the
	// change (0: the stack must not exist yet). A concurrent change makes
	// ApplyStack fail with ErrChanged and store nothing.
	Version int64
}

// ApplyStack stores a StackWrite in one transaction.
func (s *Store) ApplyStack(ctx context.Context, w StackWrite) error {
	key := stackKey(w.Record.Name)
	cmp := clientv3.Compare(clientv3.ModRevision(key), "=", w.Version)
	ops := []clientv3.Op{clientv3.OpPut(key, mustJSON(w.Record))}
	for _, svc := range w.Services {
		ops = append(ops, clientv3.OpPut(serviceKey(svc.Stack, svc.Name), mustJSON(svc)))
	}
	for _, rev := range w.Revisions {
		ops = append(ops, clientv3.OpPut(revisionKey(rev.Stack, rev.Service, rev.Number), mustJSON(rev)))
	}
	for _, name := range w.Removed {
		ops = append(ops, clientv3.OpDelete(serviceKey(w.Record.Name, name)))
	}
	return s.commit(ctx, "apply stack "+w.Record.Name, []clientv3.Cmp{cmp}, ops)
}

func (s *Store) commit(ctx context.Context, what string, cmps []clientv3.Cmp, ops []clientv3.Op) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return unavailable(what, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("%s: %w", what, ErrChanged)
	}
	return nil
}

// DeleteStack removes a stack's record, services, revisions, tasks and jobs
// in one transaction. Agents see the tasks go and remove their containers.
func (s *Store) DeleteStack(ctx context.Context, name string) error {
	ops := []clientv3.Op{
		clientv3.OpDelete(stackKey(name)),
		clientv3.OpDelete(prefixServices+name+"/", clientv3.WithPrefix()),
		clientv3.OpDelete(prefixRevisions+name+"/", clientv3.WithPrefix()),
		clientv3.OpDelete(prefixTasks+name+"/", clientv3.WithPrefix()),
		clientv3.OpDelete(prefixJobs+name+"/", clientv3.WithPrefix()),
	}
	return s.commit(ctx, "delete stack "+name, nil, ops)
}

// GetService reads a service's state and its version.
func (s *Store) GetService(ctx context.Context, stack, name string) (api.ServiceState, int64, error) {
	return getJSON[api.ServiceState](ctx, s, serviceKey(stack, name))
}

// ListServices returns the services of a stack, or of all stacks when
// stack is "".
func (s *Store) ListServices(ctx context.Context, stack string) ([]api.ServiceState, error) {
	p := prefixServices
	if stack != "" {
		p += stack + "/"
	}
	return listJSON[api.ServiceState](ctx, s, p)
}

// UpdateService writes a service state if it is still at version.
func (s *Store) UpdateService(ctx context.Context, svc api.ServiceState, version int64) error {
	key := serviceKey(svc.Stack, svc.Name)
	return s.commit(ctx, "update service "+svc.Stack+"/"+svc.Name,
		[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", version)},
		[]clientv3.Op{clientv3.OpPut(key, mustJSON(svc))})
}

// GetRevision reads one revision.
func (s *Store) GetRevision(ctx context.Context, stack, svc string, n int) (api.Revision, error) {
	r, _, err := getJSON[api.Revision](ctx, s, revisionKey(stack, svc, n))
	return r, err
}

// ListRevisions returns a service's revisions, oldest first.
func (s *Store) ListRevisions(ctx context.Context, stack, svc string) ([]api.Revision, error) {
	return listJSON[api.Revision](ctx, s, revisionPrefix(stack, svc))
}

// LatestRevision returns the highest-numbered revision (ErrNotFound if none).
func (s *Store) LatestRevision(ctx context.Context, stack, svc string) (api.Revision, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, revisionPrefix(stack, svc), clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(1))
	if err != nil {
		return api.Revision{}, unavailable("latest revision", err)
	}
	if len(resp.Kvs) == 0 {
		return api.Revision{}, fmt.Errorf("%w: no revision of %s/%s", ErrNotFound, stack, svc)
	}
	var r api.Revision
	if err := json.Unmarshal(resp.Kvs[0].Value, &r); err != nil {
		return r, fmt.Errorf("decode revision: %w", err)
	}
	return r, nil
}

// --- tasks and their status ---

// ListTasks returns the tasks of a stack, or all tasks when stack is "".
func (s *Store) ListTasks(ctx context.Context, stack string) ([]api.Task, error) {
	p := prefixTasks
	if stack != "" {
		p += stack + "/"
	}
	return listJSON[api.Task](ctx, s, p)
}

// ApplyTasks writes and deletes tasks in one transaction.
func (s *Store) ApplyTasks(ctx context.Context, put []api.Task, del []api.Task) error {
	if len(put)+len(del) == 0 {
		return nil
	}
	ops := make([]clientv3.Op, 0, len(put)+len(del))
	for _, t := range put {
		ops = append(ops, clientv3.OpPut(taskKey(t.Stack, t.ID), mustJSON(t)))
	}
	for _, t := range del {
		ops = append(ops, clientv3.OpDelete(taskKey(t.Stack, t.ID)))
	}
	// etcd caps operations per transaction; chunk large plans. Each chunk
	// is atomic; the controller is level-triggered, so a crash between
	// chunks is finished by the next pass.
	for len(ops) > 0 {
		n := min(len(ops), 100)
		if err := s.commit(ctx, "apply tasks", nil, ops[:n]); err != nil {
			return err
		}
		ops = ops[n:]
	}
	return nil
}

// PutStatus records what a node's agent observed of a task.
func (s *Store) PutStatus(ctx context.Context, st api.TaskStatus) error {
	return s.put(ctx, statusKey(st.Node, st.TaskID), st)
}

// DeleteStatus forgets a task's status on a node.
func (s *Store) DeleteStatus(ctx context.Context, node, task string) error {
	return s.del(ctx, statusKey(node, task))
}

// ListStatus returns statuses of one node, or of all nodes when node is "".
func (s *Store) ListStatus(ctx context.Context, node string) ([]api.TaskStatus, error) {
	p := prefixStatus
	if node != "" {
		p += node + "/"
	}
	return listJSON[api.TaskStatus](ctx, s, p)
}

// --- nodes ---

// NodeLease grants a lease that keeps a node's key alive while the agent
// runs; the returned channel closes if the keep-alive stops.
func (s *Store) NodeLease(ctx context.Context, ttl time.Duration) (clientv3.LeaseID, <-chan *clientv3.LeaseKeepAliveResponse, error) {
	gctx, cancel := withTimeout(ctx)
	defer cancel()
	l, err := s.cli.Grant(gctx, int64(ttl.Seconds()))
	if err != nil {
		return 0, nil, unavailable("grant lease", err)
	}
	ch, err := s.cli.KeepAlive(ctx, l.ID)
	if err != nil {
		return 0, nil, unavailable("keep lease alive", err)
	}
	return l.ID, ch, nil
}

// PutNode registers a node under a lease (0: no lease).
func (s *Store) PutNode(ctx context.Context, n api.Node, lease clientv3.LeaseID) error {
	var opts []clientv3.OpOption
	if lease != 0 {
		opts = append(opts, clientv3.WithLease(lease))
	}
	return s.put(ctx, nodeKey(n.ID), n, opts...)
}

// ListNodes returns registered nodes.
func (s *Store) ListNodes(ctx context.Context) ([]api.Node, error) {
	return listJSON[api.Node](ctx, s, prefixNodes)
}

// --- events ---

// listRecent reads the newest limit (0: all) entries of an append-only
// prefix written after revision since, and returns them oldest first,
// each given its write's revision as its sequence number. Entries that
// do not decode are skipped.
func listRecent[T any](ctx context.Context, s *Store, prefix, what string, since int64, limit int, setSeq func(*T, int64)) ([]T, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend)}
	if limit > 0 {
		opts = append(opts, clientv3.WithLimit(int64(limit)))
	}
	if since > 0 {
		opts = append(opts, clientv3.WithMinModRev(since+1))
	}
	resp, err := s.cli.Get(ctx, prefix, opts...)
	if err != nil {
		return nil, unavailable(what, err)
	}
	out := make([]T, 0, len(resp.Kvs))
	for i := len(resp.Kvs) - 1; i >= 0; i-- {
		var e T
		if err := json.Unmarshal(resp.Kvs[i].Value, &e); err != nil {
			continue
		}
		setSeq(&e, resp.Kvs[i].ModRevision)
		out = append(out, e)
	}
	return out, nil
}

// maxEvents bounds the stored event history; older ones are trimmed.
const maxEvents = 10000

// AppendEvent stores an event; its Seq is the etcd revision of the write.
func (s *Store) AppendEvent(ctx context.Context, e api.Event) error {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	return s.put(ctx, logKey(prefixEvents, e.Time), e)
}

// logKey is the key of an entry appended to an append-only prefix: its
// time, so keys sort oldest first and a time bounds a range, then a random
// suffix, so two entries of the same nanosecond (two agents, or a coarse
// clock) do not overwrite each other.
func logKey(prefix string, t time.Time) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s%020d-%s", prefix, t.UnixNano(), hex.EncodeToString(b))
}

// ListEvents returns up to limit most recent events newer than since
// (seq), oldest first, each with its Seq set.
func (s *Store) ListEvents(ctx context.Context, since int64, limit int) ([]api.Event, error) {
	out, err := listRecent(ctx, s, prefixEvents, "list events", since, limit, func(e *api.Event, seq int64) { e.Seq = seq })
	if err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out, nil
}

// WatchEvents streams events written after since until ctx ends.
func (s *Store) WatchEvents(ctx context.Context, since int64) <-chan api.Event {
	out := make(chan api.Event, 64)
	go func() {
		defer close(out)
		opts := []clientv3.OpOption{clientv3.WithPrefix()}
		if since > 0 {
			opts = append(opts, clientv3.WithRev(since+1))
		}
		for resp := range s.cli.Watch(clientv3.WithRequireLeader(ctx), prefixEvents, opts...) {
			for _, ev := range resp.Events {
				if ev.Type != clientv3.EventTypePut {
					continue
				}
				var e api.Event
				if err := json.Unmarshal(ev.Kv.Value, &e); err != nil {
					continue
				}
				e.Seq = ev.Kv.ModRevision
				select {
				case out <- e:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// TrimEvents deletes events beyond the newest maxEvents.
func (s *Store) TrimEvents(ctx context.Context) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, prefixEvents, clientv3.WithPrefix(), clientv3.WithKeysOnly(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(maxEvents+1))
	if err != nil {
		return unavailable("trim events", err)
	}
	if len(resp.Kvs) <= maxEvents {
		return nil
	}
	oldestKept := string(resp.Kvs[maxEvents-1].Key)
	_, err = s.cli.Delete(ctx, prefixEvents, clientv3.WithRange(oldestKept))
	if err != nil {
		return unavailable("trim events", err)
	}
	return nil
}

// --- jobs ---

// PutJob records a job run.
func (s *Store) PutJob(ctx context.Context, j api.JobRun) error {
	return s.put(ctx, jobKey(j.Stack, j.ID), j)
}

// ListJobs returns a stack's job runs, oldest first (IDs sort by time).
func (s *Store) ListJobs(ctx context.Context, stack string) ([]api.JobRun, error) {
	return listJSON[api.JobRun](ctx, s, prefixJobs+stack+"/")
}

// DeleteJob forgets a job run.
func (s *Store) DeleteJob(ctx context.Context, stack, id string) error {
	return s.del(ctx, jobKey(stack, id))
}

// --- watches ---

// Watch signals (without payload) whenever a key under prefix changes.
// Controllers are level-triggered: on a signal they read the state they
// need and act, so coalescing signals loses nothing. The channel closes
// when ctx ends; if the watch breaks it is re-established.
func (s *Store) Watch(ctx context.Context, prefix string) <-chan struct{} {
	out := make(chan struct{}, 1)
	go func() {
		defer close(out)
		for ctx.Err() == nil {
			for range s.cli.Watch(clientv3.WithRequireLeader(ctx), prefix, clientv3.WithPrefix()) {
				select {
				case out <- struct{}{}:
				default:
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
				// Signal after a broken watch: changes may have been missed.
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}()
	return out
}
