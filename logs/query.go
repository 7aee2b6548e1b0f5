package logs

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/berth-dev/berth/api"
)

// Query selects lines of one stack.
type Query struct {
	Stack   string
	Service string
	// Task is a task (or job) ID or a prefix of one.
	Task     string
	Revision int
	Since    time.Time // inclusive
	Until    time.Time // exclusive
	Grep     *regexp.Regexp
	// Tail keeps only the last Tail lines (0: all).
	Tail int
}

func (q *Query) matchTime(ts int64) bool {
	if !q.Since.IsZero() && ts < q.Since.UnixNano() {
		return false
	}
	return q.Until.IsZero() || ts < q.Until.UnixNano()
}

func (q *Query) match(l *api.LogLine) bool {
	switch {
	case q.Service != "" && l.Service != q.Service:
		return false
	case q.Task != "" && !strings.HasPrefix(l.Task, q.Task):
		return false
	case q.Revision != 0 && l.Revision != q.Revision:
		return false
	case q.Grep != nil && !q.Grep.MatchString(l.Line):
		return false
	}
	return true
}

// blockOverlaps says whether a block can hold lines in the query's range.
func (q *Query) blockOverlaps(b blockRef) bool {
	if !q.Since.IsZero() && b.max < q.Since.UnixNano() {
		return false
	}
	return q.Until.IsZero() || b.min < q.Until.UnixNano()
}

// Position is where a follower goes on reading: a segment and an offset.
type Position struct {
	Seq uint64
	Off int64
}

type blockRef struct {
	seq      uint64
	off, end int64
	min, max int64
}

// view is a consistent snapshot of what is readable: every block (the
// open one included) up to what was written, and the end position.
func (sl *stackLog) view() ([]blockRef, Position, <-chan struct{}) {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	var out []blockRef
	add := func(seq uint64, b block, end int64) {
		if b.off < end {
			out = append(out, blockRef{seq: seq, off: b.off, end: end, min: b.min, max: b.max})
		}
	}
	for _, seg := range sl.segs {
		for _, b := range seg.blocks {
			add(seg.seq, b, min(b.end, seg.size))
		}
		add(seg.seq, seg.cur, seg.size)
	}
	last := sl.segs[len(sl.segs)-1]
	return out, Position{Seq: last.seq, Off: last.size}, sl.notify
}

// files opens segment files for reading and closes them together.
type files struct {
	dir string
	m   map[uint64]*os.File
}

func (fs *files) get(seq uint64) (*os.File, error) {
	if f, ok := fs.m[seq]; ok {
		return f, nil
	}
	f, err := os.Open(filepath.Join(fs.dir, segName(seq, "log")))
	if err != nil {
		return nil, err
	}
	if fs.m == nil {
		fs.m = map[uint64]*os.File{}
	}
	fs.m[seq] = f
	return f, nil
}

func (fs *files) close() {
	for _, f := range fs.m {
		f.Close()
	}
}

// readRange reads [off, end) of a segment. A segment removed by retention
// meanwhile reads as empty.
func (fs *files) readRange(seq uint64, off, end int64, buf []byte) ([]byte, error) {
	f, err := fs.get(seq)
	if errors.Is(err, os.ErrNotExist) {
		return buf[:0], nil
	}
	if err != nil {
		return nil, err
	}
	n := int(end - off)
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	k, err := f.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:k], nil
}

// scan decodes the records of data that the query selects.
func (q *Query) scan(data []byte, stack string, fn func(api.LogLine)) {
	for len(data) > 0 {
		ts, n, err := recordTime(data)
		if err != nil {
			return
		}
		if q.matchTime(ts) {
			var l api.LogLine
			if _, err := decodeRecord(data, &l); err != nil {
				return
			}
			if q.match(&l) {
				l.Stack = stack
				fn(l)
			}
		}
		data = data[n:]
	}
}

// Read calls fn with the lines the query selects, in time order, and
// returns the position a follower continues from. A stack without logs
// reads as empty.
func (s *Store) Read(ctx context.Context, q Query, fn func(api.LogLine) error) (Position, error) {
	sl, err := s.stack(q.Stack, false)
	if err != nil || sl == nil {
		return Position{}, err
	}
	blocks, end, _ := sl.view()
	fs := &files{dir: sl.dir}
	defer fs.close()
	if q.Tail > 0 {
		return end, s.readTail(ctx, q, sl.name, blocks, fs, fn)
	}
	return end, s.readForward(ctx, q, sl.name, blocks, fs, fn)
}

// readForward reads blocks in the order they were written and emits lines
// in time order: a line is emitted once no later block can hold an
// earlier one (the index knows each block's earliest time).
func (s *Store) readForward(ctx context.Context, q Query, stack string, blocks []blockRef, fs *files, fn func(api.LogLine) error) error {
	var sel []blockRef
	for _, b := range blocks {
		if q.blockOverlaps(b) {
			sel = append(sel, b)
		}
	}
	suffixMin := make([]int64, len(sel)+1)
	suffixMin[len(sel)] = 1<<63 - 1
	for i := len(sel) - 1; i >= 0; i-- {
		suffixMin[i] = min(sel[i].min, suffixMin[i+1])
	}
	h := &lineHeap{}
	var buf []byte
	var seq uint64
	for i, b := range sel {
		if err := ctx.Err(); err != nil {
			return err
		}
		data, err := fs.readRange(b.seq, b.off, b.end, buf)
		if err != nil {
			return err
		}
		buf = data
		q.scan(data, stack, func(l api.LogLine) {
			seq++
			heap.Push(h, seqLine{l, seq})
		})
		for h.Len() > 0 && (*h)[0].Time.UnixNano() < suffixMin[i+1] {
			if err := fn(heap.Pop(h).(seqLine).LogLine); err != nil {
				return err
			}
		}
	}
	for h.Len() > 0 {
		if err := fn(heap.Pop(h).(seqLine).LogLine); err != nil {
			return err
		}
	}
	return nil
}

// readTail reads blocks newest first until the Tail newest lines are
// known: it stops once no older block can hold a line newer than the
// Tail-th newest found so far.
func (s *Store) readTail(ctx context.Context, q Query, stack string, blocks []blockRef, fs *files, fn func(api.LogLine) error) error {
	var sel []blockRef
	for _, b := range blocks {
		if q.blockOverlaps(b) {
			sel = append(sel, b)
		}
	}
	prefixMax := make([]int64, len(sel))
	for i, b := range sel {
		prefixMax[i] = b.max
		if i > 0 {
			prefixMax[i] = max(prefixMax[i], prefixMax[i-1])
		}
	}
	var got []seqLine
	var buf []byte
	var seq uint64
	for i := len(sel) - 1; i >= 0; i-- {
		if err := ctx.Err(); err != nil {
			return err
		}
		b := sel[i]
		data, err := fs.readRange(b.seq, b.off, b.end, buf)
		if err != nil {
			return err
		}
		buf = data
		q.scan(data, stack, func(l api.LogLine) {
			seq++
			got = append(got, seqLine{l, seq})
		})
		if len(got) < q.Tail {
			continue
		}
		sortLines(got)
		got = got[len(got)-q.Tail:]
		if i == 0 || prefixMax[i-1] < got[0].Time.UnixNano() {
			break
		}
	}
	sortLines(got)
	if len(got) > q.Tail {
		got = got[len(got)-q.Tail:]
	}
	for _, l := range got {
		if err := fn(l.LogLine); err != nil {
			return err
		}
	}
	return nil
}

// seqLine orders lines of equal time by the order they were read.
type seqLine struct {
	api.LogLine
	seq uint64
}

func lessLine(a, b *seqLine) bool {
	if !a.Time.Equal(b.Time) {
		return a.Time.Before(b.Time)
	}
	return a.seq < b.seq
}

// sortLines sorts by time, and for equal times in reading order except
// that a tail read goes newest block first: equal times keep file order
// within a block only, which is the best the store knows.
func sortLines(ls []seqLine) {
	sort.Slice(ls, func(i, j int) bool { return lessLine(&ls[i], &ls[j]) })
}

type lineHeap []seqLine

func (h lineHeap) Len() int           { return len(h) }
func (h lineHeap) Less(i, j int) bool { return lessLine(&h[i], &h[j]) }
func (h lineHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *lineHeap) Push(x any)        { *h = append(*h, x.(seqLine)) }
func (h *lineHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Follow calls fn with lines the query selects as they are written after
// from (as returned by Read), in the order they arrive, until ctx ends or
// fn fails. A follower that falls behind retention continues at the
// oldest line still kept.
func (s *Store) Follow(ctx context.Context, q Query, from Position, fn func(api.LogLine) error) error {
	sl, err := s.stack(q.Stack, true)
	if err != nil {
		return err
	}
	q.Until = time.Time{}
	fs := &files{dir: sl.dir}
	defer fs.close()
	pos := from
	var buf []byte
	for {
		type segEnd struct {
			seq  uint64
			size int64
			done bool // sealed and written: size is final
		}
		sl.mu.Lock()
		segs := make([]segEnd, 0, len(sl.segs))
		for _, seg := range sl.segs {
			segs = append(segs, segEnd{seg.seq, seg.size, seg.sealed && seg.f == nil})
		}
		notify := sl.notify
		sl.mu.Unlock()
		if pos.Seq < segs[0].seq {
			pos = Position{Seq: segs[0].seq}
		}
	read:
		for _, seg := range segs {
			if seg.seq < pos.Seq {
				continue
			}
			if seg.seq > pos.Seq {
				pos = Position{Seq: seg.seq}
			}
			for pos.Off < seg.size {
				end := min(seg.size, pos.Off+1<<20)
				data, err := fs.readRange(seg.seq, pos.Off, end, buf)
				if err != nil {
					return err
				}
				buf = data
				var ferr error
				used := 0
				for p := data; len(p) > 0; {
					_, n, err := recordTime(p)
					if err != nil {
						break // the rest of a record cut by the chunk
					}
					used += n
					if ferr == nil {
						q.scan(p[:n], sl.name, func(l api.LogLine) { ferr = fn(l) })
					}
					p = p[n:]
				}
				if ferr != nil {
					return ferr
				}
				if used == 0 {
					if len(data) == 0 {
						break // removed by retention: move on
					}
					return fmt.Errorf("log segment %d of stack %s: record at %d does not decode", seg.seq, sl.name, pos.Off)
				}
				pos.Off += int64(used)
			}
			if !seg.done {
				break read // more may come to this segment
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-notify:
		}
	}
}
