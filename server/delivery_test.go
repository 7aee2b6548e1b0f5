package server

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/controller"
	"github.com/berth-dev/berth/store"
)

// pins resolves references naming a registry to a digest.
type pins struct{ images }

func (pins) PinImage(_ context.Context, ref string) (api.ImagePin, error) {
	if strings.HasPrefix(ref, "reg:5000/") {
		return api.ImagePin{Digest: "reg:5000/web@sha256:1"}, nil
	}
	id, err := images{}.ResolveImage(context.Background(), ref)
	return api.ImagePin{ID: id}, err
}

func followBody(approval string) string {
	return `{"stack":{"services":{"web":{"name":"web","image":"reg:5000/web:stable","replicas":1,"restart":{"condition":"any"},
		"auto_update":{"follow":true,"approval":"` + approval + `"}}}}}`
}

func TestImageUpdates(t *testing.T) {
	st := store.OpenTest(t)
	log := slog.New(slog.DiscardHandler)
	s := New(Config{ClusterID: "c1"}, st, pins{}, noNodes{}, controller.NewJobs(st, nil, "n1", log), log)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	ctx := context.Background()

	for _, tc := range []struct{ stack, approval string }{{"auto", api.ApprovalAuto}, {"held", api.ApprovalRequired}} {
		if code, eb, _ := call(t, srv, "POST", "/v1/stacks/"+tc.stack+"/deploy", followBody(tc.approval)); code != 200 {
			t.Fatalf("deploy %s: %d %+v", tc.stack, code, eb)
		}
		rev, _ := st.GetRevision(ctx, tc.stack, "web", 1)
		if rev.Spec.ImageDigest != "reg:5000/web@sha256:1" || rev.Spec.ImageID != "" {
			t.Fatalf("%s pinned %q / %q", tc.stack, rev.Spec.ImageDigest, rev.Spec.ImageID)
		}
		if err := s.ImageUpdate(ctx, tc.stack, "web", "reg:5000/web@sha256:1"); err != nil {
			t.Fatalf("same digest: %v", err)
		}
		if err := s.ImageUpdate(ctx, tc.stack, "web", "reg:5000/web@sha256:2"); err != nil {
			t.Fatalf("update %s: %v", tc.stack, err)
		}
	}

	auto, _, _ := st.GetService(ctx, "auto", "web")
	rev2, _ := st.GetRevision(ctx, "auto", "web", 2)
	if auto.Revision != 2 || auto.Rollout == nil || auto.Rollout.From != 1 || rev2.Spec.ImageDigest != "reg:5000/web@sha256:2" {
		t.Fatalf("auto: %+v, revision 2 runs %q", auto, rev2.Spec.ImageDigest)
	}
	if err := s.ImageUpdate(ctx, "auto", "web", "reg:5000/web@sha256:3"); err == nil || !strings.Contains(err.Error(), "still rolling out") {
		t.Fatalf("an update during a rollout: %v", err)
	}

	held, _, _ := st.GetService(ctx, "held", "web")
	if held.Revision != 1 || held.PendingUpdate == nil || held.PendingUpdate.To != "reg:5000/web@sha256:2" || held.PendingUpdate.From != "reg:5000/web@sha256:1" {
		t.Fatalf("held: %+v", held)
	}
	if code, eb, _ := call(t, srv, "POST", "/v1/stacks/held/services/web/update/approve", ""); code != 200 {
		t.Fatalf("approve: %d %+v", code, eb)
	}
	held, _, _ = st.GetService(ctx, "held", "web")
	if held.Revision != 2 || held.PendingUpdate != nil {
		t.Fatalf("held after approval: %+v", held)
	}
	if code, eb, _ := call(t, srv, "POST", "/v1/stacks/held/services/web/update/approve", ""); code != 409 || !strings.Contains(eb.Error, "no update waiting") {
		t.Fatalf("second approve: %d %+v", code, eb)
	}
	if code, _, _ := call(t, srv, "POST", "/v1/stacks/nope/services/web/update/approve", ""); code != 404 {
		t.Fatalf("approve on an unknown stack: %d", code)
	}
	evs, _ := st.ListEvents(ctx, 0, 100)
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	if got := strings.Join(types, " "); !strings.Contains(got, "image.update.pending") || strings.Count(got, "image.update ") < 1 {
		t.Fatalf("events %s", got)
	}
	if code, _, raw := call(t, srv, "GET", "/v1/registry", ""); code != 200 || !strings.Contains(string(raw), "runs no registry") {
		t.Fatalf("registry without one: %d %s", code, raw)
	}
	if code, _, _ := call(t, srv, "POST", "/v1/registry/gc", "{}"); code != 409 {
		t.Fatalf("gc without a registry: %d", code)
	}
}
