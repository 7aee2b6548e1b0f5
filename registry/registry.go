// Package registry is berth's embedded OCI registry: distribution
// (the reference registry, used as a library) serving images from
// filesystem storage under berth's data directory, behind a generated
// credential, with optional TLS, push notifications for auto-updates and
// garbage collection of unreferenced blobs.
package registry

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"

	"github.com/berth-dev/berth/api"

	// The storage driver distribution looks up by name.
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

// User is the name of the generated credential, which berth itself and
// the local operator use. Anyone else signs in with a berth API token as
// the password (any user name): its role and tenant decide (see access).
const User = "berth"

// TokenCheck verifies a berth API token and returns its role and tenant
// ("" for every tenant).
type TokenCheck func(ctx context.Context, token string) (role, tenant string, err error)

// Options configure the registry.
type Options struct {
	// Dir holds the registry: data/ (blobs and repositories) and the
	// credential (0600).
	Dir string
	// Addr is the listen address (127.0.0.1:5000 by default: engines
	// accept plain HTTP registries on 127.0.0.0/8).
	Addr string
	// TLSCert and TLSKey, when both set, serve HTTPS.
	TLSCert, TLSKey string
	Logger          *slog.Logger
	// OnPush is called after a manifest was stored (repository, the tag or
	// digest it was pushed as, and its digest).
	OnPush func(repo, ref, digest string)
}

// Registry is a running embedded registry.
type Registry struct {
	opts   Options
	ln     net.Listener
	cfg    *configuration.Configuration
	ctx    context.Context
	app    atomic.Pointer[handlers.App]
	pass   string
	tls    bool
	gcMu   sync.RWMutex // writers share it; a collection takes it alone
	tokens atomic.Pointer[TokenCheck]
}

// SetTokens makes the registry accept berth API tokens besides its
// generated credential.
func (r *Registry) SetTokens(check TokenCheck) { r.tokens.Store(&check) }

// Open prepares the registry's storage and credential and binds its
// listener; Serve serves it.
func Open(ctx context.Context, opts Options) (*Registry, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:5000"
	}
	if (opts.TLSCert == "") != (opts.TLSKey == "") {
		return nil, fmt.Errorf("registry TLS needs both a certificate and a key")
	}
	if err := os.MkdirAll(filepath.Join(opts.Dir, "data"), 0o700); err != nil {
		return nil, fmt.Errorf("registry storage: %w", err)
	}
	pass, err := credential(opts.Dir)
	if err != nil {
		return nil, err
	}
	cfg, err := config(opts)
	if err != nil {
		return nil, err
	}
	quietLogs(opts.Logger)
	r := &Registry{opts: opts, pass: pass, cfg: cfg, ctx: ctx}
	app, err := newApp(ctx, cfg)
	if err != nil {
		return nil, err
	}
	r.app.Store(app)
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		_ = app.Shutdown()
		return nil, fmt.Errorf("registry: listen on %s: %w (pass --registry-addr HOST:PORT, or --registry-addr off)", opts.Addr, err)
	}
	if opts.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(opts.TLSCert, opts.TLSKey)
		if err != nil {
			ln.Close()
			_ = app.Shutdown()
			return nil, fmt.Errorf("registry TLS: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		r.tls = true
	}
	r.ln = ln
	return r, nil
}

// newApp builds distribution's handler; it panics on configurations it
// cannot use, which become errors here.
func newApp(ctx context.Context, cfg *configuration.Configuration) (app *handlers.App, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("registry: %v", p)
		}
	}()
	return handlers.NewApp(ctx, cfg), nil
}

// Addr is the host:port the registry serves on.
func (r *Registry) Addr() string { return r.ln.Addr().String() }

// TLS reports whether the registry serves HTTPS.
func (r *Registry) TLS() bool { return r.tls }

// Credential is the generated user name and password.
func (r *Registry) Credential() (string, string) { return User, r.pass }

// Serve serves the registry until ctx ends.
func (r *Registry) Serve(ctx context.Context) error {
	defer func() { _ = r.app.Load().Shutdown() }()
	hs := &http.Server{Handler: r.handler(), ReadHeaderTimeout: 30 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(r.ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		_ = hs.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Close releases the listener of a registry that was never served.
func (r *Registry) Close() error {
	_ = r.app.Load().Shutdown()
	return r.ln.Close()
}

// handler wraps distribution's: every request must carry the
// credential, writes wait while a garbage collection runs (it must not
// see a half-pushed image), and stored manifests are announced to OnPush.
func (r *Registry) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch ok, why := r.access(req); {
		case !ok && why == "":
			unauthorized(w)
			return
		case !ok:
			denied(w, why)
			return
		}
		if req.Method == http.MethodGet || req.Method == http.MethodHead {
			r.app.Load().ServeHTTP(w, req)
			return
		}
		r.gcMu.RLock()
		defer r.gcMu.RUnlock()
		rec := &statusWriter{ResponseWriter: w}
		r.app.Load().ServeHTTP(rec, req)
		if req.Method == http.MethodPut && rec.status == http.StatusCreated && r.opts.OnPush != nil {
			if repo, ref, ok := manifestPath(req.URL.Path); ok {
				r.opts.OnPush(repo, ref, w.Header().Get("Docker-Content-Digest"))
			}
		}
	})
}

// access checks HTTP basic authentication: the generated credential may
// do anything (berth holds it itself, so a constant-time comparison does
// what an htpasswd file would need a bcrypt check per request for; the
// bench measured that cost). A berth API token as the password may pull
// with any role and push or delete as deployer or admin; a tenant's
// token reaches only repositories under "<tenant>/". ok false with an
// empty reason is "not signed in", with a reason "signed in, denied".
func (r *Registry) access(req *http.Request) (ok bool, reason string) {
	u, p, basic := req.BasicAuth()
	if !basic {
		return false, ""
	}
	if subtle.ConstantTimeCompare([]byte(u), []byte(User)) == 1 && subtle.ConstantTimeCompare([]byte(p), []byte(r.pass)) == 1 {
		return true, ""
	}
	check := r.tokens.Load()
	if check == nil || !strings.HasPrefix(p, "berth_") {
		return false, ""
	}
	role, tenant, err := (*check)(req.Context(), p)
	if err != nil {
		return false, ""
	}
	write := req.Method != http.MethodGet && req.Method != http.MethodHead
	if write && role != api.RoleDeployer && role != api.RoleAdmin {
		return false, "a " + role + " token may pull, not push or delete"
	}
	if tenant == "" || req.URL.Path == "/v2/" {
		return true, ""
	}
	repo, _, _ := repository(req.URL.Path)
	if repo == "" || !strings.HasPrefix(repo, tenant+"/") {
		return false, "tenant " + tenant + "'s token reaches only repositories under " + tenant + "/"
	}
	return true, ""
}

// denied answers a signed-in client the distribution spec's DENIED.
func denied(w http.ResponseWriter, why string) {
	h := w.Header()
	h.Set("Docker-Distribution-API-Version", "registry/2.0")
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusForbidden)
	b, _ := json.Marshal(map[string]any{"errors": []map[string]any{{"code": "DENIED", "message": why, "detail": nil}}})
	_, _ = w.Write(append(b, '\n'))
}

// repository is the repository a /v2/<repo>/{manifests,blobs,tags,referrers}/…
// path names ("" for /v2/_catalog and anything else), with the kind of
// object and the rest of the path.
func repository(p string) (repo, kind, rest string) {
	after, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return "", "", ""
	}
	// The last of these separators wins: repository names may contain
	// the words ("shop/blobs" is a valid name).
	at := -1
	for _, k := range []string{"manifests", "blobs", "tags", "referrers"} {
		if i := strings.LastIndex(after, "/"+k+"/"); i > at {
			at, kind = i, k
		}
	}
	if at <= 0 {
		return "", "", ""
	}
	return after[:at], kind, after[at+len(kind)+2:]
}

// unauthorized answers as the distribution spec says: a Basic challenge
// and an UNAUTHORIZED error.
func unauthorized(w http.ResponseWriter) {
	h := w.Header()
	h.Set("WWW-Authenticate", `Basic realm="berth"`)
	h.Set("Docker-Distribution-API-Version", "registry/2.0")
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}` + "\n"))
}

// manifestPath splits /v2/<repo>/manifests/<ref>.
func manifestPath(p string) (repo, ref string, ok bool) {
	repo, kind, ref := repository(p)
	return repo, ref, kind == "manifests"
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// credential reads the generated password from dir, or makes one.
func credential(dir string) (string, error) {
	path := filepath.Join(dir, "credential")
	b, err := os.ReadFile(path)
	pass := strings.TrimSpace(string(b))
	switch {
	case err == nil && pass != "":
	case err == nil || errors.Is(err, os.ErrNotExist):
		buf := make([]byte, 24)
		if _, err := rand.Read(buf); err != nil {
			return "", err
		}
		pass = hex.EncodeToString(buf)
		if err := os.WriteFile(path, []byte(pass+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("write %s: %w", path, err)
		}
	default:
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return pass, nil
}

// config is distribution's configuration for berth's registry.
func config(opts Options) (*configuration.Configuration, error) {
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	yaml := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %q
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  redirect:
    disable: true
http:
  addr: %q
  secret: %q
`, filepath.Join(opts.Dir, "data"), opts.Addr, hex.EncodeToString(secret))
	cfg, err := configuration.Parse(strings.NewReader(yaml))
	if err != nil {
		return nil, fmt.Errorf("registry configuration: %w", err)
	}
	return cfg, nil
}
