// Package housekeeping keeps berth's disk use within a budget by
// collecting berth's own objects by policy: images that only revisions
// older than the newest N of their service use, exited task containers no
// task wants, dangling images berth built, optionally build cache past an
// age, and (only when asked) named volumes no revision references.
//
// Only objects carrying io.berth.cluster=<this cluster> are ever
// considered, images any container uses are never removed, and named
// volumes are never collected while any revision of any stack references
// them. Plan decides without I/O; Housekeeper gathers the state, applies
// a plan, reports usage (`berth df`) and collects by itself when the disk
// crosses its threshold or berth's objects their budget.
package housekeeping

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/runtime"
)

// State is what a plan is computed from. Images, Containers and Volumes
// are already restricted to the cluster's own objects.
type State struct {
	Keep      int
	Revisions []api.Revision     // every stored revision of every service
	Services  []api.ServiceState // current revisions
	Stacks    []api.StackRecord  // declared volumes
	Tasks     []api.Task
	Images    []runtime.ImageSummary
	// InUse holds image IDs any container on the engine uses (berth's or
	// not): those are never removed.
	InUse      map[string]bool
	Containers []runtime.Container
	Sizes      map[string]int64 // container ID → writable layer size
	Volumes    []runtime.VolumeUsage
	// CollectVolumes also collects unreferenced named volumes.
	CollectVolumes bool
	// DanglingMinAge spares untagged images younger than this (a build
	// in progress).
	DanglingMinAge time.Duration
	Now            time.Time
}

// settle is how long a container must have been exited before it is
// collected: a container made for a task created after the task list was
// read must not look like an orphan.
const settle = time.Minute

// Plan returns what a collection removes, with reasons. It is pure.
func Plan(s State) []api.Collectable {
	if s.Keep <= 0 {
		s.Keep = DefaultKeepRevisions
	}
	var out []api.Collectable
	out = append(out, planContainers(s)...)
	out = append(out, planImages(s)...)
	if s.CollectVolumes {
		out = append(out, planVolumes(s)...)
	}
	return out
}

func planContainers(s State) []api.Collectable {
	tasks := make(map[string]bool, len(s.Tasks))
	for _, t := range s.Tasks {
		tasks[t.ID] = true
	}
	var out []api.Collectable
	for _, c := range s.Containers {
		if c.State != runtime.StateExited && c.State != runtime.StateDead {
			continue
		}
		if c.FinishedAt.IsZero() || s.Now.Sub(c.FinishedAt) < settle {
			continue
		}
		task, job := c.Labels[api.LabelTask], c.Labels[api.LabelJob]
		reason := ""
		switch {
		case task != "" && !tasks[task]:
			reason = "exited container of a task that no longer exists"
		case task == "" && job != "":
			reason = "exited job container"
		default:
			continue
		}
		out = append(out, api.Collectable{Kind: api.ObjectContainer, ID: c.ID, Name: c.Name, Stack: c.Labels[api.LabelStack],
			Size: s.Sizes[c.ID], Reason: reason})
	}
	return out
}

// imageUse is which revisions use an image.
type imageUse struct {
	kept  bool
	stack string
	old   []string // "stack/service revision N" of revisions past the newest Keep
}

func imageUses(s State) map[string]*imageUse {
	current := map[string]int{}
	for _, svc := range s.Services {
		current[svc.Stack+"/"+svc.Name] = svc.Revision
	}
	byService := map[string][]api.Revision{}
	for _, r := range s.Revisions {
		k := r.Stack + "/" + r.Service
		byService[k] = append(byService[k], r)
	}
	uses := map[string]*imageUse{}
	use := func(id string) *imageUse {
		u, ok := uses[id]
		if !ok {
			u = &imageUse{}
			uses[id] = u
		}
		return u
	}
	taskRevs := map[string]bool{}
	for _, t := range s.Tasks {
		taskRevs[fmt.Sprintf("%s/%s/%d", t.Stack, t.Service, t.Revision)] = true
	}
	for k, revs := range byService {
		sort.Slice(revs, func(i, j int) bool { return revs[i].Number > revs[j].Number })
		for i, r := range revs {
			id := r.Spec.ImageID
			if id == "" {
				continue
			}
			u := use(id)
			u.stack = r.Stack
			if i < s.Keep || r.Number == current[k] || taskRevs[fmt.Sprintf("%s/%d", k, r.Number)] {
				u.kept = true
				continue
			}
			u.old = append(u.old, fmt.Sprintf("%s revision %d", k, r.Number))
		}
	}
	return uses
}

func planImages(s State) []api.Collectable {
	uses := imageUses(s)
	var out []api.Collectable
	for _, img := range s.Images {
		if s.InUse[img.ID] {
			continue
		}
		u := uses[img.ID]
		var reason, stack string
		switch {
		case u != nil && u.kept:
			continue
		case u != nil:
			slices.Sort(u.old)
			reason = fmt.Sprintf("used only by revisions older than the newest %d (%s)", s.Keep, strings.Join(u.old, ", "))
			stack = u.stack
		case len(img.RepoTags) == 0 && s.Now.Sub(img.Created) < s.DanglingMinAge:
			continue // perhaps a step of a build still going
		case len(img.RepoTags) == 0:
			reason = "dangling image built by berth"
		default:
			continue // tagged, and no revision uses it yet: it may be deployed next
		}
		out = append(out, api.Collectable{Kind: api.ObjectImage, ID: img.ID, Name: strings.Join(img.RepoTags, ","), Stack: stack,
			Size: img.Size, Reason: reason})
	}
	return out
}

// VolumeName is the engine name of a stack's named volume.
func VolumeName(stack, volume string) string { return stack + "_" + volume }

func planVolumes(s State) []api.Collectable {
	referenced := map[string]bool{}
	for _, r := range s.Revisions {
		for _, m := range r.Spec.Mounts {
			if m.Type == api.MountVolume && m.Source != "" {
				referenced[VolumeName(r.Stack, m.Source)] = true
			}
		}
	}
	for _, st := range s.Stacks {
		for name := range st.Volumes {
			referenced[VolumeName(st.Name, name)] = true
		}
	}
	var out []api.Collectable
	for _, v := range s.Volumes {
		if referenced[v.Name] {
			continue
		}
		out = append(out, api.Collectable{Kind: api.ObjectVolume, ID: v.Name, Name: v.Name, Stack: v.Labels[api.LabelStack],
			Size: max(v.Size, 0), Reason: "named volume that no revision of any stack references"})
	}
	return out
}
