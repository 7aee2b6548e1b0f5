package registry

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
)

// GCOptions tune a garbage collection.
type GCOptions struct {
	// DeleteUntagged also removes manifests no tag points to (and then
	// their blobs). Off by default: a revision pinned by digest may run a
	// manifest whose tag has moved on.
	DeleteUntagged bool
	DryRun         bool
}

// GCResult says what a collection freed.
type GCResult struct {
	BytesBefore int64         `json:"bytes_before"`
	BytesAfter  int64         `json:"bytes_after"`
	Took        time.Duration `json:"took"`
}

// GC removes blobs no manifest references (distribution's mark and
// sweep). Pushes wait while it runs, so it never sees a half-pushed
// image; pulls go on.
func (r *Registry) GC(ctx context.Context, opts GCOptions) (GCResult, error) {
	r.gcMu.Lock()
	defer r.gcMu.Unlock()
	start := time.Now()
	root := filepath.Join(r.opts.Dir, "data")
	res := GCResult{BytesBefore: diskUsage(root)}
	drv, err := factory.Create(ctx, "filesystem", map[string]any{"rootdirectory": root})
	if err != nil {
		return res, fmt.Errorf("registry gc: %w", err)
	}
	ns, err := storage.NewRegistry(ctx, drv, storage.EnableDelete)
	if err != nil {
		return res, fmt.Errorf("registry gc: %w", err)
	}
	if err := storage.MarkAndSweep(ctx, drv, ns, storage.GCOpts{DryRun: opts.DryRun, RemoveUntagged: opts.DeleteUntagged, Quiet: true}); err != nil {
		return res, fmt.Errorf("registry gc: %w", err)
	}
	// The serving app caches blob descriptors in memory; a fresh one
	// forgets the blobs just removed.
	if !opts.DryRun {
		app, err := newApp(r.ctx, r.cfg)
		if err != nil {
			return res, err
		}
		_ = r.app.Swap(app).Shutdown()
	}
	res.BytesAfter = diskUsage(root)
	res.Took = time.Since(start)
	return res, nil
}

func diskUsage(root string) int64 {
	var n int64
	_ = filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}
