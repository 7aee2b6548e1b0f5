package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/store"
)

// receiver is a local HTTP endpoint that records what it is sent.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	fail   int // answer 500 to this many requests first
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.fail > 0 {
			r.fail--
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		if req.Header.Get("Authorization") != "Bearer t0ken" || req.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad headers", http.StatusBadRequest)
			return
		}
		r.bodies = append(r.bodies, b)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) payloads() []Payload {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Payload
	for _, b := range r.bodies {
		var p Payload
		_ = json.Unmarshal(b, &p)
		out = append(out, p)
	}
	return out
}

func (r *receiver) texts() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, b := range r.bodies {
		var m map[string]string
		_ = json.Unmarshal(b, &m)
		out = append(out, m["text"])
	}
	return out
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bodies)
}

func waitCount(t *testing.T, r *receiver, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for r.count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("receiver got %d messages, want %d", r.count(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func runEngine(t *testing.T, st *store.Store, cfg Config) *Engine {
	t.Helper()
	e := New(cfg, st, "cluster-1", nil)
	for _, n := range e.notifiers {
		n.backoff = []time.Duration{10 * time.Millisecond, 10 * time.Millisecond}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = e.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

func event(st *store.Store, t *testing.T, e api.Event) {
	t.Helper()
	if err := st.AppendEvent(context.Background(), e); err != nil {
		t.Fatal(err)
	}
}

// A crash-looping service fires one alert however many of its tasks loop
// and however often; it resolves when the last task recovers. The webhook
// and the Slack-compatible receiver each get exactly firing, resolved.
func TestCrashLoopFiresOnceAndResolves(t *testing.T) {
	st := store.OpenTest(t)
	hook, slack := newReceiver(t), newReceiver(t)
	hdr := map[string]string{"Authorization": "Bearer t0ken"}
	e := runEngine(t, st, Config{Notifiers: []NotifierConfig{
		{Name: "hook", Type: TypeWebhook, URL: hook.srv.URL, Headers: hdr},
		{Name: "chat", Type: TypeSlack, URL: slack.srv.URL, Headers: hdr},
	}})
	time.Sleep(200 * time.Millisecond) // the engine follows from now on
	for i := 0; i < 5; i++ {
		for _, task := range []string{"t1", "t2"} {
			event(st, t, api.Event{Type: "task.crashloop", Stack: "shop", Service: "web", Task: task, Message: "exited with code 3 (3 times in a row)"})
		}
	}
	waitCount(t, hook, 1)
	waitCount(t, slack, 1)
	event(st, t, api.Event{Type: "task.recovered", Stack: "shop", Service: "web", Task: "t1", Message: "runs again"})
	time.Sleep(300 * time.Millisecond)
	if hook.count() != 1 {
		t.Fatalf("resolved while t2 still loops: %d messages", hook.count())
	}
	event(st, t, api.Event{Type: "task.recovered", Stack: "shop", Service: "web", Task: "t2", Message: "runs again"})
	waitCount(t, hook, 2)
	waitCount(t, slack, 2)
	time.Sleep(200 * time.Millisecond)

	ps := hook.payloads()
	if len(ps) != 2 || ps[0].Status != api.AlertFiring || ps[1].Status != api.AlertResolved {
		t.Fatalf("webhook got %+v", ps)
	}
	if ps[0].Alert.ID != ps[1].Alert.ID || ps[0].Alert.Rule != "crash_loop" || ps[0].Cluster != "cluster-1" || ps[0].Version != "1" {
		t.Fatalf("payloads %+v", ps)
	}
	if ps[0].Alert.Summary != "crash loop: shop/web" || ps[0].Alert.Severity != Critical {
		t.Errorf("firing alert %+v", ps[0].Alert)
	}
	texts := slack.texts()
	if !strings.Contains(texts[0], "FIRING") || !strings.Contains(texts[0], "crash loop: shop/web") || !strings.Contains(texts[1], "RESOLVED") {
		t.Errorf("slack texts %q", texts)
	}
	as := e.Alerts()
	if len(as) != 1 || as[0].State != api.AlertResolved || as[0].Count != 10 {
		t.Fatalf("alerts %+v", as)
	}
}

// Each rule the issue names fires on its event and resolves on its own.
func TestRules(t *testing.T) {
	st := store.OpenTest(t)
	hook := newReceiver(t)
	runEngine(t, st, Config{Notifiers: []NotifierConfig{{Name: "hook", Type: TypeWebhook, URL: hook.srv.URL,
		Headers: map[string]string{"Authorization": "Bearer t0ken"}, MaxPerMinute: 100}}})
	time.Sleep(200 * time.Millisecond)
	cases := []struct {
		rule          string
		fire, resolve api.Event
	}{
		{"rollout_failed", api.Event{Type: "rollout.rolled_back", Stack: "s", Service: "a"}, api.Event{Type: "rollout.done", Stack: "s", Service: "a"}},
		{"crash_loop", api.Event{Type: "task.crashloop", Stack: "s", Service: "b", Task: "x"}, api.Event{Type: "task.recovered", Stack: "s", Service: "b", Task: "x"}},
		{"oom_kill", api.Event{Type: "task.oom", Stack: "s", Service: "c", Task: "y"}, api.Event{Type: "task.recovered", Stack: "s", Service: "c", Task: "y"}},
		{"outside_in_check", api.Event{Type: "monitor.down", Stack: "s", Service: "d", Subject: "GET shop.example.com/"}, api.Event{Type: "monitor.up", Stack: "s", Service: "d", Subject: "GET shop.example.com/"}},
		{"engine_wedged", api.Event{Type: "engine.wedged", Node: "n1"}, api.Event{Type: "engine.healthy", Node: "n1"}},
		{"engine_slow", api.Event{Type: "engine.slow", Node: "n2"}, api.Event{Type: "engine.healthy", Node: "n2"}},
		{"disk_over_budget", api.Event{Type: "disk.over_budget", Node: "n1"}, api.Event{Type: "disk.ok", Node: "n1"}},
		{"cert_expiring", api.Event{Type: "cert.expiring", Subject: "shop.example.com"}, api.Event{Type: "cert.renewed", Subject: "shop.example.com"}},
	}
	for i, c := range cases {
		event(st, t, c.fire)
		waitCount(t, hook, 2*i+1)
		event(st, t, c.resolve)
		waitCount(t, hook, 2*i+2)
		ps := hook.payloads()
		f, r := ps[2*i], ps[2*i+1]
		if f.Alert.Rule != c.rule || f.Status != api.AlertFiring || r.Alert.Rule != c.rule || r.Status != api.AlertResolved {
			t.Errorf("%s: got %s %s, %s %s", c.rule, f.Alert.Rule, f.Status, r.Alert.Rule, r.Status)
		}
	}
}

// Over its rate limit a notifier holds messages back; a failing receiver
// is retried.
func TestRateLimitAndRetry(t *testing.T) {
	st := store.OpenTest(t)
	hook := newReceiver(t)
	hook.fail = 2
	e := runEngine(t, st, Config{Notifiers: []NotifierConfig{{Name: "hook", Type: TypeWebhook, URL: hook.srv.URL,
		Headers: map[string]string{"Authorization": "Bearer t0ken"}, MaxPerMinute: 3}}})
	time.Sleep(200 * time.Millisecond)
	for i := 0; i < 10; i++ {
		event(st, t, api.Event{Type: "engine.wedged", Node: "node" + string(rune('a'+i))})
	}
	waitCount(t, hook, 3)
	time.Sleep(time.Second) // the 4th token comes after 20 s
	if n := hook.count(); n != 3 {
		t.Fatalf("%d messages within a second at 3 per minute", n)
	}
	name, sent, failed, dropped := e.Notifiers()[0].Stats()
	if name != "hook" || sent != 3 || failed != 0 || dropped != 0 {
		t.Fatalf("stats %s %d %d %d", name, sent, failed, dropped)
	}
}

// Alerts and the stream position survive a restart: nothing is sent
// twice, and what happened while berth was down is handled.
func TestRestartNeitherRepeatsNorMisses(t *testing.T) {
	st := store.OpenTest(t)
	hook := newReceiver(t)
	cfg := Config{Notifiers: []NotifierConfig{{Name: "hook", Type: TypeWebhook, URL: hook.srv.URL,
		Headers: map[string]string{"Authorization": "Bearer t0ken"}}}}
	e := New(cfg, st, "c", nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = e.Run(ctx) }()
	time.Sleep(200 * time.Millisecond)
	event(st, t, api.Event{Type: "engine.wedged", Node: "n1"})
	waitCount(t, hook, 1)
	cancel()
	<-done
	event(st, t, api.Event{Type: "engine.wedged", Node: "n1"}) // while down: a repeat
	event(st, t, api.Event{Type: "engine.healthy", Node: "n1"})
	runEngine(t, st, cfg)
	waitCount(t, hook, 2)
	time.Sleep(300 * time.Millisecond)
	ps := hook.payloads()
	if len(ps) != 2 || ps[1].Status != api.AlertResolved {
		t.Fatalf("payloads %+v", ps)
	}
}

// An alert about tasks that no longer exist (a rollback replaced them)
// resolves on the sweep; a removed stack resolves its alerts.
func TestGoneTasksResolve(t *testing.T) {
	st := store.OpenTest(t)
	e := New(Config{}, st, "c", nil)
	ctx := context.Background()
	e.Handle(ctx, api.Event{Type: "task.crashloop", Stack: "s", Service: "web", Task: "gone", Time: time.Now()})
	e.Handle(ctx, api.Event{Type: "rollout.rolled_back", Stack: "t", Service: "api", Time: time.Now()})
	e.Sweep(ctx)
	for _, a := range e.Alerts() {
		if a.Rule == "crash_loop" && a.State != api.AlertResolved {
			t.Fatalf("alert about a gone task still %s", a.State)
		}
	}
	e.Handle(ctx, api.Event{Type: "stack.remove", Stack: "t", Time: time.Now()})
	for _, a := range e.Alerts() {
		if a.State != api.AlertResolved {
			t.Fatalf("alert %s still firing", a.Rule)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{
		{Notifiers: []NotifierConfig{{Name: "x", Type: "email", URL: "http://a"}}},
		{Notifiers: []NotifierConfig{{Name: "x", Type: "webhook", URL: "ftp://a"}}},
		{Notifiers: []NotifierConfig{{Type: "webhook", URL: "http://a"}}},
		{Notifiers: []NotifierConfig{{Name: "x", Type: "webhook", URL: "http://a"}, {Name: "x", Type: "slack", URL: "http://b"}}},
		{Disable: []string{"no_such_rule"}},
	} {
		if err := c.Validate(); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("%+v: %v", c, err)
		}
	}
}
