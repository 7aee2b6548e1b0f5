package daemon

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/ca"
	"github.com/berth-dev/berth/cis"

	"github.com/berth-dev/berth/agent"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/runtime/docker"
	"github.com/berth-dev/berth/secrets"
	"github.com/berth-dev/berth/server"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/trust"
)

// SecretsRun is the tmpfs mount point of delivered secrets in a data
// directory.
func SecretsRun(dataDir string) string { return filepath.Join(dataDir, "run") }

// securityParts are the pieces of berth's security that up assembles.
type securityParts struct {
	clusterID string
	store     *store.Store
	vault     *secrets.Vault
	files     *secrets.Files
}

func openSecurity(dataDir, clusterID string, st *store.Store) (securityParts, error) {
	keys, err := secrets.OpenKeyring(filepath.Join(dataDir, secrets.KeyFile))
	if err != nil {
		return securityParts{}, fmt.Errorf("secrets: %w", err)
	}
	return securityParts{clusterID: clusterID, store: st, vault: secrets.NewVault(st, keys), files: secrets.NewFiles(SecretsRun(dataDir))}, nil
}

// server is the server's view of the security parts.
func (p securityParts) server(cfg Config, drv runtime.Driver) server.Security {
	mem := cfg.Defaults.MemoryBytes
	if mem == 0 {
		mem = agent.DefaultDefaults().MemoryBytes
	}
	sec := server.Security{Vault: p.vault, DefaultMemory: mem, Trust: trust.New(trust.Options{})}
	if d, ok := drv.(*docker.Driver); ok {
		sec.HostAudit = func(ctx context.Context, ownOnly bool) (any, error) {
			opts := cis.Options{LocalHost: strings.HasPrefix(d.Host(), "unix://")}
			if ownOnly {
				opts.Labels = map[string]string{api.LabelCluster: p.clusterID}
			}
			return cis.Run(ctx, d.Client(), opts)
		}
	}
	return sec
}

// RemoteAPI configures the API's TCP listener. It always requires TLS
// and a bearer token; the unix socket stays for the local operator.
type RemoteAPI struct {
	// Addr is host:port to listen on; empty: no TCP listener.
	Addr string
	// CertFile and KeyFile give the server certificate; without them a
	// certificate is issued by berth's own CA (DATA_DIR/ca).
	CertFile, KeyFile string
	// Hosts are the names and addresses the issued certificate covers
	// (default: localhost, 127.0.0.1, ::1 and the host name).
	Hosts []string
}

// remoteParts adds the TCP listener of the API and the audit log's trim
// to parts.
func (p securityParts) remoteParts(ctx context.Context, cfg Config, srv *server.Server, parts map[string]func(context.Context) error, log *slog.Logger) error {
	parts["audit-trim"] = func(ctx context.Context) error {
		t := time.NewTicker(10 * time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				_ = p.store.TrimAudit(ctx)
			}
		}
	}
	r := cfg.Remote
	if r.Addr == "" {
		return nil
	}
	tlsCfg, err := remoteTLS(cfg.DataDir, r)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", r.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s for the remote API: %w", r.Addr, err)
	}
	log.Info("remote API listening", "addr", ln.Addr().String(), "tls", true)
	if err := writeAddr(cfg.DataDir, ln.Addr().String()); err != nil {
		ln.Close()
		return err
	}
	parts["api-remote"] = func(ctx context.Context) error { return srv.ServeRemote(ctx, tls.NewListener(ln, tlsCfg)) }
	return nil
}

// RemoteAddrFile records the remote API's address (port 0 in tests).
const RemoteAddrFile = "api-remote.addr"

func writeAddr(dataDir, addr string) error {
	return os.WriteFile(filepath.Join(dataDir, RemoteAddrFile), []byte(addr+"\n"), 0o600)
}

func remoteTLS(dataDir string, r RemoteAPI) (*tls.Config, error) {
	var cert tls.Certificate
	var err error
	switch {
	case r.CertFile != "" || r.KeyFile != "":
		if r.CertFile == "" || r.KeyFile == "" {
			return nil, fmt.Errorf("%w: give both --api-cert and --api-key, or neither (berth's own CA issues one)", api.ErrInvalid)
		}
		cert, err = tls.LoadX509KeyPair(r.CertFile, r.KeyFile)
	default:
		hosts := r.Hosts
		if len(hosts) == 0 {
			hosts = []string{"localhost", "127.0.0.1", "::1"}
			if h, herr := os.Hostname(); herr == nil && h != "" && h != "localhost" {
				hosts = append(hosts, h)
			}
		}
		cert, err = ca.ServerCert(ca.Dir(dataDir), hosts)
	}
	if err != nil {
		return nil, fmt.Errorf("remote API certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
