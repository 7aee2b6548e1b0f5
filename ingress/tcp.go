package ingress

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// TCPProxy forwards one published port's connections to its endpoints
// (L4: any protocol). Endpoints are replaced as a whole with Update.
type TCPProxy struct {
	ln          net.Listener
	log         *slog.Logger
	dialTimeout time.Duration
	eps         atomic.Pointer[[]*tcpEndpoint]

	mu    sync.Mutex
	conns map[string]map[net.Conn]struct{} // task → client conns being forwarded
	wg    sync.WaitGroup
}

type tcpEndpoint struct {
	Endpoint
	active atomic.Int64
}

// ListenTCP listens on addr ("0.0.0.0:8080", "127.0.0.1:0") and forwards
// until Close.
func ListenTCP(addr string, logger *slog.Logger) (*TCPProxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &TCPProxy{ln: ln, log: logger, dialTimeout: 2 * time.Second, conns: map[string]map[net.Conn]struct{}{}}
	empty := []*tcpEndpoint{}
	p.eps.Store(&empty)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the listening address.
func (p *TCPProxy) Addr() net.Addr { return p.ln.Addr() }

// Update replaces the endpoints; connections already forwarded go on.
func (p *TCPProxy) Update(eps []Endpoint) {
	old := map[string]*tcpEndpoint{}
	for _, e := range *p.eps.Load() {
		old[e.TaskID+"@"+e.Addr] = e
	}
	next := make([]*tcpEndpoint, 0, len(eps))
	for _, e := range eps {
		if o, ok := old[e.TaskID+"@"+e.Addr]; ok {
			next = append(next, o)
			continue
		}
		next = append(next, &tcpEndpoint{Endpoint: e})
	}
	p.eps.Store(&next)
}

// Drain waits until the task's connections are closed or ctx ends; then
// it closes whatever is left.
func (p *TCPProxy) Drain(ctx context.Context, taskID string) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		p.mu.Lock()
		n := len(p.conns[taskID])
		p.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-ctx.Done():
			p.mu.Lock()
			for c := range p.conns[taskID] {
				c.Close()
			}
			p.mu.Unlock()
			return
		case <-t.C:
		}
	}
}

// Close stops listening and closes forwarded connections.
func (p *TCPProxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	for _, cs := range p.conns {
		for c := range cs {
			c.Close()
		}
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *TCPProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			p.log.Warn("accept", "addr", p.ln.Addr(), "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		p.wg.Add(1)
		go func() { defer p.wg.Done(); p.forward(c) }()
	}
}

// forward connects the client to the least busy endpoint, trying others
// when a connection is refused.
func (p *TCPProxy) forward(client net.Conn) {
	defer client.Close()
	eps := *p.eps.Load()
	tried := map[*tcpEndpoint]bool{}
	var up net.Conn
	var ep *tcpEndpoint
	for len(tried) < len(eps) {
		ep = leastActive(eps, tried)
		tried[ep] = true
		var err error
		up, err = net.DialTimeout("tcp", ep.Addr, p.dialTimeout)
		if err == nil {
			break
		}
		p.log.Debug("tcp endpoint refused", "addr", ep.Addr, "err", err)
		up = nil
	}
	if up == nil {
		return // no endpoint: the client sees the connection close
	}
	defer up.Close()
	ep.active.Add(1)
	defer ep.active.Add(-1)
	p.track(ep.TaskID, client, true)
	defer p.track(ep.TaskID, client, false)

	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, client); closeWrite(up); done <- struct{}{} }()
	go func() { _, _ = io.Copy(client, up); closeWrite(client); done <- struct{}{} }()
	<-done
	<-done
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
		return
	}
	_ = c.Close()
}

func (p *TCPProxy) track(task string, c net.Conn, add bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		if p.conns[task] == nil {
			p.conns[task] = map[net.Conn]struct{}{}
		}
		p.conns[task][c] = struct{}{}
		return
	}
	delete(p.conns[task], c)
	if len(p.conns[task]) == 0 {
		delete(p.conns, task)
	}
}

func leastActive(eps []*tcpEndpoint, tried map[*tcpEndpoint]bool) *tcpEndpoint {
	var best *tcpEndpoint
	start := rand.IntN(len(eps))
	for i := range eps {
		e := eps[(start+i)%len(eps)]
		if tried[e] {
			continue
		}
		if best == nil || e.active.Load() < best.active.Load() {
			best = e
		}
	}
	return best
}
