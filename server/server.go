// Package server is berth's HTTP API: it validates requests, stores specs
// and revisions, and streams events and job output. Controllers act on what
// it stores; it never talks to an engine except through the interfaces it
// is given (image resolution and node operations).
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/controller"
	"github.com/berth-dev/berth/store"
)

// ImageResolver resolves an image reference to the digest a revision pins.
type ImageResolver interface {
	ResolveImage(ctx context.Context, ref string) (string, error)
}

// NodeOps are operations the server asks of the nodes' agents.
type NodeOps interface {
	RemoveVolumes(ctx context.Context, stack string) error
}

// Config configures a Server.
type Config struct {
	ClusterID string
	Version   string
	Commit    string
	Engine    string
	Ingress   string // the ingress's HTTP address, if any
}

// Server serves the API.
type Server struct {
	cfg      Config
	store    *store.Store
	images   ImageResolver
	nodes    NodeOps
	log      *slog.Logger
	jobs     *controller.Jobs
	maint    Maintenance
	registry RegistryOps
	stackMu  sync.Mutex
	stackLks map[string]*sync.Mutex
	ops      Ops
	sec      Security
}

// New returns a server.
func New(cfg Config, st *store.Store, images ImageResolver, nodes NodeOps, jobs *controller.Jobs, logger *slog.Logger) *Server {
	return &Server{cfg: cfg, store: st, images: images, nodes: nodes, jobs: jobs, log: logger, stackLks: map[string]*sync.Mutex{}}
}

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	mux := newRouteMux()
	mux.HandleFunc("GET /v1/version", s.wrap(s.version))
	mux.HandleFunc("GET /v1/stacks", s.wrap(s.listStacks))
	mux.HandleFunc("POST /v1/stacks/{stack}/deploy", s.wrap(s.deploy))
	mux.HandleFunc("GET /v1/stacks/{stack}", s.wrap(s.stackStatus))
	mux.HandleFunc("DELETE /v1/stacks/{stack}", s.wrap(s.removeStack))
	mux.HandleFunc("POST /v1/stacks/{stack}/services/{service}/scale", s.wrap(s.scale))
	mux.HandleFunc("POST /v1/stacks/{stack}/restart", s.wrap(s.restart))
	mux.HandleFunc("POST /v1/stacks/{stack}/stop", s.wrap(s.stop))
	mux.HandleFunc("POST /v1/stacks/{stack}/start", s.wrap(s.start))
	mux.HandleFunc("POST /v1/stacks/{stack}/rollback", s.wrap(s.rollback))
	mux.HandleFunc("POST /v1/stacks/{stack}/rollout/{action}", s.wrap(s.rolloutAction))
	mux.HandleFunc("GET /v1/stacks/{stack}/services/{service}/revisions", s.wrap(s.revisions))
	mux.HandleFunc("POST /v1/stacks/{stack}/run", s.run)
	mux.HandleFunc("GET /v1/stacks/{stack}/jobs", s.wrap(s.listJobs))
	mux.HandleFunc("GET /v1/tasks", s.wrap(s.listTasks))
	mux.HandleFunc("GET /v1/nodes", s.wrap(s.listNodes))
	mux.HandleFunc("GET /v1/events", s.events)
	s.opsRoutes(mux)
	s.maintenanceRoutes(mux)
	s.securityRoutes(mux)
	s.deliveryRoutes(mux)
	mux.HandleFunc("/", s.wrap(func(w http.ResponseWriter, r *http.Request) (any, error) {
		return nil, api.NotFoundf("no API route %s %s; see `berth --help`", r.Method, r.URL.Path)
	}))
	return s.secure(mux)
}

// Serve serves the API on ln until ctx ends, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	return ServeHTTP(ctx, ln, s.httpServer(ctx, false), 5*time.Second)
}

// ServeHTTP serves hs on ln until ctx ends, then gives requests in flight
// up to grace to finish before closing what is left.
func ServeHTTP(ctx context.Context, ln net.Listener, hs *http.Server, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		_ = hs.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// lockStack serialises changes to one stack within this server.
func (s *Server) lockStack(name string) func() {
	s.stackMu.Lock()
	mu, ok := s.stackLks[name]
	if !ok {
		mu = &sync.Mutex{}
		s.stackLks[name] = mu
	}
	s.stackMu.Unlock()
	mu.Lock()
	return mu.Unlock
}

func (s *Server) version(w http.ResponseWriter, r *http.Request) (any, error) {
	return api.VersionInfo{Version: s.cfg.Version, Commit: s.cfg.Commit, GoVersion: runtime.Version(),
		ClusterID: s.cfg.ClusterID, Engine: s.cfg.Engine, Ingress: s.cfg.Ingress}, nil
}

func (s *Server) event(ctx context.Context, e api.Event) {
	if err := s.store.AppendEvent(ctx, e); err != nil {
		s.log.Warn("record event", "type", e.Type, "err", err)
	}
}

func (s *Server) listNodes(w http.ResponseWriter, r *http.Request) (any, error) {
	return s.store.ListNodes(r.Context())
}

func (s *Server) listTasks(w http.ResponseWriter, r *http.Request) (any, error) {
	stack := r.URL.Query().Get("stack")
	if stack != "" {
		if err := api.ValidateName("stack name", stack); err != nil {
			return nil, err
		}
	}
	return s.taskViews(r.Context(), stack)
}

// taskViews joins tasks with their observed status.
func (s *Server) taskViews(ctx context.Context, stack string) ([]api.TaskView, error) {
	tasks, err := s.store.ListTasks(ctx, stack)
	if err != nil {
		return nil, err
	}
	sts, err := s.store.ListStatus(ctx, "")
	if err != nil {
		return nil, err
	}
	byID := make(map[string]*api.TaskStatus, len(sts))
	for i := range sts {
		byID[sts[i].TaskID] = &sts[i]
	}
	out := make([]api.TaskView, 0, len(tasks))
	visible := s.visibility(ctx)
	for _, t := range tasks {
		if !visible(t.Stack) {
			continue
		}
		out = append(out, api.TaskView{Task: t, Status: byID[t.ID]})
	}
	return out, nil
}

func notFoundStack(name string) error {
	return api.NotFoundf("stack %q is not deployed; see `berth ls`", name)
}

func fmtErr(prefix string, err error) error { return fmt.Errorf("%s: %w", prefix, err) }
