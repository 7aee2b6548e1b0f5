package agent

import (
	"fmt"
	"time"

	"github.com/berth-dev/berth/api"
)

// Restart backoff: the first restart after a stable run is immediate (or the
// policy's delay), so a crashed task is back within the engine's start time.
// Each further consecutive failure doubles the wait, up to maxBackoff.
const (
	baseBackoff = 200 * time.Millisecond
	maxBackoff  = 30 * time.Second
	// defaultStable is how long a task must run before its failures stop
	// counting as consecutive (restart_policy.window overrides it).
	defaultStable = 10 * time.Second
	// crashLoopAfter consecutive failures make the task a crash loop.
	crashLoopAfter = 3
)

// exitInfo is how a container ended.
type exitInfo struct {
	Code       int
	OOMKilled  bool
	Unhealthy  bool // stopped by berth after failing its health check
	StartedAt  time.Time
	FinishedAt time.Time
}

// restartState is what the agent remembers of a task across restarts.
type restartState struct {
	Restarts    int // restarts since the task was created
	Consecutive int // failures since the last stable run
}

// restartDecision is the outcome of decideRestart.
type restartDecision struct {
	Restart bool
	At      time.Time // when to restart
	State   string    // api.StateRestarting, StateCrashLoop, StateExited or StateFailed
	Reason  string
	Next    restartState
}

// exitReason says in words why a container ended.
func exitReason(e exitInfo) string {
	switch {
	case e.OOMKilled:
		return "OOMKilled: the container exceeded its memory limit"
	case e.Unhealthy:
		return "unhealthy: failed its health check"
	case e.Code == 137:
		return "killed (SIGKILL, exit code 137)"
	case e.Code == 143:
		return "terminated (SIGTERM, exit code 143)"
	case e.Code > 128 && e.Code < 160:
		return fmt.Sprintf("killed by signal %d (exit code %d)", e.Code-128, e.Code)
	default:
		return fmt.Sprintf("exited with code %d", e.Code)
	}
}

// decideRestart applies a restart policy to a container that ended. Pure.
func decideRestart(p api.RestartPolicy, rs restartState, e exitInfo, now time.Time) restartDecision {
	reason := exitReason(e)
	failed := e.Code != 0 || e.OOMKilled || e.Unhealthy
	next := rs
	stable := p.Window.D()
	if stable <= 0 {
		stable = defaultStable
	}
	if !e.StartedAt.IsZero() && e.FinishedAt.Sub(e.StartedAt) >= stable {
		next.Consecutive = 0
	}
	switch {
	case p.Condition == api.RestartNone:
		return restartDecision{State: api.StateExited, Reason: reason + "; restart policy is none", Next: next}
	case p.Condition == api.RestartOnFailure && !failed:
		return restartDecision{State: api.StateExited, Reason: "completed (exit code 0)", Next: next}
	case p.MaxAttempts > 0 && rs.Restarts >= p.MaxAttempts:
		return restartDecision{State: api.StateFailed,
			Reason: fmt.Sprintf("%s; gave up after %d restarts (restart_policy.max_attempts)", reason, rs.Restarts), Next: next}
	}
	delay := p.Delay.D()
	if next.Consecutive > 0 {
		backoff := baseBackoff << min(next.Consecutive-1, 20)
		if backoff > maxBackoff || backoff <= 0 {
			backoff = maxBackoff
		}
		delay = max(delay, backoff)
	}
	next.Consecutive++
	next.Restarts++
	state := api.StateRestarting
	if next.Consecutive >= crashLoopAfter {
		state = api.StateCrashLoop
		reason = fmt.Sprintf("%s (%d times in a row); next restart in %s", reason, next.Consecutive, delay.Round(time.Millisecond))
	}
	return restartDecision{Restart: true, At: now.Add(delay), State: state, Reason: reason, Next: next}
}
