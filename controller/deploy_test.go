package controller

import (
	"fmt"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
)

func svcSpec(name, env string, replicas int) *api.ServiceSpec {
	return &api.ServiceSpec{Name: name, Image: "img", ImageID: "sha256:1", Replicas: replicas,
		Environment: map[string]string{"V": env}, Restart: api.RestartPolicy{Condition: api.RestartAny}}
}

func stackOf(specs ...*api.ServiceSpec) *api.Stack {
	st := &api.Stack{Name: "s", Services: map[string]*api.ServiceSpec{}}
	for _, s := range specs {
		st.Services[s.Name] = s
	}
	return st
}

// stored returns the Current that results from applying a first deploy.
func stored(st *api.Stack) Current {
	w, _ := PlanDeploy(st, Current{}, time.Unix(0, 0))
	cur := Current{Record: &w.Record, Version: 1, Services: map[string]api.ServiceState{}, Latest: map[string]api.Revision{}}
	for _, s := range w.Services {
		cur.Services[s.Name] = s
	}
	for _, r := range w.Revisions {
		cur.Latest[r.Service] = r
	}
	return cur
}

func TestPlanDeploy(t *testing.T) {
	t.Parallel()
	base := stackOf(svcSpec("web", "1", 3), svcSpec("db", "1", 1))
	cur := stored(base)
	tests := []struct {
		desc      string
		stack     *api.Stack
		cur       Current
		want      map[string]string // service → action
		revisions int
		wantRev   map[string]int
	}{
		{desc: "new stack creates revision 1 of each service", stack: base, cur: Current{},
			want: map[string]string{"web": api.ChangeCreated, "db": api.ChangeCreated}, revisions: 2, wantRev: map[string]int{"web": 1, "db": 1}},
		{desc: "same stack changes nothing", stack: stackOf(svcSpec("web", "1", 3), svcSpec("db", "1", 1)), cur: cur,
			want: map[string]string{"web": api.ChangeUnchanged, "db": api.ChangeUnchanged}},
		{desc: "replicas only is a scale, not a revision", stack: stackOf(svcSpec("web", "1", 5), svcSpec("db", "1", 1)), cur: cur,
			want: map[string]string{"web": api.ChangeScaled, "db": api.ChangeUnchanged}, wantRev: map[string]int{"web": 1}},
		{desc: "changed env is a new revision", stack: stackOf(svcSpec("web", "2", 3), svcSpec("db", "1", 1)), cur: cur,
			want: map[string]string{"web": api.ChangeUpdated, "db": api.ChangeUnchanged}, revisions: 1, wantRev: map[string]int{"web": 2}},
		{desc: "a dropped service is removed", stack: stackOf(svcSpec("web", "1", 3)), cur: cur,
			want: map[string]string{"web": api.ChangeUnchanged, "db": api.ChangeRemoved}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			w, changes := PlanDeploy(tt.stack, tt.cur, time.Unix(10, 0))
			got := map[string]string{}
			for _, c := range changes {
				got[c.Service] = c.Action
				if want, ok := tt.wantRev[c.Service]; ok && c.Revision != want {
					t.Errorf("%s revision = %d, want %d", c.Service, c.Revision, want)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("changes = %v, want %v", got, tt.want)
			}
			if len(w.Revisions) != tt.revisions {
				t.Errorf("%d new revisions, want %d", len(w.Revisions), tt.revisions)
			}
			if w.Version != tt.cur.Version {
				t.Errorf("write version = %d, want the read version %d", w.Version, tt.cur.Version)
			}
		})
	}
}

func TestSpecHashIgnoresReplicas(t *testing.T) {
	t.Parallel()
	if SpecHash(*svcSpec("a", "1", 1)) != SpecHash(*svcSpec("a", "1", 9)) {
		t.Fatal("replicas changed the hash")
	}
	if SpecHash(*svcSpec("a", "1", 1)) == SpecHash(*svcSpec("a", "2", 1)) {
		t.Fatal("env did not change the hash")
	}
}
