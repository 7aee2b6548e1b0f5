package server

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/docker/go-units"
)

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) (any, error) {
	ts, err := s.store.ListTokens(r.Context())
	if err != nil {
		return nil, err
	}
	for i := range ts {
		ts[i].Hash = nil
	}
	return ts, nil
}

// maxTokenTTL bounds a token's life: every token expires.
const maxTokenTTL = 366 * 24 * time.Hour

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) (any, error) {
	var req api.TokenRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if api.RoleRank(req.Role) == 0 {
		return nil, api.Invalidf("role %q: use admin, deployer or viewer", req.Role)
	}
	if req.Tenant != "" {
		if err := api.ValidateName("tenant name", req.Tenant); err != nil {
			return nil, err
		}
	}
	if req.Name != "" {
		if err := api.ValidateName("token name", req.Name); err != nil {
			return nil, err
		}
	}
	ttl := req.TTL.D()
	if ttl == 0 {
		ttl = 30 * 24 * time.Hour
	}
	if ttl < time.Minute || ttl > maxTokenTTL {
		return nil, api.Invalidf("ttl %s: give a duration from 1m to %s", ttl, maxTokenTTL)
	}
	id, secret, err := newToken()
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	t := api.Token{ID: id, Name: req.Name, Role: req.Role, Tenant: req.Tenant, Hash: hashSecret(secret), CreatedAt: now, ExpiresAt: now.Add(ttl)}
	if err := s.store.PutToken(r.Context(), t); err != nil {
		return nil, err
	}
	t.Hash = nil
	return api.TokenCreated{Token: t, Secret: "berth_" + id + "_" + secret}, nil
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) (any, error) {
	id := r.PathValue("id")
	if !tokenIDRE.MatchString(id) {
		return nil, api.Invalidf("token id %q: give the 16 hex digits `berth token ls` shows", id)
	}
	t, err := s.store.GetToken(r.Context(), id)
	if err != nil {
		return nil, api.NotFoundf("no token %s; see `berth token ls`", id)
	}
	if t.RevokedAt.IsZero() {
		t.RevokedAt = time.Now().UTC()
		if err := s.store.PutToken(r.Context(), t); err != nil {
			return nil, err
		}
	}
	t.Hash = nil
	return t, nil
}

func (s *Server) listTenants(w http.ResponseWriter, r *http.Request) (any, error) {
	ctx := r.Context()
	ts, err := s.store.ListTenants(ctx)
	if err != nil {
		return nil, err
	}
	owners, err := s.store.ListOwners(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, t := range ts {
		seen[t.Name] = true
	}
	for _, o := range owners {
		if o.Tenant != "" && !seen[o.Tenant] {
			seen[o.Tenant] = true
			ts = append(ts, api.Tenant{Name: o.Tenant})
		}
	}
	out := make([]api.TenantUsage, 0, len(ts))
	for _, t := range ts {
		used, err := s.tenantUsage(ctx, t.Name, "", nil)
		if err != nil {
			return nil, err
		}
		out = append(out, api.TenantUsage{Tenant: t, Used: used})
	}
	return out, nil
}

func (s *Server) putTenant(w http.ResponseWriter, r *http.Request) (any, error) {
	name, err := pathName(r, "tenant", "tenant name")
	if err != nil {
		return nil, err
	}
	var req api.Quota
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.NanoCPUs < 0 || req.MemoryBytes < 0 || req.Tasks < 0 {
		return nil, api.Invalidf("quotas must not be negative (0 means no bound)")
	}
	t := api.Tenant{Name: name, Quota: req, UpdatedAt: time.Now().UTC()}
	if err := s.store.PutTenant(r.Context(), t); err != nil {
		return nil, err
	}
	return t, nil
}

// tenantUsage adds up what a tenant's stacks ask for: tasks (replicas),
// CPU limits and memory limits (berth's default where a service sets
// none). The stack named except is left out, and next added instead:
// the usage a deploy of next would leave.
func (s *Server) tenantUsage(ctx context.Context, tenant, except string, next *api.Stack) (api.Quota, error) {
	var q api.Quota
	owners, err := s.store.ListOwners(ctx)
	if err != nil {
		return q, err
	}
	add := func(spec api.ServiceSpec, replicas int) {
		if spec.Schedule != "" {
			return // a scheduled job runs now and then, not as replicas
		}
		mem := spec.Resources.MemoryBytes
		if mem == 0 {
			mem = s.sec.DefaultMemory
		}
		q.Tasks += replicas
		q.NanoCPUs += int64(replicas) * spec.Resources.NanoCPUs
		q.MemoryBytes += int64(replicas) * mem
	}
	for _, o := range owners {
		if o.Tenant != tenant || o.Stack == except {
			continue
		}
		svcs, err := s.store.ListServices(ctx, o.Stack)
		if err != nil {
			return q, err
		}
		for _, svc := range svcs {
			rev, err := s.store.GetRevision(ctx, o.Stack, svc.Name, svc.Revision)
			if err != nil {
				return q, err
			}
			add(rev.Spec, svc.Replicas)
		}
	}
	if next != nil {
		for _, spec := range next.Services {
			add(*spec, spec.Replicas)
		}
	}
	return q, nil
}

// checkQuota refuses a deploy (or scale) whose stack would take its
// tenant past a quota. A blue-green or start-first rollout briefly runs
// more; quotas bound what is asked for, not those moments.
func (s *Server) checkQuota(ctx context.Context, tenant string, next *api.Stack) error {
	if tenant == "" {
		return nil
	}
	t, err := s.store.GetTenant(ctx, tenant)
	if err != nil {
		return err
	}
	q := t.Quota
	if q == (api.Quota{}) {
		return nil
	}
	if q.NanoCPUs > 0 {
		for name, spec := range next.Services {
			if spec.Resources.NanoCPUs == 0 && spec.Schedule == "" {
				return api.Invalidf("service %q sets no CPU limit, and tenant %q has a CPU quota: set deploy.resources.limits.cpus; nothing was deployed", name, tenant)
			}
		}
	}
	used, err := s.tenantUsage(ctx, tenant, next.Name, next)
	if err != nil {
		return err
	}
	var over []string
	if q.Tasks > 0 && used.Tasks > q.Tasks {
		over = append(over, fmt.Sprintf("%d tasks (quota %d)", used.Tasks, q.Tasks))
	}
	if q.NanoCPUs > 0 && used.NanoCPUs > q.NanoCPUs {
		over = append(over, fmt.Sprintf("%.2f CPUs (quota %.2f)", float64(used.NanoCPUs)/1e9, float64(q.NanoCPUs)/1e9))
	}
	if q.MemoryBytes > 0 && used.MemoryBytes > q.MemoryBytes {
		over = append(over, fmt.Sprintf("%s of memory (quota %s)", units.BytesSize(float64(used.MemoryBytes)), units.BytesSize(float64(q.MemoryBytes))))
	}
	if len(over) > 0 {
		return api.Invalidf("tenant %q would use %s with this change of stack %q; lower replicas or limits, or raise the quota (berth tenant set); nothing was changed",
			tenant, joinErrs(over), next.Name)
	}
	return nil
}

// deployTenant decides the tenant of a stack being deployed: the stack's
// owner, claimed now for a new stack. A dry run claims nothing.
func (s *Server) deployTenant(ctx context.Context, stack string, req api.DeployRequest) (string, error) {
	if req.DryRun {
		owner, claimed, err := s.store.StackOwner(ctx, stack)
		if err != nil || claimed {
			return owner, err
		}
		if p := principal(ctx); p.Scoped() {
			return p.Tenant, nil
		}
		return req.Tenant, nil
	}
	return s.claim(ctx, stack, req.Tenant)
}

// checkScaleQuota checks a scale against the stack's tenant's quota.
func (s *Server) checkScaleQuota(r *http.Request, replicas int) error {
	ctx := r.Context()
	stack, err := pathName(r, "stack", "stack name")
	if err != nil {
		return err
	}
	service := r.PathValue("service")
	tenant, claimed, err := s.store.StackOwner(ctx, stack)
	if err != nil || !claimed || tenant == "" {
		return err
	}
	next := &api.Stack{Name: stack, Services: map[string]*api.ServiceSpec{}}
	svcs, err := s.store.ListServices(ctx, stack)
	if err != nil {
		return err
	}
	for _, svc := range svcs {
		rev, err := s.store.GetRevision(ctx, stack, svc.Name, svc.Revision)
		if err != nil {
			return err
		}
		spec := rev.Spec
		spec.Replicas = svc.Replicas
		if svc.Name == service {
			spec.Replicas = replicas
		}
		next.Services[svc.Name] = &spec
	}
	return s.checkQuota(ctx, tenant, next)
}
