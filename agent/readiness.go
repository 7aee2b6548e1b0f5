package agent

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/berth-dev/berth/api"
)

// Readiness is judged the way users reach the task: from outside the
// container, over the network. A service with HTTP routes is ready when
// its first route's path answers without a server error; one with
// published ports when the first accepts a connection. Only then does it
// join traffic. The engine's health check, if any, judges liveness: an
// unhealthy task is restarted. A service with neither routes nor ports is
// ready when it runs (and is healthy, if it has a health check).
const (
	probeTimeout  = time.Second
	probeInterval = 50 * time.Millisecond
)

var probeClient = &http.Client{
	Timeout: probeTimeout,
	Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext:       (&net.Dialer{Timeout: probeTimeout}).DialContext,
	},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// hasProbe reports whether berth probes the service's readiness itself.
func hasProbe(spec *api.ServiceSpec) bool { return spec.ProbedFromOutside() }

// probeSoon checks a task that has just started a few times within
// about 60 ms, and reports whether it answered.
func probeSoon(ctx context.Context, spec *api.ServiceSpec, addr string) bool {
	wait := 4 * time.Millisecond
	for i := 0; ; i++ {
		if probeReady(ctx, spec, addr) {
			return true
		}
		if i == 4 {
			return false
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		wait *= 2
	}
}

// probeReady checks a task at addr once.
func probeReady(ctx context.Context, spec *api.ServiceSpec, addr string) bool {
	if addr == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	if len(spec.Routes) > 0 {
		r := spec.Routes[0]
		path := r.PathPrefix
		if path == "" {
			path = "/"
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(addr, strconv.Itoa(int(r.Port)))+path, nil)
		if err != nil {
			return false
		}
		if r.Host != "" {
			req.Host = r.Host
		}
		req.Header.Set("User-Agent", "berth-readiness")
		resp, err := probeClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode < 500
	}
	for _, p := range spec.Ports {
		if p.Target == 0 || (p.Protocol != "" && p.Protocol != "tcp") {
			continue
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(addr, strconv.Itoa(int(p.Target))))
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	return false
}
