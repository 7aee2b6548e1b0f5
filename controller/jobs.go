package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/store"
	"github.com/robfig/cron/v3"
)

// JobRunner runs a job container on a node (the agent).
type JobRunner interface {
	RunJob(ctx context.Context, job api.JobRun, spec *api.ServiceSpec, env map[string]string, stdout, stderr io.Writer) (int, error)
}

// keepRuns is the job history kept per service.
const keepRuns = 20

// outputTail is how much of a job's output its record keeps.
const outputTail = 4 << 10

// CronParser parses x-berth.schedule: five fields or a descriptor
// (@hourly, @every 5m).
var CronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Jobs runs one-off and scheduled jobs and keeps their history.
type Jobs struct {
	store  *store.Store
	runner JobRunner
	log    *slog.Logger
	node   string

	mu      sync.Mutex
	running map[string]string // stack/service → running scheduled job ID
	wg      sync.WaitGroup
}

// NewJobs returns a job runner that runs jobs on node through runner.
func NewJobs(st *store.Store, runner JobRunner, node string, logger *slog.Logger) *Jobs {
	return &Jobs{store: st, runner: runner, node: node, log: logger, running: map[string]string{}}
}

// Run runs cmd (or the service's command) in a fresh container of the
// service's current revision, writing output as it comes, and records the
// run. It returns the record, whose ExitCode is the command's.
func (j *Jobs) Run(ctx context.Context, stack, service string, cmd []string, env map[string]string, stdout, stderr io.Writer) (api.JobRun, error) {
	svc, _, err := j.store.GetService(ctx, stack, service)
	if errors.Is(err, api.ErrNotFound) {
		return api.JobRun{}, api.NotFoundf("stack %q has no service %q; see `berth status %s`", stack, service, stack)
	}
	if err != nil {
		return api.JobRun{}, err
	}
	rev, err := j.store.GetRevision(ctx, stack, service, svc.Revision)
	if err != nil {
		return api.JobRun{}, err
	}
	return j.run(ctx, rev, cmd, env, false, stdout, stderr)
}

func (j *Jobs) run(ctx context.Context, rev api.Revision, cmd []string, env map[string]string, scheduled bool, stdout, stderr io.Writer) (api.JobRun, error) {
	job := api.JobRun{
		ID: jobID(time.Now()), Stack: rev.Stack, Service: rev.Service, Revision: rev.Number,
		Command: cmd, Scheduled: scheduled, Node: j.node, State: api.JobRunning, StartedAt: time.Now().UTC(),
	}
	if err := j.store.PutJob(ctx, job); err != nil {
		return job, err
	}
	tail := &tailBuffer{max: outputTail}
	var outMu sync.Mutex
	out := lockedWriter{mu: &outMu, w: io.MultiWriter(stdout, tail)}
	errw := lockedWriter{mu: &outMu, w: io.MultiWriter(stderr, tail)}
	code, err := j.runner.RunJob(ctx, job, &rev.Spec, env, out, errw)
	job.EndedAt = time.Now().UTC()
	job.ExitCode = code
	job.Output = tail.String()
	switch {
	case err != nil:
		job.State, job.Reason = api.JobFailed, err.Error()
	case code != 0:
		job.State, job.Reason = api.JobFailed, fmt.Sprintf("exited with code %d", code)
	default:
		job.State = api.JobSucceeded
	}
	// Record the outcome even if the caller went away.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if perr := j.store.PutJob(sctx, job); perr != nil {
		j.log.Warn("record job", "job", job.ID, "err", perr)
	}
	j.trim(sctx, rev.Stack, rev.Service)
	typ := "job.succeeded"
	if job.State == api.JobFailed {
		typ = "job.failed"
	}
	msg := fmt.Sprintf("job %s exited with code %d", job.ID, code)
	if err != nil {
		msg = fmt.Sprintf("job %s: %v", job.ID, err)
	}
	_ = j.store.AppendEvent(sctx, api.Event{Type: typ, Stack: rev.Stack, Service: rev.Service, Message: msg})
	return job, err
}

// trim keeps the newest keepRuns runs of a service.
func (j *Jobs) trim(ctx context.Context, stack, service string) {
	runs, err := j.store.ListJobs(ctx, stack)
	if err != nil {
		return
	}
	var mine []api.JobRun
	for _, r := range runs {
		if r.Service == service {
			mine = append(mine, r)
		}
	}
	for i := 0; i < len(mine)-keepRuns; i++ {
		_ = j.store.DeleteJob(ctx, stack, mine[i].ID)
	}
}

// RunScheduler starts scheduled jobs when due until ctx ends. A run that
// is due while the previous run of the same service still runs is skipped
// and recorded as skipped (no overlap).
func (j *Jobs) RunScheduler(ctx context.Context) error {
	defer j.wg.Wait()
	next := map[string]time.Time{} // stack/service/revision → next run
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			if err := j.schedulePass(ctx, now, next); err != nil && ctx.Err() == nil {
				j.log.Warn("job scheduler pass", "err", err)
			}
		}
	}
}

func (j *Jobs) schedulePass(ctx context.Context, now time.Time, next map[string]time.Time) error {
	svcs, err := j.store.ListServices(ctx, "")
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, svc := range svcs {
		if svc.Stopped {
			continue
		}
		rev, err := j.store.GetRevision(ctx, svc.Stack, svc.Name, svc.Revision)
		if err != nil || rev.Spec.Schedule == "" {
			continue
		}
		key := fmt.Sprintf("%s/%s/%d", svc.Stack, svc.Name, svc.Revision)
		seen[key] = true
		sched, err := CronParser.Parse(rev.Spec.Schedule)
		if err != nil {
			continue // validated at deploy; an old revision may predate a parser change
		}
		due, ok := next[key]
		if !ok {
			next[key] = sched.Next(now)
			continue
		}
		if now.Before(due) {
			continue
		}
		next[key] = sched.Next(now)
		j.startScheduled(ctx, rev)
	}
	for k := range next {
		if !seen[k] {
			delete(next, k)
		}
	}
	return nil
}

func (j *Jobs) startScheduled(ctx context.Context, rev api.Revision) {
	if ctx.Err() != nil {
		return // shutting down: start nothing new
	}
	key := rev.Stack + "/" + rev.Service
	j.mu.Lock()
	prev, busy := j.running[key]
	if !busy {
		j.running[key] = "starting"
	}
	j.mu.Unlock()
	if busy {
		skip := api.JobRun{ID: jobID(time.Now()), Stack: rev.Stack, Service: rev.Service, Revision: rev.Number,
			Scheduled: true, State: api.JobSkipped, Reason: "previous run " + prev + " still running",
			StartedAt: time.Now().UTC(), EndedAt: time.Now().UTC()}
		_ = j.store.PutJob(ctx, skip)
		_ = j.store.AppendEvent(ctx, api.Event{Type: "job.skipped", Stack: rev.Stack, Service: rev.Service, Message: skip.Reason})
		return
	}
	j.wg.Add(1)
	go func() {
		defer j.wg.Done()
		defer func() {
			j.mu.Lock()
			delete(j.running, key)
			j.mu.Unlock()
		}()
		if _, err := j.run(ctx, rev, nil, nil, true, io.Discard, io.Discard); err != nil && ctx.Err() == nil {
			j.log.Warn("scheduled job", "stack", rev.Stack, "service", rev.Service, "err", err)
		}
	}()
}

// jobID sorts by start time and is unique enough within a stack.
func jobID(t time.Time) string {
	return fmt.Sprintf("%s-%s", t.UTC().Format("20060102t150405"), NewID()[:6])
}

// SortJobs orders runs newest first.
func SortJobs(runs []api.JobRun) {
	sort.Slice(runs, func(a, b int) bool { return runs[a].StartedAt.After(runs[b].StartedAt) })
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// tailBuffer keeps the last max bytes written.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.buf) }
