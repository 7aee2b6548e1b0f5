package housekeeping

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/store"
)

// Engine is what the housekeeper needs of the runtime driver.
type Engine interface {
	runtime.Driver
	runtime.Housekeeper
}

// Housekeeper collects one node's objects of one cluster.
type Housekeeper struct {
	cfg       Config
	st        *store.Store
	eng       Engine
	clusterID string
	nodeID    string
	log       *slog.Logger
	// Wedged, if set, reports the engine wedged: automatic checks wait
	// rather than add calls that would only hang.
	Wedged func() bool

	mu      sync.Mutex // one collection at a time
	statMu  sync.Mutex
	status  Status
	overSay string // last disk.* event type recorded ("" unknown)
}

// Status is the housekeeper's last reading, for metrics and `berth df`.
type Status struct {
	Used, Budget         int64 // berth's objects, and their budget
	DiskUsed, DiskTotal  int64
	LastRun              time.Time
	LastFreed            int64
	OverBudget, OverDisk bool
}

// New returns a housekeeper.
func New(cfg Config, st *store.Store, eng Engine, clusterID, nodeID string, logger *slog.Logger) *Housekeeper {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Housekeeper{cfg: cfg.withDefaults(), st: st, eng: eng, clusterID: clusterID, nodeID: nodeID, log: logger}
}

// Status returns the last reading.
func (h *Housekeeper) Status() Status {
	h.statMu.Lock()
	defer h.statMu.Unlock()
	return h.status
}

// state gathers what a plan needs. du is the engine's disk usage.
func (h *Housekeeper) state(ctx context.Context, du runtime.EngineDiskUsage, volumes bool) (State, error) {
	s := State{Keep: h.cfg.KeepRevisions, InUse: map[string]bool{}, Sizes: map[string]int64{}, CollectVolumes: volumes, DanglingMinAge: h.cfg.DanglingMinAge, Now: time.Now()}
	var err error
	if s.Services, err = h.st.ListServices(ctx, ""); err != nil {
		return s, err
	}
	if s.Stacks, err = h.st.ListStacks(ctx); err != nil {
		return s, err
	}
	if s.Tasks, err = h.st.ListTasks(ctx, ""); err != nil {
		return s, err
	}
	for _, svc := range s.Services {
		revs, err := h.st.ListRevisions(ctx, svc.Stack, svc.Name)
		if err != nil {
			return s, err
		}
		s.Revisions = append(s.Revisions, revs...)
	}
	own := func(l map[string]string) bool { return l[api.LabelCluster] == h.clusterID }
	for _, i := range du.Images {
		if own(i.Labels) {
			s.Images = append(s.Images, i)
		}
	}
	for _, c := range du.Containers {
		s.InUse[c.Image] = true
		if own(c.Labels) {
			s.Sizes[c.ID] = c.SizeRw
		}
	}
	for _, v := range du.Volumes {
		if own(v.Labels) {
			s.Volumes = append(s.Volumes, v)
		}
	}
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if s.Containers, err = h.eng.List(lctx, map[string]string{api.LabelCluster: h.clusterID}); err != nil {
		return s, err
	}
	users, err := h.eng.ImageUsers(lctx)
	if err != nil {
		return s, err
	}
	for id := range users {
		s.InUse[id] = true
	}
	return s, nil
}

func (h *Housekeeper) diskUsage(ctx context.Context) (runtime.EngineDiskUsage, error) {
	du, err := h.eng.DiskUsage(ctx)
	if errors.Is(err, runtime.ErrUnreachable) {
		return du, fmt.Errorf("%w: %v", api.ErrUnavailable, err)
	}
	return du, err
}

// Collect removes (or, on a dry run, lists) what the policy collects.
func (h *Housekeeper) Collect(ctx context.Context, req api.GCRequest) (api.GCReport, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	du, err := h.diskUsage(ctx)
	if err != nil {
		return api.GCReport{}, err
	}
	s, err := h.state(ctx, du, req.Volumes)
	if err != nil {
		return api.GCReport{}, err
	}
	plan := Plan(s)
	if h.cfg.BuildCacheMaxAge > 0 && du.BuildCache > 0 {
		plan = append(plan, api.Collectable{Kind: api.ObjectBuildCache, ID: "build-cache", Size: du.BuildCache,
			Reason: fmt.Sprintf("build cache unused for %s (at most this much)", h.cfg.BuildCacheMaxAge)})
	}
	rep := api.GCReport{DryRun: req.DryRun, Objects: plan}
	if rep.Objects == nil {
		rep.Objects = []api.Collectable{}
	}
	for i := range rep.Objects {
		o := &rep.Objects[i]
		if req.DryRun {
			rep.Freed += o.Size
			continue
		}
		if err := h.remove(ctx, o); err != nil {
			o.Error = err.Error()
			h.log.Warn("collect object", "kind", o.Kind, "id", o.ID, "err", err)
			continue
		}
		rep.Freed += o.Size
	}
	if !req.DryRun {
		h.statMu.Lock()
		h.status.LastRun, h.status.LastFreed = time.Now().UTC(), rep.Freed
		h.statMu.Unlock()
		h.log.Info("collection done", "objects", len(rep.Objects), "freed", rep.Freed)
	}
	return rep, nil
}

func (h *Housekeeper) remove(ctx context.Context, o *api.Collectable) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	switch o.Kind {
	case api.ObjectContainer:
		return h.eng.Remove(ctx, o.ID)
	case api.ObjectImage:
		return h.eng.RemoveImage(ctx, o.ID)
	case api.ObjectVolume:
		return h.eng.RemoveVolume(ctx, o.ID)
	case api.ObjectBuildCache:
		n, err := h.eng.PruneBuildCache(ctx, h.cfg.BuildCacheMaxAge)
		o.Size = n
		return err
	}
	return fmt.Errorf("unknown object kind %q", o.Kind)
}

// DiskUsage is `berth df`: usage per stack and what a collection would
// free.
func (h *Housekeeper) DiskUsage(ctx context.Context) (api.DiskUsage, error) {
	du, err := h.diskUsage(ctx)
	if err != nil {
		return api.DiskUsage{}, err
	}
	s, err := h.state(ctx, du, false)
	if err != nil {
		return api.DiskUsage{}, err
	}
	out := Usage(s, Plan(s))
	out.BuildCache = du.BuildCache
	out.Budget = int64(h.cfg.Budget)
	out.DiskUsed, out.DiskTotal = diskOf(du.RootDir)
	return out, nil
}

// Usage sums sizes per stack. An image several stacks use counts in
// each of them, once in the total.
func Usage(s State, plan []api.Collectable) api.DiskUsage {
	per := map[string]*api.StackUsage{}
	get := func(stack string) *api.StackUsage {
		if _, ok := per[stack]; !ok {
			per[stack] = &api.StackUsage{Stack: stack}
		}
		return per[stack]
	}
	var out api.DiskUsage
	imageStacks := map[string]map[string]bool{}
	for _, r := range s.Revisions {
		if r.Spec.ImageID == "" {
			continue
		}
		if imageStacks[r.Spec.ImageID] == nil {
			imageStacks[r.Spec.ImageID] = map[string]bool{}
		}
		imageStacks[r.Spec.ImageID][r.Stack] = true
	}
	for _, img := range s.Images {
		out.Total += img.Size
		stacks := imageStacks[img.ID]
		if len(stacks) == 0 {
			get("").Images += img.Size
		}
		for st := range stacks {
			get(st).Images += img.Size
		}
	}
	for _, c := range s.Containers {
		size := s.Sizes[c.ID]
		out.Total += size
		get(c.Labels[api.LabelStack]).Containers += size
	}
	for _, v := range s.Volumes {
		size := max(v.Size, 0)
		out.Total += size
		get(v.Labels[api.LabelStack]).Volumes += size
	}
	for _, o := range plan {
		out.Reclaim += o.Size
		get(o.Stack).Reclaim += o.Size
	}
	for name, u := range per {
		if name == "" {
			out.Other = *u
			continue
		}
		out.Stacks = append(out.Stacks, *u)
	}
	if out.Stacks == nil {
		out.Stacks = []api.StackUsage{}
	}
	slices.SortFunc(out.Stacks, func(a, b api.StackUsage) int { return strings.Compare(a.Stack, b.Stack) })
	return out
}

// diskOf reports used and total bytes of the file system holding dir, if
// this process can see it (the engine may be on another machine).
func diskOf(dir string) (used, total int64) {
	if dir == "" {
		return 0, 0
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		return 0, 0
	}
	total = int64(fs.Blocks) * fs.Bsize
	return total - int64(fs.Bavail)*fs.Bsize, total
}
