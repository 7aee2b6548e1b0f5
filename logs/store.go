// Package logs is berth's own log store and log collection: the agent
// follows every berth container's output (its json-file log read
// directly where berth can, the engine's log API otherwise) into
// append-only segment files per stack, kept within per-stack retention
// and a global disk budget, queried in time order across tasks, and
// shipped to outside sinks (syslog, Loki) without ever blocking.
//
// Layout under the store's directory:
//
//	STACK/0000000000000001.log   records (see record.go), appended
//	STACK/0000000000000001.idx   time index: one entry per block of records
//	cursors.json                 where the collector is in each container
//
// A segment is split into blocks of about BlockBytes; the index holds each
// block's offsets and its earliest and latest record time, so queries read
// only the blocks that can hold what they ask for.
package logs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/api"
)

// Retention bounds what the store keeps.
type Retention struct {
	// MaxAge drops segments whose newest line is older (default 7 days).
	MaxAge time.Duration
	// StackBytes bounds each stack's logs (default 256 MiB).
	StackBytes int64
	// TotalBytes is the disk budget of all stacks together (default 2 GiB).
	TotalBytes int64
}

// DefaultRetention is what berth keeps unless told otherwise.
func DefaultRetention() Retention {
	return Retention{MaxAge: 7 * 24 * time.Hour, StackBytes: 256 << 20, TotalBytes: 2 << 30}
}

// Options configure a Store.
type Options struct {
	Dir       string
	Retention Retention
	// SegmentBytes is the size at which a segment is sealed (default 16 MiB).
	SegmentBytes int64
	// BlockBytes is the indexing granularity (default 64 KiB).
	BlockBytes int64
	// FlushInterval bounds how long an appended line waits before readers
	// see it (default 100 ms).
	FlushInterval time.Duration
	Logger        *slog.Logger
}

// Store keeps logs per stack in segment files.
type Store struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	stacks map[string]*stackLog
	kick   chan struct{}
}

// block is a run of records in one segment and the range of their times.
type block struct {
	off, end int64
	min, max int64 // Unix nanoseconds
}

const idxEntrySize = 32

func (b block) marshal() []byte {
	out := make([]byte, 0, idxEntrySize)
	for _, v := range []int64{b.off, b.end, b.min, b.max} {
		out = binary.LittleEndian.AppendUint64(out, uint64(v))
	}
	return out
}

func (b *block) add(ts int64) {
	if b.min == 0 || ts < b.min {
		b.min = ts
	}
	if ts > b.max {
		b.max = ts
	}
}

type segment struct {
	seq     uint64
	blocks  []block // closed blocks
	cur     block   // the open block: [cur.off, encoded)
	size    int64   // bytes written to the file (whole records only)
	encoded int64   // size plus bytes waiting in buf
	buf     []byte
	idxBuf  []byte // index entries waiting to be written
	sealed  bool
	f, idx  *os.File // open while the segment takes or flushes records
}

func (s *segment) min() int64 {
	m := s.cur.min
	for _, b := range s.blocks {
		if b.min != 0 && (m == 0 || b.min < m) {
			m = b.min
		}
	}
	return m
}

func (s *segment) max() int64 {
	m := s.cur.max
	for _, b := range s.blocks {
		m = max(m, b.max)
	}
	return m
}

// stackLog is one stack's segments, oldest first; the last takes appends.
type stackLog struct {
	name    string
	dir     string
	flushMu sync.Mutex // one flush at a time, in order
	mu      sync.Mutex
	segs    []*segment
	notify  chan struct{} // closed when new records become readable
}

// Open opens (or creates) a store and recovers its segments: a record torn
// by a crash at the end of the newest segment is cut off.
func Open(opts Options) (*Store, error) {
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = 16 << 20
	}
	if opts.BlockBytes <= 0 {
		opts.BlockBytes = 64 << 10
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 100 * time.Millisecond
	}
	def := DefaultRetention()
	if opts.Retention.MaxAge <= 0 {
		opts.Retention.MaxAge = def.MaxAge
	}
	if opts.Retention.StackBytes <= 0 {
		opts.Retention.StackBytes = def.StackBytes
	}
	if opts.Retention.TotalBytes <= 0 {
		opts.Retention.TotalBytes = def.TotalBytes
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create log directory: %w", err)
	}
	s := &Store{opts: opts, log: log, stacks: map[string]*stackLog{}, kick: make(chan struct{}, 1)}
	ents, err := os.ReadDir(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("read log directory: %w", err)
	}
	for _, e := range ents {
		if !e.IsDir() || api.ValidateName("stack", e.Name()) != nil {
			continue
		}
		sl, err := s.openStack(e.Name())
		if err != nil {
			s.Close()
			return nil, err
		}
		s.stacks[e.Name()] = sl
	}
	return s, nil
}

func segName(seq uint64, ext string) string { return fmt.Sprintf("%016d.%s", seq, ext) }

func (s *Store) openStack(name string) (*stackLog, error) {
	sl := &stackLog{name: name, dir: filepath.Join(s.opts.Dir, name), notify: make(chan struct{})}
	if err := os.MkdirAll(sl.dir, 0o700); err != nil {
		return nil, fmt.Errorf("create log directory of stack %s: %w", name, err)
	}
	ents, err := os.ReadDir(sl.dir)
	if err != nil {
		return nil, fmt.Errorf("read logs of stack %s: %w", name, err)
	}
	var seqs []uint64
	for _, e := range ents {
		base, ok := strings.CutSuffix(e.Name(), ".log")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(base, 10, 64); err == nil {
			seqs = append(seqs, n)
		}
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	for i, seq := range seqs {
		seg, err := s.recoverSegment(sl.dir, seq, i == len(seqs)-1)
		if err != nil {
			return nil, fmt.Errorf("logs of stack %s: %w", name, err)
		}
		sl.segs = append(sl.segs, seg)
	}
	if len(sl.segs) == 0 {
		seg, err := createSegment(sl.dir, 1)
		if err != nil {
			return nil, err
		}
		sl.segs = append(sl.segs, seg)
	}
	return sl, nil
}

func createSegment(dir string, seq uint64) (*segment, error) {
	f, err := os.OpenFile(filepath.Join(dir, segName(seq, "log")), os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create log segment: %w", err)
	}
	idx, err := os.OpenFile(filepath.Join(dir, segName(seq, "idx")), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("create log index: %w", err)
	}
	return &segment{seq: seq, f: f, idx: idx}, nil
}

// recoverSegment reads a segment's index and scans what the index does
// not cover. The newest segment stays open for appends.
func (s *Store) recoverSegment(dir string, seq uint64, active bool) (*segment, error) {
	path := filepath.Join(dir, segName(seq, "log"))
	data, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	st, err := data.Stat()
	if err != nil {
		data.Close()
		return nil, err
	}
	seg := &segment{seq: seq, sealed: !active}
	raw, _ := os.ReadFile(filepath.Join(dir, segName(seq, "idx")))
	for len(raw) >= idxEntrySize {
		b := block{}
		for i, p := range []*int64{&b.off, &b.end, &b.min, &b.max} {
			*p = int64(binary.LittleEndian.Uint64(raw[i*8:]))
		}
		raw = raw[idxEntrySize:]
		if b.end > st.Size() || b.off > b.end {
			break
		}
		seg.blocks = append(seg.blocks, b)
	}
	var from int64
	if n := len(seg.blocks); n > 0 {
		from = seg.blocks[n-1].end
	}
	tail := make([]byte, st.Size()-from)
	if _, err := data.ReadAt(tail, from); err != nil && !errors.Is(err, io.EOF) {
		data.Close()
		return nil, err
	}
	cur := block{off: from, end: from}
	for p := tail; len(p) > 0; {
		ts, n, err := recordTime(p)
		if err != nil {
			break
		}
		cur.add(ts)
		cur.end += int64(n)
		p = p[n:]
	}
	if cur.end < st.Size() {
		s.log.Warn("log segment ends in a torn record; cut", "segment", path, "bytes", st.Size()-cur.end)
		if err := data.Truncate(cur.end); err != nil {
			data.Close()
			return nil, err
		}
	}
	data.Close()
	seg.size, seg.encoded = cur.end, cur.end
	idxPath := filepath.Join(dir, segName(seq, "idx"))
	if !active {
		if cur.end > cur.off {
			seg.blocks = append(seg.blocks, cur)
		}
		// Rewrite the index so it covers the whole segment.
		var out []byte
		for _, b := range seg.blocks {
			out = append(out, b.marshal()...)
		}
		return seg, os.WriteFile(idxPath, out, 0o600)
	}
	seg.cur = cur
	if seg.f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0); err != nil {
		return nil, err
	}
	var out []byte
	for _, b := range seg.blocks {
		out = append(out, b.marshal()...)
	}
	if err := os.WriteFile(idxPath, out, 0o600); err != nil {
		seg.f.Close()
		return nil, err
	}
	if seg.idx, err = os.OpenFile(idxPath, os.O_WRONLY|os.O_APPEND, 0); err != nil {
		seg.f.Close()
		return nil, err
	}
	return seg, nil
}

// Close flushes what is buffered and closes the files.
func (s *Store) Close() error {
	err := s.Flush()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sl := range s.stacks {
		sl.mu.Lock()
		for _, seg := range sl.segs {
			seg.closeFiles()
		}
		sl.mu.Unlock()
	}
	return err
}

func (seg *segment) closeFiles() {
	if seg.f != nil {
		seg.f.Close()
		seg.f = nil
	}
	if seg.idx != nil {
		seg.idx.Close()
		seg.idx = nil
	}
}

// stack returns a stack's log, creating it on first use.
func (s *Store) stack(name string, create bool) (*stackLog, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sl, ok := s.stacks[name]; ok {
		return sl, nil
	}
	if err := api.ValidateName("stack name", name); err != nil {
		return nil, err
	}
	if !create {
		return nil, nil
	}
	sl, err := s.openStack(name)
	if err != nil {
		return nil, err
	}
	s.stacks[name] = sl
	return sl, nil
}

// Append adds lines of one stack. They are buffered and become readable
// (and durable against a crash of berth) at the next flush, at most
// FlushInterval later. Append never waits for the disk.
func (s *Store) Append(stack string, lines []api.LogLine) error {
	if len(lines) == 0 {
		return nil
	}
	sl, err := s.stack(stack, true)
	if err != nil {
		return err
	}
	sl.mu.Lock()
	seg := sl.segs[len(sl.segs)-1]
	for i := range lines {
		if seg.encoded >= s.opts.SegmentBytes {
			if seg, err = sl.rotate(); err != nil {
				sl.mu.Unlock()
				return err
			}
		}
		if seg.encoded-seg.cur.off >= s.opts.BlockBytes && seg.cur.max != 0 {
			seg.closeBlock()
		}
		n := len(seg.buf)
		seg.buf = appendRecord(seg.buf, &lines[i])
		seg.cur.add(lines[i].Time.UnixNano())
		seg.encoded += int64(len(seg.buf) - n)
	}
	big := len(seg.buf) >= 1<<20
	sl.mu.Unlock()
	if big {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

func (seg *segment) closeBlock() {
	seg.cur.end = seg.encoded
	seg.blocks = append(seg.blocks, seg.cur)
	seg.idxBuf = append(seg.idxBuf, seg.cur.marshal()...)
	seg.cur = block{off: seg.encoded, end: seg.encoded}
}

// rotate seals the active segment and starts the next (sl.mu held).
func (sl *stackLog) rotate() (*segment, error) {
	old := sl.segs[len(sl.segs)-1]
	next, err := createSegment(sl.dir, old.seq+1)
	if err != nil {
		return nil, err
	}
	if old.encoded > old.cur.off {
		old.closeBlock()
	}
	old.sealed = true
	sl.segs = append(sl.segs, next)
	return next, nil
}

// Flush writes every buffered line to the files.
func (s *Store) Flush() error {
	s.mu.Lock()
	all := make([]*stackLog, 0, len(s.stacks))
	for _, sl := range s.stacks {
		all = append(all, sl)
	}
	s.mu.Unlock()
	var errs []error
	for _, sl := range all {
		if err := sl.flush(); err != nil {
			errs = append(errs, fmt.Errorf("flush logs of stack %s: %w", sl.name, err))
		}
	}
	return errors.Join(errs...)
}

// Sync flushes and then makes the written lines durable on disk.
func (s *Store) Sync() error {
	if err := s.Flush(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sl := range s.stacks {
		sl.mu.Lock()
		var fs []*os.File
		for _, seg := range sl.segs {
			if seg.f != nil {
				fs = append(fs, seg.f)
			}
		}
		sl.mu.Unlock()
		for _, f := range fs {
			_ = f.Sync()
		}
	}
	return nil
}

type pendingWrite struct {
	seg       *segment
	data, idx []byte
	f, idxf   *os.File
	closeFile bool
}

func (sl *stackLog) flush() error {
	sl.flushMu.Lock()
	defer sl.flushMu.Unlock()
	sl.mu.Lock()
	var work []pendingWrite
	for _, seg := range sl.segs {
		if len(seg.buf) == 0 && len(seg.idxBuf) == 0 && !(seg.sealed && seg.f != nil) {
			continue
		}
		work = append(work, pendingWrite{seg: seg, data: seg.buf, idx: seg.idxBuf, f: seg.f, idxf: seg.idx, closeFile: seg.sealed})
		seg.buf, seg.idxBuf = nil, nil
	}
	sl.mu.Unlock()
	if len(work) == 0 {
		return nil
	}
	var errs []error
	for _, w := range work {
		if w.f == nil {
			continue
		}
		if _, err := w.f.Write(w.data); err != nil {
			errs = append(errs, err)
			continue
		}
		if len(w.idx) > 0 {
			if _, err := w.idxf.Write(w.idx); err != nil {
				errs = append(errs, err)
			}
		}
	}
	sl.mu.Lock()
	for _, w := range work {
		w.seg.size += int64(len(w.data))
		if w.closeFile && len(w.seg.buf) == 0 {
			w.seg.closeFiles()
		}
	}
	close(sl.notify)
	sl.notify = make(chan struct{})
	sl.mu.Unlock()
	return errors.Join(errs...)
}

// Run flushes every FlushInterval (sooner when a buffer grows large) and
// applies retention every minute, until ctx ends; then it flushes once more.
func (s *Store) Run(ctx context.Context) error {
	tick := time.NewTicker(s.opts.FlushInterval)
	defer tick.Stop()
	ret := time.NewTicker(time.Minute)
	defer ret.Stop()
	s.enforce()
	for {
		select {
		case <-ctx.Done():
			return s.Flush()
		case <-tick.C:
		case <-s.kick:
		case <-ret.C:
			s.enforce()
			continue
		}
		if err := s.Flush(); err != nil {
			s.log.Warn("flush logs", "err", err)
		}
	}
}

// Usage is the disk space the store uses, per stack and in total.
type Usage struct {
	Stacks map[string]int64 `json:"stacks"`
	Total  int64            `json:"total"`
	Budget int64            `json:"budget"`
}

// Usage reports bytes kept per stack.
func (s *Store) Usage() Usage {
	u := Usage{Stacks: map[string]int64{}, Budget: s.opts.Retention.TotalBytes}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, sl := range s.stacks {
		sl.mu.Lock()
		var n int64
		for _, seg := range sl.segs {
			n += seg.encoded
		}
		sl.mu.Unlock()
		u.Stacks[name] = n
		u.Total += n
	}
	return u
}

// Enforce applies retention now (Run does it every minute).
func (s *Store) Enforce() { s.enforce() }

type victim struct {
	sl  *stackLog
	seg *segment
}

// enforce drops sealed segments past the age limit or over a stack's size
// limit, then the oldest sealed segments of any stack while the total is
// over the budget. The segment taking appends is never dropped.
func (s *Store) enforce() {
	r := s.opts.Retention
	cutoff := time.Now().Add(-r.MaxAge).UnixNano()
	s.mu.Lock()
	all := make([]*stackLog, 0, len(s.stacks))
	for _, sl := range s.stacks {
		all = append(all, sl)
	}
	s.mu.Unlock()
	var drop []victim
	var candidates []victim
	var total int64
	for _, sl := range all {
		sl.mu.Lock()
		var size int64
		for _, seg := range sl.segs {
			size += seg.encoded
		}
		keep := sl.segs[:0:0]
		for i, seg := range sl.segs {
			active := i == len(sl.segs)-1
			if !active && seg.f == nil && (seg.max() < cutoff || size > r.StackBytes) {
				size -= seg.encoded
				drop = append(drop, victim{sl, seg})
				continue
			}
			keep = append(keep, seg)
			if !active && seg.f == nil {
				candidates = append(candidates, victim{sl, seg})
			}
		}
		sl.segs = keep
		total += size
		sl.mu.Unlock()
	}
	if total > r.TotalBytes {
		sort.Slice(candidates, func(i, j int) bool { return candidates[i].seg.max() < candidates[j].seg.max() })
		for _, v := range candidates {
			if total <= r.TotalBytes {
				break
			}
			v.sl.mu.Lock()
			for i, seg := range v.sl.segs {
				if seg == v.seg {
					v.sl.segs = append(v.sl.segs[:i:i], v.sl.segs[i+1:]...)
					total -= seg.encoded
					drop = append(drop, v)
					break
				}
			}
			v.sl.mu.Unlock()
		}
	}
	for _, v := range drop {
		for _, ext := range []string{"log", "idx"} {
			if err := os.Remove(filepath.Join(v.sl.dir, segName(v.seg.seq, ext))); err != nil && !os.IsNotExist(err) {
				s.log.Warn("remove log segment", "stack", v.sl.name, "err", err)
			}
		}
		s.log.Debug("log segment removed by retention", "stack", v.sl.name, "segment", v.seg.seq, "bytes", v.seg.encoded)
	}
}

// Has says whether the store holds (or held) logs of a stack.
func (s *Store) Has(stack string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.stacks[stack]
	return ok
}
