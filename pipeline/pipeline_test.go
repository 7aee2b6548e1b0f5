package pipeline

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
)

func TestContextHonoursDockerignore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, content := range map[string]string{
		"Dockerfile":          "FROM scratch\n",
		".dockerignore":       "*.log\nbuild/\n!build/keep.txt\nDockerfile\nsecrets\n",
		"app":                 "bin",
		"debug.log":           "x",
		"build/out.o":         "x",
		"build/keep.txt":      "x",
		"secrets/key.pem":     "x",
		"src/main.go":         "package main",
		"src/nested/deep.txt": "x",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := writeContext(&buf, dir, "Dockerfile"); err != nil {
		t.Fatal(err)
	}
	var got []string
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			got = append(got, h.Name)
		}
		if h.Uid != 0 || h.Uname != "" {
			t.Errorf("%s keeps its owner %d/%q", h.Name, h.Uid, h.Uname)
		}
	}
	sort.Strings(got)
	want := []string{".dockerignore", "Dockerfile", "app", "build/keep.txt", "src/main.go", "src/nested/deep.txt"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("context has %v, want %v", got, want)
	}
}

func TestCheckDockerfile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile.prod"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if rel, err := checkDockerfile(dir, "Dockerfile.prod"); err != nil || rel != "Dockerfile.prod" {
		t.Fatalf("got %q, %v", rel, err)
	}
	for _, tc := range []struct{ file, want string }{
		{"", "no Dockerfile at " + filepath.Join(dir, "Dockerfile")},
		{"../Dockerfile", "is outside the build context"},
		{".", "is a directory"},
	} {
		_, err := checkDockerfile(dir, tc.file)
		if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("checkDockerfile(%q) = %v, want invalid with %q", tc.file, err, tc.want)
		}
	}
}

func TestFollowBuildNamesTheFailingStep(t *testing.T) {
	t.Parallel()
	stream := `{"stream":"Step 1/3 : FROM scratch\n"}
{"stream":" ---\u003e \n"}
{"stream":"Step 2/3 : COPY app /app\n"}
{"errorDetail":{"message":"COPY failed: file not found in build context"},"error":"COPY failed: file not found in build context"}
`
	var progress bytes.Buffer
	_, err := followBuild(strings.NewReader(stream), &progress)
	var be *BuildError
	if !errors.As(err, &be) || be.Step != "Step 2/3 : COPY app /app" || !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("err = %v, want a build error at step 2/3", err)
	}
	if !strings.Contains(err.Error(), "build failed at Step 2/3 : COPY app /app: COPY failed") {
		t.Fatalf("message %q", err)
	}
	if !strings.Contains(progress.String(), "Step 1/3 : FROM scratch") {
		t.Fatalf("progress not shown: %q", progress.String())
	}
	id, err := followBuild(strings.NewReader(`{"stream":"Step 1/1 : FROM scratch\n"}
{"aux":{"ID":"sha256:abc"}}
`), nil)
	if err != nil || id != "sha256:abc" {
		t.Fatalf("id %q, err %v", id, err)
	}
}

func TestDestinations(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ image, registry, want string }{
		{"shop/web:1", "127.0.0.1:5000", "127.0.0.1:5000/shop/web:1"},
		{"web:2", "127.0.0.1:5000/team", "127.0.0.1:5000/team/web:2"},
		{"127.0.0.1:5000/shop/web:3", "", "127.0.0.1:5000/shop/web:3"},
		{"127.0.0.1:5000/shop/web:3", "prod.example:443", "prod.example:443/shop/web:3"},
	} {
		got, err := destination(tc.image, tc.registry)
		if err != nil || got.String() != tc.want {
			t.Errorf("destination(%q, %q) = %v, %v; want %s", tc.image, tc.registry, got, err, tc.want)
		}
	}
	if _, err := destination("shop/web@sha256:"+strings.Repeat("a", 64), "r:1"); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("a digest was accepted as a push source: %v", err)
	}
	src, _ := ParseRef("127.0.0.1:5000/shop/web:stable")
	for _, tc := range []struct{ dst, want string }{
		{"prod:5000", "prod:5000/shop/web:stable"},
		{"prod:5000/shop/web", "prod:5000/shop/web:stable"},
		{"prod:5000/other/name:1.4", "prod:5000/other/name:1.4"},
	} {
		got, err := promoteDst(src, tc.dst)
		if err != nil || got.String() != tc.want {
			t.Errorf("promoteDst(%q) = %v, %v; want %s", tc.dst, got, err, tc.want)
		}
	}
	byDigest, _ := ParseRef("127.0.0.1:5000/shop/web@sha256:" + strings.Repeat("b", 64))
	if _, err := promoteDst(byDigest, "prod:5000"); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("a digest promoted to a bare registry: %v", err)
	}
}

func TestTestedRecord(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sub", TestedFile)
	if at, err := Tested(path, "sha256:a"); err != nil || !at.IsZero() {
		t.Fatalf("empty record: %v %v", at, err)
	}
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	if err := RecordTested(path, "sha256:a", now); err != nil {
		t.Fatal(err)
	}
	if err := RecordTested(path, "sha256:b", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if at, _ := Tested(path, "sha256:a"); !at.Equal(now) {
		t.Fatalf("a tested at %v", at)
	}
	if at, _ := Tested(path, "sha256:c"); !at.IsZero() {
		t.Fatalf("c was never tested, got %v", at)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("record mode %v (%v)", st.Mode(), err)
	}
}

func TestNamesRegistry(t *testing.T) {
	t.Parallel()
	for ref, want := range map[string]bool{
		"shop/web:1": false, "web": false, "docker.io/library/web:1": true,
		"127.0.0.1:5000/web:1": true, "localhost/web": true, "registry.example/team/web@sha256:x": true,
	} {
		if got := NamesRegistry(ref); got != want {
			t.Errorf("NamesRegistry(%q) = %v", ref, got)
		}
	}
}

// fakeStore is the watcher's view of stored services.
type fakeStore struct {
	svcs []api.ServiceState
	revs map[string]api.Revision
}

func (f *fakeStore) ListServices(context.Context, string) ([]api.ServiceState, error) {
	return f.svcs, nil
}

func (f *fakeStore) GetRevision(_ context.Context, stack, svc string, n int) (api.Revision, error) {
	r, ok := f.revs[stack+"/"+svc+"/"+string(rune('0'+n))]
	if !ok {
		return r, api.NotFoundf("no revision")
	}
	return r, nil
}

func followRev(n int, digest string) api.Revision {
	return api.Revision{Number: n, Spec: api.ServiceSpec{Image: "127.0.0.1:5000/shop/web:stable", ImageDigest: digest,
		AutoUpdate: &api.AutoUpdate{Follow: true, Interval: api.Duration(time.Minute)}}}
}

func TestWatcher(t *testing.T) {
	t.Parallel()
	const d1, d2, d3 = "127.0.0.1:5000/shop/web@sha256:1", "127.0.0.1:5000/shop/web@sha256:2", "127.0.0.1:5000/shop/web@sha256:3"
	st := &fakeStore{
		svcs: []api.ServiceState{{Stack: "shop", Name: "web", Revision: 1,
			Rollout: &api.Rollout{From: 1, To: 2, State: api.RolloutRolledBack}}},
		revs: map[string]api.Revision{"shop/web/1": followRev(1, d1), "shop/web/2": followRev(2, d2)},
	}
	tag := d1
	var applied []string
	w := &Watcher{Store: st,
		Resolve: func(context.Context, string) (string, error) { return tag, nil },
		Apply: func(_ context.Context, stack, svc, to string) error {
			applied = append(applied, to)
			return nil
		}}
	w.init()
	now := time.Now()
	w.pass(context.Background(), now)
	if len(applied) != 0 {
		t.Fatalf("unchanged tag applied %v", applied)
	}
	// The tag moves to the digest that was rolled back: not again.
	tag = d2
	w.pass(context.Background(), now.Add(2*time.Minute))
	if len(applied) != 0 {
		t.Fatalf("a rolled-back digest was applied again: %v", applied)
	}
	// A new push moves it, and is noticed before the interval.
	tag = d3
	w.pass(context.Background(), now.Add(2*time.Minute+time.Second))
	if len(applied) != 0 {
		t.Fatalf("checked before its interval: %v", applied)
	}
	w.Pushed("shop/web")
	w.pass(context.Background(), now.Add(2*time.Minute+2*time.Second))
	if len(applied) != 1 || applied[0] != d3 {
		t.Fatalf("applied %v, want [%s]", applied, d3)
	}
	// A push that meets a rollout in progress (a conflict) is retried at
	// the next pass, before the interval.
	tag = "127.0.0.1:5000/shop/web@sha256:4"
	busy := true
	w.Apply = func(_ context.Context, _, _, to string) error {
		if busy {
			return api.Conflictf("busy")
		}
		applied = append(applied, to)
		return nil
	}
	w.Pushed("shop/web")
	w.pass(context.Background(), now.Add(2*time.Minute+3*time.Second))
	if len(applied) != 1 {
		t.Fatalf("applied during a conflict: %v", applied)
	}
	busy = false
	w.pass(context.Background(), now.Add(2*time.Minute+4*time.Second))
	if len(applied) != 2 || applied[1] != tag {
		t.Fatalf("the update that met a conflict was not retried: %v", applied)
	}
}
