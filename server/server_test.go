package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/controller"
	"github.com/berth-dev/berth/store"
)

// images resolves every reference except those containing "missing".
type images struct{}

func (images) ResolveImage(_ context.Context, ref string) (string, error) {
	if strings.Contains(ref, "missing") {
		return "", fmt.Errorf("image %s not found on this engine: build it", ref)
	}
	return "sha256:" + ref, nil
}

type noNodes struct{}

func (noNodes) RemoveVolumes(context.Context, string) error { return nil }

func newTestServer(t *testing.T) (*httptest.Server, *store.Store) {
	t.Helper()
	st := store.OpenTest(t)
	log := slog.New(slog.DiscardHandler)
	s := New(Config{ClusterID: "c1"}, st, images{}, noNodes{}, controller.NewJobs(st, nil, "n1", log), log)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv, st
}

func call(t *testing.T, srv *httptest.Server, method, path, body string) (int, api.ErrorBody, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	_ = json.NewDecoder(resp.Body).Decode(&raw)
	var eb api.ErrorBody
	_ = json.Unmarshal(raw, &eb)
	return resp.StatusCode, eb, raw
}

func stackBody(image, env string) string {
	return fmt.Sprintf(`{"stack":{"services":{"web":{"name":"web","image":%q,"replicas":2,"restart":{"condition":"any"},"environment":{"V":%q}}}}}`, image, env)
}

func TestDeployAndErrors(t *testing.T) {
	srv, st := newTestServer(t)
	tests := []struct {
		desc, method, path, body string
		status                   int
		kind, has                string
	}{
		{"deploy", "POST", "/v1/stacks/shop/deploy", stackBody("web:1", "a"), 200, "", ""},
		{"unchanged redeploy", "POST", "/v1/stacks/shop/deploy", stackBody("web:1", "a"), 200, "", ""},
		{"path traversal", "POST", "/v1/stacks/..%2Fx/deploy", stackBody("web:1", "a"), 400, "invalid", "path separators"},
		{"long name", "POST", "/v1/stacks/" + strings.Repeat("a", 300) + "/deploy", stackBody("web:1", "a"), 400, "invalid", "limit is 63"},
		{"unknown field", "POST", "/v1/stacks/shop/deploy", `{"stack":{},"bogus":1}`, 400, "invalid", "bogus"},
		{"empty body", "POST", "/v1/stacks/shop/deploy", ``, 400, "invalid", "empty"},
		{"trailing data", "POST", "/v1/stacks/shop/deploy", stackBody("web:1", "a") + `{}`, 400, "invalid", "after the JSON"},
		{"missing image", "POST", "/v1/stacks/other/deploy", stackBody("missing:1", "a"), 400, "invalid", `service "web"`},
		{"name mismatch", "POST", "/v1/stacks/shop/deploy", `{"stack":{"name":"other","services":{}}}`, 400, "invalid", "does not match"},
		{"unknown stack", "GET", "/v1/stacks/nope", ``, 404, "not_found", "berth ls"},
		{"negative scale", "POST", "/v1/stacks/shop/services/web/scale", `{"replicas":-1}`, 400, "invalid", "out of range"},
		{"scale unknown service", "POST", "/v1/stacks/shop/services/db/scale", `{"replicas":1}`, 404, "not_found", "no service"},
		{"unknown route", "GET", "/v1/nothing", ``, 404, "not_found", "no API route"},
		{"rollout abort without rollout", "POST", "/v1/stacks/shop/rollout/abort", ``, 409, "conflict", "no rollout"},
		{"unknown rollout action", "POST", "/v1/stacks/shop/rollout/jump", ``, 404, "not_found", "pause, resume or abort"},
		{"update starts a rollout", "POST", "/v1/stacks/shop/deploy", stackBody("web:1", "b"), 200, "", ""},
		{"second update during the rollout", "POST", "/v1/stacks/shop/deploy", stackBody("web:1", "c"), 409, "conflict", "still rolling out revision 2"},
		{"rollback to a missing revision", "POST", "/v1/stacks/shop/rollback", `{"to":7}`, 404, "not_found", "no revision 7"},
	}
	for _, tt := range tests {
		code, eb, raw := call(t, srv, tt.method, tt.path, tt.body)
		if code != tt.status {
			t.Errorf("%s: status %d, want %d (%s)", tt.desc, code, tt.status, raw)
			continue
		}
		if tt.kind != "" && (eb.Kind != tt.kind || !strings.Contains(eb.Error, tt.has)) {
			t.Errorf("%s: error %q (%s), want kind %s containing %q", tt.desc, eb.Error, eb.Kind, tt.kind, tt.has)
		}
	}
	// Bad requests stored nothing: only the one stack, at revision 2.
	recs, _ := st.ListStacks(context.Background())
	if len(recs) != 1 || recs[0].Name != "shop" {
		t.Fatalf("stacks after bad requests: %+v", recs)
	}
	svc, _, _ := st.GetService(context.Background(), "shop", "web")
	if svc.Revision != 2 || svc.Rollout == nil || svc.Rollout.From != 1 {
		t.Fatalf("service after the update: %+v", svc)
	}
}
