package logs

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/berth-dev/berth/api"
)

// Cursor is the collector's position in one container's output: the time
// of the last line kept and how many kept lines carry exactly that time
// (the engine's "since" is inclusive, and lines can share a timestamp).
type Cursor struct {
	Time time.Time `json:"time"`
	N    int       `json:"n"`
}

// after says whether c is further along than o.
func (c Cursor) after(o Cursor) bool {
	return c.Time.After(o.Time) || (c.Time.Equal(o.Time) && c.N > o.N)
}

// loadCursors reads the saved positions and raises them from the lines
// the store holds that were written after the positions were saved (a
// crash between writing lines and saving positions must not duplicate
// them).
func loadCursors(path string, st *Store) (map[string]Cursor, error) {
	out := map[string]Cursor{}
	var since time.Time
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read log positions: %w", err)
	default:
		if err := json.Unmarshal(b, &out); err != nil {
			return nil, fmt.Errorf("log positions in %s are damaged (%v); remove the file to read every container's output again", path, err)
		}
		if fi, err := os.Stat(path); err == nil {
			since = fi.ModTime().Add(-2 * time.Second)
		}
	}
	found := map[string]Cursor{}
	err = st.scanWrittenSince(since, func(l *api.LogLine) {
		c := found[l.Container]
		switch {
		case l.Time.After(c.Time):
			found[l.Container] = Cursor{Time: l.Time, N: 1}
		case l.Time.Equal(c.Time):
			c.N++
			found[l.Container] = c
		}
	})
	if err != nil {
		return nil, err
	}
	for id, c := range found {
		if c.after(out[id]) {
			out[id] = c
		}
	}
	return out, nil
}

// saveCursors replaces the positions file atomically and durably.
func saveCursors(path string, cur map[string]Cursor) error {
	b, err := json.Marshal(cur)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// scanWrittenSince decodes every record of the segments written to at or
// after t (all segments when t is zero).
func (s *Store) scanWrittenSince(t time.Time, fn func(*api.LogLine)) error {
	if err := s.Flush(); err != nil {
		return err
	}
	s.mu.Lock()
	all := make([]*stackLog, 0, len(s.stacks))
	for _, sl := range s.stacks {
		all = append(all, sl)
	}
	s.mu.Unlock()
	for _, sl := range all {
		sl.mu.Lock()
		var seqs []uint64
		for _, seg := range sl.segs {
			seqs = append(seqs, seg.seq)
		}
		sl.mu.Unlock()
		for _, seq := range seqs {
			path := filepath.Join(sl.dir, segName(seq, "log"))
			fi, err := os.Stat(path)
			if err != nil || (!t.IsZero() && fi.ModTime().Before(t)) {
				continue
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("read log segment %s: %w", path, err)
			}
			var l api.LogLine
			for len(data) > 0 {
				n, err := decodeRecord(data, &l)
				if err != nil {
					break
				}
				fn(&l)
				data = data[n:]
			}
		}
	}
	return nil
}
