package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap"
)

// EmbeddedOptions configure the single-member etcd that `berth up` runs.
type EmbeddedOptions struct {
	// Dir holds etcd's data (member/) and its sockets.
	Dir    string
	Logger *slog.Logger
	// StartTimeout bounds how long to wait for the member to be ready.
	StartTimeout time.Duration
}

// OpenEmbedded starts a single-member etcd under opts.Dir and returns a
// Store backed by an in-process client. Client and peer traffic listen on
// unix sockets inside Dir, never on fixed TCP ports, so several instances
// (tests) can run side by side. Close stops the member.
func OpenEmbedded(ctx context.Context, opts EmbeddedOptions) (*Store, error) {
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 60 * time.Second
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create etcd data dir: %w", err)
	}
	cfg := embed.NewConfig()
	cfg.Name = "berth"
	cfg.Dir = opts.Dir
	cfg.Logger = "zap"
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	client := unixURL(filepath.Join(opts.Dir, "client.sock"))
	peer := unixURL(filepath.Join(opts.Dir, "peer.sock"))
	// Stale sockets from a killed process would make the listen fail.
	_ = os.Remove(filepath.Join(opts.Dir, "client.sock"))
	_ = os.Remove(filepath.Join(opts.Dir, "peer.sock"))
	cfg.ListenClientUrls = []url.URL{client}
	cfg.AdvertiseClientUrls = []url.URL{client}
	cfg.ListenPeerUrls = []url.URL{peer}
	cfg.AdvertisePeerUrls = []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// A small instance: berth's state is kilobytes per stack. Compacting
	// keeps the backend small; a lower snapshot count keeps memory flat.
	cfg.AutoCompactionMode = "revision"
	cfg.AutoCompactionRetention = "1000"
	cfg.SnapshotCount = 5000
	cfg.QuotaBackendBytes = 2 << 30
	cfg.MaxRequestBytes = 4 << 20

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd in %s: %w", opts.Dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(opts.StartTimeout):
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s not ready after %s", opts.Dir, opts.StartTimeout)
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
	cli := v3client.New(e.Server)
	s := newStore(cli, opts.Logger)
	s.closeFn = func() error {
		cerr := cli.Close()
		e.Close()
		select {
		case err := <-e.Err():
			if err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
		default:
		}
		return cerr
	}
	return s, nil
}

// Open connects to an external etcd cluster.
func Open(ctx context.Context, endpoints []string, logger *slog.Logger) (*Store, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Context:     ctx,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("connect to etcd %v: %w", endpoints, err)
	}
	s := newStore(cli, logger)
	s.closeFn = cli.Close
	return s, nil
}

func unixURL(path string) url.URL {
	return url.URL{Scheme: "unix", Path: path}
}
