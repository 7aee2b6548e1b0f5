package registry

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// start runs a registry on a free loopback port for the test.
func start(t *testing.T, opts Options) *Registry {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	opts.Addr = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	r, err := Open(ctx, opts)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return r
}

func (r *Registry) auth() remote.Option {
	u, p := r.Credential()
	return remote.WithAuth(&authn.Basic{Username: u, Password: p})
}

func TestCredentialIsKeptAndPrivate(t *testing.T) {
	dir := t.TempDir()
	r := start(t, Options{Dir: dir})
	_, p1 := r.Credential()
	st, err := os.Stat(filepath.Join(dir, "credential"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("credential mode %v, want 0600", st.Mode().Perm())
	}
	p2, err := credential(dir)
	if err != nil || p2 != p1 {
		t.Fatalf("credential not kept across opens: %q vs %q (%v)", p1, p2, err)
	}
}

func TestAuthentication(t *testing.T) {
	r := start(t, Options{})
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(r.Addr()+"/app/web:1", name.Insecure)
	for _, tc := range []struct {
		desc string
		opt  remote.Option
	}{
		{"anonymous", remote.WithAuth(authn.Anonymous)},
		{"wrong password", remote.WithAuth(&authn.Basic{Username: User, Password: "wrong"})},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			err := remote.Write(ref, img, tc.opt)
			var terr *transport.Error
			if !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized {
				t.Fatalf("push with %s: %v, want 401", tc.desc, err)
			}
		})
	}
	if err := remote.Write(ref, img, r.auth()); err != nil {
		t.Fatalf("push with the credential: %v", err)
	}
	got, err := remote.Head(ref, r.auth())
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := img.Digest(); got.Digest != want {
		t.Fatalf("digest %s, want %s", got.Digest, want)
	}
}

// TestTokens: berth API tokens sign in as the password; viewers pull,
// deployers push, a tenant's token reaches only its own repositories, and
// revoked or unknown tokens are not signed in.
func TestTokens(t *testing.T) {
	r := start(t, Options{})
	tokens := map[string][2]string{
		"berth_viewer":   {api.RoleViewer, ""},
		"berth_deployer": {api.RoleDeployer, ""},
		"berth_tenant":   {api.RoleDeployer, "ta"},
	}
	r.SetTokens(func(_ context.Context, tok string) (string, string, error) {
		if v, ok := tokens[tok]; ok {
			return v[0], v[1], nil
		}
		return "", "", errors.New("unknown token")
	})
	as := func(tok string) remote.Option { return remote.WithAuth(&authn.Basic{Username: "ci", Password: tok}) }
	status := func(err error) int {
		var terr *transport.Error
		if errors.As(err, &terr) {
			return terr.StatusCode
		}
		if err != nil {
			return -1
		}
		return 200
	}
	img, _ := random.Image(512, 1)
	shop, _ := name.ParseReference(r.Addr()+"/shop/web:1", name.Insecure)
	ta, _ := name.ParseReference(r.Addr()+"/ta/web:1", name.Insecure)
	for _, tc := range []struct {
		desc string
		do   func() error
		want int
	}{
		{"a deployer pushes", func() error { return remote.Write(shop, img, as("berth_deployer")) }, 200},
		{"a viewer pulls", func() error { _, err := remote.Image(shop, as("berth_viewer")); return err }, 200},
		{"a viewer may not push", func() error { other, _ := random.Image(512, 1); return remote.Write(shop, other, as("berth_viewer")) }, http.StatusForbidden},
		{"a tenant pushes under its name", func() error { return remote.Write(ta, img, as("berth_tenant")) }, 200},
		{"a tenant may not pull another's", func() error { _, err := remote.Image(shop, as("berth_tenant")); return err }, http.StatusForbidden},
		{"an unknown token is not signed in", func() error { _, err := remote.Image(shop, as("berth_nope")); return err }, http.StatusUnauthorized},
	} {
		if got := status(tc.do()); got != tc.want {
			t.Errorf("%s: status %d, want %d", tc.desc, got, tc.want)
		}
	}
}

func TestPushNotification(t *testing.T) {
	var mu sync.Mutex
	var pushed []string
	r := start(t, Options{OnPush: func(repo, ref, digest string) {
		mu.Lock()
		defer mu.Unlock()
		pushed = append(pushed, repo+":"+ref+"@"+digest)
	}})
	img, _ := random.Image(512, 1)
	ref, _ := name.ParseReference(r.Addr()+"/shop/web:2", name.Insecure)
	if err := remote.Write(ref, img, r.auth()); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	mu.Lock()
	defer mu.Unlock()
	if len(pushed) != 1 || pushed[0] != "shop/web:2@"+d.String() {
		t.Fatalf("notifications %v, want [shop/web:2@%s]", pushed, d)
	}
}

func TestGarbageCollection(t *testing.T) {
	r := start(t, Options{})
	keep, _ := random.Image(4096, 1)
	drop, _ := random.Image(1<<20, 2)
	keepRef, _ := name.ParseReference(r.Addr()+"/app/keep:1", name.Insecure)
	dropRef, _ := name.ParseReference(r.Addr()+"/app/drop:1", name.Insecure)
	if err := remote.Write(keepRef, keep, r.auth()); err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(dropRef, drop, r.auth()); err != nil {
		t.Fatal(err)
	}
	dd, _ := drop.Digest()
	if err := remote.Delete(dropRef.Context().Digest(dd.String()), r.auth()); err != nil {
		t.Fatalf("delete manifest: %v", err)
	}
	res, err := r.GC(context.Background(), GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if freed := res.BytesBefore - res.BytesAfter; freed < 1<<20 {
		t.Fatalf("gc freed %d bytes, want the dropped image's 2 MiB layers", freed)
	}
	layers, _ := drop.Layers()
	ld, _ := layers[0].Digest()
	if l, err := remote.Layer(dropRef.Context().Digest(ld.String()), r.auth()); err == nil {
		if rc, err := l.Compressed(); err == nil {
			rc.Close()
			t.Fatalf("blob %s of the deleted image is still served", ld)
		}
	}
	if _, err := remote.Image(keepRef, r.auth()); err != nil {
		t.Fatalf("tagged image lost: %v", err)
	}
	// The blob cache was renewed: pushing the dropped image again uploads
	// its layers instead of trusting a stale "exists".
	if err := remote.Write(dropRef, drop, r.auth()); err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(dropRef, r.auth())
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := img.Layers()
	for _, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatalf("pull after gc: %v", err)
		}
		rc.Close()
	}
}

// TestConformance runs the OCI distribution-spec conformance suite (pull,
// push, content discovery, content management), built from the version
// go.mod pins, against the embedded registry.
func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the conformance suite")
	}
	r := start(t, Options{})
	dir := t.TempDir()
	bin := filepath.Join(dir, "conformance")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/opencontainers/distribution-spec/conformance")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the conformance suite: %v\n%s", err, out)
	}
	user, pass := r.Credential()
	run := exec.CommandContext(ctx, bin)
	run.Dir = dir
	run.Env = append(os.Environ(),
		"OCI_REGISTRY="+r.Addr(), "OCI_TLS=disabled",
		"OCI_REPO1=conformance/repo1", "OCI_REPO2=conformance/repo2",
		"OCI_USERNAME="+user, "OCI_PASSWORD="+pass,
		"OCI_RESULTS_DIR="+resultsDir(dir), "OCI_LOG=warn",
		"OCI_VERSION=1.1",
		// What distribution v3 does not implement of distribution-spec
		// 1.1 (the referrers API and subject fields, sha512 digests,
		// non-distributable layers) is turned off, and said so in
		// docs/ARCHITECTURE.md; pull, push, content discovery (tag
		// listing) and content management (deletes) all run.
		"OCI_API_REFERRER=false", "OCI_DATA_SUBJECT=false", "OCI_DATA_SUBJECT_MISSING=false",
		"OCI_DATA_SUBJECT_LIST=false", "OCI_DATA_SHA512=false", "OCI_DATA_NONDISTRIBUTABLE=false",
	)
	out, err := run.CombinedOutput()
	t.Logf("conformance:\n%s", tail(string(out), 60))
	if err != nil {
		t.Fatalf("the conformance suite failed: %v (report in %s)", err, filepath.Join(dir, "results"))
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func resultsDir(dir string) string {
	if d := os.Getenv("BERTH_CONFORMANCE_RESULTS"); d != "" {
		return d
	}
	return filepath.Join(dir, "results")
}

func TestRepositoryPath(t *testing.T) {
	for _, tc := range []struct{ path, repo, kind, rest string }{
		{"/v2/shop/web/manifests/1", "shop/web", "manifests", "1"},
		{"/v2/shop/blobs/manifests/latest", "shop/blobs", "manifests", "latest"},
		{"/v2/x/manifests/blobs/sha256:ab", "x/manifests", "blobs", "sha256:ab"},
		{"/v2/ta/web/blobs/uploads/123", "ta/web", "blobs", "uploads/123"},
		{"/v2/ta/web/tags/list", "ta/web", "tags", "list"},
		{"/v2/_catalog", "", "", ""},
		{"/v2/", "", "", ""},
	} {
		if repo, kind, rest := repository(tc.path); repo != tc.repo || kind != tc.kind || rest != tc.rest {
			t.Errorf("repository(%q) = %q %q %q, want %q %q %q", tc.path, repo, kind, rest, tc.repo, tc.kind, tc.rest)
		}
	}
}
