package secrets

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sync"

	"golang.org/x/sys/unix"
)

// Files delivers secret values as files on a tmpfs that berth mounts at
// its root (DATA_DIR/run): one directory per task (or job), bind-mounted
// read-only at /run/secrets in that container. The directory is owned
// by the container's user with mode 0500, each file 0400. Nothing is
// ever written unless the root is a tmpfs, so a value never touches disk.
type Files struct {
	root string
	mu   sync.Mutex
	ok   bool
}

// NewFiles returns the tmpfs delivery under root. The tmpfs is mounted on
// first use, not here: instances that deliver no secret mount nothing.
func NewFiles(root string) *Files { return &Files{root: root} }

// Root is the tmpfs mount point.
func (f *Files) Root() string { return f.root }

// File is one secret file to deliver.
type File struct {
	Name string // file name under /run/secrets
	Data []byte
	UID  int
	GID  int
	Mode os.FileMode // 0 means 0400
}

var ownerRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

// fileNameRE bounds a secret's file name: no separators, no dot names.
var fileNameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// ValidFileName reports whether name can be a file under /run/secrets.
func ValidFileName(name string) bool { return fileNameRE.MatchString(name) }

// ensure mounts the tmpfs at root unless one is there already.
func (f *Files) ensure() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ok {
		return nil
	}
	if err := os.MkdirAll(f.root, 0o700); err != nil {
		return fmt.Errorf("secrets directory: %w", err)
	}
	if !isTmpfs(f.root) {
		// Private, not executable, bounded: it holds only small files.
		if err := unix.Mount("tmpfs", f.root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0700,size=64m"); err != nil {
			return fmt.Errorf("mount a tmpfs at %s for secrets: %w (berth up must run as root to deliver secrets, or mount a tmpfs there)", f.root, err)
		}
	}
	if !isTmpfs(f.root) {
		return fmt.Errorf("%s is not a tmpfs; refusing to write secrets to disk", f.root)
	}
	f.ok = true
	return nil
}

func isTmpfs(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.TMPFS_MAGIC
}

// Dir is the host directory of owner's secrets.
func (f *Files) Dir(owner string) string { return filepath.Join(f.root, owner) }

// Write replaces owner's secret files with files and returns the host
// directory to bind-mount. The directory belongs to uid:gid (the
// container's user) with mode 0500; the files are written to a new
// directory that replaces the old one at once, so a reader never sees a
// half-written set.
func (f *Files) Write(owner string, uid, gid int, files []File) (string, error) {
	if !ownerRE.MatchString(owner) || owner == "." || owner == ".." {
		return "", fmt.Errorf("invalid secrets owner %q", owner)
	}
	if err := f.ensure(); err != nil {
		return "", err
	}
	dir := f.Dir(owner)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	for _, file := range files {
		if !ValidFileName(file.Name) {
			return "", fmt.Errorf("invalid secret file name %q", file.Name)
		}
		mode := file.Mode.Perm()
		if mode == 0 {
			mode = 0o400
		}
		tmp := filepath.Join(dir, "."+file.Name+".tmp")
		_ = os.Remove(tmp)
		if err := writeFile(tmp, file.Data, mode, file.UID, file.GID); err != nil {
			return "", err
		}
		if err := os.Rename(tmp, filepath.Join(dir, file.Name)); err != nil {
			return "", err
		}
	}
	// Files of secrets the service no longer uses go.
	keep := map[string]bool{}
	for _, file := range files {
		keep[file.Name] = true
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !keep[e.Name()] {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o500); err != nil {
		return "", err
	}
	return dir, nil
}

func writeFile(path string, data []byte, mode os.FileMode, uid, gid int) error {
	fh, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, werr := fh.Write(data)
	if err := errors.Join(werr, fh.Chown(uid, gid), fh.Chmod(mode), fh.Close()); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("write secret file: %w", err)
	}
	return nil
}

// Remove deletes owner's secret files.
func (f *Files) Remove(owner string) error {
	if !ownerRE.MatchString(owner) || owner == "." || owner == ".." {
		return nil
	}
	dir := f.Dir(owner)
	_ = os.Chmod(dir, 0o700)
	if err := os.RemoveAll(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Owners lists the owners that have secret files now.
func (f *Files) Owners() []string {
	entries, err := os.ReadDir(f.root)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}
