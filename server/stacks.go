package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/controller"
)

func (s *Server) deploy(w http.ResponseWriter, r *http.Request) (any, error) {
	name, err := pathName(r, "stack", "stack name")
	if err != nil {
		return nil, err
	}
	var req api.DeployRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.Stack.Name == "" {
		req.Stack.Name = name
	}
	if req.Stack.Name != name {
		return nil, api.Invalidf("stack name %q in the body does not match %q in the path", req.Stack.Name, name)
	}
	if err := req.Stack.Validate(); err != nil {
		return nil, err
	}
	ctx := r.Context()
	began := time.Now()
	// Signatures first: a verified tag is pinned to the digest that was
	// verified, and the engine resolves exactly that.
	if err := s.verifyImages(ctx, &req.Stack); err != nil {
		return nil, err
	}
	if err := s.resolveImages(ctx, &req.Stack); err != nil {
		return nil, err
	}

	resolved := time.Now()
	unlock := s.lockStack(name)
	defer unlock()
	tenant, err := s.deployTenant(ctx, name, req)
	if err != nil {
		return nil, err
	}
	if err := s.checkQuota(ctx, tenant, &req.Stack); err != nil {
		return nil, err
	}
	if err := s.deploySecrets(ctx, &req); err != nil {
		return nil, err
	}
	cur, err := s.current(ctx, name)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	write, changes := controller.PlanDeploy(&req.Stack, cur, now)
	by := caller(r)
	for i := range write.Revisions {
		write.Revisions[i].CreatedBy = by
	}
	for _, svc := range write.Services {
		if ro := svc.Rollout; ro != nil && ro.Started.Equal(now) {
			ro.By = by
		}
	}
	write.Record.Tenant = tenant
	for _, ch := range changes {
		if ch.Action != api.ChangeUpdated {
			continue
		}
		if ro := cur.Services[ch.Service].Rollout; ro != nil && ro.State == api.RolloutInProgress {
			return nil, api.Conflictf("service %q is still rolling out revision %d (started %s ago); wait for it (berth status %s), or berth rollout abort %s, then deploy again",
				ch.Service, ro.To, time.Since(ro.Started).Round(time.Second), name, name)
		}
	}
	resp := api.DeployResponse{Stack: name, Changes: changes, Warnings: req.Stack.Warnings, DryRun: req.DryRun}
	if req.DryRun || (cur.Record != nil && controller.Unchanged(changes)) {
		return resp, nil
	}
	planned := time.Now()
	if err := s.store.ApplyStack(ctx, write); err != nil {
		return nil, fmtErr("deploy "+name, err)
	}
	s.log.Debug("deploy stored", "stack", name, "images", resolved.Sub(began).Round(time.Millisecond),
		"plan", planned.Sub(resolved).Round(time.Millisecond), "write", time.Since(planned).Round(time.Millisecond))
	s.event(ctx, api.Event{Type: "stack.deploy", Stack: name, Message: summarize(changes)})
	return resp, nil
}

// resolveImages pins every service's image to the digest it has now.
func (s *Server) resolveImages(ctx context.Context, st *api.Stack) error {
	var errs []string
	names := make([]string, 0, len(st.Services))
	for n := range st.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		svc := st.Services[n]
		pin, err := s.pinImage(ctx, svc.Image)
		if err != nil {
			if errors.Is(err, api.ErrUnavailable) {
				return fmt.Errorf("service %q: %w; nothing was deployed", n, err)
			}
			errs = append(errs, fmt.Sprintf("service %q: %v", n, err))
			continue
		}
		svc.ImageID, svc.ImageDigest = pin.ID, pin.Digest
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s; nothing was deployed", api.ErrInvalid, strings.Join(errs, "; "))
	}
	return nil
}

// current reads what is stored of a stack for PlanDeploy.
func (s *Server) current(ctx context.Context, name string) (controller.Current, error) {
	cur := controller.Current{Services: map[string]api.ServiceState{}, Latest: map[string]api.Revision{}}
	rec, ver, err := s.store.GetStack(ctx, name)
	switch {
	case errors.Is(err, api.ErrNotFound):
	case err != nil:
		return cur, err
	default:
		cur.Record, cur.Version = &rec, ver
	}
	svcs, err := s.store.ListServices(ctx, name)
	if err != nil {
		return cur, err
	}
	for _, svc := range svcs {
		cur.Services[svc.Name] = svc
		latest, err := s.store.LatestRevision(ctx, name, svc.Name)
		if err != nil {
			return cur, err
		}
		cur.Latest[svc.Name] = latest
	}
	return cur, nil
}

func summarize(changes []api.ServiceChange) string {
	var parts []string
	for _, c := range changes {
		if c.Action == api.ChangeUnchanged {
			continue
		}
		if c.Revision > 0 {
			parts = append(parts, fmt.Sprintf("%s %s (revision %d, %d replicas)", c.Service, c.Action, c.Revision, c.Replicas))
		} else {
			parts = append(parts, c.Service+" "+c.Action)
		}
	}
	if len(parts) == 0 {
		return "no changes"
	}
	return strings.Join(parts, ", ")
}

func (s *Server) listStacks(w http.ResponseWriter, r *http.Request) (any, error) {
	ctx := r.Context()
	recs, err := s.store.ListStacks(ctx)
	if err != nil {
		return nil, err
	}
	views, err := s.taskViews(ctx, "")
	if err != nil {
		return nil, err
	}
	out := make([]api.StackSummary, 0, len(recs))
	visible := s.visibility(ctx)
	for _, rec := range recs {
		if !visible(rec.Name) {
			continue
		}
		sum := api.StackSummary{Name: rec.Name, Services: len(rec.Services), Updated: rec.UpdatedAt}
		for _, v := range views {
			if v.Task.Stack != rec.Name {
				continue
			}
			sum.Tasks++
			if v.Status != nil && v.Status.State == api.StateRunning {
				sum.Running++
			}
		}
		out = append(out, sum)
	}
	return out, nil
}

func (s *Server) stackStatus(w http.ResponseWriter, r *http.Request) (any, error) {
	name, err := pathName(r, "stack", "stack name")
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	rec, _, err := s.store.GetStack(ctx, name)
	if errors.Is(err, api.ErrNotFound) {
		return nil, notFoundStack(name)
	}
	if err != nil {
		return nil, err
	}
	svcs, err := s.store.ListServices(ctx, name)
	if err != nil {
		return nil, err
	}
	views, err := s.taskViews(ctx, name)
	if err != nil {
		return nil, err
	}
	out := api.StackStatus{Name: name, Sources: rec.Sources, UpdatedAt: rec.UpdatedAt}
	for _, svc := range svcs {
		rev, err := s.store.GetRevision(ctx, name, svc.Name, svc.Revision)
		if err != nil {
			return nil, err
		}
		ss := api.ServiceStatus{Name: svc.Name, Revision: svc.Revision, Image: rev.Spec.Image, ImageID: rev.Spec.ImageID,
			ImageDigest: rev.Spec.ImageDigest, PendingUpdate: svc.PendingUpdate,
			Replicas: svc.Replicas, Stopped: svc.Stopped, Schedule: rev.Spec.Schedule, Rollout: svc.Rollout, History: svc.History, Tasks: []api.TaskView{}}
		for _, v := range views {
			if v.Task.Service != svc.Name {
				continue
			}
			ss.Tasks = append(ss.Tasks, v)
			if v.Status != nil && v.Status.State == api.StateRunning && v.Task.Revision == svc.Revision {
				ss.Running++
			}
		}
		out.Services = append(out.Services, ss)
	}
	return out, nil
}

func (s *Server) removeStack(w http.ResponseWriter, r *http.Request) (any, error) {
	name, err := pathName(r, "stack", "stack name")
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	unlock := s.lockStack(name)
	defer unlock()
	if _, _, err := s.store.GetStack(ctx, name); errors.Is(err, api.ErrNotFound) {
		return nil, notFoundStack(name)
	} else if err != nil {
		return nil, err
	}
	if err := s.store.DeleteStack(ctx, name); err != nil {
		return nil, err
	}
	_ = s.store.ReleaseStack(ctx, name)
	s.event(ctx, api.Event{Type: "stack.remove", Stack: name, Message: "stack removed"})
	if v, _ := strconv.ParseBool(r.URL.Query().Get("volumes")); v {
		if err := s.nodes.RemoveVolumes(ctx, name); err != nil {
			return nil, fmtErr("remove volumes of "+name, err)
		}
		s.event(ctx, api.Event{Type: "stack.volumes_removed", Stack: name, Message: "named volumes removed"})
	}
	return map[string]string{"removed": name}, nil
}

// updateServices applies f to the services of a stack (one service when
// the query names it) with optimistic concurrency.
func (s *Server) updateServices(r *http.Request, what string, f func(*api.ServiceState)) (any, error) {
	only := r.URL.Query().Get("service")
	if only == "" {
		only = r.PathValue("service")
	}
	return s.updateServicesFor(r, only, what, f, nil)
}

// updateServicesFor applies f to one service (or all when only is "") and
// writes the results; check, when set, may refuse what f decided before
// anything is written.
func (s *Server) updateServicesFor(r *http.Request, only, what string, f func(*api.ServiceState), check func() error) (any, error) {
	name, err := pathName(r, "stack", "stack name")
	if err != nil {
		return nil, err
	}
	if only != "" {
		if err := api.ValidateName("service name", only); err != nil {
			return nil, err
		}
	}
	ctx := r.Context()
	unlock := s.lockStack(name)
	defer unlock()
	if _, _, err := s.store.GetStack(ctx, name); errors.Is(err, api.ErrNotFound) {
		return nil, notFoundStack(name)
	} else if err != nil {
		return nil, err
	}
	svcs, err := s.store.ListServices(ctx, name)
	if err != nil {
		return nil, err
	}
	type write struct {
		svc api.ServiceState
		ver int64
	}
	var writes []write
	var done []string
	for _, svc := range svcs {
		if only != "" && svc.Name != only {
			continue
		}
		_, ver, err := s.store.GetService(ctx, name, svc.Name)
		if err != nil {
			return nil, err
		}
		f(&svc)
		if check != nil {
			if err := check(); err != nil {
				return nil, err
			}
		}
		svc.UpdatedAt = time.Now().UTC()
		writes = append(writes, write{svc, ver})
		done = append(done, svc.Name)
	}
	for _, w := range writes {
		if err := s.store.UpdateService(ctx, w.svc, w.ver); err != nil {
			return nil, err
		}
	}
	if only != "" && len(done) == 0 {
		return nil, api.NotFoundf("stack %q has no service %q", name, only)
	}
	s.event(ctx, api.Event{Type: "stack." + what, Stack: name, Service: only, Message: what + " " + strings.Join(done, ", ")})
	return map[string]any{"stack": name, "services": done}, nil
}

func (s *Server) scale(w http.ResponseWriter, r *http.Request) (any, error) {
	var req api.ScaleRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.Replicas < 0 || req.Replicas > 1000 {
		return nil, api.Invalidf("replicas %d out of range 0..1000", req.Replicas)
	}
	if err := s.checkScaleQuota(r, req.Replicas); err != nil {
		return nil, err
	}
	return s.updateServices(r, "scale", func(svc *api.ServiceState) { svc.Replicas = req.Replicas })
}

func (s *Server) restart(w http.ResponseWriter, r *http.Request) (any, error) {
	return s.updateServices(r, "restart", func(svc *api.ServiceState) { svc.RestartGen++; svc.Stopped = false })
}

func (s *Server) stop(w http.ResponseWriter, r *http.Request) (any, error) {
	return s.updateServices(r, "stop", func(svc *api.ServiceState) { svc.Stopped = true })
}

func (s *Server) start(w http.ResponseWriter, r *http.Request) (any, error) {
	return s.updateServices(r, "start", func(svc *api.ServiceState) { svc.Stopped = false })
}

func (s *Server) revisions(w http.ResponseWriter, r *http.Request) (any, error) {
	stack, err := pathName(r, "stack", "stack name")
	if err != nil {
		return nil, err
	}
	svc, err := pathName(r, "service", "service name")
	if err != nil {
		return nil, err
	}
	revs, err := s.store.ListRevisions(r.Context(), stack, svc)
	if err != nil {
		return nil, err
	}
	if len(revs) == 0 {
		return nil, api.NotFoundf("no revisions of %s/%s", stack, svc)
	}
	return revs, nil
}

// rollback points services back at an earlier revision (kept with its
// image, so it is fast) and starts a rollout to it.
func (s *Server) rollback(w http.ResponseWriter, r *http.Request) (any, error) {
	var req api.RollbackRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.To < 0 {
		return nil, api.Invalidf("revision %d: give a revision number from `berth history`", req.To)
	}
	ctx := r.Context()
	var problem error
	res, err := s.updateServicesFor(r, req.Service, "rollback", func(svc *api.ServiceState) {
		to := req.To
		if to == 0 {
			to = svc.Revision - 1
			if svc.Rollout != nil && svc.Rollout.To == svc.Revision {
				to = svc.Rollout.From
			}
		}
		if to < 1 || to == svc.Revision {
			problem = api.Invalidf("service %q is at revision %d; there is no earlier revision %d to roll back to", svc.Name, svc.Revision, to)
			return
		}
		rev, err := s.store.GetRevision(ctx, svc.Stack, svc.Name, to)
		if err != nil {
			problem = api.NotFoundf("service %q has no revision %d; see `berth history %s`", svc.Name, to, svc.Stack)
			return
		}
		ro := controller.NewRollout(svc.Revision, to, rev.Spec.Update, time.Now().UTC())
		ro.By = caller(r)
		svc.BeginRollout(ro)
		svc.Revision = to
	}, func() error { return problem })
	return res, err
}

// rolloutAction pauses, resumes or aborts the rollouts of a stack's
// services (one service with ?service=).
func (s *Server) rolloutAction(w http.ResponseWriter, r *http.Request) (any, error) {
	action := r.PathValue("action")
	now := time.Now().UTC()
	var problem error
	var events []api.Event
	only := r.URL.Query().Get("service")
	affected := 0
	f := func(svc *api.ServiceState) {
		ro := svc.Rollout
		if ro == nil || ro.State != api.RolloutInProgress {
			if only != "" {
				problem = api.Conflictf("service %q has no rollout in progress; see `berth rollout status %s`", svc.Name, svc.Stack)
			}
			return
		}
		affected++
		rr := *ro
		switch action {
		case "pause":
			rr.Paused = true
		case "resume":
			if rr.Paused {
				rr.Deadline = now.Add(rr.Deadline.Sub(rr.Started))
				rr.Started = now
			}
			rr.Paused = false
		case "abort":
			next, ev, err := controller.AbortRollout(*svc, "aborted (berth rollout abort)", now)
			if err != nil {
				problem = err
				return
			}
			*svc = next
			events = append(events, *ev)
			return
		}
		svc.Rollout = &rr
	}
	switch action {
	case "pause", "resume", "abort":
	default:
		return nil, api.NotFoundf("no rollout action %q; use pause, resume or abort", action)
	}
	res, err := s.updateServicesFor(r, only, "rollout."+action, f, func() error { return problem })
	if err == nil && affected == 0 {
		return nil, api.Conflictf("no rollout in progress in stack %q", r.PathValue("stack"))
	}
	if err != nil {
		return nil, err
	}
	for _, ev := range events {
		s.event(r.Context(), ev)
	}
	return res, nil
}
