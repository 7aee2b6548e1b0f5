package ingress

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// upstreams is the proxy's HTTP/1.1 client to tasks. Unlike http.Transport
// it writes the request and reads the response on the calling goroutine,
// with no hand-off to per-connection goroutines: on a proxy that spends
// most of its time moving small requests, those hand-offs were the largest
// cost. Idle connections are kept per endpoint (task and address: a new
// task may get the address of a stopped one, whose connections are dead)
// and reused.
type upstreams struct {
	dialTimeout time.Duration
	maxIdle     int

	mu   sync.Mutex
	idle map[string][]*upConn
	// live are the endpoints of the current table (nil: not known yet);
	// a connection to another one is closed rather than kept.
	live map[string]bool
}

type upConn struct {
	net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	deadline bool // a deadline is set
}

func newUpstreams(dialTimeout time.Duration) *upstreams {
	return &upstreams{dialTimeout: dialTimeout, maxIdle: 256, idle: map[string][]*upConn{}}
}

// get returns an idle connection to the endpoint or dials one (fresh:
// always dials), within deadline if it is set.
func (u *upstreams) get(ctx context.Context, key, addr string, fresh bool, deadline time.Time) (*upConn, bool, error) {
	u.mu.Lock()
	if cs := u.idle[key]; len(cs) > 0 && !fresh {
		c := cs[len(cs)-1]
		u.idle[key] = cs[:len(cs)-1]
		u.mu.Unlock()
		return c, true, nil
	}
	u.mu.Unlock()
	d := net.Dialer{Timeout: u.dialTimeout, Deadline: deadline, KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	return &upConn{Conn: nc, br: bufio.NewReaderSize(nc, 16<<10), bw: bufio.NewWriterSize(nc, 16<<10)}, false, nil
}

func (u *upstreams) put(key string, c *upConn) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.idle[key]) >= u.maxIdle || u.live != nil && !u.live[key] {
		c.Close()
		return
	}
	u.idle[key] = append(u.idle[key], c)
}

// dropIdle closes the idle connections to one endpoint.
func (u *upstreams) dropIdle(key string) {
	u.mu.Lock()
	cs := u.idle[key]
	delete(u.idle, key)
	u.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
}

// closeIdle drops idle connections to endpoints not in keep.
func (u *upstreams) closeIdle(keep map[string]bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.live = keep
	for key, cs := range u.idle {
		if keep[key] {
			continue
		}
		for _, c := range cs {
			c.Close()
		}
		delete(u.idle, key)
	}
}

// errReusedConnFailed marks a failure on a reused idle connection before
// any response byte: the task may simply have closed it, so the request
// can be sent again on a fresh connection.
var errReusedConnFailed = errors.New("idle connection closed by the task")

// roundTrip sends req to addr. Requests with a body that could not be
// replayed are never retried.
func (u *upstreams) roundTrip(req *http.Request, key, addr string) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		c, reused, err := u.get(req.Context(), key, addr, attempt > 0, time.Time{})
		if err != nil {
			return nil, err
		}
		resp, err := u.exchange(req, key, c)
		if err == nil {
			return resp, nil
		}
		c.Close()
		if reused {
			// The task closed a kept-alive connection (it is stopping, or
			// timed the connection out): the others are likely closed too.
			u.dropIdle(key)
		}
		if reused && attempt == 0 && (req.Body == nil || req.Body == http.NoBody) {
			continue // send it again on a fresh connection
		}
		if reused {
			return nil, errors.Join(errReusedConnFailed, err)
		}
		return nil, err
	}
}

func (u *upstreams) exchange(req *http.Request, key string, c *upConn) (*http.Response, error) {
	dl, ok := req.Context().Deadline()
	_ = c.SetDeadline(dl)
	c.deadline = ok
	// A cancelled request (client gone) must not leave us blocked in a read.
	stop := context.AfterFunc(req.Context(), func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	if err := req.Write(c.bw); err != nil {
		stop()
		return nil, err
	}
	if err := c.bw.Flush(); err != nil {
		stop()
		return nil, err
	}
	resp, err := http.ReadResponse(c.br, req)
	// Informational responses (100 Continue, 103 Early Hints) precede the
	// real one; left unread, it would answer the connection's next request.
	for err == nil && resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
		resp, err = http.ReadResponse(c.br, req)
	}
	if err != nil {
		stop()
		return nil, err
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// The connection now belongs to the upgraded protocol.
		stop()
		_ = c.SetDeadline(time.Time{})
		c.deadline = false
		resp.Body = &upgradedBody{upConn: c}
		return resp, nil
	}
	resp.Body = &pooledBody{ReadCloser: resp.Body, u: u, key: key, c: c, stop: stop, reuse: !resp.Close && !req.Close}
	return resp, nil
}

// pooledBody returns the connection to the pool once the body was read to
// the end and closed.
type pooledBody struct {
	io.ReadCloser
	u     *upstreams
	key   string
	c     *upConn
	stop  func() bool
	reuse bool
	eof   bool
	done  bool
}

func (b *pooledBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *pooledBody) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	err := b.ReadCloser.Close()
	if b.stop() && b.reuse && b.eof {
		b.u.put(b.key, b.c)
	} else {
		b.c.Close()
	}
	return err
}

// upgradedBody is the raw connection after 101 Switching Protocols.
type upgradedBody struct{ *upConn }

func (b *upgradedBody) Read(p []byte) (int, error)  { return b.br.Read(p) }
func (b *upgradedBody) Write(p []byte) (int, error) { return b.Conn.Write(p) }
func (b *upgradedBody) Close() error                { return b.Conn.Close() }
