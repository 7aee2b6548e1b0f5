package server

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/controller"
	"github.com/berth-dev/berth/secrets"
)

// Security is what the server needs for secrets, tenants, image trust
// and host audits. Parts left nil are refused with a clear error.
type Security struct {
	// Vault seals and stores secrets.
	Vault *secrets.Vault
	// DefaultMemory is the memory limit a task without one gets (quotas
	// count it).
	DefaultMemory int64
	// Trust verifies image signatures when a stack requires them.
	Trust ImageVerifier
	// HostAudit runs the CIS Docker Benchmark checks on the engine and
	// its running containers (only berth's own with ownOnly).
	HostAudit func(ctx context.Context, ownOnly bool) (any, error)
}

// SetSecurity gives the server its security parts; call before serving.
func (s *Server) SetSecurity(sec Security) { s.sec = sec }

func (s *Server) securityRoutes(mux *routeMux) {
	mux.HandleFunc("GET /v1/whoami", s.wrap(s.whoami))
	mux.HandleFunc("GET /v1/stacks/{stack}/secrets", s.wrap(s.listSecrets))
	mux.HandleFunc("POST /v1/stacks/{stack}/secrets/{name}", s.wrap(s.writeSecret(secrets.Create)))
	mux.HandleFunc("PUT /v1/stacks/{stack}/secrets/{name}", s.wrap(s.writeSecret(secrets.Rotate)))
	mux.HandleFunc("DELETE /v1/stacks/{stack}/secrets/{name}", s.wrap(s.removeSecret))
	mux.HandleFunc("POST /v1/secrets/rotate-key", s.wrap(s.rotateKey))
	mux.HandleFunc("GET /v1/tokens", s.wrap(s.listTokens))
	mux.HandleFunc("POST /v1/tokens", s.wrap(s.createToken))
	mux.HandleFunc("DELETE /v1/tokens/{id}", s.wrap(s.revokeToken))
	mux.HandleFunc("GET /v1/tenants", s.wrap(s.listTenants))
	mux.HandleFunc("PUT /v1/tenants/{tenant}", s.wrap(s.putTenant))
	mux.HandleFunc("GET /v1/audit", s.wrap(s.listAudit))
	mux.HandleFunc("GET /v1/audit/host", s.wrap(s.hostAudit))
}

func (s *Server) vault() (*secrets.Vault, error) {
	if s.sec.Vault == nil {
		return nil, fmt.Errorf("%w: this server keeps no secrets (no key ring configured)", api.ErrUnavailable)
	}
	return s.sec.Vault, nil
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request) (any, error) {
	p := principal(r.Context())
	return api.Whoami{Who: p.Who, Role: p.Role, Tenant: p.Tenant}, nil
}

func (s *Server) listSecrets(w http.ResponseWriter, r *http.Request) (any, error) {
	stack, err := pathName(r, "stack", "stack name")
	if err != nil {
		return nil, err
	}
	v, err := s.vault()
	if err != nil {
		return nil, err
	}
	infos, err := v.List(r.Context(), stack)
	if err != nil {
		return nil, err
	}
	used, err := s.secretUsers(r.Context(), stack)
	if err != nil {
		return nil, err
	}
	for i := range infos {
		infos[i].UsedBy = used[infos[i].Name]
	}
	return infos, nil
}

// secretUsers maps each secret of a stack to the services whose current
// revision mounts it.
func (s *Server) secretUsers(ctx context.Context, stack string) (map[string][]string, error) {
	out := map[string][]string{}
	svcs, err := s.store.ListServices(ctx, stack)
	if err != nil {
		return nil, err
	}
	for _, svc := range svcs {
		rev, err := s.store.GetRevision(ctx, stack, svc.Name, svc.Revision)
		if err != nil {
			return nil, err
		}
		for _, ref := range rev.Spec.Secrets {
			out[ref.Source] = append(out[ref.Source], svc.Name)
		}
	}
	return out, nil
}

// claim makes sure the stack belongs to the caller's tenant (or to
// tenant, for a caller of every tenant), claiming it if nobody has.
func (s *Server) claim(ctx context.Context, stack, tenant string) (string, error) {
	p := principal(ctx)
	want := tenant
	if p.Scoped() {
		if tenant != "" && tenant != p.Tenant {
			return "", fmt.Errorf("%w: a token of tenant %q cannot deploy for tenant %q", errForbidden, p.Tenant, tenant)
		}
		want = p.Tenant
	}
	if want != "" {
		if err := api.ValidateName("tenant name", want); err != nil {
			return "", err
		}
	}
	owner, err := s.store.ClaimStack(ctx, stack, want)
	if err != nil {
		return "", err
	}
	if owner != want && (p.Scoped() || tenant != "") {
		if p.Scoped() {
			return "", notFoundStack(stack)
		}
		return "", api.Conflictf("stack %q belongs to tenant %q, not %q; deploy it under another name", stack, owner, want)
	}
	return owner, nil
}

func (s *Server) writeSecret(mode secrets.WriteMode) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) (any, error) {
		stack, err := pathName(r, "stack", "stack name")
		if err != nil {
			return nil, err
		}
		name, err := pathName(r, "name", "secret name")
		if err != nil {
			return nil, err
		}
		var req api.SecretValue
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		defer clear(req.Value)
		v, err := s.vault()
		if err != nil {
			return nil, err
		}
		ctx := r.Context()
		unlock := s.lockStack(stack)
		defer unlock()
		if _, err := s.claim(ctx, stack, ""); err != nil {
			return nil, err
		}
		if mode == secrets.Rotate {
			if err := s.checkNoRollout(ctx, stack, name); err != nil {
				return nil, err
			}
		}
		info, _, err := v.Write(ctx, stack, name, req.Value, mode)
		if err != nil {
			return nil, err
		}
		out := api.SecretChange{Secret: info}
		what := "created"
		if mode == secrets.Rotate {
			what = fmt.Sprintf("rotated to version %d", info.Version)
			if out.Changes, err = s.rollSecret(ctx, stack, name, info.Version); err != nil {
				return nil, fmt.Errorf("secret %q is stored as version %d, but its services were not rolled: %w", name, info.Version, err)
			}
		}
		s.event(ctx, api.Event{Type: "secret." + map[secrets.WriteMode]string{secrets.Create: "create", secrets.Rotate: "rotate"}[mode],
			Stack: stack, Message: fmt.Sprintf("secret %s %s", name, what)})
		return out, nil
	}
}

// checkNoRollout refuses a rotation while a service using the secret is
// still rolling out: the rotation's own rollout would start from the
// wrong revision.
func (s *Server) checkNoRollout(ctx context.Context, stack, name string) error {
	used, err := s.secretUsers(ctx, stack)
	if err != nil {
		return err
	}
	for _, svc := range used[name] {
		st, _, err := s.store.GetService(ctx, stack, svc)
		if err != nil {
			return err
		}
		if ro := st.Rollout; ro != nil && ro.State == api.RolloutInProgress {
			return api.Conflictf("service %q is still rolling out revision %d; wait for it (berth status %s) before rotating secret %q", svc, ro.To, stack, name)
		}
	}
	return nil
}

// rollSecret gives every service whose current revision mounts secret a
// new revision that mounts version, through the normal deploy planner:
// the rollout machinery then replaces its tasks.
func (s *Server) rollSecret(ctx context.Context, stack, secret string, version int) ([]api.ServiceChange, error) {
	cur, err := s.current(ctx, stack)
	if err != nil || cur.Record == nil {
		return nil, err
	}
	st := &api.Stack{Name: stack, Services: map[string]*api.ServiceSpec{}, Networks: cur.Record.Networks,
		Volumes: cur.Record.Volumes, Sources: cur.Record.Sources}
	for name, svc := range cur.Services {
		rev, err := s.store.GetRevision(ctx, stack, name, svc.Revision)
		if err != nil {
			return nil, err
		}
		spec := rev.Spec
		spec.Replicas = svc.Replicas
		spec.Secrets = append([]api.FileRef(nil), spec.Secrets...)
		for i := range spec.Secrets {
			if spec.Secrets[i].Source == secret {
				spec.Secrets[i].Version = version
			}
		}
		st.Services[name] = &spec
	}
	write, changes := controller.PlanDeploy(st, cur, time.Now().UTC())
	write.Record.Tenant = cur.Record.Tenant
	if controller.Unchanged(changes) {
		return nil, nil
	}
	if err := s.store.ApplyStack(ctx, write); err != nil {
		return nil, err
	}
	var out []api.ServiceChange
	for _, ch := range changes {
		if ch.Action != api.ChangeUnchanged {
			out = append(out, ch)
		}
	}
	s.event(ctx, api.Event{Type: "stack.deploy", Stack: stack, Message: "secret " + secret + " rotated: " + summarize(changes)})
	return out, nil
}

func (s *Server) removeSecret(w http.ResponseWriter, r *http.Request) (any, error) {
	stack, err := pathName(r, "stack", "stack name")
	if err != nil {
		return nil, err
	}
	name, err := pathName(r, "name", "secret name")
	if err != nil {
		return nil, err
	}
	v, err := s.vault()
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	unlock := s.lockStack(stack)
	defer unlock()
	latest, err := v.Latest(ctx, stack)
	if err != nil {
		return nil, err
	}
	if _, ok := latest[name]; !ok {
		return nil, api.NotFoundf("stack %q has no secret %q; see `berth secret ls %s`", stack, name, stack)
	}
	used, err := s.secretUsers(ctx, stack)
	if err != nil {
		return nil, err
	}
	if u := used[name]; len(u) > 0 {
		return nil, api.Conflictf("secret %q is used by service(s) %v of stack %q; remove it from them and deploy first", name, u, stack)
	}
	if err := v.Delete(ctx, stack, name); err != nil {
		return nil, err
	}
	_ = s.store.ReleaseStack(ctx, stack)
	s.event(ctx, api.Event{Type: "secret.remove", Stack: stack, Message: "secret " + name + " removed"})
	return map[string]string{"removed": name}, nil
}

func (s *Server) rotateKey(w http.ResponseWriter, r *http.Request) (any, error) {
	v, err := s.vault()
	if err != nil {
		return nil, err
	}
	res, err := v.RotateKey(r.Context())
	if err != nil {
		return nil, err
	}
	s.event(r.Context(), api.Event{Type: "secret.key_rotated", Message: fmt.Sprintf("key-encryption key rotated to %s; %d data keys re-wrapped", res.KeyID, res.Rewrapped)})
	return res, nil
}

// deploySecrets stores the values the CLI sent for the stack's secrets
// (new versions only where a value changed), checks that external ones
// exist, and pins every service's secret references to their versions.
func (s *Server) deploySecrets(ctx context.Context, req *api.DeployRequest) error {
	st := &req.Stack
	defer func() {
		for _, v := range req.Secrets {
			clear(v)
		}
		req.Secrets = nil
	}()
	var errs []string
	for name := range req.Secrets {
		if src, ok := st.Secrets[name]; !ok || src.External {
			errs = append(errs, fmt.Sprintf("a value was sent for secret %q, which the stack does not declare with file: or environment:", name))
		}
	}
	needed := len(st.Secrets) > 0
	for _, svc := range st.Services {
		needed = needed || len(svc.Secrets) > 0
	}
	if !needed {
		if len(errs) > 0 {
			return api.Invalidf("%s", errs[0])
		}
		return nil
	}
	v, err := s.vault()
	if err != nil {
		return err
	}
	latest, err := v.Latest(ctx, st.Name)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(st.Secrets))
	for n := range st.Secrets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		src := st.Secrets[name]
		if src.External {
			if _, ok := latest[name]; !ok {
				errs = append(errs, fmt.Sprintf("external secret %q does not exist in stack %q; create it with `berth secret create %s %s`", name, st.Name, st.Name, name))
			}
			continue
		}
		val, ok := req.Secrets[name]
		switch {
		case !ok:
			errs = append(errs, fmt.Sprintf("no value was sent for secret %q (deploy with the berth CLI, which reads file: and environment:)", name))
		case len(val) > api.MaxSecretSize:
			errs = append(errs, fmt.Sprintf("secret %q is %d bytes; the limit is %d", name, len(val), api.MaxSecretSize))
		}
	}
	if len(errs) > 0 {
		return api.Invalidf("%s; nothing was deployed", joinErrs(errs))
	}
	for _, name := range names {
		if st.Secrets[name].External || req.DryRun {
			continue
		}
		info, _, err := v.Write(ctx, st.Name, name, req.Secrets[name], secrets.Ensure)
		if err != nil {
			return err
		}
		latest[name] = info.Version
	}
	for _, svc := range st.Services {
		for i := range svc.Secrets {
			svc.Secrets[i].Version = max(latest[svc.Secrets[i].Source], 1)
		}
	}
	return nil
}

func joinErrs(errs []string) string { return strings.Join(errs, "; ") }
