package store

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"
)

// Snapshot writes a consistent snapshot of the whole etcd keyspace (the
// member's backend, as `etcdctl snapshot save` takes it) to w.
func (s *Store) Snapshot(ctx context.Context, w io.Writer) (int64, error) {
	rc, err := s.cli.Snapshot(ctx)
	if err != nil {
		return 0, unavailable("snapshot", err)
	}
	defer rc.Close()
	n, err := io.Copy(w, rc)
	if err != nil {
		return n, unavailable("snapshot", err)
	}
	return n, nil
}

// RestoreEmbedded makes dir the etcd data directory of an embedded member
// (as OpenEmbedded runs it) holding the snapshot at path. dir must not
// exist yet. The snapshot's integrity hash is checked.
func RestoreEmbedded(path, dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "member")); err == nil {
		return fmt.Errorf("%s already holds etcd data; restore into a fresh data directory", dir)
	}
	peer := unixURL(filepath.Join(dir, "peer.sock"))
	err := snapshot.NewV3(zap.NewNop()).Restore(snapshot.RestoreConfig{
		SnapshotPath:        path,
		Name:                "berth",
		OutputDataDir:       dir,
		PeerURLs:            []string{peer.String()},
		InitialCluster:      "berth=" + peer.String(),
		InitialClusterToken: "etcd-cluster",
	})
	if err != nil {
		return fmt.Errorf("restore etcd snapshot: %w", err)
	}
	return nil
}
