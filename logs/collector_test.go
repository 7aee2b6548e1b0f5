package logs

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/runtime"
)

type fakeEntry struct {
	stderr bool
	ts     time.Time
	text   string
}

// fakeSource is an engine with stopped containers whose output is fixed:
// Logs writes the entries at or after Since, as the engine does.
type fakeSource struct {
	mu      sync.Mutex
	cs      []runtime.Container
	entries map[string][]fakeEntry
}

func (f *fakeSource) List(ctx context.Context, labels map[string]string) ([]runtime.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]runtime.Container(nil), f.cs...), nil
}

func (f *fakeSource) Inspect(ctx context.Context, id string) (runtime.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.cs {
		if c.ID == id {
			return c, nil
		}
	}
	return runtime.Container{}, runtime.ErrNotFound
}

func (f *fakeSource) Logs(ctx context.Context, id string, opts runtime.LogOptions, stdout, stderr io.Writer) error {
	f.mu.Lock()
	es := append([]fakeEntry(nil), f.entries[id]...)
	f.mu.Unlock()
	for _, e := range es {
		if e.ts.Before(opts.Since) {
			continue
		}
		w := stdout
		if e.stderr {
			w = stderr
		}
		fmt.Fprintf(w, "%s %s\n", e.ts.Format(time.RFC3339Nano), e.text)
	}
	return nil
}

func (f *fakeSource) Events(ctx context.Context, labels map[string]string) (<-chan runtime.Event, <-chan error) {
	return nil, nil
}

func (f *fakeSource) add(id string, from, n int, t0 time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.entries == nil {
		f.entries = map[string][]fakeEntry{}
	}
	for i := from; i < from+n; i++ {
		// Three lines share each timestamp.
		f.entries[id] = append(f.entries[id], fakeEntry{stderr: i%5 == 0, ts: t0.Add(time.Duration(i/3) * time.Microsecond), text: fmt.Sprintf("%s %d", id, i)})
	}
}

// collectOnce runs a collector until every container is read to its end.
func collectOnce(t testing.TB, dir string, src *fakeSource) {
	t.Helper()
	c, stop := runCollector(t, dir, src)
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		n := len(c.drained)
		c.mu.Unlock()
		if n == len(src.cs) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("containers not drained")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
}

// runCollector runs a collector over a store and positions file in dir;
// stop ends it and closes the store.
func runCollector(t testing.TB, dir string, src *fakeSource) (c *Collector, stop func()) {
	t.Helper()
	st, err := Open(Options{Dir: filepath.Join(dir, "logs")})
	if err != nil {
		t.Fatal(err)
	}
	c = NewCollector(CollectorConfig{CursorFile: filepath.Join(dir, "cursors.json"), Resync: 20 * time.Millisecond}, src, st, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	return c, func() {
		t.Helper()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func container(id, task string) runtime.Container {
	return runtime.Container{ID: id, State: runtime.StateExited, StartedAt: time.Unix(1, 0),
		Labels: map[string]string{api.LabelStack: "shop", api.LabelService: "web", api.LabelTask: task, api.LabelRevision: "2"}}
}

// Across restarts of the collector (clean, and with the positions file
// lost as after a crash), every line is kept exactly once, lines sharing
// a timestamp included.
func TestCollectorResumesWithoutGapsOrDuplicates(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Now().Add(-time.Minute).UTC()
	src := &fakeSource{cs: []runtime.Container{container("aaaaaaaaaaaaaaaa", "t1"), container("bbbbbbbbbbbbbbbb", "t2")}}
	src.add("aaaaaaaaaaaaaaaa", 0, 100, t0)
	src.add("bbbbbbbbbbbbbbbb", 0, 10, t0)
	collectOnce(t, dir, src)

	// More output (its first lines share the last kept timestamp), and a
	// restarted container: read again from the saved positions.
	src.add("aaaaaaaaaaaaaaaa", 100, 50, t0)
	src.mu.Lock()
	src.cs[0].StartedAt = time.Unix(2, 0)
	src.cs[1].StartedAt = time.Unix(2, 0)
	src.mu.Unlock()
	collectOnce(t, dir, src)

	// Positions lost: they are rebuilt from the store.
	if err := os.Remove(filepath.Join(dir, "cursors.json")); err != nil {
		t.Fatal(err)
	}
	src.add("bbbbbbbbbbbbbbbb", 10, 5, t0)
	src.mu.Lock()
	src.cs[0].StartedAt = time.Unix(3, 0)
	src.cs[1].StartedAt = time.Unix(3, 0)
	src.mu.Unlock()
	collectOnce(t, dir, src)

	st, err := Open(Options{Dir: filepath.Join(dir, "logs")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, c := range []struct {
		task string
		n    int
	}{{"t1", 150}, {"t2", 15}} {
		got := readAll(t, st, Query{Stack: "shop", Task: c.task})
		if len(got) != c.n {
			t.Fatalf("task %s: %d lines kept, want %d", c.task, len(got), c.n)
		}
		seen := map[string]bool{}
		for _, l := range got {
			if seen[l.Line] {
				t.Fatalf("line %q kept twice", l.Line)
			}
			seen[l.Line] = true
			if l.Service != "web" || l.Revision != 2 || l.Stack != "shop" {
				t.Fatalf("line attributed wrongly: %+v", l)
			}
		}
		if want := api.StreamStderr; got[0].Stream != want {
			t.Fatalf("line 0 came from %s, want %s", got[0].Stream, want)
		}
	}
}
