package housekeeping

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/runtime"
)

func revs(stack, svc string, n int, vol string) []api.Revision {
	var out []api.Revision
	for i := 1; i <= n; i++ {
		spec := api.ServiceSpec{ImageID: fmt.Sprintf("sha256:%s-%d", svc, i)}
		if vol != "" {
			spec.Mounts = []api.Mount{{Type: api.MountVolume, Source: vol, Target: "/data"}}
		}
		out = append(out, api.Revision{Stack: stack, Service: svc, Number: i, Spec: spec})
	}
	return out
}

func ids(cs []api.Collectable, kind string) []string {
	var out []string
	for _, c := range cs {
		if c.Kind == kind {
			out = append(out, c.ID)
		}
	}
	sort.Strings(out)
	return out
}

func TestPlan(t *testing.T) {
	now := time.Now()
	base := func() State {
		s := State{Keep: 5, Now: now, InUse: map[string]bool{}, Sizes: map[string]int64{}}
		s.Revisions = append(revs("shop", "web", 8, "data"), revs("shop", "old", 1, "gone")...)
		s.Services = []api.ServiceState{{Stack: "shop", Name: "web", Revision: 8}}
		for _, r := range s.Revisions {
			s.Images = append(s.Images, runtime.ImageSummary{ID: r.Spec.ImageID, Size: 10, RepoTags: []string{"x:" + r.Spec.ImageID}})
		}
		return s
	}
	for _, tc := range []struct {
		desc string
		edit func(*State)
		kind string
		want string
	}{
		{"images of revisions past the newest 5 go", func(*State) {}, api.ObjectImage, "sha256:web-1,sha256:web-2,sha256:web-3"},
		{"keep 7 keeps more", func(s *State) { s.Keep = 7 }, api.ObjectImage, "sha256:web-1"},
		{"an image a container uses stays", func(s *State) { s.InUse["sha256:web-1"] = true }, api.ObjectImage, "sha256:web-2,sha256:web-3"},
		{"the current revision stays after a rollback to it", func(s *State) { s.Services[0].Revision = 2 }, api.ObjectImage, "sha256:web-1,sha256:web-3"},
		{"a task's revision stays", func(s *State) { s.Tasks = []api.Task{{Stack: "shop", Service: "web", Revision: 3}} }, api.ObjectImage, "sha256:web-1,sha256:web-2"},
		{"an image a kept revision shares stays", func(s *State) { s.Revisions[0].Spec.ImageID = "sha256:web-8" }, api.ObjectImage, "sha256:web-2,sha256:web-3"},
		{"dangling unreferenced images go, tagged ones stay", func(s *State) {
			s.DanglingMinAge = 10 * time.Minute
			s.Images = append(s.Images, runtime.ImageSummary{ID: "sha256:dangling", Created: now.Add(-time.Hour)}, runtime.ImageSummary{ID: "sha256:built", RepoTags: []string{"shop/web:next"}},
				runtime.ImageSummary{ID: "sha256:building", Created: now.Add(-time.Minute)})
		}, api.ObjectImage, "sha256:dangling,sha256:web-1,sha256:web-2,sha256:web-3"},
		{"exited containers of gone tasks go, after settling", func(s *State) {
			s.Tasks = []api.Task{{ID: "live", Stack: "shop", Service: "web", Revision: 8}}
			s.Containers = []runtime.Container{
				{ID: "c-gone", State: runtime.StateExited, FinishedAt: now.Add(-time.Hour), Labels: map[string]string{api.LabelTask: "gone"}},
				{ID: "c-fresh", State: runtime.StateExited, FinishedAt: now, Labels: map[string]string{api.LabelTask: "gone2"}},
				{ID: "c-live", State: runtime.StateExited, FinishedAt: now.Add(-time.Hour), Labels: map[string]string{api.LabelTask: "live"}},
				{ID: "c-run", State: runtime.StateRunning, Labels: map[string]string{api.LabelTask: "gone"}},
				{ID: "c-created", State: runtime.StateCreated, Labels: map[string]string{api.LabelTask: "gone"}},
				{ID: "c-job", State: runtime.StateExited, FinishedAt: now.Add(-time.Hour), Labels: map[string]string{api.LabelJob: "j1"}},
			}
		}, api.ObjectContainer, "c-gone,c-job"},
		{"volumes only when asked", func(s *State) {
			s.Volumes = []runtime.VolumeUsage{{Name: "shop_data"}, {Name: "shop_stray"}}
		}, api.ObjectVolume, ""},
		{"a volume any revision references stays, even an old one", func(s *State) {
			s.CollectVolumes = true
			s.Volumes = []runtime.VolumeUsage{{Name: "shop_data"}, {Name: "shop_gone"}, {Name: "shop_stray"}, {Name: "shop_declared"}}
			s.Stacks = []api.StackRecord{{Name: "shop", Volumes: map[string]api.VolumeSpec{"declared": {}}}}
		}, api.ObjectVolume, "shop_stray"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			s := base()
			tc.edit(&s)
			got := ids(Plan(s), tc.kind)
			if strings.Join(got, ",") != tc.want {
				t.Fatalf("%s collected %v, want %s", tc.kind, got, tc.want)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	s := State{Now: time.Now(), Sizes: map[string]int64{"c1": 5}}
	s.Revisions = []api.Revision{{Stack: "a", Service: "w", Number: 1, Spec: api.ServiceSpec{ImageID: "i1"}}, {Stack: "b", Service: "w", Number: 1, Spec: api.ServiceSpec{ImageID: "i1"}}}
	s.Images = []runtime.ImageSummary{{ID: "i1", Size: 100}, {ID: "i2", Size: 7}}
	s.Containers = []runtime.Container{{ID: "c1", Labels: map[string]string{api.LabelStack: "a"}}}
	s.Volumes = []runtime.VolumeUsage{{Name: "a_v", Size: 20, Labels: map[string]string{api.LabelStack: "a"}}}
	u := Usage(s, []api.Collectable{{Kind: api.ObjectImage, ID: "i2", Size: 7}})
	if u.Total != 132 || u.Reclaim != 7 || len(u.Stacks) != 2 || u.Stacks[0].Images != 100 || u.Stacks[0].Volumes != 20 ||
		u.Stacks[0].Containers != 5 || u.Stacks[1].Images != 100 || u.Other.Images != 7 || u.Other.Reclaim != 7 {
		t.Fatalf("usage %+v", u)
	}
}
