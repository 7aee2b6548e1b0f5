package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/controller"
	"github.com/berth-dev/berth/store"
)

// PinResolver is an ImageResolver that also knows registries: a
// reference naming one resolves to the digest the registry serves.
type PinResolver interface {
	PinImage(ctx context.Context, ref string) (api.ImagePin, error)
}

// RegistryOps is the embedded registry as the API sees it.
type RegistryOps interface {
	Info() api.RegistryInfo
	GC(ctx context.Context, req api.RegistryGCRequest) (api.RegistryGCResult, error)
}

// SetRegistry gives the server the embedded registry (nil: none).
func (s *Server) SetRegistry(r RegistryOps) { s.registry = r }

func (s *Server) deliveryRoutes(mux *routeMux) {
	mux.HandleFunc("GET /v1/registry", s.wrap(s.registryInfo))
	mux.HandleFunc("POST /v1/registry/gc", s.wrap(s.registryGC))
	mux.HandleFunc("POST /v1/stacks/{stack}/services/{service}/update/approve", s.wrap(s.approveUpdate))
}

func (s *Server) pinImage(ctx context.Context, ref string) (api.ImagePin, error) {
	if p, ok := s.images.(PinResolver); ok {
		return p.PinImage(ctx, ref)
	}
	id, err := s.images.ResolveImage(ctx, ref)
	return api.ImagePin{ID: id}, err
}

func (s *Server) registryInfo(w http.ResponseWriter, r *http.Request) (any, error) {
	if s.registry == nil {
		return api.RegistryInfo{Error: "this berth server runs no registry (berth up --registry-addr off)"}, nil
	}
	return s.registry.Info(), nil
}

func (s *Server) registryGC(w http.ResponseWriter, r *http.Request) (any, error) {
	if s.registry == nil || s.registry.Info().Addr == "" {
		return nil, api.Conflictf("this berth server runs no registry to collect")
	}
	var req api.RegistryGCRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	res, err := s.registry.GC(r.Context(), req)
	if err != nil {
		return nil, err
	}
	s.event(r.Context(), api.Event{Type: "registry.gc", Message: fmt.Sprintf("freed %d bytes in %s", res.BytesBefore-res.BytesAfter, res.Took.D().Round(time.Millisecond))})
	return res, nil
}

// ImageUpdate is a followed tag found at a new digest (to, a pinned
// registry/repo@sha256:…). With approval auto the service gets a new
// revision running it, rolled out like any other (gates, automatic
// rollback); with approval required it is recorded for `berth update
// approve`. A rollout in progress makes it a conflict: the caller tries
// again later.
func (s *Server) ImageUpdate(ctx context.Context, stack, service, to string) error {
	unlock := s.lockStack(stack)
	defer unlock()
	svc, sver, err := s.store.GetService(ctx, stack, service)
	if err != nil {
		return err
	}
	rev, err := s.store.GetRevision(ctx, stack, service, svc.Revision)
	if err != nil {
		return err
	}
	au := rev.Spec.AutoUpdate
	if au == nil || !au.Follow {
		return api.Conflictf("service %q does not follow its tag", service)
	}
	if rev.Spec.ImageDigest == to {
		return nil
	}
	if au.Approval == api.ApprovalRequired {
		if p := svc.PendingUpdate; p != nil && p.To == to {
			return nil
		}
		svc.PendingUpdate = &api.PendingUpdate{Image: rev.Spec.Image, From: rev.Spec.ImageDigest, To: to, Seen: time.Now().UTC()}
		if err := s.store.UpdateService(ctx, svc, sver); err != nil {
			return err
		}
		s.event(ctx, api.Event{Type: "image.update.pending", Stack: stack, Service: service,
			Message: fmt.Sprintf("%s moved from %s to %s; approve with `berth update approve %s %s`", rev.Spec.Image, rev.Spec.ImageDigest, to, stack, service)})
		return nil
	}
	_, err = s.rollToDigest(ctx, svc, rev, to, "auto")
	return err
}

// rollToDigest stores a revision of svc running the pinned image to and
// starts its rollout, and returns the revision's number. The caller
// holds the stack's lock.
func (s *Server) rollToDigest(ctx context.Context, svc api.ServiceState, cur api.Revision, to, how string) (int, error) {
	if ro := svc.Rollout; ro != nil && ro.State == api.RolloutInProgress {
		return 0, api.Conflictf("service %q is still rolling out revision %d; the update waits for it", svc.Name, ro.To)
	}
	rec, ver, err := s.store.GetStack(ctx, svc.Stack)
	if err != nil {
		return 0, err
	}
	latest, err := s.store.LatestRevision(ctx, svc.Stack, svc.Name)
	if err != nil {
		return 0, err
	}
	now := time.Now().UTC()
	spec := cur.Spec
	spec.ImageDigest, spec.ImageID = to, ""
	next := api.Revision{Stack: svc.Stack, Service: svc.Name, Number: latest.Number + 1, Hash: controller.SpecHash(spec), Spec: spec, CreatedAt: now}
	from := svc.Revision
	svc.BeginRollout(controller.NewRollout(from, next.Number, spec.Update, now))
	svc.Revision, svc.PendingUpdate, svc.UpdatedAt = next.Number, nil, now
	rec.UpdatedAt = now
	if err := s.store.ApplyStack(ctx, store.StackWrite{Record: rec, Version: ver, Services: []api.ServiceState{svc}, Revisions: []api.Revision{next}}); err != nil {
		return 0, fmtErr("update "+svc.Stack+"/"+svc.Name, err)
	}
	s.event(ctx, api.Event{Type: "image.update", Stack: svc.Stack, Service: svc.Name,
		Message: fmt.Sprintf("%s (%s): %s → %s, revision %d → %d", cur.Spec.Image, how, cur.Spec.ImageDigest, to, from, next.Number)})
	return next.Number, nil
}

func (s *Server) approveUpdate(w http.ResponseWriter, r *http.Request) (any, error) {
	stack, err := pathName(r, "stack", "stack name")
	if err != nil {
		return nil, err
	}
	service, err := pathName(r, "service", "service name")
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	unlock := s.lockStack(stack)
	defer unlock()
	svc, _, err := s.store.GetService(ctx, stack, service)
	if errors.Is(err, api.ErrNotFound) {
		return nil, api.NotFoundf("service %q of stack %q is not deployed; see `berth status %s`", service, stack, stack)
	}
	if err != nil {
		return nil, err
	}
	if svc.PendingUpdate == nil {
		return nil, api.Conflictf("service %q has no update waiting for approval; see `berth status %s`", service, stack)
	}
	rev, err := s.store.GetRevision(ctx, stack, service, svc.Revision)
	if err != nil {
		return nil, err
	}
	n, err := s.rollToDigest(ctx, svc, rev, svc.PendingUpdate.To, "approved")
	if err != nil {
		return nil, err
	}
	return api.DeployResponse{Stack: stack, Changes: []api.ServiceChange{{Service: service, Action: api.ChangeUpdated, Revision: n}}}, nil
}
