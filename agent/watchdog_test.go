package agent

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/watchdog"
)

// A wedged engine marks the node degraded with the reason, records
// engine.wedged, and stops the agent's passes from piling calls onto the
// engine; recovery clears all of it.
func TestWedgedEngineDegradesNode(t *testing.T) {
	t.Parallel()
	wd := &watchdog.Config{Interval: 50 * time.Millisecond, Slow: 100 * time.Millisecond, Hang: 300 * time.Millisecond}
	h := newHarnessConfig(t, Config{Watchdog: wd}, nil)
	h.deploy(task("a", 1))
	h.waitFor("running", func() bool { return h.status("a").State == api.StateRunning })

	node := func() api.Node {
		ns, _ := h.st.ListNodes(context.Background())
		for _, n := range ns {
			if n.ID == "n1" {
				return n
			}
		}
		return api.Node{}
	}
	h.drv.SetLatency(time.Minute)
	h.waitFor("node degraded", func() bool { return strings.HasPrefix(node().Degraded, "engine wedged: hung") })
	if n := node(); n.EngineHealth.State != api.EngineWedged {
		t.Fatalf("node %+v", n)
	}
	if h.ag.EngineHealth().State != api.EngineWedged {
		t.Fatalf("agent health %+v", h.ag.EngineHealth())
	}
	// While wedged, passes send nothing: List is called by the watchdog
	// only (at most once per probe).
	before := h.drv.Calls("List")
	time.Sleep(time.Second) // 5 resync periods
	if n := h.drv.Calls("List") - before; n > 4 {
		t.Errorf("%d List calls in 1s while wedged: calls pile up", n)
	}

	h.drv.SetLatency(0)
	h.waitFor("node healthy again", func() bool {
		n := node()
		return n.Degraded == "" && n.EngineHealth.State == api.EngineHealthy
	})
	evs, err := h.st.ListEvents(context.Background(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs {
		if strings.HasPrefix(e.Type, "engine.") {
			types = append(types, e.Type)
		}
	}
	if strings.Join(types, ",") != "engine.wedged,engine.healthy" {
		t.Fatalf("engine events %v", types)
	}
}
