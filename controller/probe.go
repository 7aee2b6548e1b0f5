package controller

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/berth-dev/berth/api"
)

// While a rollout step is watched, the orchestrator sends requests to the
// service's first HTTP route through the public ingress address: the path
// users take, through the same proxy, routes and traffic split. Their
// answers are counted by the proxy with everything else (so a step has
// samples even when users are quiet), and the probe's own outcome is a
// gate: users' view of the service, not the container's.

// ProbeInterval is the time between two probes of a watched service.
const ProbeInterval = 250 * time.Millisecond

// ProbeResult counts a watched step's probes.
type ProbeResult struct {
	OK, Failed int
	LastError  string
}

type probeTarget struct {
	url, host string
}

type probe struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	res    ProbeResult
}

// probes runs one probe loop per watched step.
type probes struct {
	ingress string // the ingress's HTTP address; empty: no probes
	client  *http.Client

	mu     sync.Mutex
	active map[baselineKey]*probe
}

func newProbes(ingress string) *probes {
	return &probes{ingress: ingress, active: map[baselineKey]*probe{},
		client: &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// target is where a service is probed: its first HTTP route.
func (p *probes) target(spec *api.ServiceSpec) (probeTarget, bool) {
	if p.ingress == "" || spec == nil || len(spec.Routes) == 0 {
		return probeTarget{}, false
	}
	r := spec.Routes[0]
	path := r.PathPrefix
	if path == "" {
		path = "/"
	}
	return probeTarget{url: "http://" + p.ingress + path, host: r.Host}, true
}

// sync starts probes for the watched steps in want and stops the others.
func (p *probes) sync(ctx context.Context, want map[baselineKey]probeTarget) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, pr := range p.active {
		if _, ok := want[k]; !ok {
			pr.cancel()
			<-pr.done
			delete(p.active, k)
		}
	}
	for k, t := range want {
		if _, ok := p.active[k]; ok {
			continue
		}
		pctx, cancel := context.WithCancel(ctx)
		pr := &probe{cancel: cancel, done: make(chan struct{})}
		p.active[k] = pr
		go pr.run(pctx, p.client, t)
	}
}

// result reads a step's probe counts.
func (p *probes) result(k baselineKey) (ProbeResult, bool) {
	p.mu.Lock()
	pr, ok := p.active[k]
	p.mu.Unlock()
	if !ok {
		return ProbeResult{}, false
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.res, true
}

// stop ends every probe loop.
func (p *probes) stop() { p.sync(context.Background(), nil) }

func (pr *probe) run(ctx context.Context, c *http.Client, t probeTarget) {
	defer close(pr.done)
	tick := time.NewTicker(ProbeInterval)
	defer tick.Stop()
	for {
		err := probeOnce(ctx, c, t)
		if ctx.Err() != nil {
			return
		}
		pr.mu.Lock()
		if err != nil {
			pr.res.Failed++
			pr.res.LastError = err.Error()
		} else {
			pr.res.OK++
		}
		pr.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// probeOnce is one request as a user makes it: an answer below 500 is
// the service answering.
func probeOnce(ctx context.Context, c *http.Client, t probeTarget) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
	if err != nil {
		return err
	}
	if t.host != "" {
		req.Host = t.host
	}
	req.Header.Set("User-Agent", "berth-rollout-probe")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("GET %s%s: %s", t.host, req.URL.Path, resp.Status)
	}
	return nil
}
