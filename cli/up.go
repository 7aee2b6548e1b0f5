package cli

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/berth-dev/berth/agent"
	"github.com/berth-dev/berth/config"
	"github.com/berth-dev/berth/daemon"
	"github.com/docker/go-units"
	"github.com/spf13/cobra"
)

type upOptions struct {
	dataDir    string
	dockerHost string
	nodeName   string
	memory     string
	pids       int64
	cpuShares  int64
	logLevel   string
	ingress    ingressFlags
	proxy      string
	config     string
	ops        opsFlags
	remote     daemon.RemoteAPI
	registry   daemon.RegistryConfig
}

func newUpCmd(g *globals) *cobra.Command {
	var o upOptions
	c := &cobra.Command{
		Use:   "up",
		Short: "Run berth (server, agent and embedded etcd) in the foreground",
		Long: `Run berth's server, agent and an embedded etcd in one foreground process.
State lives in the data directory; the API listens on DATA_DIR/berth.sock.
Stop it with Ctrl-C or SIGTERM: the containers it runs keep running, and the
next 'berth up' adopts them.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			d := agent.DefaultDefaults()
			if o.memory != "" {
				n, err := units.RAMInBytes(o.memory)
				if err != nil || n < 6<<20 {
					return fmt.Errorf("%w: --default-memory %q: use a size like 256m (at least 6m)", errUsage, o.memory)
				}
				d.MemoryBytes = n
			}
			if o.pids > 0 {
				d.PidsLimit = o.pids
			}
			if o.cpuShares > 0 {
				d.CPUShares = o.cpuShares
			}
			if o.proxy != "process" && o.proxy != "inline" {
				return fmt.Errorf("%w: --proxy %q: use process or inline", errUsage, o.proxy)
			}
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(o.logLevel)); err != nil {
				return fmt.Errorf("%w: --log-level %q: use debug, info, warn or error", errUsage, o.logLevel)
			}
			file, err := config.Load(config.Path(o.dataDir, o.config), o.config != "")
			if err != nil {
				return err
			}
			opsCfg, err := o.ops.config()
			if err != nil {
				return err
			}
			logger := slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: lvl}))
			ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return daemon.Up(ctx, daemon.Config{
				DataDir: o.dataDir, DockerHost: o.dockerHost, NodeName: o.nodeName,
				Defaults: d, Version: Version, Commit: Commit, Logger: logger,
				Ingress: o.ingress.config(), ProxyProcess: o.proxy == "process", Remote: o.remote,
				Ops: opsCfg, File: file,
				Registry: o.registryConfig(c),
			})
		},
	}
	f := c.Flags()
	f.StringVar(&o.dataDir, "data-dir", daemon.DefaultDataDir(), "directory for berth's state (env BERTH_DATA_DIR)")
	f.StringVar(&o.dockerHost, "docker-host", "", "Docker Engine address (default: DOCKER_HOST or the local socket)")
	f.StringVar(&o.nodeName, "node-name", "", "name of this node (default: host name)")
	f.StringVar(&o.memory, "default-memory", "", "memory limit for containers that set none (default 512m)")
	f.Int64Var(&o.pids, "default-pids", 0, "process limit for containers that set none (default 512)")
	f.Int64Var(&o.cpuShares, "default-cpu-shares", 0, "CPU shares for containers that set none (default 512)")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	o.ingress.add(f)
	f.StringVar(&o.config, "config", "", "configuration file: watchdog, alerts and notifiers, event retention, housekeeping (default DATA_DIR/berth.yaml if it exists)")
	o.ops.add(f)
	f.StringVar(&o.remote.Addr, "api-addr", "", "also serve the API on this TCP address, with TLS and tokens (e.g. :8443)")
	f.StringVar(&o.remote.CertFile, "api-cert", "", "the remote API's certificate (PEM; default: issued by berth's CA in DATA_DIR/ca)")
	f.StringVar(&o.remote.KeyFile, "api-key", "", "the remote API's private key (PEM)")
	f.StringSliceVar(&o.remote.Hosts, "api-host", nil, "names and addresses the issued certificate covers (default: localhost, loopback and the host name)")
	addRegistryFlags(f, &o.registry)
	f.StringVar(&o.proxy, "proxy", "process", "run the ingress as its own process that outlives berth up (process), or inside berth up (inline)")
	return c
}
