package cli

import (
	"time"

	"testing"

	"github.com/berth-dev/berth/api"
)

var time1 = time.Unix(1000, 0)

func TestRolloutProgress(t *testing.T) {
	t.Parallel()
	task := func(rev int, state string, split api.TrafficSplit) api.TaskView {
		v := api.TaskView{Task: api.Task{Revision: rev, Desired: api.DesiredRunning, Traffic: split}}
		if state != "" {
			v.Status = &api.TaskStatus{State: state}
		}
		return v
	}
	canary := api.TrafficSplit{Gen: 2, Revision: 2, Percent: 25}
	staged := api.TrafficSplit{Gen: 3, Revision: 2, Percent: 0}
	tests := []struct {
		desc    string
		rollout api.Rollout
		tasks   []api.TaskView
		want    string
	}{
		{
			desc:    "rolling: one new task starting, one ready",
			rollout: api.Rollout{Strategy: api.Rolling, To: 2},
			tasks:   []api.TaskView{task(1, api.StateRunning, api.TrafficSplit{}), task(2, api.StateStarting, api.TrafficSplit{}), task(2, api.StateRunning, api.TrafficSplit{}), task(2, "", api.TrafficSplit{})},
			want:    "rolling to revision 2: new 2 started, 1 ready, 1 serving; old 1 serving",
		},
		{
			desc:    "canary step under watch, with its split",
			rollout: api.Rollout{Strategy: api.Canary, To: 2, Observing: time1},
			tasks:   []api.TaskView{task(1, api.StateRunning, canary), task(1, api.StateRunning, canary), task(2, api.StateRunning, canary)},
			want:    "canary to revision 2, step 1: new 1 started, 1 ready, 1 serving; old 2 serving; traffic 25% to revision 2; watching",
		},
		{
			desc:    "blue-green staging: the new set is ready but takes no traffic",
			rollout: api.Rollout{Strategy: api.BlueGreen, To: 2},
			tasks:   []api.TaskView{task(1, api.StateRunning, staged), task(2, api.StateRunning, staged)},
			want:    "blue-green to revision 2, staging: new 1 started, 1 ready, 0 serving; old 1 serving; traffic 0% to revision 2",
		},
		{
			desc:    "the newest split wins, a stopped set is not counted",
			rollout: api.Rollout{Strategy: api.BlueGreen, To: 2, Switched: true, Paused: true},
			tasks: []api.TaskView{task(1, api.StateRunning, staged), task(2, api.StateRunning, api.TrafficSplit{Gen: 4, Revision: 2, Percent: 100}),
				{Task: api.Task{Revision: 1, Desired: api.DesiredStopped}, Status: &api.TaskStatus{State: api.StateStopped}}},
			want: "blue-green to revision 2, switched: new 1 started, 1 ready, 1 serving; old 0 serving; traffic 100% to revision 2; paused",
		},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			r := tt.rollout
			if got := rolloutProgress(api.ServiceStatus{Rollout: &r, Tasks: tt.tasks}); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}
