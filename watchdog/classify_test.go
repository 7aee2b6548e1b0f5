package watchdog

import (
	"errors"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
)

func call(name string, took time.Duration) Call { return Call{Name: name, Took: took} }

func TestJudge(t *testing.T) {
	ms := time.Millisecond
	fast := Probe{Calls: []Call{call("ping", 2*ms), call("list", 5*ms), call("inspect", 3*ms)}}
	slow := Probe{Calls: []Call{call("ping", 2*ms), call("list", 1500*ms)}}
	hung := Probe{Calls: []Call{call("ping", 2*ms), {Name: "list", Took: 5 * time.Second, Err: errors.New("deadline"), TimedOut: true}}}
	inspectHung := Probe{Calls: []Call{call("ping", ms), call("list", ms), {Name: "inspect", Took: 5 * time.Second, Err: errors.New("x"), TimedOut: true}}}
	failing := Probe{Calls: []Call{{Name: "ping", Took: ms, Err: errors.New("500 injected")}}}
	cfg := Config{}
	for _, tc := range []struct {
		desc   string
		probes []Probe
		want   []string // state after each probe
	}{
		{"healthy stays healthy", []Probe{fast, fast}, []string{api.EngineHealthy, api.EngineHealthy}},
		{"a hung call wedges at once", []Probe{fast, hung}, []string{api.EngineHealthy, api.EngineWedged}},
		{"a hung inspect wedges on the second probe in a row", []Probe{inspectHung, fast, inspectHung, inspectHung}, []string{api.EngineHealthy, api.EngineHealthy, api.EngineHealthy, api.EngineWedged}},
		{"one failure is tolerated, two wedge", []Probe{failing, fast, failing, failing}, []string{api.EngineHealthy, api.EngineHealthy, api.EngineHealthy, api.EngineWedged}},
		{"slow after two slow probes", []Probe{slow, fast, slow, slow}, []string{api.EngineHealthy, api.EngineHealthy, api.EngineHealthy, api.EngineSlow}},
		{"recovery takes two good probes", []Probe{hung, fast, fast}, []string{api.EngineWedged, api.EngineWedged, api.EngineHealthy}},
		{"wedged to slow needs two slow probes", []Probe{hung, slow, slow, fast, fast}, []string{api.EngineWedged, api.EngineWedged, api.EngineSlow, api.EngineSlow, api.EngineHealthy}},
		{"a flapping engine does not flap the node", []Probe{hung, fast, hung, fast, hung}, []string{api.EngineWedged, api.EngineWedged, api.EngineWedged, api.EngineWedged, api.EngineWedged}},
		{"slow getting worse wedges", []Probe{slow, slow, hung}, []string{api.EngineHealthy, api.EngineSlow, api.EngineWedged}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			j := NewJudge(time.Now())
			for i, p := range tc.probes {
				p.At = time.Now()
				j.Observe(p, cfg)
				if j.Health.State != tc.want[i] {
					t.Fatalf("after probe %d: state %s (%s), want %s", i, j.Health.State, j.Health.Reason, tc.want[i])
				}
			}
		})
	}
}

func TestJudgeReasonAndLatency(t *testing.T) {
	j := NewJudge(time.Now())
	j.Observe(Probe{At: time.Now(), Calls: []Call{call("ping", time.Millisecond), {Name: "list", Took: 5 * time.Second, Err: errors.New("x"), TimedOut: true}}}, Config{})
	if j.Health.Reason != "hung: list did not answer within 5s" {
		t.Fatalf("reason %q", j.Health.Reason)
	}
	if j.Health.Latency["ping"] != 1 || j.Health.Latency["list"] != 5000 {
		t.Fatalf("latency %v", j.Health.Latency)
	}
}

func TestValidate(t *testing.T) {
	if err := (Config{Slow: 5 * time.Second, Hang: 2 * time.Second}).Validate(); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("slow ≥ hang: %v", err)
	}
	if err := (Config{Remediation: []string{" "}}).Validate(); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("empty remediation: %v", err)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Fatal(err)
	}
}
