// Package backup writes and restores berth's backup archives: a gzipped
// tar holding a consistent etcd snapshot (every stack, revision, task and
// event, secrets still encrypted as they are stored) and the data
// directory's own files as they are (identity, configuration, keys,
// certificates), with a manifest. Logs, sockets, locks, etcd's live
// files and the decrypted secrets' tmpfs (DATA_DIR/run) are left out: the
// snapshot is the state.
//
// Restore only ever writes into a fresh data directory: it never merges
// into, or overwrites, a berth that has state.
package backup

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/store"
)

// Entry names inside an archive.
const (
	manifestName = "MANIFEST.json"
	snapshotName = "etcd.snapshot"
	dataPrefix   = "data/"
)

// FormatVersion is the archive format.
const FormatVersion = 1

// Manifest describes an archive.
type Manifest struct {
	Format    int       `json:"format"`
	Created   time.Time `json:"created"`
	ClusterID string    `json:"cluster_id"`
	Version   string    `json:"berth_version"`
	Snapshot  int64     `json:"snapshot_bytes"`
	Files     []string  `json:"files"`
}

// skip says whether a data-directory path stays out of a backup.
func skip(rel string, d fs.DirEntry) bool {
	base := path.Base(rel)
	if d.IsDir() {
		// etcd: the snapshot is the state; logs: the log store; run: the
		// tmpfs where secrets are decrypted for containers (plaintext
		// never leaves it).
		return rel == "etcd" || rel == "logs" || rel == "run"
	}
	if !d.Type().IsRegular() {
		return true // sockets, links
	}
	return base == "lock" || strings.HasSuffix(base, ".sock") || strings.HasSuffix(base, ".pid") ||
		strings.HasSuffix(base, ".log") || strings.HasSuffix(base, ".lock")
}

// Options name what Write includes beyond the snapshot.
type Options struct {
	DataDir   string
	ClusterID string
	Version   string
	// ConfigFile is the configuration file berth up read, when it lives
	// outside the data directory; it is stored as data/berth.yaml.
	ConfigFile string
}

// Write writes an archive to w.
func Write(ctx context.Context, w io.Writer, st *store.Store, opts Options) error {
	snap, err := os.CreateTemp("", "berth-snapshot-")
	if err != nil {
		return err
	}
	defer os.Remove(snap.Name())
	defer snap.Close()
	n, err := st.Snapshot(ctx, snap)
	if err != nil {
		return err
	}
	if _, err := snap.Seek(0, io.SeekStart); err != nil {
		return err
	}
	files, err := dataFiles(opts)
	if err != nil {
		return err
	}
	m := Manifest{Format: FormatVersion, Created: time.Now().UTC(), ClusterID: opts.ClusterID, Version: opts.Version, Snapshot: n}
	for _, f := range files {
		m.Files = append(m.Files, f.name)
	}
	mb, _ := json.MarshalIndent(m, "", "  ")

	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	if err := addBytes(tw, manifestName, mb); err != nil {
		return err
	}
	if err := addFile(tw, snapshotName, snap, n, 0o600); err != nil {
		return err
	}
	for _, f := range files {
		if err := addPath(tw, dataPrefix+f.name, f.path); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

type dataFile struct{ name, path string }

func dataFiles(opts Options) ([]dataFile, error) {
	var out []dataFile
	haveConfig := false
	err := filepath.WalkDir(opts.DataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(opts.DataDir, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if skip(rel, d) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.IsDir() {
			out = append(out, dataFile{rel, p})
			haveConfig = haveConfig || rel == "berth.yaml"
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read data directory: %w", err)
	}
	if opts.ConfigFile != "" && !haveConfig {
		if abs, _ := filepath.Abs(opts.ConfigFile); !strings.HasPrefix(abs, opts.DataDir+string(filepath.Separator)) {
			out = append(out, dataFile{"berth.yaml", opts.ConfigFile})
		}
	}
	return out, nil
}

func addBytes(tw *tar.Writer, name string, b []byte) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(b)), ModTime: time.Now()}); err != nil {
		return err
	}
	_, err := tw.Write(b)
	return err
}

func addFile(tw *tar.Writer, name string, r io.Reader, size int64, mode int64) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: size, ModTime: time.Now()}); err != nil {
		return err
	}
	_, err := io.CopyN(tw, r, size)
	return err
}

func addPath(tw *tar.Writer, name, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	return addFile(tw, name, f, fi.Size(), int64(fi.Mode().Perm()))
}

// Restore unpacks an archive into dataDir, which must not exist or be
// empty: etcd's data is rebuilt from the snapshot and the data files are
// put back as they were. `berth up --data-dir DIR` then starts from that
// state and its agent converges the stacks again.
func Restore(r io.Reader, dataDir string) (m Manifest, err error) {
	if entries, err := os.ReadDir(dataDir); err == nil && len(entries) > 0 {
		return m, api.Conflictf("data directory %s is not empty; restore into a fresh one (berth restore FILE --data-dir NEW_DIR)", dataDir)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return m, err
	}
	defer func() {
		if err != nil { // leave nothing half restored: the directory was empty
			entries, _ := os.ReadDir(dataDir)
			for _, e := range entries {
				_ = os.RemoveAll(filepath.Join(dataDir, e.Name()))
			}
		}
	}()
	gz, err := gzip.NewReader(r)
	if err != nil {
		return m, api.Invalidf("not a berth backup (gzip: %v)", err)
	}
	tr := tar.NewReader(gz)
	snap := filepath.Join(dataDir, ".restore-"+snapshotName)
	defer os.Remove(snap)
	gotSnap := false
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return m, api.Invalidf("read backup: %v (the file is damaged or cut short)", err)
		}
		switch {
		case h.Name == manifestName:
			if err := json.NewDecoder(io.LimitReader(tr, 1<<20)).Decode(&m); err != nil {
				return m, api.Invalidf("backup manifest: %v", err)
			}
			if m.Format != FormatVersion {
				return m, api.Invalidf("backup format %d: this berth reads format %d", m.Format, FormatVersion)
			}
		case h.Name == snapshotName:
			if err := writeFile(snap, tr, 0o600); err != nil {
				return m, damaged(h.Name, err)
			}
			gotSnap = true
		case strings.HasPrefix(h.Name, dataPrefix) && h.Typeflag == tar.TypeReg:
			rel := strings.TrimPrefix(h.Name, dataPrefix)
			if !fs.ValidPath(rel) || rel == "etcd" || strings.HasPrefix(rel, "etcd/") {
				return m, api.Invalidf("backup entry %q: not a data-directory file", h.Name)
			}
			dst := filepath.Join(dataDir, filepath.FromSlash(rel))
			if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
				return m, err
			}
			if err := writeFile(dst, tr, os.FileMode(h.Mode).Perm()); err != nil {
				return m, damaged(h.Name, err)
			}
		}
	}
	if m.Format == 0 || !gotSnap {
		return m, api.Invalidf("not a berth backup: the manifest or the etcd snapshot is missing")
	}
	if err := store.RestoreEmbedded(snap, filepath.Join(dataDir, "etcd")); err != nil {
		return m, fmt.Errorf("%w: %v", api.ErrInvalid, err)
	}
	return m, nil
}

// damaged says a read of the archive failed as invalid input; other
// errors (a full disk) pass as they are.
func damaged(entry string, err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, tar.ErrHeader) || errors.Is(err, gzip.ErrChecksum) {
		return api.Invalidf("read backup entry %s: %v (the file is damaged or cut short)", entry, err)
	}
	return err
}

func writeFile(p string, r io.Reader, mode os.FileMode) error {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
