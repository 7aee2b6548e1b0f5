package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/controller"
	"github.com/berth-dev/berth/secrets"
	"github.com/berth-dev/berth/store"
)

// secured is a test server with its security parts: local is the unix
// socket's view (no token needed), remote the TCP listener's.
type secureEnv struct {
	t      testing.TB
	s      *Server
	st     *store.Store
	local  *httptest.Server
	remote *httptest.Server
}

func newSecureEnv(t testing.TB) *secureEnv {
	t.Helper()
	st := store.OpenTest(t)
	log := slog.New(slog.DiscardHandler)
	s := New(Config{ClusterID: "c1"}, st, images{}, noNodes{}, controller.NewJobs(st, nil, "n1", log), log)
	keys, err := secrets.OpenKeyring(filepath.Join(t.TempDir(), secrets.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	s.SetSecurity(Security{Vault: secrets.NewVault(st, keys), DefaultMemory: 512 << 20})
	e := &secureEnv{t: t, s: s, st: st, local: httptest.NewServer(s.Handler())}
	e.remote = httptest.NewUnstartedServer(s.Handler())
	e.remote.Config.ConnContext = func(ctx context.Context, _ netConn) context.Context { return RemoteConn(ctx) }
	e.remote.Start()
	t.Cleanup(e.local.Close)
	t.Cleanup(e.remote.Close)
	return e
}

// token creates a token through the local socket.
func (e *secureEnv) token(role, tenant string) string {
	e.t.Helper()
	code, body := e.do(e.local, "", "POST", "/v1/tokens", fmt.Sprintf(`{"role":%q,"tenant":%q}`, role, tenant))
	if code != 200 {
		e.t.Fatalf("create token: %d %s", code, body)
	}
	var tc api.TokenCreated
	if err := json.Unmarshal(body, &tc); err != nil {
		e.t.Fatal(err)
	}
	return tc.Secret
}

func (e *secureEnv) do(srv *httptest.Server, token, method, path, body string) (int, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestEveryRouteHasAPolicy(t *testing.T) {
	t.Parallel()
	e := newSecureEnv(t)
	routes := map[string]bool{}
	for _, p := range e.s.Routes() {
		routes[p] = true
		if _, ok := policies[p]; !ok {
			t.Errorf("route %q has no entry in policies (server/auth.go): give it a role and a scope", p)
		}
	}
	for p := range policies {
		if !routes[p] {
			t.Errorf("policy for %q names no route", p)
		}
	}
}

// concrete turns a route pattern into a method and a path to call.
func concrete(pattern string) (string, string) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		return "GET", "/no-such-route"
	}
	r := strings.NewReplacer("{stack}", "s1", "{service}", "web", "{name}", "db", "{action}", "pause",
		"{id}", "0123456789abcdef", "{tenant}", "t1")
	return method, r.Replace(path)
}

// TestRolesOnEveryRoute walks every route with every role over the
// remote listener: a role below the route's is refused (403), one at or
// above it is let through; no token at all is 401, and a tenant's token
// never reaches a cluster-wide route.
func TestRolesOnEveryRoute(t *testing.T) {
	t.Parallel()
	e := newSecureEnv(t)
	toks := map[string]string{}
	for _, r := range []string{api.RoleViewer, api.RoleDeployer, api.RoleAdmin} {
		toks[r] = e.token(r, "")
		toks[r+"@t"] = e.token(r, "t1")
	}
	for _, pattern := range e.s.Routes() {
		pol := policies[pattern]
		method, path := concrete(pattern)
		if code, body := e.do(e.remote, "", method, path, "{}"); code != http.StatusUnauthorized {
			t.Errorf("%s without a token: %d %s, want 401", pattern, code, body)
		}
		for name, tok := range toks {
			role, scoped := strings.CutSuffix(name, "@t")
			code, body := e.do(e.remote, tok, method, path, "{}")
			denied := code == http.StatusForbidden || code == http.StatusUnauthorized
			wantDenied := api.RoleRank(role) < api.RoleRank(pol.role) || (scoped && pol.scope == scopeCluster)
			if denied != wantDenied {
				t.Errorf("%s with a %s token (tenant scoped %v): %d %s; want denied=%v", pattern, role, scoped, code, body, wantDenied)
			}
		}
	}
}

func TestTokensExpireAndRevoke(t *testing.T) {
	t.Parallel()
	e := newSecureEnv(t)
	tok := e.token(api.RoleViewer, "")
	if code, _ := e.do(e.remote, tok, "GET", "/v1/stacks", ""); code != 200 {
		t.Fatalf("valid token: %d", code)
	}
	for _, bad := range []string{"nonsense", "berth_0123456789abcdef_" + strings.Repeat("A", 43), tok + "x", tok[:len(tok)-1] + "Z"} {
		if code, _ := e.do(e.remote, bad, "GET", "/v1/stacks", ""); code != http.StatusUnauthorized {
			t.Errorf("token %q: %d, want 401", bad, code)
		}
	}
	id, _, _ := ParseToken(tok)
	// Stored hashed: the secret is nowhere in etcd.
	assertNotStored(t, e.st, []byte(strings.TrimPrefix(tok, "berth_"+id+"_")))
	// Expired.
	rec, _ := e.st.GetToken(context.Background(), id)
	rec.ExpiresAt = time.Now().Add(-time.Second)
	_ = e.st.PutToken(context.Background(), rec)
	if code, body := e.do(e.remote, tok, "GET", "/v1/stacks", ""); code != http.StatusUnauthorized || !strings.Contains(string(body), "expired") {
		t.Errorf("expired token: %d %s", code, body)
	}
	tok2 := e.token(api.RoleViewer, "")
	id2, _, _ := ParseToken(tok2)
	if code, _ := e.do(e.local, "", "DELETE", "/v1/tokens/"+id2, ""); code != 200 {
		t.Fatalf("revoke: %d", code)
	}
	if code, body := e.do(e.remote, tok2, "GET", "/v1/stacks", ""); code != http.StatusUnauthorized || !strings.Contains(string(body), "revoked") {
		t.Errorf("revoked token: %d %s", code, body)
	}
	// The token list shows no hashes.
	_, body := e.do(e.local, "", "GET", "/v1/tokens", "")
	if strings.Contains(string(body), `"hash"`) {
		t.Errorf("token list shows hashes: %s", body)
	}
}

// assertNotStored fails if any key or value in etcd contains secret.
func assertNotStored(t *testing.T, st *store.Store, secret []byte) {
	t.Helper()
	resp, err := st.Client().Get(context.Background(), "", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		if bytes.Contains(kv.Value, secret) || bytes.Contains(kv.Key, secret) {
			t.Errorf("etcd key %s holds the secret in the clear", kv.Key)
		}
	}
}

func deployDoc(stack, secretRef string, replicas int, extra string) string {
	sec := ""
	if secretRef != "" {
		sec = fmt.Sprintf(`,"secrets":[{"source":%q}]`, secretRef)
	}
	return fmt.Sprintf(`{"stack":{"name":%q,"services":{"web":{"name":"web","image":"img","replicas":%d,"restart":{"condition":"any"}%s}}%s}}`,
		stack, replicas, sec, extra)
}

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	e := newSecureEnv(t)
	a := e.token(api.RoleAdmin, "ta")
	b := e.token(api.RoleAdmin, "tb")
	if code, body := e.do(e.remote, a, "POST", "/v1/stacks/s1/secrets/db", `{"value":"c2VjcmV0"}`); code != 200 {
		t.Fatalf("tenant a creates a secret: %d %s", code, body)
	}
	doc := deployDoc("s1", "db", 1, `,"secrets":{"db":{"external":true}}`)
	if code, body := e.do(e.remote, a, "POST", "/v1/stacks/s1/deploy", doc); code != 200 {
		t.Fatalf("tenant a deploys: %d %s", code, body)
	}
	// Tenant b sees none of it and can touch none of it.
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/v1/stacks/s1", ""},
		{"GET", "/v1/stacks/s1/secrets", ""},
		{"GET", "/v1/stacks/s1/jobs", ""},
		{"GET", "/v1/stacks/s1/services/web/revisions", ""},
		{"POST", "/v1/stacks/s1/deploy", deployDoc("s1", "", 1, "")},
		{"POST", "/v1/stacks/s1/services/web/scale", `{"replicas":3}`},
		{"POST", "/v1/stacks/s1/stop", ""},
		{"POST", "/v1/stacks/s1/secrets/other", `{"value":"eA=="}`},
		{"PUT", "/v1/stacks/s1/secrets/db", `{"value":"eA=="}`},
		{"DELETE", "/v1/stacks/s1/secrets/db", ""},
		{"DELETE", "/v1/stacks/s1", ""},
		{"POST", "/v1/stacks/s1/run", `{"service":"web","command":["x"]}`},
	} {
		if code, body := e.do(e.remote, b, c.method, c.path, c.body); code != http.StatusNotFound {
			t.Errorf("tenant b %s %s: %d %s; want 404", c.method, c.path, code, body)
		}
	}
	for _, path := range []string{"/v1/stacks", "/v1/tasks", "/v1/tasks?stack=s1", "/v1/events", "/v1/events?stack=s1", "/v1/audit"} {
		_, body := e.do(e.remote, b, "GET", path, "")
		if strings.Contains(string(body), "s1") {
			t.Errorf("tenant b GET %s shows tenant a's stack: %s", path, body)
		}
		// Tenant a sees its own.
		_, body = e.do(e.remote, a, "GET", path, "")
		if path != "/v1/tasks" && path != "/v1/tasks?stack=s1" && !strings.Contains(string(body), "s1") {
			t.Errorf("tenant a GET %s does not show its stack: %s", path, body)
		}
	}
	// The stack is still there, unchanged, for its tenant.
	code, body := e.do(e.remote, a, "GET", "/v1/stacks/s1", "")
	if code != 200 || !strings.Contains(string(body), `"replicas": 1`) {
		t.Errorf("tenant a's stack after b's attempts: %d %s", code, body)
	}
	// A tenant token cannot deploy into another tenant.
	if code, body := e.do(e.remote, b, "POST", "/v1/stacks/s2/deploy", strings.Replace(deployDoc("s2", "", 1, ""), `{"stack"`, `{"tenant":"ta","stack"`, 1)); code != http.StatusForbidden {
		t.Errorf("tenant b deploying for tenant a: %d %s", code, body)
	}
}

func TestQuotas(t *testing.T) {
	t.Parallel()
	e := newSecureEnv(t)
	if code, body := e.do(e.local, "", "PUT", "/v1/tenants/ta", `{"tasks":3,"memory_bytes":1073741824}`); code != 200 {
		t.Fatalf("set quota: %d %s", code, body)
	}
	tok := e.token(api.RoleDeployer, "ta")
	if code, body := e.do(e.remote, tok, "POST", "/v1/stacks/s1/deploy", deployDoc("s1", "", 2, "")); code != 200 {
		t.Fatalf("deploy within quota: %d %s", code, body)
	}
	// 2 × 512MiB default memory is the whole memory quota: another task is refused.
	code, body := e.do(e.remote, tok, "POST", "/v1/stacks/s2/deploy", deployDoc("s2", "", 1, ""))
	if code != http.StatusBadRequest || !strings.Contains(string(body), "quota") || !strings.Contains(string(body), "memory") {
		t.Fatalf("deploy past the memory quota: %d %s", code, body)
	}
	if code, body := e.do(e.remote, tok, "POST", "/v1/stacks/s1/services/web/scale", `{"replicas":4}`); code != http.StatusBadRequest || !strings.Contains(string(body), "4 tasks (quota 3)") {
		t.Fatalf("scale past the task quota: %d %s", code, body)
	}
	// Nothing was changed by the refusals.
	_, body = e.do(e.local, "", "GET", "/v1/stacks", "")
	if strings.Contains(string(body), `"s2"`) {
		t.Errorf("refused stack was stored: %s", body)
	}
	svc, _, _ := e.st.GetService(context.Background(), "s1", "web")
	if svc.Replicas != 2 {
		t.Errorf("replicas after a refused scale = %d", svc.Replicas)
	}
	// A CPU quota needs CPU limits.
	e.do(e.local, "", "PUT", "/v1/tenants/ta", `{"nano_cpus":1000000000}`)
	if code, body := e.do(e.remote, tok, "POST", "/v1/stacks/s1/deploy", deployDoc("s1", "", 3, "")); code != http.StatusBadRequest || !strings.Contains(string(body), "CPU limit") {
		t.Fatalf("deploy without CPU limits under a CPU quota: %d %s", code, body)
	}
}

func TestAuditLog(t *testing.T) {
	t.Parallel()
	e := newSecureEnv(t)
	viewer := e.token(api.RoleViewer, "")
	e.do(e.local, "", "POST", "/v1/stacks/s1/deploy", deployDoc("s1", "", 1, ""))
	e.do(e.remote, viewer, "POST", "/v1/stacks/s1/stop", "")
	e.do(e.local, "", "POST", "/v1/stacks/s1/services/web/scale", `{"replicas":-1}`)
	e.do(e.local, "", "GET", "/v1/stacks", "") // reads are not audited
	_, body := e.do(e.local, "", "GET", "/v1/audit", "")
	var es []api.AuditEntry
	if err := json.Unmarshal(body, &es); err != nil {
		t.Fatal(err)
	}
	// The first entry is the token's creation.
	if len(es) != 4 {
		t.Fatalf("audit entries = %d, want 4: %s", len(es), body)
	}
	want := []struct{ who, method, path, outcome string }{
		{"local", "POST", "/v1/tokens", "ok"},
		{"local", "POST", "/v1/stacks/s1/deploy", "ok"},
		{"token:", "POST", "/v1/stacks/s1/stop", "denied"},
		{"local", "POST", "/v1/stacks/s1/services/web/scale", "failed"},
	}
	for i, w := range want {
		got := es[i]
		if !strings.HasPrefix(got.Who, w.who) || got.Method != w.method || got.Path != w.path || got.Outcome != w.outcome || got.From == "" || got.Time.IsZero() {
			t.Errorf("entry %d = %+v, want %+v", i, got, w)
		}
	}
	if es[1].Stack != "s1" || es[3].Error == "" {
		t.Errorf("entries lack stack or error: %+v", es)
	}
	// Nothing in the API edits the log.
	for _, m := range []string{"DELETE", "PUT", "POST", "PATCH"} {
		if code, _ := e.do(e.local, "", m, "/v1/audit", "{}"); code < 400 {
			t.Errorf("%s /v1/audit: %d", m, code)
		}
	}
	_, body = e.do(e.local, "", "GET", "/v1/audit?limit=100", "")
	var after []api.AuditEntry
	_ = json.Unmarshal(body, &after)
	for i := range es {
		if after[i].Seq != es[i].Seq || after[i].Path != es[i].Path {
			t.Fatalf("audit entry %d changed", i)
		}
	}
}

func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	e := newSecureEnv(t)
	value := "s3cr3t-value-that-must-not-leak"
	b64 := "czNjcjN0LXZhbHVlLXRoYXQtbXVzdC1ub3QtbGVhaw=="
	fileVal := "file-secret-value-never-stored"
	if code, body := e.do(e.local, "", "POST", "/v1/stacks/s1/secrets/db", `{"value":"`+b64+`"}`); code != 200 {
		t.Fatalf("create: %d %s", code, body)
	}
	doc := fmt.Sprintf(`{"secrets":{"tls":"%s"},"stack":{"name":"s1","services":{"web":{"name":"web","image":"img","replicas":1,"restart":{"condition":"any"},"secrets":[{"source":"db"},{"source":"tls","target":"/run/secrets/tls.pem"}]}},"secrets":{"db":{"external":true},"tls":{"file":"/x/tls.pem"}}}}`,
		base64.StdEncoding.EncodeToString([]byte(fileVal)))
	if code, body := e.do(e.local, "", "POST", "/v1/stacks/s1/deploy", doc); code != 200 {
		t.Fatalf("deploy: %d %s", code, body)
	}
	rev, err := e.st.GetRevision(context.Background(), "s1", "web", 1)
	if err != nil || rev.Spec.Secrets[0].Version != 1 || rev.Spec.Secrets[1].Version != 1 {
		t.Fatalf("revision 1: %+v %v", rev.Spec.Secrets, err)
	}
	// Rotation is a new revision of the services that use the secret.
	code, body := e.do(e.local, "", "PUT", "/v1/stacks/s1/secrets/db", `{"value":"bmV3"}`)
	if code != 200 || !strings.Contains(string(body), `"revision": 2`) {
		t.Fatalf("rotate: %d %s", code, body)
	}
	rev, _ = e.st.GetRevision(context.Background(), "s1", "web", 2)
	if rev.Spec.Secrets[0].Version != 2 {
		t.Fatalf("revision 2 mounts version %d", rev.Spec.Secrets[0].Version)
	}
	svc, _, _ := e.st.GetService(context.Background(), "s1", "web")
	if svc.Revision != 2 || svc.Rollout == nil || svc.Rollout.State != api.RolloutInProgress {
		t.Fatalf("service after rotation: %+v", svc)
	}
	// The same file value deployed again changes nothing.
	e.st.UpdateService(context.Background(), func() api.ServiceState { s := svc; s.Rollout.State = api.RolloutDone; return s }(), mustVersion(t, e.st))
	code, body = e.do(e.local, "", "POST", "/v1/stacks/s1/deploy", strings.Replace(doc, `"source":"db"}`, `"source":"db"}`, 1))
	if code != 200 {
		t.Fatalf("redeploy: %d %s", code, body)
	}
	// No response, event, audit entry or stored key holds a value.
	for _, path := range []string{"/v1/stacks/s1/secrets", "/v1/stacks/s1", "/v1/stacks/s1/services/web/revisions", "/v1/events", "/v1/audit", "/v1/tasks"} {
		_, body := e.do(e.local, "", "GET", path, "")
		for _, v := range []string{value, b64, fileVal, "bmV3"} {
			if strings.Contains(string(body), v) {
				t.Errorf("GET %s shows a secret value: %s", path, body)
			}
		}
	}
	assertNotStored(t, e.st, []byte(value))
	assertNotStored(t, e.st, []byte(fileVal))
	// In use: cannot be removed.
	if code, body := e.do(e.local, "", "DELETE", "/v1/stacks/s1/secrets/db", ""); code != http.StatusConflict {
		t.Errorf("remove a used secret: %d %s", code, body)
	}
	// Undeclared or missing values are refused, and nothing is stored.
	bad := `{"stack":{"name":"s3","services":{"web":{"name":"web","image":"img","replicas":1,"restart":{"condition":"any"},"secrets":[{"source":"x"}]}},"secrets":{"x":{"external":true}}}}`
	if code, body := e.do(e.local, "", "POST", "/v1/stacks/s3/deploy", bad); code != 400 || !strings.Contains(string(body), "berth secret create s3 x") {
		t.Errorf("missing external secret: %d %s", code, body)
	}
	if code, body := e.do(e.local, "", "POST", "/v1/stacks/s1/secrets/..%2Fetc", `{"value":"eA=="}`); code != 400 {
		t.Errorf("bad secret name: %d %s", code, body)
	}
}

func mustVersion(t *testing.T, st *store.Store) int64 {
	_, v, err := st.GetService(context.Background(), "s1", "web")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestRequestLimits(t *testing.T) {
	t.Parallel()
	e := newSecureEnv(t)
	big := `{"value":"` + strings.Repeat("A", maxBody) + `"}`
	if code, body := e.do(e.local, "", "POST", "/v1/stacks/s1/secrets/db", big); code != http.StatusBadRequest || !strings.Contains(string(body), "larger than") {
		t.Errorf("oversized body: %d %.200s", code, body)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.s.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/v1/version", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 2*maxHeader))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("oversized header: %d", resp.StatusCode)
	}
}

type netConn = net.Conn
