package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/api"
)

// Notifier types.
const (
	TypeWebhook = "webhook" // JSON: {"status", "alert", "cluster", ...}
	TypeSlack   = "slack"   // Slack-compatible incoming webhook: {"text": ...}
)

// NotifierConfig is one notifier in berth's configuration.
type NotifierConfig struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"`
	URL  string `yaml:"url"`
	// Headers are added to every request (an Authorization token, say).
	Headers map[string]string `yaml:"headers"`
	// MaxPerMinute bounds the messages sent (default 10); messages over
	// it wait, and a newer message about the same alert replaces a
	// waiting one.
	MaxPerMinute int `yaml:"max_per_minute"`
	// Timeout bounds one request (default 10s).
	Timeout time.Duration `yaml:"timeout"`
}

func (n NotifierConfig) validate() error {
	if n.Name == "" {
		return fmt.Errorf("name is required")
	}
	if n.Type != TypeWebhook && n.Type != TypeSlack {
		return fmt.Errorf("type %q: use %s or %s", n.Type, TypeWebhook, TypeSlack)
	}
	u, err := url.Parse(n.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("url %q: use an http:// or https:// URL", n.URL)
	}
	if n.MaxPerMinute < 0 || n.Timeout < 0 {
		return fmt.Errorf("max_per_minute and timeout must not be negative")
	}
	return nil
}

// message is one notification.
type message struct {
	Status string
	Repeat bool
	Alert  api.Alert
}

// Payload is the JSON body a webhook notifier posts.
type Payload struct {
	Version string    `json:"version"` // "1"
	Status  string    `json:"status"`  // firing or resolved
	Repeat  bool      `json:"repeat,omitempty"`
	Cluster string    `json:"cluster"`
	Alert   api.Alert `json:"alert"`
}

// queueCap bounds the messages a notifier holds; past it the oldest is
// dropped (and counted).
const queueCap = 256

// Notifier delivers messages to one receiver, in order, within its rate
// limit, retrying failed deliveries with backoff.
type Notifier struct {
	cfg     NotifierConfig
	cluster string
	hc      *http.Client
	log     *slog.Logger
	wake    chan struct{}
	backoff []time.Duration

	mu      sync.Mutex
	queue   []message
	tokens  float64
	refill  time.Time
	sent    int
	failed  int
	dropped int
}

func newNotifier(cfg NotifierConfig, cluster string, logger *slog.Logger) *Notifier {
	if cfg.MaxPerMinute <= 0 {
		cfg.MaxPerMinute = 10
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	return &Notifier{cfg: cfg, cluster: cluster, log: logger, hc: &http.Client{Timeout: cfg.Timeout},
		wake: make(chan struct{}, 1), tokens: float64(cfg.MaxPerMinute), refill: time.Now(),
		backoff: []time.Duration{time.Second, 4 * time.Second, 15 * time.Second}}
}

// Stats are a notifier's counters: delivered, given up after retries,
// and dropped because the queue was full.
func (n *Notifier) Stats() (name string, sent, failed, dropped int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cfg.Name, n.sent, n.failed, n.dropped
}

func (n *Notifier) enqueue(m message) {
	n.mu.Lock()
	replaced := false
	for i := range n.queue {
		if n.queue[i].Alert.ID == m.Alert.ID {
			n.queue[i] = m // the newer word on the same alert wins
			replaced = true
			break
		}
	}
	if !replaced {
		if len(n.queue) >= queueCap {
			n.queue = n.queue[1:]
			n.dropped++
		}
		n.queue = append(n.queue, m)
	}
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// take returns the next message once the rate limit allows, or waits.
func (n *Notifier) take() (message, time.Duration, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.queue) == 0 {
		return message{}, 0, false
	}
	now := time.Now()
	rate := float64(n.cfg.MaxPerMinute) / 60 // tokens per second
	n.tokens = min(float64(n.cfg.MaxPerMinute), n.tokens+now.Sub(n.refill).Seconds()*rate)
	n.refill = now
	if n.tokens < 1 {
		return message{}, time.Duration((1 - n.tokens) / rate * float64(time.Second)), false
	}
	n.tokens--
	m := n.queue[0]
	n.queue = n.queue[1:]
	return m, 0, true
}

func (n *Notifier) run(ctx context.Context) {
	for {
		m, wait, ok := n.take()
		if ok {
			n.deliver(ctx, m)
			continue
		}
		var timer *time.Timer
		var fire <-chan time.Time
		if wait > 0 {
			timer = time.NewTimer(wait)
			fire = timer.C
		}
		select {
		case <-ctx.Done():
		case <-n.wake:
		case <-fire:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// deliver sends one message, retrying with backoff.
func (n *Notifier) deliver(ctx context.Context, m message) {
	body, err := n.body(m)
	if err != nil {
		n.log.Error("encode notification", "err", err)
		return
	}
	for attempt := 0; ; attempt++ {
		err = n.post(ctx, body)
		if err == nil {
			n.mu.Lock()
			n.sent++
			n.mu.Unlock()
			return
		}
		if attempt >= len(n.backoff) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(n.backoff[attempt]):
		}
	}
	n.mu.Lock()
	n.failed++
	n.mu.Unlock()
	if ctx.Err() == nil {
		n.log.Warn("notification not delivered", "alert", m.Alert.ID, "err", err)
	}
}

func (n *Notifier) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "berth-alerts")
	for k, v := range n.cfg.Headers {
		req.Header.Set(k, v)
	}
	resp, err := n.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 300 {
		return fmt.Errorf("receiver answered %s", resp.Status)
	}
	return nil
}

func (n *Notifier) body(m message) ([]byte, error) {
	if n.cfg.Type == TypeSlack {
		return json.Marshal(map[string]string{"text": slackText(m, n.cluster)})
	}
	return json.Marshal(Payload{Version: "1", Status: m.Status, Repeat: m.Repeat, Cluster: n.cluster, Alert: m.Alert})
}

// slackText is the message a chat user reads.
func slackText(m message, cluster string) string {
	a := m.Alert
	var b strings.Builder
	switch {
	case m.Status == api.AlertResolved:
		fmt.Fprintf(&b, ":white_check_mark: *RESOLVED* %s", a.Summary)
		if !a.ResolvedAt.IsZero() && !a.StartedAt.IsZero() {
			fmt.Fprintf(&b, " (after %s)", a.ResolvedAt.Sub(a.StartedAt).Round(time.Second))
		}
	case a.Severity == Critical:
		fmt.Fprintf(&b, ":red_circle: *FIRING* [critical] %s", a.Summary)
	default:
		fmt.Fprintf(&b, ":warning: *FIRING* [%s] %s", a.Severity, a.Summary)
	}
	if m.Repeat {
		b.WriteString(" (still firing)")
	}
	if msg := a.LastEvent.Message; msg != "" {
		fmt.Fprintf(&b, "\n> %s", msg)
	}
	fmt.Fprintf(&b, "\ncluster %s · alert %s", short(cluster), a.ID)
	return b.String()
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}
