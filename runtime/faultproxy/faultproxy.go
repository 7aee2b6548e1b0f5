// Package faultproxy is a fault-injecting proxy for a container engine's
// API socket: berth's tests and benchmarks put it between the agent and
// the real Docker Engine (DOCKER_HOST=unix://PROXY) and make the engine
// hang, slow down, fail or drop connections on demand, for every request
// or only for those whose path contains a given string (a partial hang).
//
// It proxies HTTP, not bytes, so that a mode applies to the next request
// even on a kept-alive connection, as a wedged daemon's would.
package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// Mode is how the proxy treats a request that matches.
type Mode string

// Modes.
const (
	// Pass forwards requests unchanged.
	Pass Mode = "pass"
	// Hang holds requests without an answer until the mode changes (then
	// they are handled by the new mode) or their client gives up.
	Hang Mode = "hang"
	// Slow forwards requests after a delay.
	Slow Mode = "slow"
	// Error answers 500 with an engine-style JSON error.
	Error Mode = "error"
	// Drop closes the connection without an answer.
	Drop Mode = "drop"
)

// Proxy is a running fault-injecting proxy.
type Proxy struct {
	path string
	srv  *http.Server
	rp   *httputil.ReverseProxy
	done chan struct{}

	mu      sync.Mutex
	mode    Mode
	delay   time.Duration
	match   string
	changed chan struct{} // closed and replaced on every Set
	since   time.Time
	hits    int
	held    int // requests held by Hang right now
	maxHeld int
}

// Start listens on the unix socket path and forwards to the engine's unix
// socket target. Close stops it.
func Start(path, target string) (*Proxy, error) {
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("fault proxy: listen on %s: %w", path, err)
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", target)
		},
		MaxIdleConnsPerHost: 16,
	}
	p := &Proxy{path: path, mode: Pass, changed: make(chan struct{}), done: make(chan struct{}), since: time.Now()}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme = "http"
			r.Out.URL.Host = "docker"
			r.Out.Host = r.In.Host
		},
		Transport:     tr,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if !errors.Is(err, context.Canceled) {
				http.Error(w, `{"message":"fault proxy: `+jsonEscape(err.Error())+`"}`, http.StatusBadGateway)
			}
		},
	}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// Host is the DOCKER_HOST value that reaches the proxy.
func (p *Proxy) Host() string { return (&url.URL{Scheme: "unix", Path: p.path}).String() }

// Set changes the mode. match, when not empty, limits the fault to
// requests whose path contains it; delay is Slow's delay.
func (p *Proxy) Set(mode Mode, delay time.Duration, match string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode, p.delay, p.match = mode, delay, match
	p.since = time.Now()
	p.hits = 0
	p.maxHeld = p.held
	close(p.changed)
	p.changed = make(chan struct{})
}

// Since is when the current mode was set, and Hits how many requests it
// has caught since.
func (p *Proxy) Since() (time.Time, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.since, p.hits
}

// Close stops the proxy and releases hung requests.
func (p *Proxy) Close() error {
	close(p.done)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := p.srv.Shutdown(ctx)
	if err != nil {
		_ = p.srv.Close()
	}
	_ = os.Remove(p.path)
	return nil
}

func (p *Proxy) current(r *http.Request) (Mode, time.Duration, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == Pass || (p.match != "" && !strings.Contains(r.URL.Path, p.match)) {
		return Pass, 0, p.changed
	}
	p.hits++
	return p.mode, p.delay, p.changed
}

// ServeHTTP applies the current mode to a request.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for {
		mode, delay, changed := p.current(r)
		switch mode {
		case Hang:
			p.hold(1)
			select {
			case <-changed:
				p.hold(-1)
				continue // handle it by the new mode
			case <-r.Context().Done():
			case <-p.done:
			}
			p.hold(-1)
			return
		case Slow:
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		case Error:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"message":"injected engine error"}` + "\n"))
			return
		case Drop:
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		}
		p.rp.ServeHTTP(w, r)
		return
	}
}

func (p *Proxy) hold(d int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held += d
	p.maxHeld = max(p.maxHeld, p.held)
}

// Held reports how many requests the proxy holds now, and the most it
// held at once since the mode was set: what piles up on a wedged engine.
func (p *Proxy) Held() (now, most int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held, p.maxHeld
}

func jsonEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", " ").Replace(s)
}
