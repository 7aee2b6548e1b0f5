package store

import (
	"context"
	"testing"
	"time"
)

// OpenTest starts an embedded etcd in a temporary directory for a test and
// stops it when the test ends.
func OpenTest(tb testing.TB) *Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := OpenEmbedded(ctx, EmbeddedOptions{Dir: tb.TempDir()})
	if err != nil {
		tb.Fatalf("open embedded store: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}
