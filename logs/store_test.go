package logs

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
)

func line(t0 time.Time, i int, svc, task string) api.LogLine {
	return api.LogLine{Time: t0.Add(time.Duration(i) * time.Millisecond), Service: svc, Task: task, Revision: 1,
		Stream: api.StreamStdout, Line: fmt.Sprintf("%s line %d", svc, i), Container: "c-" + task}
}

func readAll(t *testing.T, s *Store, q Query) []api.LogLine {
	t.Helper()
	var out []api.LogLine
	if _, err := s.Read(context.Background(), q, func(l api.LogLine) error { out = append(out, l); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func sorted(t *testing.T, ls []api.LogLine) {
	t.Helper()
	for i := 1; i < len(ls); i++ {
		if ls[i].Time.Before(ls[i-1].Time) {
			t.Fatalf("line %d (%s) is earlier than line %d (%s)", i, ls[i].Time, i-1, ls[i-1].Time)
		}
	}
}

// Lines of several tasks arrive out of time order (each task's stream
// lags differently); reads return them merged in time order, across
// blocks and segments.
func TestReadMergesInTimeOrder(t *testing.T) {
	s, err := Open(Options{Dir: t.TempDir(), SegmentBytes: 8 << 10, BlockBytes: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Now().Add(-time.Hour).UTC()
	rng := rand.New(rand.NewSource(1))
	const n = 3000
	next := [3]int{}
	for written := 0; written < n; {
		k := rng.Intn(3)
		var batch []api.LogLine
		for j := 0; j < 1+rng.Intn(20) && written < n; j++ {
			// task k writes every third millisecond, offset by k
			batch = append(batch, line(t0, next[k]*3+k, "web", fmt.Sprintf("t%d", k)))
			next[k]++
			written++
		}
		if err := s.Append("shop", batch); err != nil {
			t.Fatal(err)
		}
		if rng.Intn(4) == 0 {
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	all := readAll(t, s, Query{Stack: "shop"})
	if len(all) != n {
		t.Fatalf("read %d lines, want %d", len(all), n)
	}
	sorted(t, all)
	if all[0].Stack != "shop" || all[0].Line == "" {
		t.Fatalf("first line %+v", all[0])
	}

	tail := readAll(t, s, Query{Stack: "shop", Tail: 100})
	if len(tail) != 100 {
		t.Fatalf("tail read %d lines", len(tail))
	}
	sorted(t, tail)
	for i := range tail {
		if !tail[i].Time.Equal(all[n-100+i].Time) {
			t.Fatalf("tail line %d is %s, want %s", i, tail[i].Time, all[n-100+i].Time)
		}
	}

	one := readAll(t, s, Query{Stack: "shop", Task: "t1", Since: t0.Add(30 * time.Millisecond), Until: t0.Add(60 * time.Millisecond)})
	if len(one) != 10 {
		t.Fatalf("task t1 in [30ms, 60ms): %d lines, want 10: %v", len(one), one)
	}
	grep := readAll(t, s, Query{Stack: "shop", Grep: regexp.MustCompile(`line 1\d$`)})
	if len(grep) != 10 {
		t.Fatalf("grep: %d lines, want 10", len(grep))
	}
	if got := readAll(t, s, Query{Stack: "other"}); len(got) != 0 {
		t.Fatalf("a stack without logs read %d lines", len(got))
	}
}

// A crash can leave half a record at the end of the newest segment;
// reopening cuts it and keeps everything before it, and appends go on.
func TestRecoverTornRecord(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir, BlockBytes: 512})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().UTC()
	var batch []api.LogLine
	for i := 0; i < 200; i++ {
		batch = append(batch, line(t0, i, "web", "t1"))
	}
	if err := s.Append("shop", batch); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(dir, "shop", segName(1, "log"))
	f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	torn := appendRecord(nil, &api.LogLine{Time: t0, Line: "half a line that never made it"})
	f.Write(torn[:len(torn)/2])
	f.Close()

	s, err = Open(Options{Dir: dir, BlockBytes: 512})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := readAll(t, s, Query{Stack: "shop"}); len(got) != 200 {
		t.Fatalf("after recovery read %d lines, want 200", len(got))
	}
	if err := s.Append("shop", []api.LogLine{line(t0, 500, "web", "t1")}); err != nil {
		t.Fatal(err)
	}
	s.Flush()
	got := readAll(t, s, Query{Stack: "shop", Tail: 1})
	if len(got) != 1 || got[0].Line != "web line 500" {
		t.Fatalf("line appended after recovery: %v", got)
	}
}

// Retention drops whole sealed segments: by age, by a stack's size, and
// the oldest of any stack while the total is over the budget.
func TestRetention(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir, SegmentBytes: 4 << 10, BlockBytes: 1 << 10,
		Retention: Retention{MaxAge: time.Hour, StackBytes: 40 << 10, TotalBytes: 60 << 10}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	old := time.Now().Add(-2 * time.Hour).UTC()
	now := time.Now().UTC()
	fill := func(stack string, t0 time.Time, n int) {
		for i := 0; i < n; i++ {
			if err := s.Append(stack, []api.LogLine{line(t0, i, "web", "t1")}); err != nil {
				t.Fatal(err)
			}
		}
		s.Flush()
	}
	fill("aged", old, 300)
	fill("aged", now, 10) // the active segment is never dropped
	s.Enforce()
	// Only the active segment (old lines and the new ones) is left.
	if got := readAll(t, s, Query{Stack: "aged"}); len(got) >= 310 || len(got) < 10 || s.Usage().Stacks["aged"] > 4<<10+200 {
		t.Fatalf("sealed segments older than MaxAge survived: %d lines, %d bytes", len(got), s.Usage().Stacks["aged"])
	}

	fill("big", now, 3000) // ~100 KiB
	s.Enforce()
	u := s.Usage()
	if u.Stacks["big"] > 40<<10+4<<10 {
		t.Fatalf("stack over its size limit: %d bytes", u.Stacks["big"])
	}
	if tail := readAll(t, s, Query{Stack: "big", Tail: 1}); len(tail) != 1 || tail[0].Line != "web line 2999" {
		t.Fatalf("the newest line was dropped: %v", tail)
	}
	fill("third", now.Add(time.Minute), 1200)
	s.Enforce()
	u = s.Usage()
	if u.Total > 60<<10+3*(4<<10) {
		t.Fatalf("total %d over the budget", u.Total)
	}
	if u.Stacks["third"] == 0 {
		t.Fatal("the newest stack lost everything")
	}
}

// A follower sees lines appended after its Read, in arrival order, across
// a segment rotation.
func TestFollow(t *testing.T) {
	s, err := Open(Options{Dir: t.TempDir(), SegmentBytes: 2 << 10, BlockBytes: 512, FlushInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	t0 := time.Now().UTC()
	s.Append("shop", []api.LogLine{line(t0, 0, "web", "t1")})
	s.Flush()
	q := Query{Stack: "shop", Service: "web"}
	var first []api.LogLine
	pos, err := s.Read(ctx, q, func(l api.LogLine) error { first = append(first, l); return nil })
	if err != nil || len(first) != 1 {
		t.Fatalf("read: %v, %d lines", err, len(first))
	}
	got := make(chan api.LogLine, 1000)
	go s.Follow(ctx, q, pos, func(l api.LogLine) error { got <- l; return nil })
	for i := 1; i <= 300; i++ {
		s.Append("shop", []api.LogLine{line(t0, i, "web", "t1"), line(t0, i, "db", "t2")})
	}
	for i := 1; i <= 300; i++ {
		select {
		case l := <-got:
			if want := fmt.Sprintf("web line %d", i); l.Line != want {
				t.Fatalf("followed %q, want %q", l.Line, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("line %d not followed", i)
		}
	}
}
