package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
)

func TestDecideRestart(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	quick := exitInfo{Code: 1, StartedAt: now.Add(-time.Second), FinishedAt: now}
	stableRun := exitInfo{Code: 1, StartedAt: now.Add(-time.Minute), FinishedAt: now}
	any := api.RestartPolicy{Condition: api.RestartAny}
	tests := []struct {
		desc      string
		policy    api.RestartPolicy
		state     restartState
		exit      exitInfo
		restart   bool
		delay     time.Duration
		wantState string
		reason    string
	}{
		{desc: "first crash restarts at once", policy: any, exit: quick, restart: true, delay: 0, wantState: api.StateRestarting, reason: "exited with code 1"},
		{desc: "second quick crash backs off", policy: any, state: restartState{1, 1}, exit: quick, restart: true, delay: baseBackoff, wantState: api.StateRestarting},
		{desc: "third quick crash is a crash loop", policy: any, state: restartState{2, 2}, exit: quick, restart: true, delay: 2 * baseBackoff, wantState: api.StateCrashLoop, reason: "3 times in a row"},
		{desc: "backoff is capped", policy: any, state: restartState{40, 40}, exit: quick, restart: true, delay: maxBackoff, wantState: api.StateCrashLoop},
		{desc: "a stable run resets the backoff", policy: any, state: restartState{9, 9}, exit: stableRun, restart: true, delay: 0, wantState: api.StateRestarting},
		{desc: "policy delay applies", policy: api.RestartPolicy{Condition: api.RestartAny, Delay: api.Duration(time.Second)}, exit: quick, restart: true, delay: time.Second, wantState: api.StateRestarting},
		{desc: "none never restarts", policy: api.RestartPolicy{Condition: api.RestartNone}, exit: quick, wantState: api.StateExited, reason: "restart policy is none"},
		{desc: "on-failure leaves a success alone", policy: api.RestartPolicy{Condition: api.RestartOnFailure}, exit: exitInfo{Code: 0}, wantState: api.StateExited, reason: "completed"},
		{desc: "on-failure restarts a failure", policy: api.RestartPolicy{Condition: api.RestartOnFailure}, exit: quick, restart: true, wantState: api.StateRestarting},
		{desc: "max attempts gives up", policy: api.RestartPolicy{Condition: api.RestartAny, MaxAttempts: 3}, state: restartState{3, 3}, exit: quick, wantState: api.StateFailed, reason: "gave up after 3 restarts"},
		{desc: "OOM is named", policy: any, exit: exitInfo{Code: 137, OOMKilled: true}, restart: true, wantState: api.StateRestarting, reason: "OOMKilled"},
		{desc: "SIGKILL is named", policy: any, exit: exitInfo{Code: 137}, restart: true, wantState: api.StateRestarting, reason: "SIGKILL"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			d := decideRestart(tt.policy, tt.state, tt.exit, now)
			if d.Restart != tt.restart {
				t.Fatalf("restart = %v, want %v (%+v)", d.Restart, tt.restart, d)
			}
			if d.State != tt.wantState {
				t.Errorf("state = %q, want %q", d.State, tt.wantState)
			}
			if tt.restart && d.At.Sub(now) != tt.delay {
				t.Errorf("delay = %s, want %s", d.At.Sub(now), tt.delay)
			}
			if !strings.Contains(d.Reason, tt.reason) {
				t.Errorf("reason %q does not contain %q", d.Reason, tt.reason)
			}
			if tt.restart && d.Next.Restarts != tt.state.Restarts+1 {
				t.Errorf("restarts = %d, want %d", d.Next.Restarts, tt.state.Restarts+1)
			}
		})
	}
}
