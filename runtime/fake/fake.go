// Package fake is an in-memory runtime.Driver for unit tests and large
// simulations. It behaves like the Docker driver where berth depends on it
// (label filters, name conflicts, events, exit codes, OOM, health) and lets
// tests crash, kill or remove containers behind berth's back and inject
// faults. It is never used by the berth binary.
package fake

import (
	"context"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/berth-dev/berth/runtime"
)

// Driver is the in-memory engine.
type Driver struct {
	mu       sync.Mutex
	next     int
	ctrs     map[string]*runtime.Container
	nets     map[string]runtime.Network
	vols     map[string]runtime.Volume
	images   map[string]runtime.Image
	subs     map[int]*sub
	subID    int
	fail     map[string]error
	latency  time.Duration
	info     runtime.EngineInfo
	calls    map[string]int
	stopping map[string]bool
}

type sub struct {
	labels map[string]string
	ch     chan runtime.Event
}

var _ runtime.Driver = (*Driver)(nil)

// New returns an empty engine with 4 CPUs and 8 GiB.
func New() *Driver {
	return &Driver{
		ctrs: map[string]*runtime.Container{}, nets: map[string]runtime.Network{}, vols: map[string]runtime.Volume{},
		images: map[string]runtime.Image{}, subs: map[int]*sub{}, fail: map[string]error{}, calls: map[string]int{},
		stopping: map[string]bool{},
		info:     runtime.EngineInfo{Version: "fake", APIVersion: "1.41", NanoCPUs: 4e9, Memory: 8 << 30, Hostname: "fake", OS: "linux"},
	}
}

// AddImage makes ref resolvable to id.
func (d *Driver) AddImage(ref, id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.images[ref] = runtime.Image{ID: id, RepoTags: []string{ref}}
	d.images[id] = runtime.Image{ID: id, RepoTags: []string{ref}}
}

// FailNext makes the next call of method (e.g. "Create") return err.
func (d *Driver) FailNext(method string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fail[method] = err
}

// SetLatency delays every call by lat (honouring the caller's ctx).
func (d *Driver) SetLatency(lat time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.latency = lat
}

// Calls returns how often method was called.
func (d *Driver) Calls(method string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls[method]
}

// enter counts a call, applies latency and injected faults. It returns
// with d.mu held on success.
func (d *Driver) enter(ctx context.Context, method string) error {
	d.mu.Lock()
	d.calls[method]++
	lat := d.latency
	err := d.fail[method]
	delete(d.fail, method)
	d.mu.Unlock()
	if lat > 0 {
		select {
		case <-time.After(lat):
		case <-ctx.Done():
			return fmt.Errorf("%s: %w: %v", method, runtime.ErrUnreachable, ctx.Err())
		}
	}
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w: %v", method, runtime.ErrUnreachable, ctx.Err())
	}
	d.mu.Lock()
	return nil
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
			return "", fmt.Errorf("network %s: %w", name, runtime.ErrConflict)
		}
		return n.ID, nil
	}
	d.next++
	n := runtime.Network{ID: fmt.Sprintf("net%d", d.next), Name: name, Labels: copyMap(labels)}
	d.nets[name] = n
	return n.ID, nil
}

// RemoveNetwork removes a network unless a container uses it.
func (d *Driver) RemoveNetwork(ctx context.Context, name string) error {
	if err := d.enter(ctx, "RemoveNetwork"); err != nil {
		return err
	}
	defer d.mu.Unlock()
	if _, ok := d.nets[name]; !ok {
		return fmt.Errorf("network %s: %w", name, runtime.ErrNotFound)
	}
	for _, c := range d.ctrs {
		if _, ok := c.Addresses[name]; ok {
			return fmt.Errorf("network %s has active endpoints: %w", name, runtime.ErrEngine)
		}
	}
	delete(d.nets, name)
	return nil
}

// ListNetworks filters by labels.
func (d *Driver) ListNetworks(ctx context.Context, labels map[string]string) ([]runtime.Network, error) {
	if err := d.enter(ctx, "ListNetworks"); err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	var out []runtime.Network
	for _, n := range d.nets {
		if hasLabels(n.Labels, labels) {
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
			return fmt.Errorf("volume %s: %w", v.Name, runtime.ErrConflict)
		}
		return nil
	}
	d.vols[v.Name] = runtime.Volume{Name: v.Name, Labels: copyMap(v.Labels)}
	return nil
}

// RemoveVolume removes a volume.
func (d *Driver) RemoveVolume(ctx context.Context, name string) error {
	if err := d.enter(ctx, "RemoveVolume"); err != nil {
		return err
	}
	defer d.mu.Unlock()
	if _, ok := d.vols[name]; !ok {
		return fmt.Errorf("volume %s: %w", name, runtime.ErrNotFound)
	}
	delete(d.vols, name)
	return nil
}

// ListVolumes filters by labels.
func (d *Driver) ListVolumes(ctx context.Context, labels map[string]string) ([]runtime.Volume, error) {
	if err := d.enter(ctx, "ListVolumes"); err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	var out []runtime.Volume
	for _, v := range d.vols {
		if hasLabels(v.Labels, labels) {
			out = append(out, v)
		}
	}
	return out, nil
}

// Create creates a container; a used name is ErrConflict.
func (d *Driver) Create(ctx context.Context, spec runtime.ContainerSpec) (string, error) {
	if err := d.enter(ctx, "Create"); err != nil {
		return "", err
	}
	defer d.mu.Unlock()
	if _, ok := d.images[spec.Image]; !ok {
		return "", fmt.Errorf("image %s: %w", spec.Image, runtime.ErrNotFound)
	}
	for _, c := range d.ctrs {
		if c.Name == spec.Name {
			return "", fmt.Errorf("name %s: %w", spec.Name, runtime.ErrConflict)
		}
	}
	d.next++
	id := fmt.Sprintf("c%04d", d.next)
	c := &runtime.Container{ID: id, Name: spec.Name, Image: spec.Image, Labels: copyMap(spec.Labels),
		State: runtime.StateCreated, Addresses: map[string]string{}}
	if spec.Network != "" {
		c.Addresses[spec.Network] = fmt.Sprintf("10.0.%d.%d", d.next/250, d.next%250+1)
	}
	if spec.Health != nil {
		c.Health = "starting"
	}
	d.ctrs[id] = c
	d.emit(runtime.EventCreate, c, 0)
	return id, nil
}

// Start starts a created or exited container.
func (d *Driver) Start(ctx context.Context, id string) error {
	if err := d.enter(ctx, "Start"); err != nil {
		return err
	}
	defer d.mu.Unlock()
	c, ok := d.ctrs[id]
	if !ok {
		return fmt.Errorf("container %s: %w", id, runtime.ErrNotFound)
	}
	if c.State == runtime.StateRunning {
		return nil
	}
	c.State, c.StartedAt, c.ExitCode, c.OOMKilled = runtime.StateRunning, time.Now(), 0, false
	d.emit(runtime.EventStart, c, 0)
	return nil
}

// Stop stops a running container (exit code 143, as after SIGTERM).
func (d *Driver) Stop(ctx context.Context, id string, grace time.Duration) error {
	return d.exit(ctx, "Stop", id, 143, false)
}

// Kill kills a running container (exit code 137 for KILL).
func (d *Driver) Kill(ctx context.Context, id, signal string) error {
	code := 137
	if signal != "KILL" && signal != "SIGKILL" && signal != "9" {
		code = 143
	}
	return d.exit(ctx, "Kill", id, code, false)
}

func (d *Driver) exit(ctx context.Context, method, id string, code int, oom bool) error {
	if err := d.enter(ctx, method); err != nil {
		return err
	}
	defer d.mu.Unlock()
	c, ok := d.ctrs[id]
	if !ok {
		return fmt.Errorf("container %s: %w", id, runtime.ErrNotFound)
	}
	if c.State != runtime.StateRunning {
		return nil
	}
	c.State, c.ExitCode, c.OOMKilled, c.FinishedAt = runtime.StateExited, code, oom, time.Now()
	if oom {
		d.emit(runtime.EventOOM, c, 0)
	}
	d.emit(runtime.EventDie, c, code)
	return nil
}

// Crash makes a running container exit with code, as if its process died.
func (d *Driver) Crash(id string, code int) error {
	return d.exit(context.Background(), "crash", id, code, false)
}

// OOM makes a running container die from the OOM killer.
func (d *Driver) OOM(id string) error {
	return d.exit(context.Background(), "oom", id, 137, true)
}

// SetHealth sets a container's health and emits the event.
func (d *Driver) SetHealth(id, health string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.ctrs[id]; ok {
		c.Health = health
		d.emit(runtime.EventHealth, c, 0)
	}
}

// RemoveBehindBack removes a container as `docker rm -f` would.
func (d *Driver) RemoveBehindBack(id string) {
	_ = d.Remove(context.Background(), id)
}

// AddForeign adds a running container berth did not create.
func (d *Driver) AddForeign(name string, labels map[string]string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.next++
	id := fmt.Sprintf("f%04d", d.next)
	d.ctrs[id] = &runtime.Container{ID: id, Name: name, Labels: copyMap(labels), State: runtime.StateRunning, StartedAt: time.Now(), Addresses: map[string]string{}}
	return id
}

// Remove removes a container.
func (d *Driver) Remove(ctx context.Context, id string) error {
	if err := d.enter(ctx, "Remove"); err != nil {
		return err
	}
	defer d.mu.Unlock()
	c, ok := d.ctrs[id]
	if !ok {
		return fmt.Errorf("container %s: %w", id, runtime.ErrNotFound)
	}
	if c.State == runtime.StateRunning {
		c.State, c.ExitCode, c.FinishedAt = runtime.StateExited, 137, time.Now()
		d.emit(runtime.EventDie, c, 137)
	}
	delete(d.ctrs, id)
	d.emit(runtime.EventDestroy, c, 0)
	return nil
}

// Inspect returns a copy of a container.
func (d *Driver) Inspect(ctx context.Context, id string) (runtime.Container, error) {
	if err := d.enter(ctx, "Inspect"); err != nil {
		return runtime.Container{}, err
	}
	defer d.mu.Unlock()
	c, ok := d.ctrs[id]
	if !ok {
		return runtime.Container{}, fmt.Errorf("container %s: %w", id, runtime.ErrNotFound)
	}
	return clone(c), nil
}

// List filters containers by labels, like the engine's list.
func (d *Driver) List(ctx context.Context, labels map[string]string) ([]runtime.Container, error) {
	if err := d.enter(ctx, "List"); err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	var out []runtime.Container
	for _, c := range d.ctrs {
		if hasLabels(c.Labels, labels) {
			out = append(out, clone(c))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Wait blocks until the container is not running.
func (d *Driver) Wait(ctx context.Context, id string) (int, error) {
	for {
		d.mu.Lock()
		c, ok := d.ctrs[id]
		var running bool
		var code int
		if ok {
			running, code = c.State == runtime.StateRunning, c.ExitCode
		}
		d.mu.Unlock()
		if !ok {
			return -1, fmt.Errorf("container %s: %w", id, runtime.ErrNotFound)
		}
		if !running {
			return code, nil
		}
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Logs writes nothing: fake containers produce no output.
func (d *Driver) Logs(ctx context.Context, id string, opts runtime.LogOptions, stdout, stderr io.Writer) error {
	if err := d.enter(ctx, "Logs"); err != nil {
		return err
	}
	d.mu.Unlock()
	return nil
}

// Events streams events of containers carrying the labels.
func (d *Driver) Events(ctx context.Context, labels map[string]string) (<-chan runtime.Event, <-chan error) {
	d.mu.Lock()
	d.subID++
	id := d.subID
	s := &sub{labels: copyMap(labels), ch: make(chan runtime.Event, 1024)}
	d.subs[id] = s
	d.mu.Unlock()
	errs := make(chan error, 1)
	out := make(chan runtime.Event)
	go func() {
		defer close(out)
		defer func() {
			d.mu.Lock()
			delete(d.subs, id)
			d.mu.Unlock()
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case e := <-s.ch:
				select {
				case out <- e:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, errs
}

// emit sends an event to matching subscribers; d.mu is held.
func (d *Driver) emit(action string, c *runtime.Container, code int) {
	e := runtime.Event{Action: action, ID: c.ID, Labels: copyMap(c.Labels), ExitCode: code, Health: c.Health, Time: time.Now()}
	for _, s := range d.subs {
		if hasLabels(c.Labels, s.labels) {
			select {
			case s.ch <- e:
			default: // a slow subscriber loses events, as with a broken stream
			}
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
		return runtime.Image{}, fmt.Errorf("image %s: %w", ref, runtime.ErrNotFound)
	}
	return img, nil
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
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

func clone(c *runtime.Container) runtime.Container {
	out := *c
	out.Labels = copyMap(c.Labels)
	out.Addresses = copyMap(c.Addresses)
	return out
}

// Names lists container names (tests).
func (d *Driver) Names() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, c := range d.ctrs {
		out = append(out, c.Name)
	}
	sort.Strings(out)
	return out
}
