// Package watchdog probes a node's container engine with timed calls and
// classifies it healthy, slow or wedged. A wedged Docker daemon keeps its
// process running (so "is dockerd up" checks stay green) while every call
// to it hangs; the watchdog notices within seconds, the agent marks the
// node degraded, stops sending calls that would only hang, records an
// event (alerts follow) and may run a remediation command.
//
// Lifecycle: Run probes until its ctx ends; at most one probe (and one
// remediation) is in flight at any time, and each call of a probe is
// bounded by Config.Hang, so a wedged engine holds at most one of the
// watchdog's calls.
package watchdog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/runtime"
)

// Config configures the watchdog. Zero fields take the defaults below.
type Config struct {
	// Interval is the pause between probes (default 2s).
	Interval time.Duration `yaml:"interval"`
	// Slow: a call slower than this makes the engine slow (default 1s).
	Slow time.Duration `yaml:"slow"`
	// Hang: a call that has not answered by then makes the engine wedged
	// (default 5s). With the default interval a hang is detected within
	// about 7s.
	Hang time.Duration `yaml:"hang"`
	// Confirm is how many probes in a row must find calls failing
	// (errors, dropped connections) or slow before the engine counts as
	// wedged or slow (default 2): a busy engine has slow moments. A call
	// that hangs past Hang needs no confirmation.
	Confirm int `yaml:"confirm"`
	// Recover is how many better probes in a row it takes to leave a
	// worse state (default 2).
	Recover int `yaml:"recover"`
	// Remediation, if set, is a command run when the engine is wedged,
	// e.g. ["systemctl", "restart", "docker"], at most once per
	// RemediationInterval (default 15m) and for at most RemediationTimeout
	// (default 2m).
	Remediation         []string      `yaml:"remediation"`
	RemediationInterval time.Duration `yaml:"remediation_interval"`
	RemediationTimeout  time.Duration `yaml:"remediation_timeout"`
	// Disabled turns the watchdog off.
	Disabled bool `yaml:"disabled"`
}

// Defaults.
const (
	DefaultInterval            = 2 * time.Second
	DefaultSlow                = time.Second
	DefaultHang                = 5 * time.Second
	DefaultConfirm             = 2
	DefaultRecover             = 2
	DefaultRemediationInterval = 15 * time.Minute
	DefaultRemediationTimeout  = 2 * time.Minute
)

func (c Config) withDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.Slow <= 0 {
		c.Slow = DefaultSlow
	}
	if c.Hang <= 0 {
		c.Hang = DefaultHang
	}
	if c.Confirm <= 0 {
		c.Confirm = DefaultConfirm
	}
	if c.Recover <= 0 {
		c.Recover = DefaultRecover
	}
	if c.RemediationInterval <= 0 {
		c.RemediationInterval = DefaultRemediationInterval
	}
	if c.RemediationTimeout <= 0 {
		c.RemediationTimeout = DefaultRemediationTimeout
	}
	return c
}

// Validate checks a configuration as a user wrote it.
func (c Config) Validate() error {
	d := c.withDefaults()
	if d.Slow >= d.Hang {
		return api.Invalidf("watchdog: slow (%s) must be shorter than hang (%s)", d.Slow, d.Hang)
	}
	if len(c.Remediation) > 0 && strings.TrimSpace(c.Remediation[0]) == "" {
		return api.Invalidf("watchdog: remediation needs a command, e.g. [systemctl, restart, docker]")
	}
	return nil
}

// Remediation is the outcome of one remediation run.
type Remediation struct {
	Command []string
	Output  string
	Err     error
	Took    time.Duration
}

// Watchdog probes one engine.
type Watchdog struct {
	cfg    Config
	drv    runtime.Driver
	labels map[string]string
	log    *slog.Logger

	// OnChange is called (from Run's goroutine) when the state changes.
	OnChange func(prev, cur api.EngineHealth)
	// OnRemediate is called when a remediation command ended.
	OnRemediate func(Remediation)

	mu        sync.Mutex
	judge     Judge
	lastFix   time.Time
	fixing    bool
	fixDone   sync.WaitGroup
	known     string // a container to inspect
	avoid     string // the container whose inspect hung last
	probes    int
	runCmd    func(ctx context.Context, argv []string) ([]byte, error)
	inFlight  int // calls under way (tests check it never exceeds 1)
	maxFlight int
}

// New returns a watchdog for drv. labels select the containers a probe
// lists (the agent's own).
func New(cfg Config, drv runtime.Driver, labels map[string]string, logger *slog.Logger) *Watchdog {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Watchdog{cfg: cfg.withDefaults(), drv: drv, labels: labels, log: logger, judge: NewJudge(time.Now().UTC()),
		runCmd: func(ctx context.Context, argv []string) ([]byte, error) {
			return exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
		}}
}

// Status is the engine's state as last judged (safe to call from any
// goroutine; metrics read the latencies from here).
func (w *Watchdog) Status() api.EngineHealth {
	w.mu.Lock()
	defer w.mu.Unlock()
	h := w.judge.Health
	if h.Latency != nil {
		lat := make(map[string]float64, len(h.Latency))
		for k, v := range h.Latency {
			lat[k] = v
		}
		h.Latency = lat
	}
	return h
}

// Wedged reports whether the engine is judged wedged.
func (w *Watchdog) Wedged() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.judge.Health.State == api.EngineWedged
}

// MaxInFlight is the largest number of the watchdog's calls that were
// under way at once (it is 1 by construction; tests check it).
func (w *Watchdog) MaxInFlight() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.maxFlight
}

// Run probes until ctx ends.
func (w *Watchdog) Run(ctx context.Context) error {
	defer w.fixDone.Wait()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		p := w.probe(ctx)
		if ctx.Err() != nil {
			return nil
		}
		w.observe(ctx, p)
		t.Reset(w.cfg.Interval)
	}
}

func (w *Watchdog) observe(ctx context.Context, p Probe) {
	w.mu.Lock()
	prev := w.judge.Health
	changed := w.judge.Observe(p, w.cfg)
	cur := w.judge.Health
	w.probes++
	w.mu.Unlock()
	if changed {
		w.log.Warn("engine state changed", "from", prev.State, "to", cur.State, "reason", cur.Reason)
		if w.OnChange != nil {
			w.OnChange(prev, cur)
		}
	}
	if cur.State == api.EngineWedged {
		w.remediate(ctx)
	}
}

// probe runs ping, list and inspect, each bounded by Hang. A call that
// hangs or fails ends the probe.
func (w *Watchdog) probe(ctx context.Context) Probe {
	p := Probe{}
	calls := []struct {
		name string
		f    func(context.Context) error
	}{
		{"ping", w.ping},
		{"list", w.list},
		{"inspect", w.inspect},
	}
	for _, c := range calls {
		if c.name == "inspect" && w.knownContainer() == "" {
			continue // nothing to inspect yet
		}
		call := w.timed(ctx, c.name, c.f)
		if ctx.Err() != nil {
			return p
		}
		p.Calls = append(p.Calls, call)
		if call.Err != nil {
			break
		}
	}
	p.At = time.Now().UTC()
	return p
}

func (w *Watchdog) timed(ctx context.Context, name string, f func(context.Context) error) Call {
	w.mu.Lock()
	w.inFlight++
	w.maxFlight = max(w.maxFlight, w.inFlight)
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.inFlight--
		w.mu.Unlock()
	}()
	cctx, cancel := context.WithTimeout(ctx, w.cfg.Hang)
	defer cancel()
	start := time.Now()
	err := f(cctx)
	c := Call{Name: name, Took: time.Since(start), Err: err}
	if err != nil && (cctx.Err() != nil || errors.Is(err, context.DeadlineExceeded)) && ctx.Err() == nil {
		c.TimedOut = c.Took >= w.cfg.Hang-10*time.Millisecond
	}
	return c
}

func (w *Watchdog) ping(ctx context.Context) error {
	if p, ok := w.drv.(runtime.Pinger); ok {
		return p.Ping(ctx)
	}
	_, err := w.drv.Info(ctx)
	return err
}

func (w *Watchdog) list(ctx context.Context) error {
	cs, err := w.drv.List(ctx, w.labels)
	if err != nil {
		return err
	}
	// Inspect the container running longest (the least likely to be
	// started or stopped by berth right now: the engine holds its lock
	// meanwhile), but not the one whose inspect hung last time.
	w.mu.Lock()
	avoid := w.avoid
	w.mu.Unlock()
	known := ""
	var since time.Time
	for _, c := range cs {
		if c.ID == avoid || !c.Running() {
			continue
		}
		if known == "" || c.StartedAt.Before(since) {
			known, since = c.ID, c.StartedAt
		}
	}
	if known == "" {
		for _, c := range cs {
			if c.ID != avoid || len(cs) == 1 {
				known = c.ID
				break
			}
		}
	}
	w.mu.Lock()
	w.known = known
	w.mu.Unlock()
	return nil
}

func (w *Watchdog) knownContainer() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.known
}

func (w *Watchdog) inspect(ctx context.Context) error {
	id := w.knownContainer()
	_, err := w.drv.Inspect(ctx, id)
	if errors.Is(err, runtime.ErrNotFound) {
		return nil // removed since the list: the engine answered
	}
	w.mu.Lock()
	if err != nil {
		w.avoid = id
	} else if w.avoid == id {
		w.avoid = ""
	}
	w.mu.Unlock()
	return err
}

// remediate runs the remediation command in the background if one is
// configured, none runs, and the last ran long enough ago.
func (w *Watchdog) remediate(ctx context.Context) {
	if len(w.cfg.Remediation) == 0 {
		return
	}
	w.mu.Lock()
	if w.fixing || (!w.lastFix.IsZero() && time.Since(w.lastFix) < w.cfg.RemediationInterval) {
		w.mu.Unlock()
		return
	}
	w.fixing = true
	w.lastFix = time.Now()
	w.mu.Unlock()
	w.fixDone.Add(1)
	go func() {
		defer w.fixDone.Done()
		argv := w.cfg.Remediation
		w.log.Warn("engine wedged; running remediation", "command", strings.Join(argv, " "))
		rctx, cancel := context.WithTimeout(ctx, w.cfg.RemediationTimeout)
		start := time.Now()
		out, err := w.runCmd(rctx, argv)
		cancel()
		if err != nil && rctx.Err() != nil {
			err = fmt.Errorf("%w (timed out after %s)", err, w.cfg.RemediationTimeout)
		}
		r := Remediation{Command: argv, Output: tail(string(out), 2000), Err: err, Took: time.Since(start)}
		w.mu.Lock()
		w.fixing = false
		w.mu.Unlock()
		if w.OnRemediate != nil {
			w.OnRemediate(r)
		}
	}()
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
