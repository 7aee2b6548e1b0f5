package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/logs"
)

// FuzzAPI sends hostile requests (any method, path, query, body and
// Authorization header) through the whole handler: no request may panic
// a handler (wrap would answer 500 "internal error"), and none may get
// past authentication with a forged token.
func FuzzAPI(f *testing.F) {
	e := newSecureEnv(f)
	viewer := e.token(api.RoleViewer, "")
	routes := e.s.Routes()
	seeds := []struct{ method, path, body, auth string }{
		{"POST", "/v1/stacks/s1/deploy", deployDoc("s1", "", 1, ""), ""},
		{"POST", "/v1/stacks/s1/deploy", `{"stack":{"name":"s1","services":{"w":null}},"secrets":{"x":"AA=="}}`, ""},
		{"POST", "/v1/stacks/s1/deploy", `{"stack":{"services":{"w":{"name":"w","image":"i","secrets":[{"source":"../x","target":"/etc/passwd"}]}},"secrets":{"../x":{}}}}`, ""},
		{"POST", "/v1/stacks/s1/secrets/db", `{"value":"!!"}`, ""},
		{"PUT", "/v1/tenants/t1", `{"tasks":-1}`, ""},
		{"POST", "/v1/tokens", `{"role":"root","ttl":"-1h"}`, ""},
		{"GET", "/v1/events?limit=0&since=-5&stack=..", "", ""},
		{"GET", "/v1/audit?limit=99999999999", "", ""},
		{"GET", "/v1/stacks", "", "Bearer " + viewer},
		{"GET", "/v1/stacks", "", "Bearer berth_0000000000000000_" + strings.Repeat("A", 43)},
		{"DELETE", "/v1/tokens/..%2f..", "", ""},
		{"POST", "/v1/stacks/s1/services/web/scale", `{"replicas":1e999}`, ""},
		{"POST", "/v1/stacks/s1/rollout/%00", "", ""},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.body, s.auth)
	}
	for _, r := range routes {
		m, p := concrete(r)
		f.Add(m, p, "{}", "")
	}
	h := e.s.Handler()
	methodRE := regexp.MustCompile(`^[A-Z]{1,10}$`)
	f.Fuzz(func(t *testing.T, method, path, body, auth string) {
		if !methodRE.MatchString(method) || !strings.HasPrefix(path, "/") || len(body) > 1<<16 {
			return
		}
		req, err := http.NewRequest(method, "http://berth"+path, strings.NewReader(body))
		if err != nil {
			return
		}
		if auth != "" {
			req.Header["Authorization"] = []string{auth}
		}
		// Over the remote listener, so tokens are required.
		req = req.WithContext(RemoteConn(req.Context()))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code == http.StatusInternalServerError && bytes.Contains(rec.Body.Bytes(), []byte("internal error")) {
			t.Fatalf("%s %s: handler panicked: %s", method, path, rec.Body)
		}
		if auth != "Bearer "+viewer && rec.Code < 400 {
			t.Fatalf("%s %s with Authorization %q got through: %d", method, path, auth, rec.Code)
		}
	})
}

// FuzzParseToken: any string parses or is refused; what parses has the
// token's exact shape.
func FuzzParseToken(f *testing.F) {
	f.Add("berth_0123456789abcdef_" + strings.Repeat("x", 43))
	f.Add("berth__")
	f.Add("berth_0123456789abcdef_" + strings.Repeat("x", 44))
	idRE := regexp.MustCompile(`^[0-9a-f]{16}$`)
	f.Fuzz(func(t *testing.T, tok string) {
		id, secret, err := ParseToken(tok)
		if err != nil {
			return
		}
		if !idRE.MatchString(id) || len(secret) != 43 || "berth_"+id+"_"+secret != tok {
			t.Fatalf("ParseToken(%q) = %q, %q", tok, id, secret)
		}
	})
}

// FuzzNames: every name berth accepts is safe as a path segment and a
// key part, and every secret file name stays directly in /run/secrets.
func FuzzNames(f *testing.F) {
	for _, s := range []string{"web", "..", "../etc", "a/b", "/run/secrets/x", "/run/secrets/../../etc/passwd", ".", "a\x00b", strings.Repeat("a", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if api.ValidateName("name", name) == nil {
			if strings.ContainsAny(name, "/\\\x00.") || len(name) > api.MaxNameLen || name == "" {
				t.Fatalf("ValidateName accepted %q", name)
			}
		}
		file, err := api.FileRef{Source: "s", Target: name}.SecretFile()
		if err == nil && (strings.ContainsAny(file, "/\\\x00") || file == "." || file == ".." || file == "") {
			t.Fatalf("SecretFile accepted %q as %q", name, file)
		}
		var req api.DeployRequest
		_ = json.Unmarshal([]byte(name), &req)
	})
}

// FuzzLogQuery sends hostile log queries (service, task, since, until,
// grep, revision, tail, follow: any values) for a stack whose store holds
// lines: each is refused with a clear 4xx or answered; none panics.
func FuzzLogQuery(f *testing.F) {
	e := newSecureEnv(f)
	st, err := logs.Open(logs.Options{Dir: f.TempDir()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	e.s.SetOps(Ops{Logs: st})
	if code, body := e.do(e.local, "", "POST", "/v1/stacks/s1/deploy", deployDoc("s1", "", 1, "")); code != 200 {
		f.Fatalf("deploy: %d %s", code, body)
	}
	now := time.Now()
	for i := range 50 {
		st.Append("s1", []api.LogLine{{Time: now.Add(time.Duration(i) * time.Millisecond), Stack: "s1", Service: "web", Task: "t1", Revision: 1, Stream: api.StreamStdout, Line: fmt.Sprintf("line %d", i)}})
	}
	st.Flush()
	for _, q := range []string{
		"tail=10", "service=web&grep=line+4", "since=" + now.Format(time.RFC3339Nano), "until=1999-01-01T00:00:00Z",
		"grep=(", "grep=" + strings.Repeat("(a*)*", 50), "tail=-1", "tail=99999999999999999999", "revision=x", "task=../../etc",
		"since=2026-13-45T99:99:99Z", "service=%00", "follow=maybe",
	} {
		f.Add(q)
	}
	h := e.s.Handler()
	f.Fuzz(func(t *testing.T, query string) {
		req, err := http.NewRequest("GET", "http://berth/v1/stacks/s1/logs?"+query, nil)
		if err != nil {
			return
		}
		// A follow would stream until the request ends: bound it.
		ctx, cancel := context.WithTimeout(req.Context(), 200*time.Millisecond)
		defer cancel()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req.WithContext(ctx))
		if rec.Code == http.StatusInternalServerError && bytes.Contains(rec.Body.Bytes(), []byte("internal error")) {
			t.Fatalf("?%s: handler panicked: %s", query, rec.Body)
		}
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("?%s: %d %s", query, rec.Code, rec.Body)
		}
	})
}
