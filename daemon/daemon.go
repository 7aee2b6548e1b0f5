// Package daemon assembles berth's parts into the processes it runs:
// `berth up` is server + agent + embedded etcd in one process.
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth-dev/berth/agent"
	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/config"
	"github.com/berth-dev/berth/controller"
	"github.com/berth-dev/berth/ingress"
	"github.com/berth-dev/berth/metrics"
	"github.com/berth-dev/berth/runtime/docker"
	"github.com/berth-dev/berth/server"
	"github.com/berth-dev/berth/store"
)

// Config configures `berth up`.
type Config struct {
	// DataDir holds etcd's data, the API socket and berth's identity files.
	DataDir string
	// Socket is the API's unix socket (default DataDir/berth.sock).
	Socket string
	// DockerHost is the engine address (default: DOCKER_HOST or the local socket).
	DockerHost string
	// NodeName defaults to the host name.
	NodeName string
	Defaults agent.Defaults
	// Ingress is what the ingress listens on.
	Ingress IngressConfig
	// Registry is the embedded registry.
	Registry RegistryConfig
	// ProxyProcess runs the ingress as its own process (berth proxy), which
	// outlives berth up; otherwise it runs inside this process.
	ProxyProcess bool
	// File is the configuration file's content (watchdog, alerts, events,
	// housekeeping).
	File config.File
	// Remote is the optional TCP listener of the API (TLS and tokens).
	Remote  RemoteAPI
	Version string
	Commit  string
	Logger  *slog.Logger
	// Ready, if set, is closed once the API is listening.
	Ready chan<- struct{}
	// Ops configures logs, metrics and monitors.
	Ops OpsConfig
}

// SocketPath returns the API socket of a data directory.
func SocketPath(dataDir string) string { return filepath.Join(dataDir, "berth.sock") }

// DefaultDataDir is where `berth up` keeps its state: /var/lib/berth for
// root, the user's state directory otherwise.
func DefaultDataDir() string {
	if v := os.Getenv("BERTH_DATA_DIR"); v != "" {
		return v
	}
	if os.Geteuid() == 0 {
		return "/var/lib/berth"
	}
	if v := os.Getenv("XDG_STATE_HOME"); v != "" {
		return filepath.Join(v, "berth")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "berth")
	}
	return filepath.Join(os.TempDir(), "berth")
}

// Up runs server, agent and embedded etcd until ctx ends. Containers keep
// running after it returns.
func Up(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Socket == "" {
		cfg.Socket = SocketPath(cfg.DataDir)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	unlock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer unlock()

	drv, err := docker.New(docker.Options{Host: cfg.DockerHost, Logger: log.With("component", "docker")})
	if err != nil {
		return fmt.Errorf("docker engine client: %w", err)
	}
	ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
	info, err := drv.Info(ictx)
	cancel()
	if err != nil {
		return fmt.Errorf("%w\nberth needs a running Docker Engine: start it (systemctl start docker, or dockerd &) or set DOCKER_HOST", err)
	}

	st, err := store.OpenEmbedded(ctx, store.EmbeddedOptions{Dir: filepath.Join(cfg.DataDir, "etcd"), Logger: log.With("component", "store")})
	if err != nil {
		return err
	}
	defer st.Close()

	clusterID, err := identity(ctx, cfg.DataDir, "cluster-id", func(c string) (string, error) { return st.ClusterID(ctx, c) })
	if err != nil {
		return err
	}
	nodeID, err := identity(ctx, cfg.DataDir, "node-id", nil)
	if err != nil {
		return err
	}
	nodeName := cfg.NodeName
	if nodeName == "" {
		nodeName, _ = os.Hostname()
	}

	dlv, err := openDelivery(ctx, cfg, drv, log)
	if err != nil {
		return err
	}
	defer dlv.close()
	hooks, ingressAddr, ingressParts, closeIngress, err := startIngress(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeIngress()

	sec, err := openSecurity(cfg.DataDir, clusterID, st)
	if err != nil {
		return err
	}
	maint := newMaintenance(cfg, st, drv, clusterID, nodeID, log)
	acfg := agent.Config{ClusterID: clusterID, NodeID: nodeID, NodeName: nodeName, Defaults: cfg.Defaults,
		Secrets: sec.vault, SecretFiles: sec.files, PullImage: dlv.pull}
	maint.agentConfig(&acfg)
	ag := agent.New(acfg, st, drv, log.With("component", "agent"), hooks)
	maint.hk.Wedged = func() bool { return ag.EngineHealth().State == api.EngineWedged }
	jobs := controller.NewJobs(st, ag, nodeID, log.With("component", "jobs"))
	orch := controller.NewOrchestrator(st, hooks, log.With("component", "orchestrator"))
	orch.ProbeThrough(ingressAddr)
	srv := server.New(server.Config{ClusterID: clusterID, Version: cfg.Version, Commit: cfg.Commit, Engine: info.Version, Ingress: ingressAddr},
		st, dlv, ag, jobs, log.With("component", "api"))
	srv.SetMaintenance(maint)
	if dlv.reg != nil {
		dlv.reg.SetTokens(srv.TokenAccess) // API tokens sign in to the registry too
	}
	srv.SetSecurity(sec.server(cfg, drv))

	nodeMetrics := metrics.NodeSources{Engine: ag.EngineHealth}
	maint.metricSources(&nodeMetrics)
	opsPart, opsParts, err := startOps(cfg, opsDeps{cluster: clusterID, node: nodeID, nodeName: nodeName,
		drv: drv, store: st, traffic: hooks, ingressAddr: ingressAddr, nodeMetrics: nodeMetrics}, log)
	if err != nil {
		return err
	}
	defer opsPart.close()
	srv.SetOps(opsPart.serverOps())
	srv.SetRegistry(dlv)

	ln, err := listenUnix(cfg.Socket)
	if err != nil {
		return err
	}
	log.Info("berth is up", "socket", cfg.Socket, "data", cfg.DataDir, "cluster", clusterID, "node", nodeID, "engine", info.Version, "registry", dlv.addr())
	if cfg.Ready != nil {
		close(cfg.Ready)
	}

	parts := map[string]func(context.Context) error{
		"api":          func(ctx context.Context) error { return srv.Serve(ctx, ln) },
		"agent":        ag.Run,
		"orchestrator": orch.Run,
		"jobs":         jobs.RunScheduler,
	}
	for name, f := range maint.parts() {
		parts[name] = f
	}
	for name, f := range ingressParts {
		parts[name] = f
	}
	parts["ingress-ports"] = func(ctx context.Context) error {
		return watchPorts(ctx, hooks, st, nodeID, log.With("component", "ingress"))
	}
	for name, f := range opsParts {
		parts[name] = f
	}
	if err := sec.remoteParts(ctx, cfg, srv, parts, log); err != nil {
		return err
	}
	for name, f := range dlv.parts(st, srv) {
		parts[name] = f
	}
	var sup supervisor
	sup.run(ctx, log, parts)
	log.Info("berth stopped; containers keep running")
	return sup.err
}

// startIngress runs the ingress in this process, or makes sure a proxy
// process runs and returns hooks that drive it.
// ingressHooks is the ingress as the rest of berth up sees it: the
// agent's task hooks and the traffic counters rollout gates read.
type ingressHooks interface {
	agent.Hooks
	controller.TrafficSource
	PortErrors(ctx context.Context) ([]ingress.PortError, error)
}

func startIngress(ctx context.Context, cfg Config, log *slog.Logger) (ingressHooks, string, map[string]func(context.Context) error, func(), error) {
	ilog := log.With("component", "ingress")
	parts := map[string]func(context.Context) error{}
	if cfg.ProxyProcess {
		exe, err := os.Executable()
		if err != nil {
			return nil, "", nil, nil, err
		}
		sup := &ingress.Supervisor{
			Remote: ingress.NewRemote(ProxySocket(cfg.DataDir), ilog),
			Args:   append([]string{exe, "proxy", "--data-dir", cfg.DataDir}, cfg.Ingress.args()...),
			Dir:    cfg.DataDir,
			Log:    ilog,
		}
		st, err := sup.Ensure(ctx)
		if err != nil {
			return nil, "", nil, nil, err
		}
		parts["proxy-supervisor"] = sup.Run
		return sup.Remote, st.HTTPAddr, parts, func() {}, nil
	}
	proxy := ingress.New(ingress.Options{Logger: ilog})
	var hosts hostsRelay
	ctl := ingress.NewController(proxy, ingress.ControllerOptions{BindHost: cfg.Ingress.PublishHost, DrainTimeout: cfg.Ingress.DrainTimeout, Hosts: hosts.Hosts, Logger: ilog})
	listeners, addr, err := listenIngress(cfg.Ingress, cfg.DataDir, proxy, &hosts, ilog)
	if err != nil {
		ctl.Close()
		return nil, "", nil, nil, err
	}
	for name, f := range listeners {
		parts["ingress-"+name] = f
	}
	return ctl, addr, parts, func() { ctl.Close() }, nil
}

// identity reads DataDir/name or creates it. agree, when set, reconciles a
// new candidate with the store (first writer wins).
func identity(ctx context.Context, dir, name string, agree func(string) (string, error)) (string, error) {
	path := filepath.Join(dir, name)
	b, err := os.ReadFile(path)
	id := strings.TrimSpace(string(b))
	if err != nil && !os.IsNotExist(err) {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if id == "" {
		id = controller.NewID()
	}
	if agree != nil {
		if id, err = agree(id); err != nil {
			return "", err
		}
	}
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return id, nil
}

// lockDataDir makes sure only one berth process uses a data directory.
func lockDataDir(dir string) (func(), error) {
	return lockFile(filepath.Join(dir, "lock"), fmt.Sprintf("data directory %s is in use by another berth process (stop it, or pass --data-dir)", dir))
}

// lockFile takes an exclusive lock on path, or fails with busy.
func lockFile(path, busy string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s", busy)
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// listenUnix listens on a unix socket readable only by the owner. A stale
// socket from a killed process is replaced (the data-dir lock proves no
// other berth owns it).
func listenUnix(path string) (net.Listener, error) {
	_ = os.Remove(path)
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// supervisor runs components until ctx ends or one fails, then stops all
// and waits for them. A panic in a component is turned into an error.
type supervisor struct {
	mu  sync.Mutex
	err error
}

func (s *supervisor) run(ctx context.Context, log *slog.Logger, parts map[string]func(context.Context) error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for name, f := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := func() (err error) {
				defer func() {
					if p := recover(); p != nil {
						err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
					}
				}()
				return f(ctx)
			}()
			if err != nil && ctx.Err() == nil {
				log.Error("component failed; stopping", "component", name, "err", err)
				s.mu.Lock()
				if s.err == nil {
					s.err = fmt.Errorf("%s: %w", name, err)
				}
				s.mu.Unlock()
			}
			cancel()
		}()
	}
	wg.Wait()
}
