package daemon

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/berth-dev/berth/ingress"
	"github.com/berth-dev/berth/server"
)

// ProxyConfig configures `berth proxy`, the ingress as its own process.
type ProxyConfig struct {
	DataDir string
	IngressConfig
	Logger *slog.Logger
}

// ProxySocket is the control socket of a data directory's proxy process.
func ProxySocket(dataDir string) string { return filepath.Join(dataDir, "proxy.sock") }

// Proxy runs the ingress until ctx ends. It keeps serving the endpoints it
// was last given whatever happens to berth up; berth up fills it in again
// when it comes back.
func Proxy(ctx context.Context, cfg ProxyConfig) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	unlock, err := lockFile(filepath.Join(cfg.DataDir, "proxy.lock"), "another berth proxy uses "+cfg.DataDir)
	if err != nil {
		return err
	}
	defer unlock()
	p := ingress.New(ingress.Options{Logger: log})
	var hosts hostsRelay
	ctl := ingress.NewController(p, ingress.ControllerOptions{BindHost: cfg.PublishHost, DrainTimeout: cfg.DrainTimeout, Hosts: hosts.Hosts, Logger: log})
	defer ctl.Close()

	parts, httpAddr, err := listenIngress(cfg.IngressConfig, cfg.DataDir, p, &hosts, log)
	if err != nil {
		return err
	}
	ctlLn, err := listenUnix(ProxySocket(cfg.DataDir))
	if err != nil {
		return err
	}
	parts["control"] = func(ctx context.Context) error {
		return server.ServeHTTP(ctx, ctlLn, &http.Server{Handler: ingress.ControlHandler(ctl, httpAddr), ReadHeaderTimeout: 10 * time.Second}, 5*time.Second)
	}
	pidFile := ingress.PIDFile(cfg.DataDir)
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return err
	}
	defer os.Remove(pidFile)
	log.Info("berth proxy is up", "pid", os.Getpid(), "http", httpAddr, "control", ProxySocket(cfg.DataDir))
	var sup supervisor
	sup.run(ctx, log, parts)
	log.Info("berth proxy stopped")
	return sup.err
}
