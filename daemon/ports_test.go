package daemon

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/ingress"
	"github.com/berth-dev/berth/store"
)

type portSource struct {
	mu   sync.Mutex
	errs []ingress.PortError
}

func (p *portSource) PortErrors(context.Context) ([]ingress.PortError, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.errs, nil
}

func (p *portSource) set(errs ...ingress.PortError) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.errs = errs
}

// TestWatchPortsRecordsEvents: a port that cannot be published is one
// event with the stack, service and what to do; its recovery is another.
func TestWatchPortsRecordsEvents(t *testing.T) {
	st := store.OpenTest(t)
	src := &portSource{}
	src.set(ingress.PortError{Port: 8080, Service: "shop/web", Err: "listen tcp 0.0.0.0:8080: bind: address already in use"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = watchPorts(ctx, src, st, "n1", slog.New(slog.DiscardHandler)) }()
	defer func() { cancel(); <-done }()

	events := func() []string {
		es, _ := st.ListEvents(context.Background(), 0, 100)
		var out []string
		for _, e := range es {
			if strings.HasPrefix(e.Type, "ingress.port") {
				out = append(out, e.Type+" "+e.Stack+"/"+e.Service+": "+e.Message)
			}
		}
		return out
	}
	wait := func(n int) []string {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			if es := events(); len(es) >= n {
				return es
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("events %v, want %d", events(), n)
		return nil
	}
	es := wait(1)
	if !strings.HasPrefix(es[0], "ingress.port_unavailable shop/web: cannot publish port 8080: listen tcp") || !strings.Contains(es[0], "free it") {
		t.Fatalf("event %q", es[0])
	}
	src.set()
	es = wait(2)
	if len(es) != 2 || !strings.HasPrefix(es[1], "ingress.port_recovered shop/web") {
		t.Fatalf("events %v", es)
	}
}
