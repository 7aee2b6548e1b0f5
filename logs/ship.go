package logs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-dev/berth/api"
)

// Sink delivers batches of lines outside berth. Send is called from one
// goroutine at a time and must honour ctx's deadline.
type Sink interface {
	Name() string
	Send(ctx context.Context, batch []api.LogLine) error
	Close() error
}

// ErrRejected marks a batch the sink refused for good (a retry would be
// refused again): it is dropped and counted, not retried.
var ErrRejected = errors.New("rejected by the sink")

// ParseSink builds a sink from its URL:
//
//	syslog+tcp://HOST:PORT                RFC 5424 over TCP (octet-counted framing)
//	syslog+udp://HOST:PORT                RFC 5424 over UDP, one message per datagram
//	loki+http(s)://HOST:PORT/loki/api/v1/push[?tenant=ID]   Loki's JSON push API
//
// node names this machine in what is sent.
func ParseSink(raw, node string) (Sink, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, api.Invalidf("log sink %q: use syslog+tcp://host:port, syslog+udp://host:port or loki+http://host:port/loki/api/v1/push", raw)
	}
	switch u.Scheme {
	case "syslog+tcp", "syslog+udp":
		if u.Port() == "" {
			return nil, api.Invalidf("log sink %q: give the port (514 is syslog's)", raw)
		}
		return newSyslog(strings.TrimPrefix(u.Scheme, "syslog+"), u.Host, node), nil
	case "loki+http", "loki+https":
		return newLoki(u, node)
	default:
		return nil, api.Invalidf("log sink %q: unknown kind %q; use syslog+tcp, syslog+udp, loki+http or loki+https", raw, u.Scheme)
	}
}

// ShipperConfig bounds what shipping may cost.
type ShipperConfig struct {
	// Buffer is how many lines wait per sink; past it new lines are
	// dropped and counted (default 10000).
	Buffer int
	// Batch is the most lines sent at once (default 500).
	Batch int
	// MaxWait is the longest a line waits for its batch to fill (default 1s).
	MaxWait time.Duration
	// Timeout bounds one send (default 10s).
	Timeout time.Duration
	// MaxBackoff caps the wait between retries of a failed batch (default 30s).
	MaxBackoff time.Duration
	Logger     *slog.Logger
}

// SinkStats are one sink's counters since start.
type SinkStats struct {
	Name     string `json:"name"`
	Sent     uint64 `json:"sent"`
	Dropped  uint64 `json:"dropped"`  // lines lost: buffer full, or refused by the sink
	Failures uint64 `json:"failures"` // failed sends (each retried)
	Buffered int    `json:"buffered"`
}

// Shipper copies collected lines to sinks. Offer never blocks: each sink
// has a bounded queue drained by its own goroutine, which retries a failed
// batch with exponential backoff while new lines beyond the queue are
// dropped and counted. A slow or dead sink therefore costs a bounded
// amount of memory and never holds up a container or the collector.
type Shipper struct {
	cfg    ShipperConfig
	log    *slog.Logger
	queues []*sinkQueue
}

type sinkQueue struct {
	sink                    Sink
	ch                      chan api.LogLine
	sent, dropped, failures atomic.Uint64
}

// NewShipper returns a shipper for sinks (none: Offer does nothing).
func NewShipper(cfg ShipperConfig, sinks []Sink) *Shipper {
	if cfg.Buffer <= 0 {
		cfg.Buffer = 10000
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 500
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Shipper{cfg: cfg, log: cfg.Logger}
	for _, sk := range sinks {
		s.queues = append(s.queues, &sinkQueue{sink: sk, ch: make(chan api.LogLine, cfg.Buffer)})
	}
	return s
}

// Offer queues a line for every sink, or drops it for a sink whose queue
// is full.
func (s *Shipper) Offer(l api.LogLine) {
	for _, q := range s.queues {
		select {
		case q.ch <- l:
		default:
			q.dropped.Add(1)
		}
	}
}

// Stats reports each sink's counters.
func (s *Shipper) Stats() []SinkStats {
	out := make([]SinkStats, 0, len(s.queues))
	for _, q := range s.queues {
		out = append(out, SinkStats{Name: q.sink.Name(), Sent: q.sent.Load(), Dropped: q.dropped.Load(),
			Failures: q.failures.Load(), Buffered: len(q.ch)})
	}
	return out
}

// Run ships until ctx ends, then closes the sinks.
func (s *Shipper) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, q := range s.queues {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.drain(ctx, q)
		}()
	}
	<-ctx.Done()
	wg.Wait()
	for _, q := range s.queues {
		_ = q.sink.Close()
	}
	return nil
}

func (s *Shipper) drain(ctx context.Context, q *sinkQueue) {
	batch := make([]api.LogLine, 0, s.cfg.Batch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return
		case l := <-q.ch:
			batch = append(batch, l)
		}
		timer.Reset(s.cfg.MaxWait)
	fill:
		for len(batch) < s.cfg.Batch {
			select {
			case <-ctx.Done():
				return
			case l := <-q.ch:
				batch = append(batch, l)
			case <-timer.C:
				break fill
			}
		}
		timer.Stop()
		if !s.deliver(ctx, q, batch) {
			return
		}
	}
}

// deliver sends a batch until it is accepted or refused for good; it
// returns false when ctx ended first.
func (s *Shipper) deliver(ctx context.Context, q *sinkQueue, batch []api.LogLine) bool {
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		sctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		err := q.sink.Send(sctx, batch)
		cancel()
		switch {
		case err == nil:
			q.sent.Add(uint64(len(batch)))
			return true
		case ctx.Err() != nil:
			return false
		case errors.Is(err, ErrRejected):
			q.dropped.Add(uint64(len(batch)))
			s.log.Warn("log sink refused lines; dropped", "sink", q.sink.Name(), "lines", len(batch), "err", err)
			return true
		}
		q.failures.Add(1)
		if attempt == 0 || attempt%10 == 0 {
			s.log.Warn("log sink failed; retrying", "sink", q.sink.Name(), "attempt", attempt+1, "err", err)
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, s.cfg.MaxBackoff)
	}
}

func sinkErr(name string, err error) error { return fmt.Errorf("%s: %w", name, err) }
