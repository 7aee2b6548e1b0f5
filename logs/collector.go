package logs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/runtime"
)

// Source is what the collector needs of the engine.
type Source interface {
	List(ctx context.Context, labels map[string]string) ([]runtime.Container, error)
	// Inspect gives a container's log driver and json-file path.
	Inspect(ctx context.Context, id string) (runtime.Container, error)
	Logs(ctx context.Context, id string, opts runtime.LogOptions, stdout, stderr io.Writer) error
	Events(ctx context.Context, labels map[string]string) (<-chan runtime.Event, <-chan error)
}

// Offerer takes copies of collected lines (the shippers); it must never block.
type Offerer interface {
	Offer(l api.LogLine)
}

// CollectorConfig configures a Collector.
type CollectorConfig struct {
	// Labels select the containers to follow (this cluster and node).
	Labels map[string]string
	// CursorFile is where the position in each container is kept.
	CursorFile string
	// CallTimeout bounds each engine call but the log streams (default 30s).
	CallTimeout time.Duration
	// Resync is the period of a full look at the containers (default 5s).
	Resync time.Duration
	// SaveEvery is how often positions are made durable (default 1s).
	SaveEvery time.Duration
	// APIOnly reads every container's output through the engine's log
	// API, even when its json-file log is readable on this host.
	APIOnly bool
	Logger  *slog.Logger
}

// Collector follows the output of every berth container on the node into
// the store, from the first byte: by reading the engine's json-file log
// where berth can (see jsonFile), through the engine's log API otherwise, and picks up after a restart of berth
// exactly where it stopped: each container's position is the time of the
// last line kept and how many lines carried that very time, saved only
// after those lines were written, and raised on start from the lines the
// store holds beyond the saved positions.
type Collector struct {
	cfg   CollectorConfig
	src   Source
	store *Store
	ship  Offerer
	log   *slog.Logger

	mu        sync.Mutex
	followers map[string]*follower // by short container ID
	drained   map[string]time.Time // stopped containers read to the end, by their start time
	cursors   map[string]Cursor    // positions of containers not being followed
	lines     uint64
	wg        sync.WaitGroup
}

// NewCollector returns a collector; ship may be nil.
func NewCollector(cfg CollectorConfig, src Source, st *Store, ship Offerer) *Collector {
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 30 * time.Second
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 5 * time.Second
	}
	if cfg.SaveEvery <= 0 {
		cfg.SaveEvery = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Collector{cfg: cfg, src: src, store: st, ship: ship, log: cfg.Logger,
		followers: map[string]*follower{}, drained: map[string]time.Time{}, cursors: map[string]Cursor{}}
}

// Lines is the number of lines collected since start.
func (c *Collector) Lines() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.lines
	for _, f := range c.followers {
		n += f.count()
	}
	return n
}

// Run collects until ctx ends; then it saves the positions once more.
func (c *Collector) Run(ctx context.Context) error {
	cur, err := loadCursors(c.cfg.CursorFile, c.store)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.cursors = cur
	c.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		c.wg.Wait()
		c.save()
	}()
	kick := make(chan struct{}, 1)
	c.wg.Add(2)
	go func() { defer c.wg.Done(); c.watchEngine(ctx, kick) }()
	go func() { defer c.wg.Done(); c.saveLoop(ctx) }()
	tick := time.NewTicker(c.cfg.Resync)
	defer tick.Stop()
	for {
		c.resync(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-kick:
		}
	}
}

// watchEngine makes a new container's output followed at once.
func (c *Collector) watchEngine(ctx context.Context, kick chan<- struct{}) {
	for ctx.Err() == nil {
		ectx, cancel := context.WithCancel(ctx)
		events, errs := c.src.Events(ectx, c.cfg.Labels)
	stream:
		for {
			select {
			case <-ctx.Done():
				break stream
			case e, ok := <-events:
				if !ok {
					break stream
				}
				// A start is a container to follow; a stop or removal ends
				// a follower of its json-file log at the log's end.
				if e.Action == runtime.EventStart || e.Action == runtime.EventDie || e.Action == runtime.EventDestroy {
					select {
					case kick <- struct{}{}:
					default:
					}
				}
			case <-errs:
				break stream
			}
		}
		cancel()
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (c *Collector) saveLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.SaveEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.save()
		}
	}
}

// save makes the positions durable: positions are read first, then the
// store writes and syncs every line appended so far (which includes every
// line those positions count), and only then are they written.
func (c *Collector) save() {
	c.mu.Lock()
	snap := make(map[string]Cursor, len(c.cursors)+len(c.followers))
	for id, cur := range c.cursors {
		snap[id] = cur
	}
	for id, f := range c.followers {
		snap[id] = f.position()
	}
	c.mu.Unlock()
	if err := c.store.Sync(); err != nil {
		c.log.Warn("write logs", "err", err)
		return
	}
	if err := saveCursors(c.cfg.CursorFile, snap); err != nil {
		c.log.Warn("save log positions", "err", err)
	}
}

// resync starts a follower for every container whose output is not read
// to its end, and forgets containers that are gone.
func (c *Collector) resync(ctx context.Context) {
	lctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	cs, err := c.src.List(lctx, c.cfg.Labels)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			c.log.Debug("list containers for logs", "err", err)
		}
		return
	}
	seen := map[string]bool{}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ct := range cs {
		id := shortID(ct.ID)
		seen[id] = true
		src, ok := sourceOf(ct)
		if !ok {
			continue
		}
		if f, busy := c.followers[id]; busy {
			if !ct.Running() {
				f.halt()
			}
			continue
		}
		if started, ok := c.drained[id]; ok && !ct.Running() && started.Equal(ct.StartedAt) {
			continue
		}
		f := &follower{c: c, id: ct.ID, short: id, meta: src, cur: c.cursors[id], started: ct.StartedAt, stop: make(chan struct{})}
		if !ct.Running() {
			f.halt()
		}
		c.followers[id] = f
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			f.run(ctx)
		}()
	}
	for id, f := range c.followers {
		if !seen[id] {
			f.halt()
		}
	}
	for id := range c.drained {
		if !seen[id] {
			delete(c.drained, id)
		}
	}
	for id := range c.cursors {
		if !seen[id] {
			delete(c.cursors, id)
		}
	}
}

// sourceOf reads what a container's lines are attributed to.
func sourceOf(ct runtime.Container) (api.LogLine, bool) {
	l := api.LogLine{Stack: ct.Labels[api.LabelStack], Service: ct.Labels[api.LabelService], Task: ct.Labels[api.LabelTask]}
	if l.Task == "" {
		l.Task = ct.Labels[api.LabelJob]
	}
	l.Revision, _ = strconv.Atoi(ct.Labels[api.LabelRevision])
	l.Container = shortID(ct.ID)
	if api.ValidateName("stack", l.Stack) != nil || l.Task == "" {
		return l, false
	}
	return l, true
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// follower reads one container's output from its position.
type follower struct {
	c       *Collector
	id      string
	short   string
	meta    api.LogLine
	started time.Time
	stop    chan struct{} // closed once the container is seen stopped or gone
	halted  sync.Once

	mu    sync.Mutex
	cur   Cursor
	from  time.Time // the position this run started from
	skip  int       // lines at from already kept, still to skip
	lines uint64
	pend  []api.LogLine // kept, not yet appended to the store
}

// halt tells a follower of a json-file log that the container stopped:
// it ends once it has read the log to its end. (The API stream ends by
// itself.)
func (f *follower) halt() { f.halted.Do(func() { close(f.stop) }) }

func (f *follower) position() Cursor {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur
}

func (f *follower) count() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lines
}

func (f *follower) run(ctx context.Context) {
	f.from, f.skip = f.cur.Time, f.cur.N
	err := f.follow(ctx)
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.followers, f.short)
	c.cursors[f.short] = f.position()
	c.lines += f.count()
	if err != nil {
		if ctx.Err() == nil {
			c.log.Debug("follow container output", "container", f.short, "err", err)
		}
		return
	}
	if ctx.Err() == nil {
		// The stream ends when the container stops: its output is read to
		// the end for this run of it.
		c.drained[f.short] = f.started
	}
}

// follow reads the container's output from f.from: its json-file log
// when the engine's path to it is readable here, the engine's log API
// otherwise (another log driver, a rootless or remote engine).
func (f *follower) follow(ctx context.Context) error {
	if !f.c.cfg.APIOnly {
		ictx, cancel := context.WithTimeout(ctx, f.c.cfg.CallTimeout)
		ct, err := f.c.src.Inspect(ictx, f.id)
		cancel()
		if err == nil && ct.LogDriver == "json-file" && ct.LogPath != "" {
			j, err := openJSONFile(f, ct.LogPath, f.stop)
			if err == nil {
				return j.run(ctx)
			}
			if !errors.Is(err, os.ErrNotExist) {
				f.c.log.Debug("read container log file", "container", f.short, "err", err)
			}
		}
	}
	opts := runtime.LogOptions{Follow: true, Timestamps: true, Since: f.from}
	stdout := &lineWriter{f: f, stream: api.StreamStdout}
	stderr := &lineWriter{f: f, stream: api.StreamStderr}
	err := f.c.src.Logs(ctx, f.id, opts, stdout, stderr)
	stdout.end()
	stderr.end()
	return err
}

// keep takes one line unless the position this run started from says it
// was kept before; commit appends what was taken. Lines of stdout and
// stderr are stamped by two readers in the engine, so their times are
// not strictly in order: only lines at or before the starting position
// are compared with it.
func (f *follower) keep(stream string, ts time.Time, text []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case ts.Before(f.from):
		return
	case ts.Equal(f.from) && f.skip > 0:
		f.skip--
		return
	}
	l := f.meta
	l.Time, l.Stream, l.Line = ts, stream, string(text)
	f.pend = append(f.pend, l)
}

// commit appends the lines taken to the store in one call, offers them
// to the shippers and moves the position past them.
func (f *follower) commit() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.pend) == 0 {
		return
	}
	defer func() {
		clear(f.pend)
		f.pend = f.pend[:0]
	}()
	if err := f.c.store.Append(f.meta.Stack, f.pend); err != nil {
		f.c.log.Warn("keep log lines", "stack", f.meta.Stack, "lines", len(f.pend), "err", err)
		return
	}
	for _, l := range f.pend {
		if f.c.ship != nil {
			f.c.ship.Offer(l)
		}
		switch {
		case l.Time.Equal(f.cur.Time):
			f.cur.N++
		case l.Time.After(f.cur.Time):
			f.cur = Cursor{Time: l.Time, N: 1}
		}
	}
	f.lines += uint64(len(f.pend))
}

// lineWriter splits one stream into lines of the form "TIMESTAMP text".
type lineWriter struct {
	f       *follower
	stream  string
	partial []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.partial = append(w.partial, p...)
			break
		}
		if len(w.partial) > 0 {
			w.partial = append(w.partial, p[:i]...)
			w.emit(w.partial)
			w.partial = w.partial[:0]
		} else {
			w.emit(p[:i])
		}
		p = p[i+1:]
	}
	w.f.commit()
	return n, nil
}

func (w *lineWriter) end() {
	if len(w.partial) > 0 {
		w.emit(w.partial)
		w.partial = nil
	}
	w.f.commit()
}

func (w *lineWriter) emit(b []byte) {
	ts := time.Now().UTC()
	if i := bytes.IndexByte(b, ' '); i > 0 {
		if t, err := time.Parse(time.RFC3339Nano, string(b[:i])); err == nil {
			ts, b = t.UTC(), b[i+1:]
		}
	}
	w.f.keep(w.stream, ts, bytes.TrimSuffix(b, []byte{'\r'}))
}
