package metrics

import (
	"context"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/ingress"
	"github.com/berth-dev/berth/logs"
	"github.com/berth-dev/berth/runtime"
)

// fakeEngine serves two running containers whose counters grow by a
// fixed step per reading; replace swaps one for a fresh container.
type fakeEngine struct {
	mu    sync.Mutex
	cs    []runtime.Container
	reads map[string]int
}

func (f *fakeEngine) List(ctx context.Context, labels map[string]string) ([]runtime.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]runtime.Container(nil), f.cs...), nil
}

func (f *fakeEngine) Stats(ctx context.Context, id string) (runtime.ContainerStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads[id]++
	n := f.reads[id]
	return runtime.ContainerStats{Time: time.Unix(int64(n), 0), CPU: time.Duration(n) * 500 * time.Millisecond,
		MemoryBytes: 10 << 20, RxBytes: uint64(n) * 1000, TxBytes: uint64(n) * 2000}, nil
}

func ctr(id, task, rev string) runtime.Container {
	return runtime.Container{ID: id, State: runtime.StateRunning, Labels: map[string]string{
		api.LabelStack: "shop", api.LabelService: "web", api.LabelTask: task, api.LabelRevision: rev}}
}

type fakeTraffic struct{ n int64 }

func (f *fakeTraffic) Stats(ctx context.Context) ([]ingress.RevisionStats, error) {
	f.n += 100
	b := make([]int64, len(ingress.LatencyBuckets)+1)
	b[2], b[5] = f.n-10, 10
	return []ingress.RevisionStats{{Route: "shop/web", Path: "/", Revision: 2, Requests: f.n, Errors: f.n / 100,
		Buckets: b, LatencySum: time.Duration(f.n) * 3 * time.Millisecond}}, nil
}

type fakeStatuses struct{ restarts int }

func (f *fakeStatuses) ListStatus(ctx context.Context, node string) ([]api.TaskStatus, error) {
	return []api.TaskStatus{{TaskID: "t1", Restarts: f.restarts}}, nil
}

func scrape(t *testing.T, reg *Registry) string {
	t.Helper()
	srv := httptest.NewServer(reg.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// The exposition passes `promtool check metrics` (Debian's prometheus
// package), counters stay monotonic when a container is replaced, and
// the history has CPU, memory and requests per service.
func TestMetricsExposition(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not found: .ci/run must install Debian's prometheus")
		}
		t.Skip("promtool not found; install Debian's prometheus to run this test")
	}
	reg := New("node-1")
	eng := &fakeEngine{cs: []runtime.Container{ctr("c1", "t1", "2"), ctr("c2", "t2", "2")}, reads: map[string]int{}}
	st := &fakeStatuses{}
	p := NewPoller(PollerConfig{}, reg, eng, &fakeTraffic{}, st)
	RegisterIngress(reg, &fakeTraffic{})
	ls, err := logs.Open(logs.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	ls.Append("shop", []api.LogLine{{Time: time.Now(), Service: "web", Task: "t1", Line: "hello"}})
	ls.Flush()
	RegisterLogs(reg, ls, logs.NewShipper(logs.ShipperConfig{}, nil), func() uint64 { return 1 })
	RegisterNode(reg, NodeSources{
		Engine: func() api.EngineHealth {
			return api.EngineHealth{State: api.EngineSlow, Latency: map[string]float64{"ping": 2500, "list": 12}}
		},
		Disk: func() Disk {
			return Disk{Used: 5 << 30, Budget: 10 << 30, HostUsed: 40 << 30, HostTotal: 100 << 30, LastRun: 1_800_000_000, LastFreed: 1 << 20}
		},
		Notifiers: func() []Notifier { return []Notifier{{Name: "ops", Sent: 3, Failed: 1, Dropped: 0}} },
	})
	NewEventCounter(reg, nil, "n1").count(context.Background(), api.Event{Type: "task.oom", Stack: "shop", Service: "web", Node: "n1"})

	ctx := context.Background()
	p.Poll(ctx)
	st.restarts = 2
	p.Poll(ctx)
	// c2 is replaced by c3: its counters start again from zero.
	eng.mu.Lock()
	eng.cs[1] = ctr("c3", "t3", "2")
	eng.mu.Unlock()
	p.Poll(ctx)

	out := scrape(t, reg)
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s\n--- exposition:\n%s", err, msg, out)
	}
	for _, want := range []string{
		// c1 read 3 times (1.5 s), c2 twice (1 s), c3 once (0.5 s).
		`berth_container_cpu_seconds_total{node="node-1",revision="2",service="web",stack="shop"} 3`,
		`berth_container_memory_bytes{node="node-1",revision="2",service="web",stack="shop"} 2.097152e+07`,
		`berth_containers_running{node="node-1",revision="2",service="web",stack="shop"} 2`,
		`berth_task_restarts_total{node="node-1",revision="2",service="web",stack="shop"} 2`,
		`berth_http_requests_total{node="node-1",revision="2",service="web",stack="shop"} 100`,
		`berth_http_request_duration_seconds_bucket{node="node-1",revision="2",service="web",stack="shop",le="0.005"} 90`,
		`berth_task_oom_kills_total{node="node-1",service="web",stack="shop"} 1`,
		`berth_log_store_bytes{node="node-1",stack="shop"}`,
		`berth_log_store_budget_bytes{node="node-1"}`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("exposition:\n%s", out)
	}

	top := p.History().Top("shop", true)
	if len(top.Services) != 1 {
		t.Fatalf("top: %+v", top)
	}
	s := top.Services[0]
	// c1 used 0.5 s of CPU per second; c3 is new (no rate yet).
	if s.Tasks != 2 || s.Latest.CPU != 0.5 || s.Latest.MemoryBytes != 20<<20 || len(s.History) != 3 || s.Latest.Requests <= 0 {
		t.Fatalf("top service %+v", s)
	}
}
