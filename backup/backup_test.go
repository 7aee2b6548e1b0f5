package backup

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/store"
)

// A backup of a live store restores into a fresh directory whose etcd
// holds the same state, with the data files as they were and nothing of
// what stays out.
func TestBackupRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	st, err := store.OpenEmbedded(ctx, store.EmbeddedOptions{Dir: filepath.Join(src, "etcd")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.ApplyStack(ctx, store.StackWrite{Record: api.StackRecord{Name: "shop", Services: []string{"web"}},
		Services: []api.ServiceState{{Stack: "shop", Name: "web", Revision: 1, Replicas: 2}}}); err != nil {
		t.Fatal(err)
	}
	if err := st.AppendEvent(ctx, api.Event{Type: "stack.deploy", Stack: "shop", Message: "deployed"}); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"cluster-id": "c1\n", "node-id": "n1\n", "berth.yaml": "events: {max_count: 5}\n",
		"keys/secrets.key": "KEY", "certificates/acme/x.crt": "CERT"}
	skipped := []string{"berth.sock", "lock", "proxy.pid", "berth.log", "logs/seg-1", "run/shop/db_password"}
	for name, content := range files {
		write(t, filepath.Join(src, name), content)
	}
	for _, name := range skipped {
		write(t, filepath.Join(src, name), "x")
	}

	var buf bytes.Buffer
	if err := Write(ctx, &buf, st, Options{DataDir: src, ClusterID: "c1", Version: "test"}); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "restored")
	m, err := Restore(bytes.NewReader(buf.Bytes()), dst)
	if err != nil {
		t.Fatal(err)
	}
	if m.ClusterID != "c1" || m.Snapshot == 0 || len(m.Files) != len(files) {
		t.Fatalf("manifest %+v", m)
	}
	for name, content := range files {
		if b, err := os.ReadFile(filepath.Join(dst, name)); err != nil || string(b) != content {
			t.Errorf("%s: %q, %v", name, b, err)
		}
	}
	for _, name := range skipped {
		if _, err := os.Stat(filepath.Join(dst, name)); err == nil {
			t.Errorf("%s was restored", name)
		}
	}
	ctx2, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	rst, err := store.OpenEmbedded(ctx2, store.EmbeddedOptions{Dir: filepath.Join(dst, "etcd")})
	if err != nil {
		t.Fatal(err)
	}
	defer rst.Close()
	svcs, err := rst.ListServices(ctx2, "shop")
	if err != nil || len(svcs) != 1 || svcs[0].Replicas != 2 {
		t.Fatalf("restored services %+v, %v", svcs, err)
	}
	evs, err := rst.ListEvents(ctx2, 0, 10)
	if err != nil || len(evs) != 1 || evs[0].Type != "stack.deploy" {
		t.Fatalf("restored events %+v, %v", evs, err)
	}
	if _, err := Restore(bytes.NewReader(buf.Bytes()), dst); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("restore into a non-empty directory: %v", err)
	}
}

// Damaged or foreign input restores nothing and leaves the directory empty.
func TestRestoreRejectsBadInput(t *testing.T) {
	for name, input := range map[string][]byte{
		"not gzip": []byte("hello"),
		"cut short": func() []byte {
			var buf bytes.Buffer
			st := store.OpenTest(t)
			if err := Write(context.Background(), &buf, st, Options{DataDir: t.TempDir()}); err != nil {
				t.Fatal(err)
			}
			return buf.Bytes()[:buf.Len()/2]
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			dst := t.TempDir()
			if _, err := Restore(bytes.NewReader(input), dst); !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("err %v", err)
			}
			if entries, _ := os.ReadDir(dst); len(entries) != 0 {
				t.Fatalf("left %d entries", len(entries))
			}
		})
	}
}

func write(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
