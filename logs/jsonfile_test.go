package logs

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/runtime"
)

// engineLog writes a json-file log as the engine does: one JSON entry a
// line, lines longer than split cut into entries without the "\n", and
// rotation once the file reaches maxSize (path → path.1 → … → path.N,
// the oldest overwritten).
type engineLog struct {
	t        testing.TB
	path     string
	maxSize  int64
	maxFiles int
	split    int

	mu   sync.Mutex
	f    *os.File
	size int64
}

func newEngineLog(t testing.TB, dir string, maxSize int64, maxFiles int) *engineLog {
	t.Helper()
	l := &engineLog{t: t, path: filepath.Join(dir, "c-json.log"), maxSize: maxSize, maxFiles: maxFiles, split: 16 << 10}
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	l.f = f
	t.Cleanup(func() { l.f.Close() })
	return l
}

// line writes one line of output (without its "\n").
func (l *engineLog) line(stream string, ts time.Time, text string) {
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		part := text
		if len(part) > l.split {
			part = text[:l.split]
		} else {
			part += "\n"
		}
		text = text[min(len(text), l.split):]
		l.entry(stream, ts, part)
		if !strings.HasSuffix(part, "\n") {
			ts = ts.Add(time.Nanosecond)
			continue
		}
		return
	}
}

func (l *engineLog) entry(stream string, ts time.Time, log string) {
	if l.size >= l.maxSize {
		l.rotate()
	}
	b, err := json.Marshal(engineEntry{Log: log, Stream: stream, Time: ts})
	if err != nil {
		l.t.Fatal(err)
	}
	b = append(b, '\n')
	if _, err := l.f.Write(b); err != nil {
		l.t.Fatal(err)
	}
	l.size += int64(len(b))
}

func (l *engineLog) rotate() {
	if err := l.f.Close(); err != nil {
		l.t.Fatal(err)
	}
	for i := l.maxFiles - 1; i > 1; i-- {
		_ = os.Rename(fmt.Sprintf("%s.%d", l.path, i-1), fmt.Sprintf("%s.%d", l.path, i))
	}
	if err := os.Rename(l.path, l.path+".1"); err != nil {
		l.t.Fatal(err)
	}
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		l.t.Fatal(err)
	}
	l.f, l.size = f, 0
}

// fileLine is what line i of a test's output is: its stream, time
// (three lines share each time) and text (every 97th is longer than the
// engine's 16 KiB split, every 13th ends in CRLF).
func fileLine(i int, t0 time.Time) (string, time.Time, string) {
	stream := api.StreamStdout
	if i%5 == 0 {
		stream = api.StreamStderr
	}
	text := fmt.Sprintf("line %d é\t\"q\"", i)
	switch {
	case i%97 == 0:
		text += strings.Repeat("x", 40<<10)
	case i%13 == 0:
		text += "\r"
	}
	return stream, t0.Add(time.Duration(i/3) * time.Microsecond), text
}

func wantText(i int) string {
	_, _, text := fileLine(i, time.Time{})
	return strings.TrimSuffix(text, "\r")
}

// fileContainer is a container whose output is the json-file log at path.
func fileContainer(id, path string, running bool) runtime.Container {
	c := container(id, "t1")
	c.LogDriver, c.LogPath = "json-file", path
	if running {
		c.State = runtime.StateRunning
	}
	return c
}

// checkKept fails unless the store holds lines 0…n-1 of fileLine once
// each, in order per stream, attributed to the container's task.
func checkKept(t *testing.T, dir string, n int) {
	t.Helper()
	st, err := Open(Options{Dir: filepath.Join(dir, "logs")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got := readAll(t, st, Query{Stack: "shop"})
	if len(got) != n {
		t.Fatalf("%d lines kept, want %d", len(got), n)
	}
	seen := map[string]bool{}
	for _, l := range got {
		if seen[l.Line] {
			t.Fatalf("line %.40q kept twice", l.Line)
		}
		seen[l.Line] = true
		if l.Service != "web" || l.Task != "t1" || l.Revision != 2 {
			t.Fatalf("line attributed wrongly: %+v", l)
		}
	}
	for i := 0; i < n; i++ {
		if !seen[wantText(i)] {
			t.Fatalf("line %d (%.40q) not kept", i, wantText(i))
		}
	}
}

// A running container's log is followed while the engine writes and
// rotates it (long lines split across rotations included); once the
// container stops, the follower ends at the end of the log.
func TestJSONFileFollowsRotationUntilStopped(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// Files are never dropped here (many kept), so no line can be lost.
	el := newEngineLog(t, t.TempDir(), 8<<10, 10000)
	src := &fakeSource{cs: []runtime.Container{fileContainer("aaaaaaaaaaaaaaaa", el.path, true)}}
	c, stop := runCollector(t, dir, src)

	const n = 3000
	t0 := time.Now().Add(-time.Minute).UTC()
	for i := 0; i < n; i++ {
		el.line(fileLine(i, t0))
		if i%300 == 0 {
			time.Sleep(5 * time.Millisecond) // let it catch up now and then
		}
	}
	waitUntil(t, 20*time.Second, "all lines read", func() bool { return c.Lines() == n })
	c.mu.Lock()
	following := len(c.followers)
	c.mu.Unlock()
	if following != 1 {
		t.Fatalf("%d followers while the container runs, want 1", following)
	}
	src.mu.Lock()
	src.cs[0].State = runtime.StateExited
	src.mu.Unlock()
	waitUntil(t, 20*time.Second, "follower ended", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, drained := c.drained["aaaaaaaaaaaa"]
		return drained && len(c.followers) == 0
	})
	stop()
	checkKept(t, dir, n)
}

// Across restarts of the collector (clean, and with the positions file
// lost), reading resumes in the rotated files without gaps or duplicates,
// lines sharing a time at the position included.
func TestJSONFileResumesAcrossRotatedFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	el := newEngineLog(t, t.TempDir(), 32<<10, 10)
	t0 := time.Now().Add(-time.Hour).UTC()
	src := &fakeSource{cs: []runtime.Container{fileContainer("aaaaaaaaaaaaaaaa", el.path, false)}}
	write := func(from, to int) {
		for i := from; i < to; i++ {
			el.line(fileLine(i, t0))
		}
	}
	write(0, 100)
	collectOnce(t, dir, src)
	checkKept(t, dir, 100)

	// More output, the first lines sharing the last kept time, over
	// several rotations (fewer than the files kept).
	write(100, 250)
	src.mu.Lock()
	src.cs[0].StartedAt = time.Unix(2, 0)
	src.mu.Unlock()
	collectOnce(t, dir, src)
	checkKept(t, dir, 250)

	if err := os.Remove(filepath.Join(dir, "cursors.json")); err != nil {
		t.Fatal(err)
	}
	write(250, 260)
	src.mu.Lock()
	src.cs[0].StartedAt = time.Unix(3, 0)
	src.mu.Unlock()
	collectOnce(t, dir, src)
	checkKept(t, dir, 260)
}

// On resume, reading starts with the newest file that begins before the
// position (less a second of slack), not with the oldest.
func TestJSONFileStartsWithTheFileHoldingThePosition(t *testing.T) {
	t.Parallel()
	el := newEngineLog(t, t.TempDir(), 1, 10) // a file per line
	t0 := time.Now().Add(-time.Hour).UTC()
	for i := 0; i < 6; i++ { // one line a file, a minute apart
		el.line(api.StreamStdout, t0.Add(time.Duration(i)*time.Minute), fmt.Sprintf("line %d", i))
	}
	c := NewCollector(CollectorConfig{}, &fakeSource{}, nil, nil)
	for _, tc := range []struct {
		from time.Time
		want string
	}{
		{time.Time{}, el.path + ".5"},
		{t0, el.path + ".5"},
		{t0.Add(2*time.Minute + time.Second), el.path + ".4"},
		{t0.Add(2*time.Minute + 2*time.Second), el.path + ".3"},
		{t0.Add(2*time.Minute + 500*time.Millisecond), el.path + ".4"},
		{t0.Add(time.Hour), el.path},
	} {
		f := &follower{c: c, short: "c", from: tc.from}
		j, err := openJSONFile(f, el.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := j.file.Name(); got != tc.want {
			t.Errorf("from %s: starts with %s, want %s", tc.from.Sub(t0), filepath.Base(got), filepath.Base(tc.want))
		}
		j.file.Close()
	}
}

// A container whose log file berth cannot read is read through the API.
func TestUnreadableLogFileFallsBackToTheAPI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	t0 := time.Now().Add(-time.Minute).UTC()
	src := &fakeSource{cs: []runtime.Container{fileContainer("aaaaaaaaaaaaaaaa", filepath.Join(dir, "missing-json.log"), false)}}
	src.add("aaaaaaaaaaaaaaaa", 0, 20, t0)
	collectOnce(t, dir, src)
	st, err := Open(Options{Dir: filepath.Join(dir, "logs")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if got := readAll(t, st, Query{Stack: "shop"}); len(got) != 20 {
		t.Fatalf("%d lines kept, want 20", len(got))
	}
}

// BenchmarkJSONFileIngest: lines per second the collector keeps from a
// stopped container's json-file log (500-line chunks of ~100-byte lines,
// rotated at 10 MB as berth's tasks are), decode and store included.
func BenchmarkJSONFileIngest(b *testing.B) {
	el := newEngineLog(b, b.TempDir(), 10<<20, 1000)
	t0 := time.Now().Add(-time.Hour).UTC()
	const n = 200000
	for i := 0; i < n; i++ {
		el.line(api.StreamStdout, t0.Add(time.Duration(i)*time.Microsecond), fmt.Sprintf("GET /items/%d 200 %dms user=%d the quick brown fox jumps over the lazy dog", i, i%97, i%1013))
	}
	src := &fakeSource{cs: []runtime.Container{fileContainer("aaaaaaaaaaaaaaaa", el.path, false)}}
	b.ResetTimer()
	for b.Loop() {
		collectOnce(b, b.TempDir(), src)
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "lines/s")
}

// A follower that falls more files behind than the engine keeps reads
// the file it holds open to its end, then goes on with the oldest file
// left (what came between is lost, with a warning), and does not stall.
func TestJSONFileFallenBehindRotationGoesOn(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	el := newEngineLog(t, t.TempDir(), 1, 3) // a file per line, 3 kept
	t0 := time.Now().Add(-time.Hour).UTC()
	el.line(api.StreamStdout, t0, "line 0")
	st, err := Open(Options{Dir: filepath.Join(dir, "logs")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := NewCollector(CollectorConfig{}, &fakeSource{}, st, nil)
	f := &follower{c: c, short: "c", meta: api.LogLine{Stack: "shop", Task: "t1"}, stop: make(chan struct{})}
	j, err := openJSONFile(f, el.path, f.stop)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 10; i++ { // lines 1–6 are dropped with their files
		el.line(api.StreamStdout, t0.Add(time.Duration(i)*time.Second), fmt.Sprintf("line %d", i))
	}
	f.halt()
	done := make(chan error)
	go func() { done <- j.run(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("follower stalled")
	}
	if err := st.Flush(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range readAll(t, st, Query{Stack: "shop"}) {
		got = append(got, l.Line)
	}
	if want := []string{"line 0", "line 7", "line 8", "line 9"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("kept %q, want %q", got, want)
	}
}
