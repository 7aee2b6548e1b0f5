package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/api"
)

// UpdateStore is what the watcher reads of the stored state.
type UpdateStore interface {
	ListServices(ctx context.Context, stack string) ([]api.ServiceState, error)
	GetRevision(ctx context.Context, stack, svc string, n int) (api.Revision, error)
}

// Watcher follows the tags of services with x-berth.update.follow: when
// a tag points to a new digest it hands the pinned reference to Apply
// (the server's ImageUpdate, which rolls it out or records it for
// approval). It polls each service at its interval, and at once for a
// repository the embedded registry says was pushed to. A digest that was
// rolled out before and rolled back is not tried again: only a newer
// push can move the service.
type Watcher struct {
	Store UpdateStore
	// Resolve returns the pinned reference (registry/repo@sha256:…) a
	// tag points to now, asking the registry.
	Resolve func(ctx context.Context, ref string) (string, error)
	Apply   func(ctx context.Context, stack, service, to string) error
	Log     *slog.Logger
	// Tick is how often due services are looked for (default 1s).
	Tick time.Duration

	mu      sync.Mutex
	pushed  map[string]bool // repositories pushed to since the last pass
	checked map[string]time.Time
	retry   map[string]bool   // services whose last check must be repeated at once
	noted   map[string]string // what was last logged per service, to log once
	wake    chan struct{}
}

// Pushed tells the watcher that repo (registry/repo, or the path in the
// embedded registry) got a new manifest.
func (w *Watcher) Pushed(repo string) {
	w.init()
	w.mu.Lock()
	w.pushed[repo] = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *Watcher) init() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.Log == nil {
		w.Log = slog.New(slog.DiscardHandler)
	}
	if w.wake == nil {
		w.wake = make(chan struct{}, 1)
		w.pushed, w.checked, w.noted = map[string]bool{}, map[string]time.Time{}, map[string]string{}
		w.retry = map[string]bool{}
	}
}

// Run watches until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	w.init()
	tick := w.Tick
	if tick <= 0 {
		tick = time.Second
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-w.wake:
		}
		w.pass(ctx, time.Now())
	}
}

// followed is one service that follows its tag, as the pass sees it.
type followed struct {
	svc api.ServiceState
	rev api.Revision
}

func (w *Watcher) pass(ctx context.Context, now time.Time) {
	svcs, err := w.Store.ListServices(ctx, "")
	if err != nil {
		w.Log.Warn("auto-update: list services", "err", err)
		return
	}
	w.mu.Lock()
	pushed := w.pushed
	w.pushed = map[string]bool{}
	w.mu.Unlock()
	for _, svc := range svcs {
		if ctx.Err() != nil {
			return
		}
		rev, err := w.Store.GetRevision(ctx, svc.Stack, svc.Name, svc.Revision)
		if err != nil || rev.Spec.AutoUpdate == nil || !rev.Spec.AutoUpdate.Follow {
			continue
		}
		key := svc.Stack + "/" + svc.Name
		interval := rev.Spec.AutoUpdate.Interval.D()
		if interval <= 0 {
			interval = api.DefaultUpdateInterval
		}
		w.mu.Lock()
		last, retry := w.checked[key], w.retry[key]
		w.mu.Unlock()
		if now.Sub(last) < interval && !retry && !pushedTo(pushed, rev.Spec.Image) {
			continue
		}
		done := w.check(ctx, followed{svc, rev})
		w.mu.Lock()
		if done {
			w.checked[key] = now
		}
		// A check that could not finish (a rollout in progress) is
		// repeated at the next pass, even if a push brought it here.
		w.retry[key] = !done
		w.mu.Unlock()
	}
}

// check looks a service's tag up and hands a new digest on. It reports
// false when it should be tried again at the next pass.
func (w *Watcher) check(ctx context.Context, f followed) bool {
	key := f.svc.Stack + "/" + f.svc.Name
	to, err := w.Resolve(ctx, f.rev.Spec.Image)
	if err != nil {
		w.note(key, "resolve:"+err.Error(), func() {
			w.Log.Warn("auto-update: cannot look the tag up", "stack", f.svc.Stack, "service", f.svc.Name, "image", f.rev.Spec.Image, "err", err)
		})
		return true
	}
	if to == f.rev.Spec.ImageDigest || (f.svc.PendingUpdate != nil && f.svc.PendingUpdate.To == to) {
		return true
	}
	if w.rolledBack(ctx, f.svc, to) {
		w.note(key, "rolled-back:"+to, func() {
			w.Log.Info("auto-update: not retrying a digest that was rolled back", "stack", f.svc.Stack, "service", f.svc.Name, "digest", to)
		})
		return true
	}
	if err := w.Apply(ctx, f.svc.Stack, f.svc.Name, to); err != nil {
		if errors.Is(err, api.ErrConflict) {
			return false // a rollout in progress: next pass
		}
		w.Log.Warn("auto-update: apply", "stack", f.svc.Stack, "service", f.svc.Name, "to", to, "err", err)
		return false
	}
	w.Log.Info("auto-update", "stack", f.svc.Stack, "service", f.svc.Name, "from", f.rev.Spec.ImageDigest, "to", to)
	return true
}

// rolledBack reports whether a rollout to a revision running digest to
// was rolled back.
func (w *Watcher) rolledBack(ctx context.Context, svc api.ServiceState, to string) bool {
	ros := append([]api.Rollout(nil), svc.History...)
	if svc.Rollout != nil {
		ros = append(ros, *svc.Rollout)
	}
	for _, ro := range ros {
		if ro.State != api.RolloutRolledBack {
			continue
		}
		rev, err := w.Store.GetRevision(ctx, svc.Stack, svc.Name, ro.To)
		if err == nil && rev.Spec.ImageDigest == to {
			return true
		}
	}
	return false
}

func (w *Watcher) note(key, what string, log func()) {
	w.mu.Lock()
	seen := w.noted[key] == what
	w.noted[key] = what
	w.mu.Unlock()
	if !seen {
		log()
	}
}

// pushedTo reports whether image's repository is among those pushed to.
// The registry names a repository by its path; the image names it with
// the registry host in front.
func pushedTo(pushed map[string]bool, image string) bool {
	if len(pushed) == 0 {
		return false
	}
	repo := image
	if i := strings.LastIndex(repo, "@"); i >= 0 {
		repo = repo[:i]
	}
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	for p := range pushed {
		if repo == p || strings.HasSuffix(repo, "/"+p) {
			return true
		}
	}
	return false
}
