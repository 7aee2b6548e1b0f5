package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"
)

// TestedFile is the record `berth test` keeps of the images whose tests
// passed, by image ID, which is the digest of the image's configuration.
// A registry stores that configuration unchanged, so `berth promote` can
// tell, for any manifest, whether its image is one that passed: a tag
// that moved to an image nobody tested is refused.
const TestedFile = "tested.json"

// maxTested bounds the record; the oldest entries go first.
const maxTested = 2000

// RecordTested adds imageID to the record at path (created 0600).
func RecordTested(path, imageID string, at time.Time) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	// The record is replaced by rename, so writers lock a file beside it.
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("record tested image: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	rec := map[string]time.Time{}
	if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
		if err := json.Unmarshal(b, &rec); err != nil {
			return fmt.Errorf("read %s: %w (remove it to start a new record)", path, err)
		}
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	rec[imageID] = at.UTC()
	if len(rec) > maxTested {
		ids := make([]string, 0, len(rec))
		for id := range rec {
			ids = append(ids, id)
		}
		sort.Slice(ids, func(i, j int) bool { return rec[ids[i]].Before(rec[ids[j]]) })
		for _, id := range ids[:len(rec)-maxTested] {
			delete(rec, id)
		}
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Tested reports when imageID passed its tests (zero: never, as far as
// the record at path knows).
func Tested(path, imageID string) (time.Time, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	rec := map[string]time.Time{}
	if err := json.Unmarshal(b, &rec); err != nil {
		return time.Time{}, fmt.Errorf("read %s: %w", path, err)
	}
	return rec[imageID], nil
}
