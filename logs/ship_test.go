package logs

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
)

// needTool finds a real peer of a test; outside CI a missing one skips
// the test, in CI it fails it (.ci/run installs it).
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found: .ci/run must install Debian's %s", name, pkg)
	}
	t.Skipf("%s not found; install Debian's %s to run this test", name, pkg)
	return ""
}

func freePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func shipLines(stack string, n int) []api.LogLine {
	t0 := time.Now().UTC()
	var out []api.LogLine
	for i := 0; i < n; i++ {
		s := api.StreamStdout
		if i%2 == 1 {
			s = api.StreamStderr
		}
		out = append(out, api.LogLine{Time: t0.Add(time.Duration(i) * time.Microsecond), Stack: stack, Service: "web",
			Task: "task1", Revision: 3, Stream: s, Line: fmt.Sprintf(`line %d "quoted" ]`, i)})
	}
	return out
}

// Lines shipped over TCP and UDP reach a real rsyslog, which parses them
// as RFC 5424 (app name, proc ID, message ID, structured data, message).
func TestSyslogToRsyslog(t *testing.T) {
	rsyslogd := needTool(t, "rsyslogd", "rsyslog")
	dir := t.TempDir()
	tcpPort, udpPort := freePort(t, "tcp"), freePort(t, "udp")
	out := filepath.Join(dir, "out.log")
	conf := fmt.Sprintf(`global(workDirectory=%q)
module(load="imtcp")
module(load="imudp")
input(type="imtcp" address="127.0.0.1" port="%d")
input(type="imudp" address="127.0.0.1" port="%d")
template(name="berth" type="string" string="%%app-name%%|%%procid%%|%%msgid%%|%%pri%%|%%structured-data%%|%%msg%%\n")
action(type="omfile" file=%q template="berth")
`, dir, tcpPort, udpPort, out)
	cfile := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(cfile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(rsyslogd, "-n", "-f", cfile, "-i", filepath.Join(dir, "rsyslog.pid"))
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", tcpPort))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsyslog did not listen: %s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // imudp binds after imtcp

	for _, c := range []struct {
		network, stack string
		port           int
	}{{"tcp", "viatcp", tcpPort}, {"udp", "viaudp", udpPort}} {
		sink, err := ParseSink(fmt.Sprintf("syslog+%s://127.0.0.1:%d", c.network, c.port), "node-1")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		lines := shipLines(c.stack, 50)
		if err := sink.Send(ctx, lines[:25]); err != nil {
			t.Fatal(err)
		}
		if err := sink.Send(ctx, lines[25:]); err != nil {
			t.Fatal(err)
		}
		cancel()
		sink.Close()
	}
	var got []string
	waitUntil(t, 10*time.Second, "rsyslog wrote 100 messages", func() bool {
		b, _ := os.ReadFile(out)
		got = strings.Split(strings.TrimSpace(string(b)), "\n")
		return len(got) >= 100
	})
	per := map[string]int{}
	for _, l := range got {
		f := strings.SplitN(l, "|", 6)
		if len(f) != 6 {
			t.Fatalf("rsyslog line %q", l)
		}
		app, procid, msgid, pri, sd, msg := f[0], f[1], f[2], f[3], f[4], f[5]
		per[app]++
		if procid != "task1" || (msgid != "stdout" && msgid != "stderr") {
			t.Fatalf("proc ID %q, message ID %q in %q", procid, msgid, l)
		}
		if (msgid == "stdout") != (pri == "14") {
			t.Fatalf("priority %s for %s", pri, msgid)
		}
		if !strings.Contains(sd, `service="web"`) || !strings.Contains(sd, `revision="3"`) {
			t.Fatalf("structured data %q", sd)
		}
		if !strings.HasPrefix(strings.TrimSpace(msg), "line ") || !strings.HasSuffix(msg, `"quoted" ]`) {
			t.Fatalf("message %q", msg)
		}
	}
	if per["viatcp.web"] != 50 || per["viaudp.web"] != 50 {
		t.Fatalf("messages per app: %v", per)
	}
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A local receiver of Loki's push API gets the lines grouped in streams
// by stack, service, revision and stream, with nanosecond times; a
// receiver that fails at first gets the batch again (retry with backoff).
func TestLokiPush(t *testing.T) {
	var mu sync.Mutex
	var pushes []lokiPush
	fails := 2
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/loki/api/v1/push" || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("X-Scope-OrgID") != "team-a" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if fails > 0 {
			fails--
			http.Error(w, "ingester not ready", http.StatusServiceUnavailable)
			return
		}
		var p lokiPush
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		pushes = append(pushes, p)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	sink, err := ParseSink("loki+"+srv.URL+"/loki/api/v1/push?tenant=team-a", "node-1")
	if err != nil {
		t.Fatal(err)
	}
	sh := NewShipper(ShipperConfig{Batch: 40, MaxWait: 20 * time.Millisecond}, []Sink{sink})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sh.Run(ctx); close(done) }()
	lines := shipLines("shop", 100)
	for _, l := range lines {
		sh.Offer(l)
	}
	waitUntil(t, 10*time.Second, "100 lines sent", func() bool { return sh.Stats()[0].Sent == 100 })
	cancel()
	<-done
	st := sh.Stats()[0]
	if st.Failures != 2 || st.Dropped != 0 {
		t.Fatalf("stats %+v: want 2 failures, 0 dropped", st)
	}
	mu.Lock()
	defer mu.Unlock()
	byLine := map[string]string{}
	for _, p := range pushes {
		for _, s := range p.Streams {
			if s.Stream["stack"] != "shop" || s.Stream["service"] != "web" || s.Stream["revision"] != "3" || s.Stream["node"] != "node-1" {
				t.Fatalf("stream labels %v", s.Stream)
			}
			for _, v := range s.Values {
				byLine[s.Stream["stream"]+" "+v[1]] = v[0]
			}
		}
	}
	if len(byLine) != len(lines) {
		t.Fatalf("receiver got %d distinct lines, want %d", len(byLine), len(lines))
	}
	for _, l := range lines {
		if ts := byLine[l.Stream+" "+l.Line]; ts != fmt.Sprint(l.Time.UnixNano()) {
			t.Fatalf("line %q of %s arrived with time %q, want %d", l.Line, l.Stream, ts, l.Time.UnixNano())
		}
	}
}

// A sink that never answers (or is not there at all) costs a bounded
// queue: Offer returns at once, lines beyond the queue are dropped and
// counted, and the other sink keeps receiving.
func TestDeadSinkNeverBlocks(t *testing.T) {
	hang := make(chan struct{})
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hang }))
	defer stuck.Close()
	defer close(hang)
	var got sync.Map
	var count int64
	var cmu sync.Mutex
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p lokiPush
		_ = json.NewDecoder(r.Body).Decode(&p)
		cmu.Lock()
		for _, s := range p.Streams {
			count += int64(len(s.Values))
		}
		cmu.Unlock()
		got.Store(r.URL.Path, true)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer ok.Close()
	var sinks []Sink
	for _, u := range []string{"loki+" + stuck.URL, "syslog+tcp://127.0.0.1:1", "loki+" + ok.URL} {
		s, err := ParseSink(u, "n")
		if err != nil {
			t.Fatal(err)
		}
		sinks = append(sinks, s)
	}
	sh := NewShipper(ShipperConfig{Buffer: 100, Batch: 10, MaxWait: 10 * time.Millisecond, Timeout: time.Hour}, sinks)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go sh.Run(ctx)
	const n = 5000
	start := time.Now()
	for i, l := range shipLines("shop", n) {
		sh.Offer(l)
		if i%100 == 0 {
			time.Sleep(time.Millisecond) // give the healthy sink time to keep up
		}
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("offering %d lines took %s", n, took)
	}
	waitUntil(t, 10*time.Second, "the healthy sink received lines", func() bool {
		cmu.Lock()
		defer cmu.Unlock()
		return count > 0
	})
	st := sh.Stats()
	if st[0].Dropped < n-200 || st[1].Dropped < n-200 {
		t.Fatalf("stuck sinks dropped %d and %d of %d lines: the queues are not bounded", st[0].Dropped, st[1].Dropped, n)
	}
	if st[1].Failures == 0 {
		t.Fatalf("the refused connection was not counted as a failure: %+v", st[1])
	}
}
