// Package fake is an in-memory runtime.Driver for unit tests and large
// simulations. It behaves like the Docker driver where berth depends on it
// (label filters, name conflicts, error kinds, events, exit codes, OOM,
// health) and lets tests crash, kill or remove containers behind berth's
// back and inject faults. It is never used by the berth binary.
//
// Containers "run" from Start until they are stopped, killed, crashed
// (Crash, OOM) or removed; they run no process and produce only the output
// a test gives them (WriteOutput). IDs are deterministic: a counter.
//
// Where it is knowingly more lenient than the engine: Create and Start do
// not require the network to exist, and Logs ignores every option but
// Follow.
package fake

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/runtime"
)

// EventBuffer is how many events a subscriber may fall behind before its
// stream breaks (an error, then a closed channel), as a slow reader's does
// on the engine.
const EventBuffer = 4096

// Driver is the in-memory engine. It is safe for concurrent use.
type Driver struct {
	mu      sync.Mutex
	next    int
	ctrs    map[string]*ctr
	byName  map[string]string // container name → ID
	nets    map[string]runtime.Network
	vols    map[string]runtime.Volume
	images  map[string]runtime.Image
	subs    map[*sub]struct{}
	fail    map[string][]error
	latency time.Duration
	slow    map[string]time.Duration // per-method latency, added to latency
	info    runtime.EngineInfo
	calls   map[string]int
}

type ctr struct {
	c    runtime.Container
	spec runtime.ContainerSpec
	ip   string
	anon []string // anonymous volumes, removed with the container

	stdout, stderr bytes.Buffer
	// changed is closed and replaced on every change of state or output,
	// waking Wait and Logs.
	changed chan struct{}
}

func (c *ctr) notify() {
	close(c.changed)
	c.changed = make(chan struct{})
}

type sub struct {
	labels map[string]string
	ch     chan runtime.Event
	errs   chan error
	broken chan struct{} // closed when the stream breaks
	err    error
}

var _ runtime.Driver = (*Driver)(nil)

// New returns an empty engine with 4 CPUs and 8 GiB.
func New() *Driver {
	return &Driver{
		ctrs: map[string]*ctr{}, byName: map[string]string{}, nets: map[string]runtime.Network{}, vols: map[string]runtime.Volume{},
		images: map[string]runtime.Image{}, subs: map[*sub]struct{}{}, fail: map[string][]error{}, calls: map[string]int{},
		slow: map[string]time.Duration{},
		info: runtime.EngineInfo{Version: "fake", APIVersion: "1.41", NanoCPUs: 4e9, Memory: 8 << 30,
			Hostname: "fake", OS: "linux", CgroupVersion: "2"},
	}
}

// --- test helpers ---

// AddImage makes ref (and id itself) resolve to image id.
func (d *Driver) AddImage(ref, id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	img := runtime.Image{ID: id, RepoTags: []string{ref}, Created: time.Now(), Size: 1 << 20}
	if old, ok := d.images[id]; ok {
		img.RepoTags = append(old.RepoTags, ref)
	}
	d.images[ref] = img
	d.images[id] = img
}

// SetInfo replaces what Info reports.
func (d *Driver) SetInfo(info runtime.EngineInfo) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.info = info
}

// FailNext makes the next call of method (the runtime.Driver method name,
// e.g. "Create") return err instead of doing anything. Calls queue: two
// FailNext of one method fail its next two calls.
func (d *Driver) FailNext(method string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fail[method] = append(d.fail[method], err)
}

// SetLatency delays every later call by lat; a call whose ctx ends first
// fails with runtime.ErrUnreachable, as against a wedged engine.
func (d *Driver) SetLatency(lat time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.latency = lat
}

// SetMethodLatency delays every later call of method (e.g. "Start") by
// lat, on top of SetLatency's: an engine that answers most calls at once
// but takes seconds to start a container.
func (d *Driver) SetMethodLatency(method string, lat time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.slow[method] = lat
}

// Calls returns how often method was called.
func (d *Driver) Calls(method string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls[method]
}

// Crash makes a running container exit with code, as if its process died.
func (d *Driver) Crash(id string, code int) error {
	return d.exitRunning(id, code, false)
}

// OOM makes a running container die from the OOM killer (exit code 137,
// OOMKilled, an oom event before die).
func (d *Driver) OOM(id string) error {
	return d.exitRunning(id, 137, true)
}

func (d *Driver) exitRunning(id string, code int, oom bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, err := d.get(id)
	if err != nil {
		return err
	}
	if !c.c.Running() {
		return fmt.Errorf("container %s is not running: %w", id, runtime.ErrConflict)
	}
	d.exit(c, code, oom)
	return nil
}

// SetHealth sets a running container's health status ("starting",
// "healthy", "unhealthy") and, if given, the check results Inspect
// reports. Like the engine, it emits a health_status event when a
// container becomes healthy or unhealthy, and none otherwise.
func (d *Driver) SetHealth(id, health string, log ...runtime.HealthResult) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := d.ctrs[id]
	if !ok || !c.c.Running() {
		return
	}
	if len(log) > 0 {
		c.c.HealthLog = append([]runtime.HealthResult(nil), log...)
	}
	if c.c.Health == health {
		return
	}
	c.c.Health = health
	c.notify()
	if health == "healthy" || health == "unhealthy" {
		d.emit(c, runtime.EventHealth, nil)
	}
}

// RemoveBehindBack removes a container as `docker rm -f` would: not
// counted as a call, immune to injected faults, with the engine's events.
func (d *Driver) RemoveBehindBack(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.ctrs[id]; ok {
		d.remove(c)
	}
}

// AddForeign adds a running container berth did not create, with the
// given name and labels; it returns its ID.
func (d *Driver) AddForeign(name string, labels map[string]string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.next++
	id := fmt.Sprintf("f%04d", d.next)
	d.byName[name] = id
	d.ctrs[id] = &ctr{
		c: runtime.Container{ID: id, Name: name, Labels: copyMap(labels), State: runtime.StateRunning,
			StartedAt: time.Now(), Pid: 1000 + d.next, Addresses: map[string]string{}},
		spec:    runtime.ContainerSpec{Name: name, Labels: copyMap(labels)},
		changed: make(chan struct{}),
	}
	return id
}

// WriteOutput appends to a container's stdout and stderr, for Logs.
func (d *Driver) WriteOutput(id, stdout, stderr string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, err := d.get(id)
	if err != nil {
		return err
	}
	c.stdout.WriteString(stdout)
	c.stderr.WriteString(stderr)
	c.notify()
	return nil
}

// BreakEvents breaks every event subscription, as an engine restart does:
// each gets err (wrapped as runtime.ErrUnreachable) and a closed channel.
func (d *Driver) BreakEvents() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for s := range d.subs {
		d.breakSub(s, fmt.Errorf("fake engine events: %w: stream broken", runtime.ErrUnreachable))
	}
}

// Names lists container names, sorted.
func (d *Driver) Names() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]string, 0, len(d.ctrs))
	for _, c := range d.ctrs {
		out = append(out, c.c.Name)
	}
	sort.Strings(out)
	return out
}

// --- runtime.Driver ---

// enter counts a call, applies latency and an injected fault. On success
// it returns with d.mu held.
func (d *Driver) enter(ctx context.Context, method string) error {
	d.mu.Lock()
	d.calls[method]++
	lat := d.latency + d.slow[method]
	var err error
	if q := d.fail[method]; len(q) > 0 {
		err, d.fail[method] = q[0], q[1:]
	}
	d.mu.Unlock()
	if lat > 0 {
		t := time.NewTimer(lat)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return unreachable(method, ctx.Err())
		}
	}
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return unreachable(method, ctx.Err())
	}
	d.mu.Lock()
	return nil
}

func unreachable(method string, err error) error {
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %w", strings.ToLower(method), err)
	}
	return fmt.Errorf("%s: %w: the fake engine did not answer (%w)", strings.ToLower(method), runtime.ErrUnreachable, err)
}

// get returns a container by ID or name; d.mu is held.
func (d *Driver) get(idOrName string) (*ctr, error) {
	if c, ok := d.ctrs[idOrName]; ok {
		return c, nil
	}
	if id, ok := d.byName[idOrName]; ok {
		return d.ctrs[id], nil
	}
	return nil, fmt.Errorf("no such container: %s: %w", idOrName, runtime.ErrNotFound)
}

// Info reports the fake engine.
func (d *Driver) Info(ctx context.Context) (runtime.EngineInfo, error) {
	if err := d.enter(ctx, "Info"); err != nil {
		return runtime.EngineInfo{}, err
	}
	defer d.mu.Unlock()
	return d.info, nil
}

// EnsureNetwork creates or accepts a network.
func (d *Driver) EnsureNetwork(ctx context.Context, name string, labels map[string]string, internal bool) (string, error) {
	if err := d.enter(ctx, "EnsureNetwork"); err != nil {
		return "", err
	}
	defer d.mu.Unlock()
	if n, ok := d.nets[name]; ok {
		if !hasLabels(n.Labels, labels) {
			return "", fmt.Errorf("ensure network %s: %w: network %s exists and was not created by this berth cluster", name, runtime.ErrConflict, name)
		}
		return n.ID, nil
	}
	d.next++
	n := runtime.Network{ID: fmt.Sprintf("net%04d", d.next), Name: name, Labels: copyMap(labels)}
	d.nets[name] = n
	return n.ID, nil
}

// RemoveNetwork removes a network; one with running containers on it is
// refused (runtime.ErrEngine), as the engine does.
func (d *Driver) RemoveNetwork(ctx context.Context, name string) error {
	if err := d.enter(ctx, "RemoveNetwork"); err != nil {
		return err
	}
	defer d.mu.Unlock()
	for _, n := range d.nets {
		if n.ID == name {
			name = n.Name
		}
	}
	if _, ok := d.nets[name]; !ok {
		return fmt.Errorf("remove network %s: %w", name, runtime.ErrNotFound)
	}
	for _, c := range d.ctrs {
		if _, on := c.c.Addresses[name]; on && c.c.Running() {
			return fmt.Errorf("remove network %s: %w: network has active endpoints", name, runtime.ErrEngine)
		}
	}
	delete(d.nets, name)
	return nil
}

// ListNetworks returns networks carrying all the labels, by name.
func (d *Driver) ListNetworks(ctx context.Context, labels map[string]string) ([]runtime.Network, error) {
	if err := d.enter(ctx, "ListNetworks"); err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	out := []runtime.Network{}
	for _, n := range d.nets {
		if hasLabels(n.Labels, labels) {
			n.Labels = copyMap(n.Labels)
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// EnsureVolume creates or accepts a volume.
func (d *Driver) EnsureVolume(ctx context.Context, v runtime.VolumeSpec) error {
	if err := d.enter(ctx, "EnsureVolume"); err != nil {
		return err
	}
	defer d.mu.Unlock()
	if old, ok := d.vols[v.Name]; ok {
		if !hasLabels(old.Labels, v.Labels) {
			return fmt.Errorf("ensure volume %s: %w: volume %s exists and was not created by this berth cluster", v.Name, runtime.ErrConflict, v.Name)
		}
		return nil
	}
	d.vols[v.Name] = runtime.Volume{Name: v.Name, Labels: copyMap(v.Labels)}
	return nil
}

// RemoveVolume removes a volume; one used by any container, running or
// not, is runtime.ErrConflict.
func (d *Driver) RemoveVolume(ctx context.Context, name string) error {
	if err := d.enter(ctx, "RemoveVolume"); err != nil {
		return err
	}
	defer d.mu.Unlock()
	if _, ok := d.vols[name]; !ok {
		return fmt.Errorf("remove volume %s: %w", name, runtime.ErrNotFound)
	}
	for _, c := range d.ctrs {
		for _, m := range c.spec.Mounts {
			if m.Type == "volume" && m.Source == name {
				return fmt.Errorf("remove volume %s: %w: volume is in use by container %s", name, runtime.ErrConflict, c.c.ID)
			}
		}
	}
	delete(d.vols, name)
	return nil
}

// ListVolumes returns volumes carrying all the labels, by name.
func (d *Driver) ListVolumes(ctx context.Context, labels map[string]string) ([]runtime.Volume, error) {
	if err := d.enter(ctx, "ListVolumes"); err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	out := []runtime.Volume{}
	for _, v := range d.vols {
		if hasLabels(v.Labels, labels) {
			v.Labels = copyMap(v.Labels)
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Create creates a container. A name in use is runtime.ErrConflict, an
// unknown image runtime.ErrNotFound. Named volumes it mounts are created
// (without labels) if missing, as the engine does.
func (d *Driver) Create(ctx context.Context, spec runtime.ContainerSpec) (string, error) {
	if err := d.enter(ctx, "Create"); err != nil {
		return "", err
	}
	defer d.mu.Unlock()
	op := "create container " + spec.Name
	img, ok := d.images[spec.Image]
	if !ok {
		return "", fmt.Errorf("%s: %w: no such image: %s", op, runtime.ErrNotFound, spec.Image)
	}
	if other, ok := d.byName[spec.Name]; ok && spec.Name != "" {
		return "", fmt.Errorf("%s: %w: the container name %q is already in use by container %s", op, runtime.ErrConflict, spec.Name, other)
	}
	d.next++
	id := fmt.Sprintf("c%04d", d.next)
	if spec.Name == "" {
		spec.Name = "ctr-" + id
	}
	spec = copySpec(spec)
	c := &ctr{
		c: runtime.Container{ID: id, Name: spec.Name, Image: img.ID, Labels: copyMap(spec.Labels),
			State: runtime.StateCreated, Addresses: map[string]string{}, LogDriver: "json-file"},
		spec:    spec,
		changed: make(chan struct{}),
	}
	if spec.Network != "" && !spec.HostNetwork {
		c.ip = fmt.Sprintf("10.%d.%d.%d", 1+d.next/62500, d.next/250%250, d.next%250+2)
		c.c.Addresses[spec.Network] = "" // an address comes with start
	}
	for i, m := range spec.Mounts {
		if m.Type != "volume" {
			continue
		}
		if m.Source == "" {
			m.Source = fmt.Sprintf("anon-%s-%d", id, i)
			c.spec.Mounts[i].Source = m.Source
			c.anon = append(c.anon, m.Source)
		}
		if _, ok := d.vols[m.Source]; !ok {
			d.vols[m.Source] = runtime.Volume{Name: m.Source, Labels: map[string]string{}}
		}
	}
	d.ctrs[id] = c
	d.byName[spec.Name] = id
	d.emit(c, runtime.EventCreate, nil)
	return id, nil
}

// Start starts a created or exited container; a running one is left be.
func (d *Driver) Start(ctx context.Context, id string) error {
	if err := d.enter(ctx, "Start"); err != nil {
		return err
	}
	defer d.mu.Unlock()
	c, err := d.get(id)
	if err != nil {
		return fmt.Errorf("start container %s: %w", id, err)
	}
	if c.c.Running() {
		return nil
	}
	d.next++
	c.c.State, c.c.StartedAt, c.c.ExitCode, c.c.OOMKilled, c.c.Error = runtime.StateRunning, time.Now(), 0, false, ""
	c.c.Pid = 1000 + d.next
	c.c.Health, c.c.HealthLog = "", nil
	if c.spec.Health != nil {
		c.c.Health = "starting"
	}
	if c.ip != "" {
		c.c.Addresses[c.spec.Network] = c.ip
	}
	c.notify()
	d.emit(c, runtime.EventStart, nil)
	return nil
}

// Stop stops a running container as if its process exited on the stop
// signal (exit code 143), or was killed at once for a zero grace (137).
// Stopping a stopped container succeeds.
func (d *Driver) Stop(ctx context.Context, id string, grace time.Duration) error {
	if err := d.enter(ctx, "Stop"); err != nil {
		return err
	}
	defer d.mu.Unlock()
	c, err := d.get(id)
	if err != nil {
		return fmt.Errorf("stop container %s: %w", id, err)
	}
	if !c.c.Running() {
		return nil
	}
	code, sig := 143, "15"
	if grace <= 0 {
		code, sig = 137, "9"
	}
	d.emit(c, runtime.EventKill, map[string]string{"signal": sig})
	d.exit(c, code, false)
	d.emit(c, runtime.EventStop, nil)
	return nil
}

// Kill sends a signal. Signals that terminate by default end the container
// with 128+signal; WINCH, CHLD, URG and CONT leave it running. A container
// that is not running is runtime.ErrConflict, as on the engine.
func (d *Driver) Kill(ctx context.Context, id, signal string) error {
	if err := d.enter(ctx, "Kill"); err != nil {
		return err
	}
	defer d.mu.Unlock()
	c, err := d.get(id)
	if err != nil {
		return fmt.Errorf("kill container %s: %w", id, err)
	}
	if !c.c.Running() {
		return fmt.Errorf("kill container %s: %w: container %s is not running", id, runtime.ErrConflict, c.c.ID)
	}
	num, terminates, ok := parseSignal(signal)
	if !ok {
		return fmt.Errorf("kill container %s: %w: invalid signal %q", id, runtime.ErrEngine, signal)
	}
	d.emit(c, runtime.EventKill, map[string]string{"signal": strconv.Itoa(num)})
	if terminates {
		d.exit(c, 128+num, false)
	}
	return nil
}

// parseSignal reads "KILL", "SIGKILL" or "9" (empty is KILL) and says
// whether the signal's default action ends a process.
func parseSignal(s string) (num int, terminates, ok bool) {
	names := map[string]int{"HUP": 1, "INT": 2, "QUIT": 3, "ABRT": 6, "KILL": 9, "USR1": 10, "USR2": 12,
		"PIPE": 13, "ALRM": 14, "TERM": 15, "CHLD": 17, "CONT": 18, "STOP": 19, "URG": 23, "WINCH": 28}
	if s == "" {
		s = "KILL"
	}
	if n, err := strconv.Atoi(s); err == nil {
		num = n
	} else if n, found := names[strings.TrimPrefix(strings.ToUpper(s), "SIG")]; found {
		num = n
	} else {
		return 0, false, false
	}
	if num < 1 || num > 64 {
		return 0, false, false
	}
	switch num {
	case 17, 18, 19, 23, 28: // CHLD, CONT, STOP, URG, WINCH
		return num, false, true
	}
	return num, true, true
}

// exit ends a running container's run; d.mu is held.
func (d *Driver) exit(c *ctr, code int, oom bool) {
	c.c.State, c.c.ExitCode, c.c.OOMKilled, c.c.FinishedAt, c.c.Pid = runtime.StateExited, code, oom, time.Now(), 0
	if c.ip != "" {
		c.c.Addresses[c.spec.Network] = ""
	}
	c.notify()
	if oom {
		d.emit(c, runtime.EventOOM, nil)
	}
	d.emit(c, runtime.EventDie, map[string]string{"exitCode": strconv.Itoa(code)})
}

// Remove removes a container, killing it if running, with its anonymous
// volumes.
func (d *Driver) Remove(ctx context.Context, id string) error {
	if err := d.enter(ctx, "Remove"); err != nil {
		return err
	}
	defer d.mu.Unlock()
	c, err := d.get(id)
	if err != nil {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	d.remove(c)
	return nil
}

// remove deletes a container; d.mu is held.
func (d *Driver) remove(c *ctr) {
	if c.c.Running() {
		d.emit(c, runtime.EventKill, map[string]string{"signal": "9"})
		d.exit(c, 137, false)
	}
	delete(d.ctrs, c.c.ID)
	delete(d.byName, c.c.Name)
	for _, v := range c.anon {
		delete(d.vols, v)
	}
	c.c.State = runtime.StateRemoving
	c.notify()
	d.emit(c, runtime.EventDestroy, nil)
}

// Inspect returns a container's full state. The fake keeps output in
// memory: its log driver is json-file but it has no log file (LogPath is
// empty), so readers use Logs.
func (d *Driver) Inspect(ctx context.Context, id string) (runtime.Container, error) {
	if err := d.enter(ctx, "Inspect"); err != nil {
		return runtime.Container{}, err
	}
	defer d.mu.Unlock()
	c, err := d.get(id)
	if err != nil {
		return runtime.Container{}, fmt.Errorf("inspect container %s: %w", id, err)
	}
	return clone(c.c), nil
}

// List returns containers carrying all the labels, sorted by ID, with
// only the fields the engine's list gives (as the Docker driver): no
// timestamps, Pid, OOMKilled, Error or log driver; those need Inspect.
func (d *Driver) List(ctx context.Context, labels map[string]string) ([]runtime.Container, error) {
	if err := d.enter(ctx, "List"); err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	out := []runtime.Container{}
	for _, c := range d.ctrs {
		if hasLabels(c.c.Labels, labels) {
			l := clone(c.c)
			l.StartedAt, l.FinishedAt, l.Pid, l.OOMKilled, l.Error = time.Time{}, time.Time{}, 0, false, ""
			l.LogDriver, l.LogPath = "", ""
			out = append(out, l)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Wait blocks until the container is not running (at once for one never
// started) and returns its exit code.
func (d *Driver) Wait(ctx context.Context, id string) (int, error) {
	if err := d.enter(ctx, "Wait"); err != nil {
		return -1, err
	}
	c, err := d.get(id)
	if err != nil {
		d.mu.Unlock()
		return -1, fmt.Errorf("wait for container %s: %w", id, err)
	}
	for {
		running, code, changed := c.c.Running(), c.c.ExitCode, c.changed
		d.mu.Unlock()
		if !running {
			return code, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return -1, fmt.Errorf("wait for container %s: %w", id, ctx.Err())
		}
		d.mu.Lock()
	}
}

// Logs writes what WriteOutput gave the container. With Follow it keeps
// writing new output until the container stops or ctx ends.
func (d *Driver) Logs(ctx context.Context, id string, opts runtime.LogOptions, stdout, stderr io.Writer) error {
	if err := d.enter(ctx, "Logs"); err != nil {
		return err
	}
	c, err := d.get(id)
	if err != nil {
		d.mu.Unlock()
		return fmt.Errorf("logs of container %s: %w", id, err)
	}
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	var outAt, errAt int
	for {
		o, e := bytes.Clone(c.stdout.Bytes()[outAt:]), bytes.Clone(c.stderr.Bytes()[errAt:])
		outAt, errAt = outAt+len(o), errAt+len(e)
		running, changed := c.c.Running(), c.changed
		d.mu.Unlock()
		if _, err := stdout.Write(o); err != nil {
			return fmt.Errorf("logs of container %s: %w", id, err)
		}
		if _, err := stderr.Write(e); err != nil {
			return fmt.Errorf("logs of container %s: %w", id, err)
		}
		if !opts.Follow || !running {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil
		}
		d.mu.Lock()
	}
}

// Events streams events of containers carrying the labels. The stream
// breaks (one error, then a closed channel) if the reader falls
// EventBuffer events behind or BreakEvents is called; it closes when ctx
// ends. An injected fault breaks it at once.
func (d *Driver) Events(ctx context.Context, labels map[string]string) (<-chan runtime.Event, <-chan error) {
	s := &sub{labels: copyMap(labels), ch: make(chan runtime.Event, EventBuffer), errs: make(chan error, 1), broken: make(chan struct{})}
	if err := d.enter(ctx, "Events"); err != nil {
		close(s.ch)
		if ctx.Err() == nil {
			s.errs <- err
		}
		return s.ch, s.errs
	}
	d.subs[s] = struct{}{}
	d.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
		case <-s.broken:
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		if _, ok := d.subs[s]; !ok {
			return // broken: already closed
		}
		delete(d.subs, s)
		close(s.ch)
	}()
	return s.ch, s.errs
}

// breakSub ends a subscription with err; d.mu is held.
func (d *Driver) breakSub(s *sub, err error) {
	if _, ok := d.subs[s]; !ok {
		return
	}
	delete(d.subs, s)
	s.errs <- err
	close(s.ch)
	close(s.broken)
}

// emit sends an event to matching subscribers; d.mu is held. Like the
// engine's, the event's labels are the container's labels plus the
// engine's name and image attributes (and attrs).
func (d *Driver) emit(c *ctr, action string, attrs map[string]string) {
	e := runtime.Event{Action: action, ID: c.c.ID, Time: time.Now()}
	switch action {
	case runtime.EventDie:
		e.ExitCode = c.c.ExitCode
	case runtime.EventHealth:
		e.Health = c.c.Health
	}
	for s := range d.subs {
		if !hasLabels(c.c.Labels, s.labels) {
			continue
		}
		if e.Labels == nil {
			e.Labels = copyMap(c.c.Labels)
			e.Labels["name"], e.Labels["image"] = c.c.Name, c.spec.Image
			for k, v := range attrs {
				e.Labels[k] = v
			}
		}
		select {
		case s.ch <- e:
		default:
			d.breakSub(s, fmt.Errorf("fake engine events: %w: the reader fell %d events behind", runtime.ErrEngine, EventBuffer))
		}
	}
}

// ImageInspect resolves a reference added with AddImage.
func (d *Driver) ImageInspect(ctx context.Context, ref string) (runtime.Image, error) {
	if err := d.enter(ctx, "ImageInspect"); err != nil {
		return runtime.Image{}, err
	}
	defer d.mu.Unlock()
	img, ok := d.images[ref]
	if !ok {
		return runtime.Image{}, fmt.Errorf("image %s %w on this engine: build it (berth build / docker build) or push it to a registry berth can pull from", ref, runtime.ErrNotFound)
	}
	img.RepoTags = append([]string(nil), img.RepoTags...)
	img.RepoDigests = append([]string(nil), img.RepoDigests...)
	return img, nil
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func clone(c runtime.Container) runtime.Container {
	c.HealthLog = append([]runtime.HealthResult(nil), c.HealthLog...)
	c.Labels = copyMap(c.Labels)
	c.Addresses = copyMap(c.Addresses)
	return c
}

// copySpec keeps the fake's record of a spec apart from the caller's.
func copySpec(s runtime.ContainerSpec) runtime.ContainerSpec {
	s.Labels = copyMap(s.Labels)
	s.Mounts = append([]runtime.Mount(nil), s.Mounts...)
	if s.Health != nil {
		h := *s.Health
		s.Health = &h
	}
	return s
}
