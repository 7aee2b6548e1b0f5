package ingress

// The fast path is berth's own HTTP/1.1 serving loop for the ingress's
// plain HTTP listener, in front of the same routing, balancing, retries,
// stats and drain accounting as the net/http path (ServeHTTP).
//
// Why it exists: on a proxy moving small keep-alive requests, net/http's
// server spent about a third of the CPU finishing responses and parsing
// requests into maps and URLs, and berth's own code under 3 %; berth did
// 0.59× nginx's requests/s. This loop parses a head in place from the
// connection's read buffer, writes the request upstream and relays the
// response on the connection's goroutine, with no per-request allocation
// in the common case.
//
// When it applies: HTTP/1.1 requests in origin form (GET /path HTTP/1.1)
// whose head fits in the 4 KiB read buffer, with a Content-Length, a
// chunked body or no body. A downstream connection keeps the upstream
// connection of its last request (connection affinity) while it is busy
// and for affinityHold after, then returns it to the shared pool; the
// balancer still chooses the endpoint of every request.
//
// When it falls back: the first request it does not serve hands the whole
// connection, with the bytes already read, to net/http for the rest of its
// life: HTTP/1.0, the HTTP/2 preface (h2c), Upgrade (WebSocket), Expect
// (100-continue), transfer codings other than chunked, absolute-form or
// CONNECT targets, heads over 4 KiB, and paths in ServeOptions.
// FallbackPaths (the ACME HTTP-01 challenges). TLS listeners are served by
// net/http throughout: there the handshake and HTTP/2 dominate.
//
// What it refuses, answering 400 and closing: both Content-Length and
// Transfer-Encoding, more than one or an invalid Content-Length, a missing
// or repeated Host, line folding, control characters, malformed chunked
// framing (every chunk line must end in CRLF).
//
// What differs from net/http: a client that goes away while the task has
// not yet answered is noticed when the response is written, not at once
// (net/http's background read cancels the upstream request early).

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ServeOptions configure Proxy.Serve.
type ServeOptions struct {
	// Fallback serves the connections the fast path hands over; its
	// Handler is the Proxy, or a handler wrapping it. Its IdleTimeout and
	// ReadHeaderTimeout apply to the fast path too (defaults 2 min, 30 s).
	Fallback *http.Server
	// FallbackPaths are path prefixes served by Fallback's handler rather
	// than proxied (ACME's HTTP-01 challenges).
	FallbackPaths []string
	// Grace bounds a graceful shutdown once ctx ends (default 10 s).
	Grace time.Duration
}

// affinityHold is how long an idle downstream connection keeps its
// upstream connection before returning it to the shared pool. A client
// sending requests back to back reuses it; idle keep-alive clients do
// not pin a task connection each.
const affinityHold = 100 * time.Millisecond

// fastReadBuffer is the downstream read buffer: held by every open
// connection, so small; a longer head goes to net/http.
const fastReadBuffer = 4 << 10

// Serve serves plain HTTP on ln with the fast path until ctx ends, then
// shuts down gracefully: idle connections close, requests in flight get
// opts.Grace to finish. It returns once every connection is closed.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener, opts ServeOptions) error {
	if opts.Fallback == nil {
		return errors.New("ingress: Serve needs a fallback server")
	}
	if opts.Grace <= 0 {
		opts.Grace = 10 * time.Second
	}
	s := &h1Server{p: p, paths: opts.FallbackPaths, idle: opts.Fallback.IdleTimeout,
		header: opts.Fallback.ReadHeaderTimeout, conns: map[*h1Conn]struct{}{}, handoff: newHandoff(ln.Addr())}
	if s.idle <= 0 {
		s.idle = 2 * time.Minute
	}
	if s.header <= 0 {
		s.header = 30 * time.Second
	}
	fallbackErr := make(chan error, 1)
	go func() { fallbackErr <- opts.Fallback.Serve(s.handoff) }()
	acceptErr := make(chan error, 1)
	go func() { acceptErr <- s.accept(ln) }()

	var err error
	select {
	case <-ctx.Done():
	case err = <-acceptErr:
		acceptErr <- err
	case err = <-fallbackErr:
		fallbackErr <- err
	}
	_ = ln.Close()
	if aerr := <-acceptErr; err == nil {
		err = aerr
	}
	sctx, cancel := context.WithTimeout(context.Background(), opts.Grace)
	defer cancel()
	fallbackDone := make(chan struct{})
	go func() {
		defer close(fallbackDone)
		if opts.Fallback.Shutdown(sctx) != nil {
			_ = opts.Fallback.Close()
		}
	}()
	s.shutdown(sctx)
	<-fallbackDone
	if ferr := <-fallbackErr; err == nil && !errors.Is(ferr, http.ErrServerClosed) {
		err = ferr
	}
	return err
}

type h1Server struct {
	p            *Proxy
	paths        []string
	idle, header time.Duration
	handoff      *handoff

	closing atomic.Bool
	mu      sync.Mutex
	conns   map[*h1Conn]struct{}
	wg      sync.WaitGroup
}

func (s *h1Server) accept(ln net.Listener) error {
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors and the like: back off as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.p.log.Warn("ingress accept", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		c := &h1Conn{s: s, p: s.p, nc: nc, br: bufio.NewReaderSize(nc, fastReadBuffer)}
		if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
			c.clientIP = a.IP.String()
		} else if h, _, err := net.SplitHostPort(nc.RemoteAddr().String()); err == nil {
			c.clientIP = h
		}
		c.parseResp = func(b []byte) (int, error) { return parseResponse(b, &c.resp) }
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go c.serve()
	}
}

// shutdown closes idle connections now and the others once their request
// is done, or all of them when ctx ends. accept has returned.
func (s *h1Server) shutdown(ctx context.Context) {
	s.closing.Store(true)
	s.mu.Lock()
	for c := range s.conns {
		if c.state.Load() == stateIdle {
			_ = c.nc.SetReadDeadline(time.Unix(1, 0)) // wakes its read
		}
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			_ = c.nc.Close()
		}
		s.mu.Unlock()
		<-done
	}
}

const (
	stateBusy int32 = iota
	stateIdle       // waiting for a request: shutdown may wake it
)

// h1Conn is one downstream connection on the fast path.
type h1Conn struct {
	s         *h1Server
	p         *Proxy
	nc        net.Conn
	br        *bufio.Reader
	clientIP  string
	state     atomic.Int32
	req       h1Request
	resp      h1Response
	parseResp func([]byte) (int, error)

	up    *upConn // the affine upstream connection, if any
	upKey string  // its endpoint's key

	watch clientWatch

	handedOver bool
}

// watchAfter is how long a request waits for the task's answer before
// its connection is watched for the client leaving.
const watchAfter = 100 * time.Millisecond

// clientWatch notices a client that leaves while its request waits for
// the task's answer, as net/http's background read does: once the wait
// passes watchAfter, a goroutine peeks at the client's connection, and
// end of file or an error there closes the upstream connection, which
// ends the wait (status 499; the task sees its request cancelled instead
// of working on for nobody). Fast answers never start the goroutine; a
// connection's timer is made once and reused.
type clientWatch struct {
	timer *time.Timer
	done  chan struct{} // a run of watchClient ended
	mu    sync.Mutex
	uc    *upConn // armed: the connection the request waits on
	run   bool    // watchClient is peeking
	gone  bool    // the client left
}

// armWatch starts the timer for a request that now waits on uc.
func (c *h1Conn) armWatch(uc *upConn) {
	w := &c.watch
	w.mu.Lock()
	w.uc, w.gone = uc, false
	w.mu.Unlock()
	if w.timer == nil {
		w.done = make(chan struct{}, 1)
		w.timer = time.AfterFunc(watchAfter, c.watchClient)
		return
	}
	w.timer.Reset(watchAfter)
}

// disarmWatch ends the watch of the request that waited, and reports
// whether its client left.
func (c *h1Conn) disarmWatch() bool {
	w := &c.watch
	w.timer.Stop()
	w.mu.Lock()
	w.uc = nil
	run := w.run
	if run {
		_ = c.nc.SetReadDeadline(time.Unix(1, 0)) // wakes the peek
	}
	w.mu.Unlock()
	if run {
		<-w.done
	} else {
		select { // a run that ended on its own
		case <-w.done:
		default:
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.gone
}

func (c *h1Conn) watchClient() {
	w := &c.watch
	w.mu.Lock()
	uc := w.uc
	if uc == nil || w.run {
		w.mu.Unlock()
		return // disarmed already, or a late run of the timer
	}
	w.run = true
	_ = c.nc.SetReadDeadline(time.Time{}) // next() sets it again for the next request
	w.mu.Unlock()
	_, err := c.br.Peek(1) // a pipelined request is kept buffered
	w.mu.Lock()
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		w.gone = true
		_ = uc.Close()
	}
	w.done <- struct{}{}
	w.run = false
	w.mu.Unlock()
}

func (c *h1Conn) serve() {
	defer func() {
		if v := recover(); v != nil {
			c.p.log.Error("ingress connection panicked", "panic", fmt.Sprint(v), "remote", c.clientIP)
		}
		if c.up != nil {
			_ = c.up.Close()
		}
		if !c.handedOver {
			_ = c.nc.Close()
		}
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
		c.s.wg.Done()
	}()
	for {
		n, err := c.next()
		if err != nil {
			if err == errFallback {
				c.handOver()
			} else if refused, ok := err.(*h1Error); ok {
				c.writeSimple(refused.status, http.StatusText(refused.status)+": "+refused.msg, true)
				c.lingerClose()
			}
			return // or closed, timed out, shutting down
		}
		if c.fallbackPath() {
			c.handOver()
			return
		}
		_, _ = c.br.Discard(n)
		if !c.handle() || c.s.closing.Load() {
			return
		}
	}
}

var errShuttingDown = errors.New("shutting down")

// next waits for the next request head and parses it. While the
// connection is idle it keeps its upstream connection for affinityHold,
// then returns it to the pool and waits up to the idle timeout; once a
// head has begun it must be complete within the header timeout.
func (c *h1Conn) next() (int, error) {
	if buf, _ := c.br.Peek(c.br.Buffered()); len(buf) > 0 {
		if n, err := parseRequest(buf, &c.req); err != errIncomplete {
			return n, err // pipelined
		}
	}
	now := time.Now()
	idleUntil, headerUntil := now.Add(c.s.idle), now.Add(c.s.header)
	partial := c.br.Buffered() > 0
	hold := c.up != nil
	switch {
	case hold:
		_ = c.nc.SetReadDeadline(now.Add(affinityHold))
	case partial:
		_ = c.nc.SetReadDeadline(headerUntil)
	default:
		_ = c.nc.SetReadDeadline(idleUntil)
	}
	if !partial && !c.idle() {
		return 0, errShuttingDown
	}
	for {
		if c.br.Buffered() == c.br.Size() {
			return 0, errFallback // a head longer than the fast path's buffer
		}
		if _, err := c.br.Peek(c.br.Buffered() + 1); err != nil {
			if !hold || !errors.Is(err, os.ErrDeadlineExceeded) {
				return 0, err
			}
			hold = false
			c.releaseUpstream()
			if partial {
				_ = c.nc.SetReadDeadline(headerUntil)
			} else {
				_ = c.nc.SetReadDeadline(idleUntil)
				if !c.idle() {
					return 0, errShuttingDown
				}
			}
			continue
		}
		c.state.Store(stateBusy)
		if !partial {
			partial = true
			headerUntil = time.Now().Add(c.s.header)
			if !hold {
				_ = c.nc.SetReadDeadline(headerUntil)
			}
		}
		buf, _ := c.br.Peek(c.br.Buffered())
		if n, err := parseRequest(buf, &c.req); err != errIncomplete {
			return n, err
		}
	}
}

// lingerClose ends a refused connection the way net/http does: it sends
// FIN and reads what the client still sends for a moment, so that closing
// with unread data (a reset) does not destroy the answer before the
// client has read it.
func (c *h1Conn) lingerClose() {
	tc, ok := c.nc.(*net.TCPConn)
	if !ok || tc.CloseWrite() != nil {
		return
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	_, _ = c.br.Discard(c.br.Buffered())
	var buf [4 << 10]byte
	for total := 0; total < 1<<20; {
		n, err := c.nc.Read(buf[:])
		if err != nil {
			return
		}
		total += n
	}
}

// idle marks the connection idle after its read deadline was set, so a
// shutdown that sees it idle may cut the wait short; false when the
// server is shutting down.
func (c *h1Conn) idle() bool {
	c.state.Store(stateIdle)
	return !c.s.closing.Load()
}

func (c *h1Conn) fallbackPath() bool {
	for _, p := range c.s.paths {
		if len(c.req.path) >= len(p) && string(c.req.path[:len(p)]) == p {
			return true
		}
	}
	return false
}

// handOver gives the connection, with what was read of it, to net/http.
func (c *h1Conn) handOver() {
	c.releaseUpstream()
	_ = c.nc.SetReadDeadline(time.Time{})
	c.handedOver = true
	c.s.handoff.give(&replayConn{Conn: c.nc, r: c.br})
}

func (c *h1Conn) releaseUpstream() {
	if c.up != nil {
		c.p.up.put(c.upKey, c.up)
		c.up = nil
	}
}

// handle serves one request whose head was parsed and consumed; it
// reports whether the connection may serve another.
func (c *h1Conn) handle() bool {
	req := &c.req
	start := time.Now()
	path := req.path
	if indexByte(path, '%') >= 0 {
		// Routes match the decoded path, as with net/http's URL.Path.
		p, err := url.PathUnescape(string(path))
		if err != nil {
			c.writeSimple(http.StatusBadRequest, "400 Bad Request: invalid escape in path", true)
			return false
		}
		path = []byte(p)
	}
	rt := c.p.table.Load().matchBytes(req.host, path)
	if rt == nil {
		return c.writeSimple(http.StatusNotFound, "berth: no route for "+string(req.host)+string(req.path), req.close || req.hasBody())
	}
	if len(rt.eps) == 0 {
		return c.writeSimple(http.StatusServiceUnavailable, "berth: no healthy task for "+rt.Name, req.close || req.hasBody())
	}
	return c.forward(rt, start)
}

// forward is the fast path's balancer.RoundTrip: pick an endpoint, try
// another one when the connection could not be made, count the request
// in flight until its response is relayed.
func (c *h1Conn) forward(rt *route, start time.Time) bool {
	var deadline time.Time
	if rt.Timeout > 0 {
		deadline = start.Add(rt.Timeout)
	}
	id := idCounter.Add(1) // one X-Request-Id across retries
	var triedBuf [4]*endpoint
	tried := triedBuf[:0]
	var lastErr error
	now := start
	for attempt := 0; attempt <= c.p.opts.Retries; attempt++ {
		if attempt > 0 {
			now = time.Now()
		}
		ep := pick(rt, tried, now.UnixNano())
		if ep == nil {
			break
		}
		tried = append(tried, ep)
		ep.inflight.Add(1)
		ep.requests.Add(1)
		n, err := c.send(ep, deadline, id)
		if err == nil {
			keep := c.relay(n, rt, ep.Revision, start)
			ep.inflight.Add(-1)
			return keep
		}
		ep.inflight.Add(-1)
		lastErr = err
		if !notConnected(err) || !deadline.IsZero() && !time.Now().Before(deadline) {
			status := c.errorStatus(err)
			rt.observe(ep.Revision, status, time.Since(start))
			c.p.log.Debug("proxy error", "host", string(c.req.host), "path", string(c.req.path), "status", status, "err", err)
			if status == 499 {
				return false
			}
			return c.writeSimple(status, "", c.req.close || c.req.hasBody())
		}
		// Passive health check, as in balancer.RoundTrip.
		ep.failures.Add(1)
		ep.ejectedAt.Store(time.Now().Add(c.p.opts.EjectFor).UnixNano())
		c.p.log.Debug("endpoint ejected", "route", rt.Name, "addr", ep.Addr, "err", err)
	}
	if n := len(tried); n > 0 {
		rt.observe(tried[n-1].Revision, http.StatusServiceUnavailable, time.Since(start))
	}
	c.p.log.Debug("proxy error", "host", string(c.req.host), "path", string(c.req.path), "status", 503, "err", errors.Join(errNoEndpoint, lastErr))
	return c.writeSimple(http.StatusServiceUnavailable, "", c.req.close || c.req.hasBody())
}

var (
	// errClientGone: the client's request body could not be read.
	errClientGone = errors.New("client went away")
	// errBadBody: the client's chunked body is malformed.
	errBadBody = errors.New("malformed request body")
)

func (c *h1Conn) errorStatus(err error) int {
	switch {
	case errors.Is(err, errClientGone):
		return 499
	case errors.Is(err, errBadBody):
		return http.StatusBadRequest
	case isTimeout(err):
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// isTimeout: the route's timeout ran out (the only deadline set on
// upstream connections).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// send writes the request to ep and reads the response head, returning
// its length. Like upstreams.roundTrip, a request without a body that
// failed on a reused connection before any response byte is sent again
// once on a new connection: the task may have closed an idle connection.
func (c *h1Conn) send(ep *endpoint, deadline time.Time, id uint64) (int, error) {
	for attempt := 0; ; attempt++ {
		uc, reused, err := c.upstream(ep, attempt > 0, deadline)
		if err != nil {
			return 0, err
		}
		n, err := c.exchange(uc, deadline, id)
		if err == nil {
			return n, nil
		}
		got := uc.br.Buffered() > 0
		_ = uc.Close()
		c.up = nil
		if errors.Is(err, errClientGone) || errors.Is(err, errBadBody) {
			return 0, err
		}
		if reused {
			c.p.up.dropIdle(ep.k)
			if attempt == 0 && !got && !c.req.hasBody() && !isTimeout(err) {
				continue
			}
			return 0, errors.Join(errReusedConnFailed, err)
		}
		return 0, err
	}
}

// upstream returns a connection to ep: the affine one, a pooled one or a
// new one (fresh: always new).
func (c *h1Conn) upstream(ep *endpoint, fresh bool, deadline time.Time) (*upConn, bool, error) {
	uc, reused := c.up, true
	if fresh || uc == nil || c.upKey != ep.k {
		c.releaseUpstream()
		var err error
		uc, reused, err = c.p.up.get(context.Background(), ep.k, ep.Addr, fresh, deadline)
		if err != nil {
			return nil, false, err
		}
		c.up, c.upKey = uc, ep.k
	}
	if !deadline.IsZero() || uc.deadline {
		_ = uc.SetDeadline(deadline)
		uc.deadline = !deadline.IsZero()
	}
	return uc, reused, nil
}

// exchange writes the request head and body to uc and waits for the
// response head.
func (c *h1Conn) exchange(uc *upConn, deadline time.Time, id uint64) (int, error) {
	req := &c.req
	writeRequestHead(uc.bw, req, c.clientIP, id)
	if req.hasBody() {
		_ = c.nc.SetReadDeadline(deadline) // the route's timeout, or none
		var err error
		if req.chunked {
			err = copyChunked(uc.bw, c.br)
		} else {
			err = copyBody(uc.bw, c.br, req.contentLength)
		}
		var we *writeError
		switch {
		case errors.Is(err, errBadChunk):
			return 0, errors.Join(errBadBody, err)
		case err != nil && !errors.As(err, &we):
			return 0, errors.Join(errClientGone, err)
		}
		if err != nil {
			return 0, err
		}
	}
	if err := uc.bw.Flush(); err != nil {
		return 0, err
	}
	c.armWatch(uc)
	n, err := readHead(uc.br, c.parseResp)
	if c.disarmWatch() {
		return 0, errors.Join(errClientGone, errClientLeft)
	}
	return n, err
}

var errClientLeft = errors.New("client closed its connection while waiting for the response")

// writeRequestHead writes the request as the task gets it: hop-by-hop
// fields dropped, X-Forwarded-* set by the proxy, an X-Request-Id added
// when the client sent none.
func writeRequestHead(w *bufio.Writer, req *h1Request, clientIP string, id uint64) {
	_, _ = w.Write(req.method)
	_ = w.WriteByte(' ')
	_, _ = w.Write(req.target)
	_, _ = w.WriteString(" HTTP/1.1\r\nHost: ")
	_, _ = w.Write(req.host)
	_, _ = w.WriteString("\r\n")
	for _, h := range req.headers {
		if len(req.connection) > 0 && listed(req.connection, h.name) {
			continue
		}
		writeField(w, h)
	}
	if req.teTrailers {
		_, _ = w.WriteString("Te: trailers\r\n")
	}
	_, _ = w.WriteString("X-Forwarded-For: ")
	_, _ = w.WriteString(clientIP)
	_, _ = w.WriteString("\r\nX-Forwarded-Host: ")
	_, _ = w.Write(req.host)
	_, _ = w.WriteString("\r\nX-Forwarded-Proto: http\r\n")
	if !req.hasID {
		_, _ = w.WriteString("X-Request-Id: ")
		_, _ = w.WriteString(idPrefix)
		_ = w.WriteByte('-')
		_, _ = w.Write(strconv.AppendUint(w.AvailableBuffer(), id, 36))
		_, _ = w.WriteString("\r\n")
	}
	switch {
	case req.chunked:
		_, _ = w.WriteString("Transfer-Encoding: chunked\r\n")
	case req.contentLength >= 0:
		_, _ = w.WriteString("Content-Length: ")
		_, _ = w.Write(strconv.AppendInt(w.AvailableBuffer(), req.contentLength, 10))
		_, _ = w.WriteString("\r\n")
	}
	_, _ = w.WriteString("\r\n")
}

func writeField(w *bufio.Writer, h h1Header) {
	_, _ = w.Write(h.name)
	_, _ = w.WriteString(": ")
	_, _ = w.Write(h.value)
	_, _ = w.WriteString("\r\n")
}

// relay writes the response whose head (n bytes) is in the upstream
// connection's buffer to the client and streams its body. It counts the
// request in the route's stats once the final head is known.
func (c *h1Conn) relay(n int, rt *route, revision int, start time.Time) bool {
	uc, resp := c.up, &c.resp
	bw := h1Writers.Get().(*bufio.Writer)
	bw.Reset(c.nc)
	defer func() { bw.Reset(nil); h1Writers.Put(bw) }()
	// Informational responses (103 Early Hints) go ahead of the final one.
	for resp.status < 200 {
		if resp.status == http.StatusSwitchingProtocols {
			// Not asked for: requests with Upgrade never take this path.
			rt.observe(revision, http.StatusBadGateway, time.Since(start))
			c.dropUpstream()
			return c.writeSimple(http.StatusBadGateway, "", true)
		}
		c.writeResponseHead(bw, resp, false, false)
		_, _ = uc.br.Discard(n)
		if bw.Flush() != nil {
			c.dropUpstream()
			return false
		}
		var err error
		if n, err = readHead(uc.br, c.parseResp); err != nil {
			rt.observe(revision, http.StatusBadGateway, time.Since(start))
			c.dropUpstream()
			return false
		}
	}
	rt.observe(revision, resp.status, time.Since(start))
	bodiless := string(c.req.method) == "HEAD" || resp.status == http.StatusNoContent || resp.status == http.StatusNotModified
	untilClose := !bodiless && !resp.chunked && resp.contentLength < 0
	closeDown := c.req.close || untilClose || c.s.closing.Load()
	c.writeResponseHead(bw, resp, closeDown, !bodiless && resp.chunked)
	_, _ = uc.br.Discard(n)
	var err error
	switch {
	case bodiless:
	case resp.chunked:
		err = copyChunked(bw, uc.br)
	default:
		err = copyBody(bw, uc.br, resp.contentLength) // -1: until the task closes
	}
	if err == nil {
		if ferr := bw.Flush(); ferr != nil {
			err = &writeError{ferr}
		}
	}
	if err != nil || resp.close || untilClose {
		c.dropUpstream()
	}
	if err != nil {
		c.p.log.Debug("response relay failed", "route", rt.Name, "err", err)
		return false
	}
	return !closeDown
}

func (c *h1Conn) dropUpstream() {
	if c.up != nil {
		_ = c.up.Close()
		c.up = nil
	}
}

// writeResponseHead writes the task's response head without its
// hop-by-hop fields, with the proxy's own framing.
func (c *h1Conn) writeResponseHead(w *bufio.Writer, resp *h1Response, closeDown, chunked bool) {
	_, _ = w.WriteString("HTTP/1.1 ")
	_, _ = w.Write(resp.statusText)
	_, _ = w.WriteString("\r\n")
	for _, h := range resp.headers {
		if len(resp.connection) > 0 && listed(resp.connection, h.name) {
			continue
		}
		writeField(w, h)
	}
	if resp.status < 200 {
		_, _ = w.WriteString("\r\n")
		return
	}
	if !resp.hasDate {
		_, _ = w.WriteString("Date: ")
		_, _ = w.Write(httpDate())
		_, _ = w.WriteString("\r\n")
	}
	switch {
	case chunked:
		_, _ = w.WriteString("Transfer-Encoding: chunked\r\n")
	case resp.contentLength >= 0:
		_, _ = w.WriteString("Content-Length: ")
		_, _ = w.Write(strconv.AppendInt(w.AvailableBuffer(), resp.contentLength, 10))
		_, _ = w.WriteString("\r\n")
	}
	if closeDown {
		_, _ = w.WriteString("Connection: close\r\n")
	}
	_, _ = w.WriteString("\r\n")
}

// writeSimple answers the proxy's own response (an error, 404) and
// reports whether the connection may go on: not when closeAfter.
func (c *h1Conn) writeSimple(status int, body string, closeAfter bool) bool {
	bw := h1Writers.Get().(*bufio.Writer)
	bw.Reset(c.nc)
	defer func() { bw.Reset(nil); h1Writers.Put(bw) }()
	_, _ = bw.WriteString("HTTP/1.1 ")
	_, _ = bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(status), 10))
	_ = bw.WriteByte(' ')
	_, _ = bw.WriteString(http.StatusText(status))
	_, _ = bw.WriteString("\r\nDate: ")
	_, _ = bw.Write(httpDate())
	if body != "" {
		body += "\n"
		_, _ = bw.WriteString("\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff")
	}
	_, _ = bw.WriteString("\r\nContent-Length: ")
	_, _ = bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(len(body)), 10))
	if closeAfter {
		_, _ = bw.WriteString("\r\nConnection: close")
	}
	_, _ = bw.WriteString("\r\n\r\n")
	if string(c.req.method) != "HEAD" {
		_, _ = bw.WriteString(body)
	}
	return bw.Flush() == nil && !closeAfter
}

// h1Writers are the downstream write buffers, taken per response: an idle
// connection holds none.
var h1Writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 16<<10) }}

// The Date header, formatted once a second.
type cachedDate struct {
	sec int64
	b   []byte
}

var lastDate atomic.Pointer[cachedDate]

func httpDate() []byte {
	now := time.Now()
	if d := lastDate.Load(); d != nil && d.sec == now.Unix() {
		return d.b
	}
	d := &cachedDate{sec: now.Unix(), b: now.UTC().AppendFormat(nil, http.TimeFormat)}
	lastDate.Store(d)
	return d.b
}

// replayConn is a handed-over connection: reads start with the bytes the
// fast path had buffered.
type replayConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// handoff is the listener net/http serves handed-over connections from.
type handoff struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newHandoff(addr net.Addr) *handoff {
	return &handoff{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (h *handoff) give(c net.Conn) {
	select {
	case h.conns <- c:
	case <-h.done:
		_ = c.Close()
	}
}

func (h *handoff) Accept() (net.Conn, error) {
	select {
	case c := <-h.conns:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

func (h *handoff) Close() error {
	h.once.Do(func() { close(h.done) })
	return nil
}

func (h *handoff) Addr() net.Addr { return h.addr }
