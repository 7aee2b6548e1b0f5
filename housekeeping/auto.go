package housekeeping

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/berth-dev/berth/api"
	units "github.com/docker/go-units"
)

// Run checks the disk every Interval until ctx ends. When the engine's
// file system is fuller than DiskThreshold percent, or berth's objects
// take more than Budget, it collects (never volumes); if that is not
// enough it records disk.over_budget, and disk.ok once it is.
func (h *Housekeeper) Run(ctx context.Context) error {
	t := time.NewTimer(min(h.cfg.Interval, 30*time.Second)) // let berth settle first
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if h.Wedged != nil && h.Wedged() {
			t.Reset(h.cfg.Interval)
			continue
		}
		if err := h.check(ctx); err != nil && ctx.Err() == nil {
			h.log.Warn("disk check", "err", err)
		}
		t.Reset(h.cfg.Interval)
	}
}

// check reads usage, collects if over, and records the verdict.
func (h *Housekeeper) check(ctx context.Context) error {
	over, detail, err := h.over(ctx)
	if err != nil {
		return err
	}
	if over {
		h.log.Info("disk over its limits; collecting", "detail", detail)
		if _, err := h.Collect(ctx, api.GCRequest{}); err != nil {
			return err
		}
		if over, detail, err = h.over(ctx); err != nil {
			return err
		}
	}
	return h.say(ctx, over, detail)
}

// over reports whether the disk or berth's objects are over their
// limits, and how.
func (h *Housekeeper) over(ctx context.Context) (bool, string, error) {
	du, err := h.DiskUsage(ctx)
	if err != nil {
		return false, "", err
	}
	st := Status{Used: du.Total, Budget: du.Budget, DiskUsed: du.DiskUsed, DiskTotal: du.DiskTotal}
	var why []string
	if du.Budget > 0 && du.Total > du.Budget {
		st.OverBudget = true
		why = append(why, fmt.Sprintf("berth's objects take %s, over the budget of %s", units.BytesSize(float64(du.Total)), units.BytesSize(float64(du.Budget))))
	}
	if h.cfg.DiskThreshold > 0 && du.DiskTotal > 0 {
		pct := float64(du.DiskUsed) * 100 / float64(du.DiskTotal)
		if pct >= float64(h.cfg.DiskThreshold) {
			st.OverDisk = true
			why = append(why, fmt.Sprintf("the engine's disk is %.0f%% full (threshold %d%%)", pct, h.cfg.DiskThreshold))
		}
	}
	h.statMu.Lock()
	st.LastRun, st.LastFreed = h.status.LastRun, h.status.LastFreed
	h.status = st
	h.statMu.Unlock()
	return len(why) > 0, strings.Join(why, "; "), nil
}

// say records disk.over_budget or disk.ok when the verdict changed since
// the last one recorded (read back from the events after a restart).
func (h *Housekeeper) say(ctx context.Context, over bool, detail string) error {
	typ := "disk.ok"
	if over {
		typ = "disk.over_budget"
	}
	if h.overSay == "" {
		e, found, err := h.st.LastEvent(ctx, func(e api.Event) bool { return e.Node == h.nodeID && strings.HasPrefix(e.Type, "disk.") })
		if err != nil {
			return err
		}
		h.overSay = "disk.ok"
		if found {
			h.overSay = e.Type
		}
	}
	if typ == h.overSay {
		return nil
	}
	if !over {
		detail = "disk use back within its limits"
	}
	if err := h.st.AppendEvent(ctx, api.Event{Type: typ, Node: h.nodeID, Message: detail}); err != nil {
		return err
	}
	h.overSay = typ
	return nil
}
