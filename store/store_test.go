package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
)

func TestStackRoundTrip(t *testing.T) {
	s := OpenTest(t)
	ctx := context.Background()

	id, err := s.ClusterID(ctx, "c1")
	if err != nil || id != "c1" {
		t.Fatalf("ClusterID = %q, %v", id, err)
	}
	if id, _ := s.ClusterID(ctx, "c2"); id != "c1" {
		t.Fatalf("second ClusterID = %q, want the first writer's c1", id)
	}

	rec := api.StackRecord{Name: "web", Services: []string{"app"}}
	w := StackWrite{
		Record:    rec,
		Services:  []api.ServiceState{{Stack: "web", Name: "app", Revision: 1, Replicas: 2}},
		Revisions: []api.Revision{{Stack: "web", Service: "app", Number: 1}},
	}
	if err := s.ApplyStack(ctx, w); err != nil {
		t.Fatal(err)
	}
	// A second write from the same (stale) version must lose.
	if err := s.ApplyStack(ctx, w); !errors.Is(err, ErrChanged) {
		t.Fatalf("stale ApplyStack err = %v, want ErrChanged", err)
	}
	_, ver, err := s.GetStack(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	w.Version = ver
	w.Revisions = []api.Revision{{Stack: "web", Service: "app", Number: 2}}
	if err := s.ApplyStack(ctx, w); err != nil {
		t.Fatal(err)
	}
	latest, err := s.LatestRevision(ctx, "web", "app")
	if err != nil || latest.Number != 2 {
		t.Fatalf("LatestRevision = %d, %v", latest.Number, err)
	}

	if err := s.ApplyTasks(ctx, []api.Task{{ID: "t1", Stack: "web", Service: "app"}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteStack(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.GetStack(ctx, "web"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("GetStack after delete: %v", err)
	}
	tasks, _ := s.ListTasks(ctx, "web")
	revs, _ := s.ListRevisions(ctx, "web", "app")
	if len(tasks)+len(revs) != 0 {
		t.Fatalf("delete left %d tasks, %d revisions", len(tasks), len(revs))
	}
}

func TestEventsListAndWatch(t *testing.T) {
	s := OpenTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 0; i < 3; i++ {
		if err := s.AppendEvent(ctx, api.Event{Type: "test", Message: "m"}); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := s.ListEvents(ctx, 0, 2)
	if err != nil || len(evs) != 2 {
		t.Fatalf("ListEvents = %d, %v", len(evs), err)
	}
	if evs[0].Seq >= evs[1].Seq {
		t.Fatalf("events not oldest first: %d, %d", evs[0].Seq, evs[1].Seq)
	}
	ch := s.WatchEvents(ctx, evs[1].Seq)
	if err := s.AppendEvent(ctx, api.Event{Type: "later", Message: "m"}); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-ch:
		if e.Type != "later" {
			t.Fatalf("watched %q, want later", e.Type)
		}
	case <-ctx.Done():
		t.Fatal("no event from watch")
	}
}

// TestEventsOfTheSameInstantAreAllKept: events are keyed by their time;
// two with the same time must both be kept, not the later overwrite the
// earlier.
func TestEventsOfTheSameInstantAreAllKept(t *testing.T) {
	s := OpenTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	at := time.Now().UTC()
	for _, msg := range []string{"first", "second"} {
		if err := s.AppendEvent(ctx, api.Event{Type: "test", Message: msg, Time: at}); err != nil {
			t.Fatal(err)
		}
		if err := s.AppendAudit(ctx, api.AuditEntry{Path: msg, Time: at}); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := s.ListEvents(ctx, 0, 10)
	if err != nil || len(evs) != 2 {
		t.Fatalf("ListEvents = %+v, %v; want both events", evs, err)
	}
	audit, err := s.ListAudit(ctx, 0, 10)
	if err != nil || len(audit) != 2 {
		t.Fatalf("ListAudit = %+v, %v; want both entries", audit, err)
	}
}

func TestWatchSignals(t *testing.T) {
	s := OpenTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch := s.Watch(ctx, Tasks)
	time.Sleep(100 * time.Millisecond)
	if err := s.ApplyTasks(ctx, []api.Task{{ID: "t", Stack: "s"}}, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-ctx.Done():
		t.Fatal("no watch signal")
	}
}
