package cli

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/berth-dev/berth/daemon"
	"github.com/spf13/cobra"
)

func newProxyCmd(g *globals) *cobra.Command {
	var o struct {
		dataDir, logLevel string
		ingress           ingressFlags
	}
	c := &cobra.Command{
		Use:   "proxy",
		Short: "Run berth's ingress as its own process (berth up starts it)",
		Long: `Run the ingress (published ports and HTTP routes) as its own process. berth up
starts one per data directory and drives it over DATA_DIR/proxy.sock; it keeps
serving the endpoints it last heard of while berth up is stopped, restarted or
upgraded, so none of those cuts traffic. Stop it with SIGTERM (kill $(cat DATA_DIR/proxy.pid)).`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(o.logLevel)); err != nil {
				return fmt.Errorf("%w: --log-level %q: use debug, info, warn or error", errUsage, o.logLevel)
			}
			ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return daemon.Proxy(ctx, daemon.ProxyConfig{
				DataDir: o.dataDir, IngressConfig: o.ingress.config(),
				Logger: slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: lvl})),
			})
		},
	}
	f := c.Flags()
	f.StringVar(&o.dataDir, "data-dir", daemon.DefaultDataDir(), "berth's data directory (the control socket and pid file live there)")
	o.ingress.add(f)
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	return c
}
