package secrets

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/store"
)

func TestKeyringSealOpen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), KeyFile)
	k, err := OpenKeyring(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	value := []byte("hunter2-plaintext")
	env, err := k.Seal(value, AAD("s", "db", 1))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(env.Ciphertext, value) || bytes.Contains(env.WrappedKey, value) {
		t.Fatal("envelope holds the plaintext")
	}
	got, err := k.Open(env, AAD("s", "db", 1))
	if err != nil || !bytes.Equal(got, value) {
		t.Fatalf("open = %q, %v", got, err)
	}
	// Bound to its identity: another secret's name or version fails.
	for _, aad := range []string{AAD("s", "db", 2), AAD("s", "other", 1), AAD("t", "db", 1)} {
		if _, err := k.Open(env, aad); err == nil {
			t.Errorf("envelope opened as %s", aad)
		}
	}
	// Tampering is detected.
	bad := env
	bad.Ciphertext = append([]byte(nil), env.Ciphertext...)
	bad.Ciphertext[len(bad.Ciphertext)-1] ^= 1
	if _, err := k.Open(bad, AAD("s", "db", 1)); err == nil {
		t.Error("tampered ciphertext opened")
	}
	// A reopened ring opens what the first sealed.
	k2, err := OpenKeyring(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := k2.Open(env, AAD("s", "db", 1)); err != nil || !bytes.Equal(got, value) {
		t.Fatalf("reopened ring: %q, %v", got, err)
	}
}

func TestKeyringRefusesReadableKeyFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), KeyFile)
	if _, err := OpenKeyring(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenKeyring(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("err = %v, want a refusal naming chmod 600", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenKeyring(path); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("err = %v, want damaged", err)
	}
}

func TestVaultVersionsAndKeyRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.OpenTest(t)
	keyPath := filepath.Join(t.TempDir(), KeyFile)
	keys, err := OpenKeyring(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	v := NewVault(st, keys)
	if _, _, err := v.Write(ctx, "s", "db", []byte("one"), Rotate); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("rotate of a missing secret: %v", err)
	}
	info, changed, err := v.Write(ctx, "s", "db", []byte("one"), Create)
	if err != nil || !changed || info.Version != 1 {
		t.Fatalf("create: %+v %v %v", info, changed, err)
	}
	if _, _, err := v.Write(ctx, "s", "db", []byte("x"), Create); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("second create: %v", err)
	}
	if _, changed, _ := v.Write(ctx, "s", "db", []byte("one"), Ensure); changed {
		t.Fatal("ensure with the same value stored a new version")
	}
	if info, changed, _ := v.Write(ctx, "s", "db", []byte("two"), Ensure); !changed || info.Version != 2 {
		t.Fatalf("ensure with a new value: %+v %v", info, changed)
	}
	for i := 0; i < 4; i++ {
		if _, _, err := v.Write(ctx, "s", "db", []byte{byte('a' + i)}, Rotate); err != nil {
			t.Fatal(err)
		}
	}
	// Only the newest versions are kept.
	all, _ := st.ListSecretVersions(ctx, "s")
	if len(all) != store.MaxSecretVersions || all[0].Secret.Version != 4 {
		t.Fatalf("kept versions: %d, oldest %d", len(all), all[0].Secret.Version)
	}
	if _, err := v.Value(ctx, "s", "db", 1); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("trimmed version: %v", err)
	}
	if _, _, err := v.Write(ctx, "s", "big", make([]byte, api.MaxSecretSize+1), Create); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("oversized secret: %v", err)
	}
	if _, _, err := v.Write(ctx, "s", "../etc", []byte("x"), Create); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("bad name: %v", err)
	}

	oldKey := keys.ActiveKey()
	res, err := v.RotateKey(ctx)
	if err != nil || res.Rewrapped != store.MaxSecretVersions || res.KeyID == oldKey {
		t.Fatalf("rotate key: %+v %v", res, err)
	}
	if ids := keys.KeyIDs(); len(ids) != 1 || ids[0] != res.KeyID {
		t.Fatalf("keys after rotation: %v", ids)
	}
	all, _ = st.ListSecretVersions(ctx, "")
	for _, r := range all {
		if r.Secret.KeyID != res.KeyID {
			t.Errorf("version %d still wrapped with %s", r.Secret.Version, r.Secret.KeyID)
		}
	}
	// Every version still opens, with a ring read back from the file.
	reopened, err := OpenKeyring(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	v2 := NewVault(st, reopened)
	got, err := v2.Value(ctx, "s", "db", 6)
	if err != nil || string(got) != "d" {
		t.Fatalf("value after rotation: %q %v", got, err)
	}
}

func TestFilesOnTmpfs(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs as root; mounting a tmpfs needs it")
		}
		t.Skip("mounting a tmpfs needs root")
	}
	root := filepath.Join(t.TempDir(), "run")
	f := NewFiles(root)
	t.Cleanup(func() { _ = unix.Unmount(root, unix.MNT_DETACH) })
	dir, err := f.Write("task1", 1000, 1001, []File{{Name: "db", Data: []byte("pw"), UID: 1000, GID: 1001}, {Name: "api.key", Data: []byte("k"), Mode: 0o440, UID: 1000, GID: 1001}})
	if err != nil {
		t.Fatal(err)
	}
	if !isTmpfs(root) {
		t.Fatal("root is not a tmpfs after Write")
	}
	check := func(path string, mode os.FileMode, uid, gid uint32) {
		t.Helper()
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		if os.FileMode(st.Mode).Perm() != mode || st.Uid != uid || st.Gid != gid {
			t.Errorf("%s: mode %o uid %d gid %d; want %o %d %d", path, os.FileMode(st.Mode).Perm(), st.Uid, st.Gid, mode, uid, gid)
		}
	}
	check(dir, 0o500, 1000, 1001)
	check(filepath.Join(dir, "db"), 0o400, 1000, 1001)
	check(filepath.Join(dir, "api.key"), 0o440, 1000, 1001)
	// A rewrite drops files no longer wanted.
	if _, err := f.Write("task1", 1000, 1001, []File{{Name: "db", Data: []byte("pw2")}}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "db")); string(b) != "pw2" {
		t.Errorf("db = %q", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "api.key")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("api.key still there: %v", err)
	}
	for _, bad := range []string{"..", "../x", "a/b", ""} {
		if _, err := f.Write(bad, 0, 0, nil); err == nil {
			t.Errorf("owner %q accepted", bad)
		}
		if _, err := f.Write("t2", 0, 0, []File{{Name: bad, Data: []byte("x")}}); err == nil {
			t.Errorf("file name %q accepted", bad)
		}
	}
	if got := f.Owners(); len(got) != 2 {
		t.Errorf("owners = %v", got)
	}
	if err := f.Remove("task1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dir still there: %v", err)
	}
}
