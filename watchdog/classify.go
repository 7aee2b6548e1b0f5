package watchdog

import (
	"fmt"
	"time"

	"github.com/berth-dev/berth/api"
)

// Call is one timed engine call of a probe.
type Call struct {
	Name string
	Took time.Duration
	// Err is the call's failure; TimedOut says it had not answered when
	// its deadline (Config.Hang) passed.
	Err      error
	TimedOut bool
}

// Probe is one round of calls: ping, list, and inspect of a known
// container. A hung call ends the round (no further calls pile up behind
// it).
type Probe struct {
	At    time.Time
	Calls []Call
}

// verdict is what one probe says on its own.
type verdict struct {
	state  string
	reason string
	// failed: a call failed without hanging, or only the inspect of one
	// container hung (the engine holds a container's lock while it stops
	// it, for its whole grace period): both need confirming.
	failed bool
}

func (p Probe) verdict(cfg Config) verdict {
	var slowest Call
	for _, c := range p.Calls {
		switch {
		case c.TimedOut:
			return verdict{state: api.EngineWedged, failed: c.Name == "inspect",
				reason: fmt.Sprintf("hung: %s did not answer within %s", c.Name, cfg.Hang)}
		case c.Err != nil:
			return verdict{state: api.EngineWedged, failed: true, reason: fmt.Sprintf("failing: %s: %v", c.Name, c.Err)}
		case c.Took > slowest.Took:
			slowest = c
		}
	}
	if slowest.Took > cfg.Slow {
		return verdict{state: api.EngineSlow, reason: fmt.Sprintf("slow: %s took %s (more than %s)", slowest.Name, slowest.Took.Round(time.Millisecond), cfg.Slow)}
	}
	return verdict{state: api.EngineHealthy}
}

// rank orders states from good to bad.
func rank(state string) int {
	switch state {
	case api.EngineHealthy:
		return 0
	case api.EngineSlow:
		return 1
	default:
		return 2
	}
}

// Judge turns a sequence of probes into an engine state. It is pure: the
// watchdog's loop feeds it probes, tests feed it tables.
//
// A worse state is taken at once when ping or list hangs (detection
// speed is the point); calls that fail without hanging, an inspect that
// hangs (the watchdog inspects another container next time) and slow
// calls take Config.Confirm probes in a row; a
// better state needs Config.Recover probes in a row, so a flapping engine
// does not flap the node.
type Judge struct {
	Health   api.EngineHealth
	failures int // probes in a row with a failed call
	slows    int // probes in a row with a slow call
	better   int
}

// NewJudge starts healthy.
func NewJudge(now time.Time) Judge {
	return Judge{Health: api.EngineHealth{State: api.EngineHealthy, Since: now}}
}

// Observe takes one probe and reports whether the state changed.
func (j *Judge) Observe(p Probe, cfg Config) bool {
	cfg = cfg.withDefaults()
	v := p.verdict(cfg)
	j.Health.LastProbe = p.At
	j.Health.Latency = make(map[string]float64, len(p.Calls))
	for _, c := range p.Calls {
		j.Health.Latency[c.Name] = float64(c.Took.Microseconds()) / 1000
	}
	if v.failed {
		j.failures++
		if j.failures < cfg.Confirm {
			return false // one failed call is not yet a broken engine
		}
	} else {
		j.failures = 0
	}
	if v.state == api.EngineSlow {
		j.slows++
		if j.slows < cfg.Confirm && rank(j.Health.State) < rank(api.EngineSlow) {
			return false // one slow moment is not yet a slow engine
		}
	} else {
		j.slows = 0
	}
	cur := rank(j.Health.State)
	switch next := rank(v.state); {
	case next > cur:
		j.better = 0
		return j.set(v, p.At)
	case next < cur:
		j.better++
		if j.better < cfg.Recover {
			return false
		}
		j.better = 0
		return j.set(v, p.At)
	default:
		j.better = 0
		j.Health.Reason = v.reason // same state: keep the latest detail
		return false
	}
}

func (j *Judge) set(v verdict, at time.Time) bool {
	j.Health.State, j.Health.Reason, j.Health.Since = v.state, v.reason, at
	return true
}
