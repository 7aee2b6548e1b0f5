// Package alerts turns berth's events into alerts and sends them to the
// notifiers in berth's configuration (a generic JSON webhook, a
// Slack-compatible webhook). Events are the single source: every
// component records its state changes as events, and the alert engine
// follows the event stream, so alerting sees the whole cluster from one
// place and needs no hook into any component.
//
// An alert is keyed by its rule and what it is about (a service, a node,
// a certificate), so a storm of the same events is one alert: notifiers
// hear of it when it fires, when it resolves, and again every
// RepeatAfter while it keeps firing, within each notifier's rate limit.
// Alerts and the position in the event stream are kept in etcd, so a
// restarted berth neither repeats nor misses a notification.
package alerts

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/store"
)

// Config is the alerts section of berth's configuration.
type Config struct {
	// Notifiers receive the alerts. None: alerts are only kept and shown
	// by `berth alerts`.
	Notifiers []NotifierConfig `yaml:"notifiers"`
	// RepeatAfter re-sends a still-firing alert (default 4h).
	RepeatAfter time.Duration `yaml:"repeat_after"`
	// Disable names built-in rules to turn off.
	Disable []string `yaml:"disable"`
	// CertWarning is how long before a certificate expires its alert
	// fires (default 336h, 14 days).
	CertWarning time.Duration `yaml:"cert_warning"`
}

// Defaults.
const (
	DefaultRepeatAfter = 4 * time.Hour
	DefaultCertWarning = 14 * 24 * time.Hour
	// keepResolved is how long a resolved alert stays listed.
	keepResolved = 24 * time.Hour
	sweepEvery   = 15 * time.Second
)

// Validate checks the section as a user wrote it.
func (c Config) Validate() error {
	names := map[string]bool{}
	for i, n := range c.Notifiers {
		if err := n.validate(); err != nil {
			return api.Invalidf("alerts.notifiers[%d]: %v", i, err)
		}
		if names[n.Name] {
			return api.Invalidf("alerts.notifiers[%d]: name %q is used twice", i, n.Name)
		}
		names[n.Name] = true
	}
	for _, d := range c.Disable {
		if !slices.Contains(RuleNames(), d) {
			return api.Invalidf("alerts.disable: no rule %q (rules: %v)", d, RuleNames())
		}
	}
	if c.RepeatAfter < 0 || c.CertWarning < 0 {
		return api.Invalidf("alerts: repeat_after and cert_warning must not be negative")
	}
	return nil
}

// TaskLister reports which tasks exist, so that alerts about tasks that
// are gone (replaced by a rollback, removed with their stack) resolve.
type TaskLister interface {
	ListTasks(ctx context.Context, stack string) ([]api.Task, error)
}

// Engine follows the event stream and keeps alerts.
type Engine struct {
	cfg       Config
	st        *store.Store
	clusterID string
	rules     []Rule
	notifiers []*Notifier
	log       *slog.Logger
	now       func() time.Time

	mu     sync.Mutex
	alerts map[string]*api.Alert
	cursor int64
}

// New returns an engine. Notifier delivery starts with Run.
func New(cfg Config, st *store.Store, clusterID string, logger *slog.Logger) *Engine {
	if cfg.RepeatAfter <= 0 {
		cfg.RepeatAfter = DefaultRepeatAfter
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{cfg: cfg, st: st, clusterID: clusterID, log: logger, now: time.Now, alerts: map[string]*api.Alert{}}
	for _, r := range Rules {
		if !slices.Contains(cfg.Disable, r.Name) {
			e.rules = append(e.rules, r)
		}
	}
	for _, n := range cfg.Notifiers {
		e.notifiers = append(e.notifiers, newNotifier(n, clusterID, logger.With("notifier", n.Name)))
	}
	return e
}

// Notifiers are the engine's notifiers (their counters feed metrics).
func (e *Engine) Notifiers() []*Notifier { return e.notifiers }

// Alerts returns the alerts kept, firing first, newest first.
func (e *Engine) Alerts() []api.Alert {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]api.Alert, 0, len(e.alerts))
	for _, a := range e.alerts {
		out = append(out, *a)
	}
	slices.SortFunc(out, func(a, b api.Alert) int {
		if (a.State == api.AlertFiring) != (b.State == api.AlertFiring) {
			if a.State == api.AlertFiring {
				return -1
			}
			return 1
		}
		return b.StartedAt.Compare(a.StartedAt)
	})
	return out
}

// Run follows events until ctx ends: first those recorded since the last
// one it handled, then new ones as they come.
func (e *Engine) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, n := range e.notifiers {
		wg.Add(1)
		go func() { defer wg.Done(); n.run(ctx) }()
	}
	if err := e.load(ctx); err != nil {
		return err
	}
	for ctx.Err() == nil {
		e.follow(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return nil
}

// load reads the kept alerts and the cursor, retrying while the store is
// unavailable.
func (e *Engine) load(ctx context.Context) error {
	for {
		as, err := e.st.ListAlerts(ctx)
		var cur int64
		if err == nil {
			cur, err = e.st.AlertCursor(ctx)
		}
		if err == nil {
			e.mu.Lock()
			for i := range as {
				e.alerts[as[i].ID] = &as[i]
			}
			e.cursor = cur
			e.mu.Unlock()
			return nil
		}
		e.log.Warn("load alerts", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// follow handles the backlog and then the live stream until it breaks.
func (e *Engine) follow(ctx context.Context) {
	e.mu.Lock()
	since := e.cursor
	e.mu.Unlock()
	if since == 0 {
		// First run: start from now, not from the whole history.
		if last, err := e.st.ListEvents(ctx, 0, 1); err == nil && len(last) > 0 {
			since = last[0].Seq
			e.setCursor(ctx, since)
		}
	} else {
		backlog, err := e.st.ListEvents(ctx, since, 10000)
		if err != nil {
			e.log.Warn("read events", "err", err)
			return
		}
		for _, ev := range backlog {
			e.Handle(ctx, ev)
			since = ev.Seq
		}
	}
	stream := e.st.WatchEvents(ctx, since)
	sweep := time.NewTicker(sweepEvery)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-stream:
			if !ok {
				return
			}
			e.Handle(ctx, ev)
		case <-sweep.C:
			e.Sweep(ctx)
		}
	}
}

func (e *Engine) setCursor(ctx context.Context, seq int64) {
	e.mu.Lock()
	if seq <= e.cursor {
		e.mu.Unlock()
		return
	}
	e.cursor = seq
	e.mu.Unlock()
	if err := e.st.PutAlertCursor(ctx, seq); err != nil {
		e.log.Warn("record alert cursor", "err", err)
	}
}

// Handle applies one event to the alerts.
func (e *Engine) Handle(ctx context.Context, ev api.Event) {
	var changed []api.Alert
	var send []message
	e.mu.Lock()
	for _, r := range e.rules {
		g := r.group(ev)
		if g == "" {
			continue
		}
		id := alertID(r.Name, g)
		switch {
		case r.fires(ev.Type):
			a, ok := e.alerts[id]
			if ok && a.State == api.AlertResolved && ev.Seq > 0 && ev.Seq <= a.LastEvent.Seq {
				continue // an event replayed from before the resolution
			}
			if !ok || a.State == api.AlertResolved {
				a = &api.Alert{ID: id, Rule: r.Name, Severity: r.Severity, State: api.AlertFiring,
					Stack: ev.Stack, Service: ev.Service, Node: ev.Node, Subject: ev.Subject, StartedAt: ev.Time}
				e.alerts[id] = a
				ok = false
			}
			a.Count++
			a.LastEvent = ev
			if r.Members && ev.Task != "" && !slices.Contains(a.Members, ev.Task) {
				a.Members = append(a.Members, ev.Task)
			}
			a.Summary = r.summary(*a)
			if !ok { // newly firing; a repeat of a firing alert is not sent again
				a.NotifiedAt = e.now().UTC()
				send = append(send, message{Status: api.AlertFiring, Alert: *a})
			}
			changed = append(changed, *a)
		case r.resolves(ev.Type):
			a, ok := e.alerts[id]
			if !ok || a.State != api.AlertFiring {
				continue
			}
			if r.Members && ev.Task != "" {
				a.Members = slices.DeleteFunc(a.Members, func(m string) bool { return m == ev.Task })
				if len(a.Members) > 0 {
					changed = append(changed, *a)
					continue
				}
			}
			send = append(send, e.resolve(r, a, ev))
			changed = append(changed, *a)
		}
	}
	if ev.Type == "stack.remove" && ev.Stack != "" {
		for _, a := range e.alerts {
			if a.State == api.AlertFiring && a.Stack == ev.Stack {
				send = append(send, e.resolve(e.rule(a.Rule), a, ev))
				changed = append(changed, *a)
			}
		}
	}
	e.mu.Unlock()
	e.persist(ctx, changed)
	e.notify(send)
	if ev.Seq > 0 {
		e.setCursor(ctx, ev.Seq)
	}
}

// resolve marks a firing alert resolved; e.mu is held.
func (e *Engine) resolve(r Rule, a *api.Alert, ev api.Event) message {
	a.State = api.AlertResolved
	a.ResolvedAt = ev.Time
	if a.ResolvedAt.IsZero() {
		a.ResolvedAt = e.now().UTC()
	}
	a.Members = nil
	a.LastEvent = ev
	a.Summary = r.summary(*a)
	a.NotifiedAt = e.now().UTC()
	return message{Status: api.AlertResolved, Alert: *a}
}

func (e *Engine) rule(name string) Rule {
	for _, r := range Rules {
		if r.Name == name {
			return r
		}
	}
	return Rule{Name: name, What: name}
}

// Sweep resolves alerts whose tasks are all gone, repeats alerts that
// keep firing, and forgets resolved ones after a day.
func (e *Engine) Sweep(ctx context.Context) {
	var exists map[string]bool
	if tasks, err := e.st.ListTasks(ctx, ""); err == nil {
		exists = make(map[string]bool, len(tasks))
		for _, t := range tasks {
			exists[t.ID] = true
		}
	}
	now := e.now().UTC()
	var changed []api.Alert
	var send []message
	var forget []string
	e.mu.Lock()
	for id, a := range e.alerts {
		r := e.rule(a.Rule)
		switch {
		case a.State == api.AlertResolved:
			if now.Sub(a.ResolvedAt) > keepResolved {
				delete(e.alerts, id)
				forget = append(forget, id)
			}
		case r.Members && exists != nil && len(a.Members) > 0:
			a.Members = slices.DeleteFunc(a.Members, func(m string) bool { return !exists[m] })
			if len(a.Members) == 0 {
				send = append(send, e.resolve(r, a, api.Event{Time: now, Type: "task.removed", Stack: a.Stack, Service: a.Service,
					Message: "the tasks it was about no longer exist"}))
				changed = append(changed, *a)
				continue
			}
			fallthrough
		default:
			if now.Sub(a.NotifiedAt) >= e.cfg.RepeatAfter {
				a.NotifiedAt = now
				send = append(send, message{Status: api.AlertFiring, Repeat: true, Alert: *a})
				changed = append(changed, *a)
			}
		}
	}
	e.mu.Unlock()
	e.persist(ctx, changed)
	for _, id := range forget {
		_ = e.st.DeleteAlert(ctx, id)
	}
	e.notify(send)
}

func (e *Engine) persist(ctx context.Context, as []api.Alert) {
	for _, a := range as {
		if err := e.st.PutAlert(ctx, a); err != nil {
			e.log.Warn("record alert", "alert", a.ID, "err", err)
		}
	}
}

func (e *Engine) notify(ms []message) {
	for _, m := range ms {
		e.log.Info("alert", "status", m.Status, "rule", m.Alert.Rule, "summary", m.Alert.Summary)
		for _, n := range e.notifiers {
			n.enqueue(m)
		}
	}
}
