package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/berth-dev/berth/api"
)

// Principal is who makes a request: the local operator on the unix
// socket (admin of every tenant), or the holder of an API token.
type Principal struct {
	Who     string
	TokenID string
	Role    string
	Tenant  string // "" = every tenant
}

// Scoped reports whether the principal is limited to one tenant.
func (p Principal) Scoped() bool { return p.Tenant != "" }

type principalKey struct{}
type remoteKey struct{}

// principal returns the request's principal (set by secure).
func principal(ctx context.Context) Principal {
	p, _ := ctx.Value(principalKey{}).(Principal)
	return p
}

// RemoteConn marks a connection as coming from the TCP listener: every
// request on it must carry a valid token (http.Server.ConnContext).
func RemoteConn(ctx context.Context) context.Context {
	return context.WithValue(ctx, remoteKey{}, true)
}

func isRemote(ctx context.Context) bool { v, _ := ctx.Value(remoteKey{}).(bool); return v }

// Route scopes: what a route touches decides which tenants may call it.
const (
	scopeStack   = "stack"   // one stack, named in the path: its tenant only
	scopeTenant  = "tenant"  // lists: the handler shows the caller's tenant only
	scopeCluster = "cluster" // the whole cluster: principals of every tenant only
)

type policy struct {
	role  string
	scope string
}

// policies is every route's required role and scope. A route missing
// here is refused to everyone but the local operator (fail closed), and
// TestEveryRouteHasAPolicy fails, so a new route cannot escape.
var policies = map[string]policy{
	"GET /v1/version": {api.RoleViewer, scopeTenant},
	"GET /v1/whoami":  {api.RoleViewer, scopeTenant},
	"/":               {api.RoleViewer, scopeTenant}, // answers 404

	"GET /v1/stacks":         {api.RoleViewer, scopeTenant},
	"GET /v1/tasks":          {api.RoleViewer, scopeTenant},
	"GET /v1/events":         {api.RoleViewer, scopeTenant},
	"GET /v1/nodes":          {api.RoleViewer, scopeTenant},
	"GET /v1/stacks/{stack}": {api.RoleViewer, scopeStack},
	"GET /v1/stacks/{stack}/services/{service}/revisions": {api.RoleViewer, scopeStack},
	"GET /v1/stacks/{stack}/jobs":                         {api.RoleViewer, scopeStack},
	"GET /v1/stacks/{stack}/secrets":                      {api.RoleViewer, scopeStack},
	"GET /v1/stacks/{stack}/logs":                         {api.RoleViewer, scopeStack},
	// Metrics and berth top cover every tenant's stacks: cluster tokens only.
	"GET /metrics": {api.RoleViewer, scopeCluster},
	"GET /v1/top":  {api.RoleViewer, scopeCluster},

	"POST /v1/stacks/{stack}/deploy":                   {api.RoleDeployer, scopeStack},
	"DELETE /v1/stacks/{stack}":                        {api.RoleDeployer, scopeStack},
	"POST /v1/stacks/{stack}/services/{service}/scale": {api.RoleDeployer, scopeStack},
	"POST /v1/stacks/{stack}/restart":                  {api.RoleDeployer, scopeStack},
	"POST /v1/stacks/{stack}/stop":                     {api.RoleDeployer, scopeStack},
	"POST /v1/stacks/{stack}/start":                    {api.RoleDeployer, scopeStack},
	"POST /v1/stacks/{stack}/rollback":                 {api.RoleDeployer, scopeStack},
	"POST /v1/stacks/{stack}/rollout/{action}":         {api.RoleDeployer, scopeStack},
	"POST /v1/stacks/{stack}/run":                      {api.RoleDeployer, scopeStack},
	"POST /v1/stacks/{stack}/secrets/{name}":           {api.RoleDeployer, scopeStack},
	"PUT /v1/stacks/{stack}/secrets/{name}":            {api.RoleDeployer, scopeStack},
	"DELETE /v1/stacks/{stack}/secrets/{name}":         {api.RoleDeployer, scopeStack},

	"POST /v1/stacks/{stack}/services/{service}/update/approve": {api.RoleDeployer, scopeStack},
	// The registry's credential can push to every repository: cluster admins only.
	"GET /v1/registry":     {api.RoleAdmin, scopeCluster},
	"POST /v1/registry/gc": {api.RoleAdmin, scopeCluster},

	"GET /v1/audit":               {api.RoleAdmin, scopeTenant},
	"GET /v1/audit/host":          {api.RoleAdmin, scopeCluster},
	"POST /v1/secrets/rotate-key": {api.RoleAdmin, scopeCluster},
	"GET /v1/tokens":              {api.RoleAdmin, scopeCluster},
	"POST /v1/tokens":             {api.RoleAdmin, scopeCluster},
	"DELETE /v1/tokens/{id}":      {api.RoleAdmin, scopeCluster},
	"GET /v1/tenants":             {api.RoleAdmin, scopeCluster},
	"PUT /v1/tenants/{tenant}":    {api.RoleAdmin, scopeCluster},

	// Maintenance: alerts and disk usage cover every tenant; a collection
	// and a backup (all state, every tenant's) are the admin's; a volume's
	// content belongs to its stack.
	"GET /v1/alerts": {api.RoleViewer, scopeCluster},
	"GET /v1/df":     {api.RoleViewer, scopeCluster},
	"POST /v1/gc":    {api.RoleAdmin, scopeCluster},
	"GET /v1/backup": {api.RoleAdmin, scopeCluster},
	"GET /v1/stacks/{stack}/volumes/{volume}/archive": {api.RoleDeployer, scopeStack},
	"PUT /v1/stacks/{stack}/volumes/{volume}/archive": {api.RoleDeployer, scopeStack},
}

// routeMux is a ServeMux that remembers its patterns, so that the
// security layer (and its test) can see every route.
type routeMux struct {
	*http.ServeMux
	patterns []string
}

func newRouteMux() *routeMux { return &routeMux{ServeMux: http.NewServeMux()} }

func (m *routeMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.patterns = append(m.patterns, pattern)
	m.ServeMux.HandleFunc(pattern, h)
}

// Routes lists the patterns of the API's routes.
func (s *Server) Routes() []string {
	return append([]string(nil), s.Handler().(*secured).mux.patterns...)
}

// secured authenticates, authorizes and audits every request before the
// mux's handler runs.
type secured struct {
	s   *Server
	mux *routeMux
}

func (s *Server) secure(mux *routeMux) http.Handler { return &secured{s: s, mux: mux} }

func (h *secured) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	_, pattern := h.mux.Handler(r)
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	p, err := h.s.authorize(r, pattern)
	if err == nil {
		r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
		h.mux.ServeHTTP(rec, r)
	} else {
		writeError(rec, err)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.s.audit(r, pattern, p, rec, err, time.Since(start))
	}
}

// Authorization errors. Unauthenticated is 401; forbidden is 403.
var (
	errUnauthenticated = errors.New("unauthenticated")
	errForbidden       = errors.New("forbidden")
)

// authorize finds the request's principal and checks the route's policy.
func (s *Server) authorize(r *http.Request, pattern string) (Principal, error) {
	p := Principal{Who: "local", Role: api.RoleAdmin}
	authz := r.Header.Get("Authorization")
	switch {
	case authz != "":
		tok, ok := strings.CutPrefix(authz, "Bearer ")
		if !ok {
			return Principal{}, fmt.Errorf("%w: the Authorization header must be \"Bearer TOKEN\"", errUnauthenticated)
		}
		t, err := s.checkToken(r.Context(), strings.TrimSpace(tok))
		if err != nil {
			return Principal{}, err
		}
		p = Principal{Who: "token:" + t.ID, TokenID: t.ID, Role: t.Role, Tenant: t.Tenant}
		if t.Name != "" {
			p.Who += " (" + t.Name + ")"
		}
	case isRemote(r.Context()):
		return Principal{}, fmt.Errorf("%w: this listener needs a token: set BERTH_TOKEN (create one with `berth token create`)", errUnauthenticated)
	}
	pol, ok := policies[pattern]
	if !ok {
		if p.Who == "local" {
			return p, nil
		}
		return p, fmt.Errorf("%w: route %s has no access policy; only the local operator may call it", errForbidden, pattern)
	}
	if api.RoleRank(p.Role) < api.RoleRank(pol.role) {
		return p, fmt.Errorf("%w: %s needs the %s role; this token has %s", errForbidden, pattern, pol.role, p.Role)
	}
	if !p.Scoped() {
		return p, nil
	}
	switch pol.scope {
	case scopeCluster:
		return p, fmt.Errorf("%w: %s concerns the whole cluster; a token of tenant %q cannot call it", errForbidden, pattern, p.Tenant)
	case scopeStack:
		stack := pathParam(pattern, r.URL.Path, "stack")
		if err := api.ValidateName("stack name", stack); err != nil {
			return p, err
		}
		owner, claimed, err := s.store.StackOwner(r.Context(), stack)
		if err != nil {
			return p, err
		}
		if claimed && owner != p.Tenant {
			// Another tenant's stack does not exist for this token.
			return p, notFoundStack(stack)
		}
	}
	return p, nil
}

// pathParam returns the path segment of path that stands where pattern
// has {name}.
func pathParam(pattern, path, name string) string {
	if _, p, ok := strings.Cut(pattern, " "); ok {
		pattern = p
	}
	ps := strings.Split(pattern, "/")
	xs := strings.Split(path, "/")
	for i, seg := range ps {
		if seg == "{"+name+"}" && i < len(xs) {
			return xs[i]
		}
	}
	return ""
}

// visibility returns a check of whether the request's principal may see
// a stack, remembering the owners it looked up.
func (s *Server) visibility(ctx context.Context) func(stack string) bool {
	p := principal(ctx)
	if !p.Scoped() {
		return func(string) bool { return true }
	}
	seen := map[string]bool{}
	return func(stack string) bool {
		if stack == "" {
			return false
		}
		if v, ok := seen[stack]; ok {
			return v
		}
		owner, claimed, err := s.store.StackOwner(ctx, stack)
		v := err == nil && claimed && owner == p.Tenant
		seen[stack] = v
		return v
	}
}

// Tokens look like berth_<id>_<secret>: the ID finds the record, the
// secret is compared with its stored SHA-256 (the secret is 256 random
// bits, so a fast hash is enough).
var (
	tokenRE   = regexp.MustCompile(`^berth_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$`)
	tokenIDRE = regexp.MustCompile(`^[0-9a-f]{16}$`)
)

// ParseToken splits a token into its ID and secret.
func ParseToken(tok string) (id, secret string, err error) {
	m := tokenRE.FindStringSubmatch(tok)
	if m == nil {
		return "", "", fmt.Errorf("%w: malformed token; tokens look like berth_<16 hex>_<43 characters>", errUnauthenticated)
	}
	return m[1], m[2], nil
}

func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

func newToken() (id, secret string, err error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	sb := make([]byte, 32)
	if _, err := rand.Read(sb); err != nil {
		return "", "", err
	}
	return hex.EncodeToString(b), base64.RawURLEncoding.EncodeToString(sb), nil
}

// TokenAccess verifies an API token for another listener of this server
// (the embedded registry) and returns its role and tenant.
func (s *Server) TokenAccess(ctx context.Context, tok string) (role, tenant string, err error) {
	t, err := s.checkToken(ctx, tok)
	return t.Role, t.Tenant, err
}

func (s *Server) checkToken(ctx context.Context, tok string) (api.Token, error) {
	id, secret, err := ParseToken(tok)
	if err != nil {
		return api.Token{}, err
	}
	t, err := s.store.GetToken(ctx, id)
	if errors.Is(err, api.ErrNotFound) {
		return api.Token{}, fmt.Errorf("%w: unknown token", errUnauthenticated)
	}
	if err != nil {
		return api.Token{}, err
	}
	if subtle.ConstantTimeCompare(t.Hash, hashSecret(secret)) != 1 {
		return api.Token{}, fmt.Errorf("%w: unknown token", errUnauthenticated)
	}
	if !t.RevokedAt.IsZero() {
		return api.Token{}, fmt.Errorf("%w: token %s was revoked", errUnauthenticated, t.ID)
	}
	if time.Now().After(t.ExpiresAt) {
		return api.Token{}, fmt.Errorf("%w: token %s expired at %s; create a new one", errUnauthenticated, t.ID, t.ExpiresAt.Format(time.RFC3339))
	}
	return t, nil
}

// recorder keeps the status of a response for the audit log; streaming
// handlers still flush through it.
type recorder struct {
	http.ResponseWriter
	status int
	errMsg string
	wrote  bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// ServeRemote serves the API on a TLS listener until ctx ends: every
// request there must carry a valid token.
func (s *Server) ServeRemote(ctx context.Context, ln net.Listener) error {
	return ServeHTTP(ctx, ln, s.httpServer(ctx, true), 5*time.Second)
}

// httpServer is the API's HTTP server: bounded headers and bodies (see
// secure), and for the remote listener, connections marked remote.
func (s *Server) httpServer(ctx context.Context, remote bool) *http.Server {
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    maxHeader,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	hs.ConnContext = connContext
	if remote {
		hs.ConnContext = func(ctx context.Context, c net.Conn) context.Context { return RemoteConn(connContext(ctx, c)) }
	}
	return hs
}
