package ingress

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Options configure a Proxy.
type Options struct {
	// DialTimeout bounds connecting to a task (default 2s).
	DialTimeout time.Duration
	// EjectFor keeps an endpoint that refused a connection out of the
	// pool for this long (default 5s): passive health checking.
	EjectFor time.Duration
	// Retries is how many other endpoints a request that could not
	// connect tries (default 2). Only requests that sent no byte are
	// retried, so retries never duplicate work.
	Retries int
	Logger  *slog.Logger
}

// Proxy is the HTTP side of the ingress: an http.Handler routing by host
// and path prefix to the current Table's endpoints.
type Proxy struct {
	opts  Options
	log   *slog.Logger
	table atomic.Pointer[compiled]
	up    *upstreams

	mu     sync.Mutex
	states map[string]*endpoint // by task+addr: survives table generations
	stats  statsSet             // per route and revision: survives generations
}

// endpoint is the live state of one endpoint across generations.
type endpoint struct {
	Endpoint
	*counters
	k string // Endpoint.key()
}

// counters belong to the task's address, not to one generation's view of
// it: a new weight or revision makes a new endpoint sharing them, so
// requests in flight on the old one still count (and uncount) for Drain.
type counters struct {
	inflight  atomic.Int64
	ejectedAt atomic.Int64 // unix nanos until which it is ejected
	requests  atomic.Int64
	failures  atomic.Int64
}

// key identifies an endpoint across generations.
func (e Endpoint) key() string { return e.TaskID + "@" + e.Addr }

// New returns a proxy with an empty table.
func New(opts Options) *Proxy {
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 2 * time.Second
	}
	if opts.EjectFor <= 0 {
		opts.EjectFor = 5 * time.Second
	}
	if opts.Retries < 0 {
		opts.Retries = 0
	} else if opts.Retries == 0 {
		opts.Retries = 2
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{opts: opts, log: opts.Logger, states: map[string]*endpoint{}}
	p.up = newUpstreams(opts.DialTimeout)
	p.table.Store(&compiled{byHost: map[string][]*route{}})
	return p
}

// Update replaces the routing table with a new generation. Endpoints that
// left it get no new requests; Drain waits for their requests in flight.
func (p *Proxy) Update(t Table) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	live := map[string]bool{}
	c, err := compile(t, func(ep Endpoint) *endpoint {
		k := ep.key()
		live[k] = true
		st, ok := p.states[k]
		if !ok {
			st = &endpoint{Endpoint: ep, counters: &counters{}, k: k}
			p.states[k] = st
		}
		if st.Endpoint != ep {
			// Weight or revision changed: the old generation keeps its
			// view, the counters are shared.
			st = &endpoint{Endpoint: ep, counters: st.counters, k: k}
			p.states[k] = st
		}
		return st
	})
	if err != nil {
		return err
	}
	for _, rs := range c.byHost {
		for _, rt := range rs {
			rt.rp = p.reverseProxy(rt)
			rt.stats = map[int]*revCounters{}
			for _, ep := range rt.eps {
				if _, ok := rt.stats[ep.Revision]; !ok {
					rt.stats[ep.Revision] = p.stats.get(statsKey{rt.Name, rt.Host, rt.PathPrefix, ep.Revision})
				}
			}
		}
	}
	for k, st := range p.states {
		if !live[k] && st.inflight.Load() == 0 {
			delete(p.states, k)
		}
	}
	// Connections kept to endpoints that left are of no more use.
	p.up.closeIdle(live)
	p.table.Store(c)
	return nil
}

// Drain waits until no request is in flight on the task's endpoints, or
// ctx ends. Call it after an Update that removed the task.
func (p *Proxy) Drain(ctx context.Context, taskID string) error {
	// A request that read the previous generation just before the Update
	// may not have counted itself in flight yet; give it time to.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(drainSettle):
	}
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if p.inflightOf(taskID) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (p *Proxy) inflightOf(taskID string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	for _, st := range p.states {
		if st.TaskID == taskID {
			n += st.inflight.Load()
		}
	}
	return n
}

// ServeHTTP routes one request.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt := p.table.Load().match(r.Host, r.URL.Path)
	if rt == nil {
		http.Error(w, "berth: no route for "+r.Host+r.URL.Path, http.StatusNotFound)
		return
	}
	if len(rt.eps) == 0 {
		http.Error(w, "berth: no healthy task for "+rt.Name, http.StatusServiceUnavailable)
		return
	}
	if r.Header.Get("X-Request-Id") == "" {
		r.Header.Set("X-Request-Id", requestID())
	}
	if rt.Timeout > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), rt.Timeout)
		defer cancel()
		r = r.WithContext(ctx)
	}
	rt.rp.ServeHTTP(w, r)
}

// Stats returns the counters of every route and revision seen.
func (p *Proxy) Stats() []RevisionStats { return p.stats.snapshot() }

func (p *Proxy) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	status := errorStatus(err)
	p.log.Debug("proxy error", "host", r.Host, "path", r.URL.Path, "status", status, "err", err)
	w.WriteHeader(status)
}

// errorStatus is the status the client gets when a request failed.
func errorStatus(err error) int {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads the status.
		return 499
	case errors.Is(err, errNoEndpoint):
		return http.StatusServiceUnavailable
	}
	return http.StatusBadGateway
}

var errNoEndpoint = errors.New("no endpoint could be reached")

// drainSettle is how long Drain waits before it trusts the in-flight count.
const drainSettle = 200 * time.Millisecond

// reverseProxy returns the handler of one route of one generation.
func (p *Proxy) reverseProxy(rt *route) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetXForwarded()
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = pr.In.Host
			pr.Out.Host = pr.In.Host
		},
		Transport:    &balancer{p: p, rt: rt},
		BufferPool:   bufferPool{},
		ErrorHandler: p.proxyError,
	}
}

// balancer is a route's RoundTripper: it picks an endpoint per attempt
// and retries another one when a connection could not be made.
type balancer struct {
	p  *Proxy
	rt *route
}

func (b *balancer) RoundTrip(req *http.Request) (*http.Response, error) {
	rt := b.rt
	var tried []*endpoint
	var lastErr error
	start := time.Now()
	for attempt := 0; attempt <= b.p.opts.Retries; attempt++ {
		ep := pick(rt, tried, time.Now().UnixNano())
		if ep == nil {
			break
		}
		tried = append(tried, ep)
		ep.inflight.Add(1)
		ep.requests.Add(1)
		req.URL.Host = ep.Addr
		resp, err := b.p.up.roundTrip(req, ep.k, ep.Addr)
		if err == nil {
			resp.Body = &countedBody{ReadCloser: resp.Body, ep: ep}
			rt.observe(ep.Revision, resp.StatusCode, time.Since(start))
			return resp, nil
		}
		ep.inflight.Add(-1)
		lastErr = err
		if !notConnected(err) || req.Context().Err() != nil {
			rt.observe(ep.Revision, errorStatus(err), time.Since(start))
			return nil, err
		}
		// Passive health check: the task refused or did not answer the
		// connection; keep it out for a while and try another.
		ep.failures.Add(1)
		ep.ejectedAt.Store(time.Now().Add(b.p.opts.EjectFor).UnixNano())
		b.p.log.Debug("endpoint ejected", "route", rt.Name, "addr", ep.Addr, "err", err)
	}
	if lastErr == nil {
		lastErr = errNoEndpoint
	}
	if n := len(tried); n > 0 {
		rt.observe(tried[n-1].Revision, http.StatusServiceUnavailable, time.Since(start))
	}
	return nil, errors.Join(errNoEndpoint, lastErr)
}

// notConnected reports errors that happen before any byte of the request
// was sent: safe to retry elsewhere.
func notConnected(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// countedBody ends a request's in-flight count when its body is closed.
type countedBody struct {
	io.ReadCloser
	ep   *endpoint
	once sync.Once
}

func (c *countedBody) Close() error {
	err := c.ReadCloser.Close()
	c.once.Do(func() { c.ep.inflight.Add(-1) })
	return err
}

// Write lets ReverseProxy use the body of a 101 Switching Protocols
// response as the upgraded connection.
func (c *countedBody) Write(p []byte) (int, error) {
	if w, ok := c.ReadCloser.(io.Writer); ok {
		return w.Write(p)
	}
	return 0, errors.New("body is not writable")
}

// pick chooses an endpoint not yet tried: first a revision by weight (so a
// canary gets its share), then the less loaded of two random endpoints of
// that revision (power of two choices). Ejected endpoints are used only
// when nothing else is left.
func pick(rt *route, tried []*endpoint, now int64) *endpoint {
	if len(tried) == 0 {
		if ep := pickFast(rt, now); ep != nil {
			return ep
		}
	}
	cands := make([]*endpoint, 0, len(rt.eps))
	for _, ep := range rt.eps {
		if !contains(tried, ep) && ep.ejectedAt.Load() < now {
			cands = append(cands, ep)
		}
	}
	if len(cands) == 0 {
		for _, ep := range rt.eps {
			if !contains(tried, ep) {
				cands = append(cands, ep)
			}
		}
	}
	switch len(cands) {
	case 0:
		return nil
	case 1:
		return cands[0]
	}
	cands = byRevision(cands)
	a := cands[rand.IntN(len(cands))]
	b := cands[rand.IntN(len(cands))]
	if b.inflight.Load() < a.inflight.Load() {
		return b
	}
	return a
}

// pickFast is the common case without allocation: one revision, nothing
// tried yet, the two sampled endpoints not ejected.
func pickFast(rt *route, now int64) *endpoint {
	if rt.mixed {
		return nil
	}
	n := len(rt.eps)
	if n == 1 {
		if ep := rt.eps[0]; ep.ejectedAt.Load() < now {
			return ep
		}
		return nil
	}
	a, b := rt.eps[rand.IntN(n)], rt.eps[rand.IntN(n)]
	if a.ejectedAt.Load() >= now || b.ejectedAt.Load() >= now {
		return nil
	}
	if b.inflight.Load() < a.inflight.Load() {
		return b
	}
	return a
}

// byRevision narrows candidates to one revision chosen by weight.
func byRevision(cands []*endpoint) []*endpoint {
	first := cands[0].Revision
	mixed := false
	for _, c := range cands[1:] {
		if c.Revision != first {
			mixed = true
			break
		}
	}
	if !mixed {
		return cands
	}
	total := 0
	for _, c := range cands {
		total += c.Weight
	}
	n := rand.IntN(total)
	var rev int
	for _, c := range cands {
		n -= c.Weight
		if n < 0 {
			rev = c.Revision
			break
		}
	}
	out := cands[:0:0]
	for _, c := range cands {
		if c.Revision == rev {
			out = append(out, c)
		}
	}
	return out
}

func contains(eps []*endpoint, ep *endpoint) bool {
	for _, e := range eps {
		if e == ep {
			return true
		}
	}
	return false
}

// Request IDs are a random per-process prefix and a counter: unique, and
// without a system call per request.
var (
	idPrefix  = func() string { var b [6]byte; _, _ = crand.Read(b[:]); return hex.EncodeToString(b[:]) }()
	idCounter atomic.Uint64
)

func requestID() string {
	return idPrefix + "-" + strconv.FormatUint(idCounter.Add(1), 36)
}

// bufferPool recycles copy buffers between requests.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *(buffers.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }
