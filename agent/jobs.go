package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/runtime"
)

// RunJob runs a job in a fresh container of a service revision, on the
// stack's network with the service's environment, limits and privileges.
// Output goes to stdout and stderr as it is produced. It returns the
// command's exit code. The container is removed afterwards.
func (a *Agent) RunJob(ctx context.Context, job api.JobRun, spec *api.ServiceSpec, env map[string]string, stdout, stderr io.Writer) (int, error) {
	a.mu.Lock()
	a.jobs[job.ID] = true
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.jobs, job.ID)
		a.mu.Unlock()
	}()

	if err := a.ensureStackObjects(ctx, job.Stack, spec); err != nil {
		return -1, err
	}
	labels := a.ownLabels()
	labels[api.LabelStack] = job.Stack
	labels[api.LabelService] = job.Service
	labels[api.LabelJob] = job.ID
	labels[api.LabelRevision] = strconv.Itoa(job.Revision)
	extra := map[string]string{"BERTH_STACK": job.Stack, "BERTH_SERVICE": job.Service, "BERTH_JOB": job.ID}
	for k, v := range env {
		extra[k] = v
	}
	if err := a.ensureImage(ctx, spec); err != nil {
		return -1, err
	}
	cs := a.baseSpec(job.Stack, spec, labels, extra)
	cs.Name = jobContainerName(job)
	if len(job.Command) > 0 {
		cs.Cmd = job.Command
	}
	// A job's container is not a service endpoint: no service alias.
	cs.Aliases = nil
	if err := a.deliverSecrets(ctx, jobSecretsOwner(job.ID), job.Stack, spec, &cs); err != nil {
		return -1, err
	}
	defer a.removeSecrets(jobSecretsOwner(job.ID))

	// The create is not cut short by the caller going away: a create the
	// engine finishes after we stopped waiting would leave a container we
	// do not know the ID of. The deferred remove below cleans up instead.
	cctx, cancel := a.engineCtx(context.WithoutCancel(ctx))
	id, err := a.drv.Create(cctx, cs)
	cancel()
	if err != nil {
		return -1, fmt.Errorf("create job container: %w", err)
	}
	defer func() {
		rctx, cancel := a.engineCtx(context.WithoutCancel(ctx))
		defer cancel()
		if err := a.drv.Remove(rctx, id); err != nil && !errors.Is(err, runtime.ErrNotFound) {
			a.log.Warn("remove job container", "job", job.ID, "err", err)
		}
	}()
	if ctx.Err() != nil {
		return -1, ctx.Err()
	}
	sctx, cancel := a.engineCtx(ctx)
	err = a.drv.Start(sctx, id)
	cancel()
	if err != nil {
		return -1, fmt.Errorf("start job container: %w", err)
	}
	// Logs with follow end when the container exits; they replay from the
	// container's start, so nothing written before the attach is lost.
	if err := a.drv.Logs(ctx, id, runtime.LogOptions{Follow: true}, stdout, stderr); err != nil && ctx.Err() == nil {
		a.log.Warn("job output stream", "job", job.ID, "err", err)
	}
	code, err := a.drv.Wait(ctx, id)
	if err != nil {
		if ctx.Err() != nil {
			kctx, cancel := a.engineCtx(context.WithoutCancel(ctx))
			_ = a.drv.Kill(kctx, id, "KILL")
			cancel()
		}
		return -1, fmt.Errorf("wait for job: %w", err)
	}
	return code, nil
}
