package agent

import (
	"fmt"
	"sync"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/runtime"
)

// A health check that times out is not always the application's fault.
// Before Docker 23 (moby/moby#43480) the check's timeout also covers the
// engine starting the check's process, and on a busy host that alone can
// take seconds: a rollout starting containers on two loaded cores was seen
// to time out the checks of the old, healthy tasks and get them restarted
// in the middle of the rollout. So the agent remembers when the engine was
// slow, and an unhealthy verdict made only of checks that gave no answer,
// while the engine was slow, is held instead of acted on. The task keeps
// running and serving until its checks answer again, fail with an answer
// of their own, time out on an engine that is not slow, or healthHoldLimit
// passes.
const (
	// healthHoldLimit bounds how long an unhealthy task is kept running on
	// the engine's account: a hung application on an engine that stays
	// slow is restarted after this.
	healthHoldLimit = 2 * time.Minute
	// slowCallMin is the shortest engine call worth remembering; whether
	// it counts as slow is decided against the check's own timeout.
	slowCallMin = 100 * time.Millisecond
	// maxSlowSpans is how many slow periods are kept.
	maxSlowSpans = 64
)

// engineLoad remembers the engine's recent slow periods: calls the agent
// made that took long (creates and starts, which go through the same
// runtime path as a health check's process), calls still under way, and
// the times the watchdog judged the engine slow or wedged.
type engineLoad struct {
	mu       sync.Mutex
	next     uint64
	inflight map[uint64]call
	spans    []span    // newest last
	degraded time.Time // the watchdog has judged the engine unhealthy since then; zero when healthy
}

type call struct {
	what  string
	began time.Time
}

type span struct {
	what     string
	from, to time.Time
	judged   bool // the watchdog's judgement: slow whatever the bound
}

// begin records an engine call under way; the returned func records its
// end and reports how long the call took.
func (l *engineLoad) begin(what string) (end func() time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inflight == nil {
		l.inflight = map[uint64]call{}
	}
	l.next++
	id, began := l.next, time.Now()
	l.inflight[id] = call{what: what, began: began}
	return func() time.Duration {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.inflight, id)
		now := time.Now()
		if now.Sub(began) >= slowCallMin {
			l.add(span{what: what, from: began, to: now})
		}
		return now.Sub(began)
	}
}

// engineHealth records a change of the watchdog's judgement.
func (l *engineLoad) engineHealth(h api.EngineHealth) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case h.State != api.EngineHealthy && l.degraded.IsZero():
		l.degraded = h.Since
	case h.State == api.EngineHealthy && !l.degraded.IsZero():
		l.add(span{what: "the watchdog judged the engine unhealthy", from: l.degraded, to: h.Since, judged: true})
		l.degraded = time.Time{}
	}
}

func (l *engineLoad) add(s span) {
	l.spans = append(l.spans, s)
	if len(l.spans) > maxSlowSpans {
		l.spans = append(l.spans[:0], l.spans[len(l.spans)-maxSlowSpans:]...)
	}
}

// slowDuring describes the first sign that the engine was slow at some
// time in [from, to]: a call that took at least bound, or the watchdog's
// judgement. It returns "" when there is none.
func (l *engineLoad) slowDuring(from, to time.Time, bound time.Duration, now time.Time) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.degraded.IsZero() && !l.degraded.After(to) {
		return "the watchdog judges the engine unhealthy"
	}
	for _, c := range l.inflight {
		if took := now.Sub(c.began); took >= bound && !c.began.After(to) {
			return fmt.Sprintf("%s has taken %s so far", c.what, took.Round(time.Millisecond))
		}
	}
	for i := len(l.spans) - 1; i >= 0; i-- {
		s := l.spans[i]
		if s.from.After(to) || s.to.Before(from) {
			continue
		}
		if s.judged {
			return s.what
		}
		if took := s.to.Sub(s.from); took >= bound {
			return fmt.Sprintf("%s took %s", s.what, took.Round(time.Millisecond))
		}
	}
	return ""
}

// heldHealth decides whether a running container's unhealthy verdict is
// the engine's rather than the application's, and says why: the checks
// that made the verdict all gave no answer, while the engine was slow
// (see the comment at the top of this file). It returns "" to act on the
// verdict.
func (a *Agent) heldHealth(spec *api.ServiceSpec, c runtime.Container, st *taskState, now time.Time) string {
	h := spec.Health
	if h == nil || len(c.HealthLog) == 0 || !wasReady(st, c) {
		return "" // a task that never served has nothing to keep serving
	}
	retries, timeout := h.Retries, h.Timeout.D()
	if retries <= 0 {
		retries = 3 // the engine's default
	}
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	streak := c.HealthLog
	if len(streak) > retries {
		streak = streak[len(streak)-retries:]
	}
	for _, r := range streak {
		if r.ExitCode != runtime.NoVerdict {
			return "" // the check answered: the application's verdict
		}
	}
	if st.heldContainer == c.ID && now.Sub(st.heldSince) >= healthHoldLimit {
		return ""
	}
	from, to := streak[0].Start, streak[len(streak)-1].End
	if from.IsZero() {
		from = streak[0].End.Add(-timeout)
	}
	slow := a.load.slowDuring(from, to, timeout, now)
	if slow == "" {
		return ""
	}
	return fmt.Sprintf("health check gave no answer within %s while the engine was slow (%s); not restarted", timeout, slow)
}

// heldRecheck is how soon a held verdict is looked at again: about when
// the engine has run the check once more.
func heldRecheck(spec *api.ServiceSpec) time.Duration {
	d := 30 * time.Second
	if h := spec.Health; h != nil && h.Interval.D() > 0 {
		d = h.Interval.D()
	}
	return min(max(d, 500*time.Millisecond), 10*time.Second)
}
