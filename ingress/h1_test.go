package ingress

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// serveFast serves p with the fast path on a free port, net/http as its
// fallback, and returns the proxy's URL.
func serveFast(t *testing.T, p *Proxy) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- p.Serve(ctx, ln, ServeOptions{Fallback: &http.Server{Handler: p}, FallbackPaths: []string{"/.well-known/acme-challenge"}, Grace: time.Second})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

func oneRoute(t *testing.T, eps ...Endpoint) *Proxy {
	t.Helper()
	p := New(Options{})
	if err := p.Update(Table{Routes: []Route{{Name: "s/w", Endpoints: eps}}}); err != nil {
		t.Fatal(err)
	}
	return p
}

// rawConn is a client speaking HTTP/1.1 by hand over one connection.
type rawConn struct {
	t *testing.T
	net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, url string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	return &rawConn{t: t, Conn: c, r: bufio.NewReader(c)}
}

// do sends raw and reads one response.
func (c *rawConn) do(raw string) (*http.Response, string) {
	c.t.Helper()
	if _, err := io.WriteString(c, raw); err != nil {
		c.t.Fatal(err)
	}
	return c.read("GET")
}

func (c *rawConn) read(method string) (*http.Response, string) {
	c.t.Helper()
	resp, err := http.ReadResponse(c.r, &http.Request{Method: method})
	for err == nil && resp.StatusCode == http.StatusContinue {
		resp, err = http.ReadResponse(c.r, &http.Request{Method: method})
	}
	if err != nil {
		c.t.Fatalf("read response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("read body: %v", err)
	}
	return resp, string(b)
}

// closed reports whether the proxy closed the connection.
func (c *rawConn) closed() bool {
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := c.r.ReadByte()
	return err == io.EOF
}

func TestFastPathProxies(t *testing.T) {
	t.Parallel()
	a, _ := backend(t, "a")
	p := oneRoute(t, Endpoint{TaskID: "a", Addr: addr(a)})
	url := serveFast(t, p)

	c := dialRaw(t, url)
	for i := 0; i < 3; i++ { // one keep-alive connection
		resp, body := c.do("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp.StatusCode != 200 || body != "a" || resp.Header.Get("Date") == "" {
			t.Fatalf("request %d: %d %q %v", i, resp.StatusCode, body, resp.Header)
		}
	}
	_, body := c.do("GET /headers HTTP/1.1\r\nHost: app.example\r\nX-Forwarded-For: 6.6.6.6\r\nConnection: X-Secret\r\nX-Secret: 1\r\n\r\n")
	if !strings.Contains(body, "xff=127.0.0.1 ") || strings.Contains(body, "rid= ") || !strings.Contains(body, "host=app.example") {
		t.Errorf("forwarded headers: %q", body)
	}
	_, body = c.do("GET /headers HTTP/1.1\r\nHost: x\r\nX-Request-Id: mine\r\n\r\n")
	if !strings.Contains(body, "rid=mine") {
		t.Errorf("client's X-Request-Id not kept: %q", body)
	}
	_, body = c.do("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\npayload")
	if body != "payload" {
		t.Errorf("Content-Length body: %q", body)
	}
	_, body = c.do("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\npay\r\n4;ext=1\r\nload\r\n0\r\n\r\n")
	if body != "payload" {
		t.Errorf("chunked body: %q", body)
	}
	// Pipelined requests are answered in order.
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\nHEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET /headers HTTP/1.1\r\nHost: p\r\n\r\n")
	if _, body := c.read("GET"); body != "a" {
		t.Errorf("pipelined 1: %q", body)
	}
	if resp, body := c.read("HEAD"); resp.StatusCode != 200 || body != "" {
		t.Errorf("pipelined HEAD: %d %q", resp.StatusCode, body)
	}
	if _, body := c.read("GET"); !strings.Contains(body, "host=p") {
		t.Errorf("pipelined 3: %q", body)
	}
	resp, _ := c.do("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if !resp.Close || !c.closed() {
		t.Error("Connection: close did not close")
	}
}

func TestFastPathStreamsChunkedResponses(t *testing.T) {
	t.Parallel()
	a, _ := backend(t, "a")
	url := serveFast(t, oneRoute(t, Endpoint{TaskID: "a", Addr: addr(a)}))
	resp, err := http.Get(url + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("transfer encoding %v", resp.TransferEncoding)
	}
	r := bufio.NewReader(resp.Body)
	start := time.Now()
	line, _ := r.ReadString('\n')
	if line != "chunk 0\n" || time.Since(start) > 40*time.Millisecond {
		t.Errorf("first chunk %q after %s: not streamed", line, time.Since(start))
	}
	rest, _ := io.ReadAll(r)
	if string(rest) != "chunk 1\nchunk 2\n" {
		t.Errorf("rest %q", rest)
	}
}

// TestFastPathRefuses: requests that could be read two ways, or not at
// all, get 400 (431 for a head too large) and the connection is closed.
func TestFastPathRefuses(t *testing.T) {
	t.Parallel()
	a, hits := backend(t, "a")
	url := serveFast(t, oneRoute(t, Endpoint{TaskID: "a", Addr: addr(a)}))
	for _, tc := range []struct {
		desc, raw string
		status    int
	}{
		{"both lengths", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"two lengths", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400},
		{"signed length", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc", 400},
		{"length list", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc", 400},
		{"no host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two hosts", "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400},
		{"space before colon", "GET / HTTP/1.1\r\nHost: x\r\nFoo : bar\r\n\r\n", 400},
		{"folding", "GET / HTTP/1.1\r\nHost: x\r\nFoo: bar\r\n baz\r\n\r\n", 400},
		{"control character", "GET / HTTP/1.1\r\nHost: x\r\nFoo: b\x01r\r\n\r\n", 400},
		{"bad escape", "GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			before := hits.Load()
			c := dialRaw(t, url)
			resp, _ := c.do(tc.raw)
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if !c.closed() {
				t.Error("connection left open")
			}
			if hits.Load() != before {
				t.Error("the request reached the task")
			}
		})
	}
	t.Run("head too large", func(t *testing.T) {
		// net/http answers it (past the fast path's 4 KiB) and hangs up
		// while the client is still writing: a reset may beat the 431.
		c := dialRaw(t, url)
		go io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nBig: "+strings.Repeat("b", 2<<20)+"\r\n\r\n")
		resp, err := http.ReadResponse(c.r, nil)
		if err == nil && resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("status %d, want 431", resp.StatusCode)
		}
	})
	t.Run("bare LF in chunk framing", func(t *testing.T) {
		c := dialRaw(t, url)
		io.WriteString(c, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\npay\r\n0\r\n\r\n")
		if resp, err := http.ReadResponse(c.r, nil); err != nil || resp.StatusCode != 400 {
			t.Errorf("got %v, want 400", err)
		}
		if !c.closed() {
			t.Error("connection left open")
		}
	})
}

// TestFastPathFallsBack: what the fast path does not serve still works,
// through net/http, on the same connection.
func TestFastPathFallsBack(t *testing.T) {
	t.Parallel()
	a, _ := backend(t, "a")
	url := serveFast(t, oneRoute(t, Endpoint{TaskID: "a", Addr: addr(a)}))
	for _, tc := range []struct{ desc, raw, want string }{
		{"HTTP/1.0", "GET / HTTP/1.0\r\nHost: x\r\n\r\n", "a"},
		{"Expect", "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi", "hi"},
		{"head over 4 KiB", "GET / HTTP/1.1\r\nHost: x\r\nCookie: " + strings.Repeat("c", 6000) + "\r\n\r\n", "a"},
		{"absolute form", "GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n", "a"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			c := dialRaw(t, url)
			resp, body := c.do(tc.raw)
			if resp.StatusCode != 200 || body != tc.want {
				t.Errorf("%d %q", resp.StatusCode, body)
			}
		})
	}
}

func TestFastPathWebSocketUpgradeFallsBack(t *testing.T) {
	t.Parallel()
	up := upgradeBackend(t)
	url := serveFast(t, oneRoute(t, Endpoint{TaskID: "w", Addr: addr(up)}))
	c := dialRaw(t, url)
	// A plain request first: the upgrade comes on a fast-path connection.
	if resp, _ := c.do("GET / HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 400 {
		t.Fatalf("plain request: %d", resp.StatusCode)
	}
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	status, _ := c.r.ReadString('\n')
	if !strings.Contains(status, "101") {
		t.Fatalf("status line %q", status)
	}
	for {
		if l, _ := c.r.ReadString('\n'); l == "\r\n" || l == "" {
			break
		}
	}
	io.WriteString(c, "hi\n")
	if l, _ := c.r.ReadString('\n'); l != "echo hi\n" {
		t.Fatalf("after upgrade got %q", l)
	}
}

// TestFastPathRetriesBeforeFirstByte: a refused connection goes to another
// task; a kept-alive connection the task closed is replaced.
func TestFastPathRetriesBeforeFirstByte(t *testing.T) {
	t.Parallel()
	good, _ := backend(t, "good")
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	url := serveFast(t, oneRoute(t, Endpoint{TaskID: "dead", Addr: dead}, Endpoint{TaskID: "good", Addr: addr(good)}))
	c := dialRaw(t, url)
	for i := 0; i < 20; i++ {
		if resp, body := c.do("GET / HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 200 || body != "good" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}

	// A task that closes every connection after one response, without
	// saying so.
	oneShot := oneShotBackend(t)
	url = serveFast(t, oneRoute(t, Endpoint{TaskID: "o", Addr: oneShot}))
	c = dialRaw(t, url)
	for i := 0; i < 5; i++ {
		if resp, body := c.do("GET / HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
		time.Sleep(10 * time.Millisecond) // let the task's close arrive
	}
}

func TestFastPathStatsTimeoutsAndErrors(t *testing.T) {
	t.Parallel()
	a, _ := backend(t, "a")
	p := New(Options{})
	_ = p.Update(Table{Routes: []Route{
		{Name: "s/w", PathPrefix: "/", Endpoints: []Endpoint{{TaskID: "a", Addr: addr(a), Revision: 3}}},
		{Name: "s/slow", PathPrefix: "/slow", Timeout: 100 * time.Millisecond, Endpoints: []Endpoint{{TaskID: "a", Addr: addr(a), Revision: 3}}},
		{Name: "s/gone", Host: "gone.example", Endpoints: []Endpoint{{TaskID: "g", Addr: "127.0.0.1:1"}}},
		{Name: "s/empty", Host: "empty.example"},
	}})
	url := serveFast(t, p)
	for i := 0; i < 5; i++ {
		get(t, url, "")
	}
	for _, tc := range []struct {
		host, path string
		want       int
	}{
		{"", "/slow", http.StatusGatewayTimeout},
		{"gone.example", "/", http.StatusServiceUnavailable},
		{"empty.example", "/", http.StatusServiceUnavailable},
		{"", "/", 200},
	} {
		if code, _ := get(t, url+tc.path, tc.host); code != tc.want {
			t.Errorf("%s%s: %d, want %d", tc.host, tc.path, code, tc.want)
		}
	}
	got := map[string]RevisionStats{}
	for _, s := range p.Stats() {
		got[s.Route] = s
	}
	if s := got["s/w"]; s.Requests != 6 || s.Errors != 0 || s.Revision != 3 || s.Buckets[0]+s.Buckets[1]+s.Buckets[2] == 0 {
		t.Errorf("s/w stats %+v", s)
	}
	if s := got["s/slow"]; s.Requests != 1 || s.Errors != 1 {
		t.Errorf("s/slow stats %+v", s)
	}
	if s := got["s/gone"]; s.Requests != 1 || s.Errors != 1 {
		t.Errorf("s/gone stats %+v", s)
	}
}

func TestFastPathDrainAndSplit(t *testing.T) {
	t.Parallel()
	a, _ := backend(t, "a")
	b, _ := backend(t, "b")
	p := oneRoute(t, Endpoint{TaskID: "a", Addr: addr(a)})
	url := serveFast(t, p)
	var wg sync.WaitGroup
	wg.Add(1)
	var code int
	go func() { defer wg.Done(); code, _ = get(t, url+"/slow", "") }()
	time.Sleep(50 * time.Millisecond)
	_ = p.Update(Table{Routes: []Route{{Name: "s/w", Endpoints: []Endpoint{
		{TaskID: "b", Addr: addr(b), Revision: 1, Weight: 1}, {TaskID: "a2", Addr: addr(a), Revision: 2, Weight: 1}}}}})
	if n := p.inflightOf("a"); n != 1 {
		t.Fatalf("in flight on a = %d, want 1", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := p.Drain(ctx, "a"); err != nil {
		t.Fatalf("drain: %v", err)
	}
	wg.Wait()
	if code != 200 {
		t.Fatalf("in-flight request got %d", code)
	}
	// One keep-alive connection is still balanced across the split.
	c := dialRaw(t, url)
	seen := map[string]int{}
	for i := 0; i < 200; i++ {
		_, body := c.do("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		seen[body]++
	}
	if seen["a"] < 60 || seen["b"] < 60 {
		t.Errorf("split over one connection: %v", seen)
	}
}

func TestFastPathShutdownClosesIdleAndFinishesBusy(t *testing.T) {
	t.Parallel()
	a, _ := backend(t, "a")
	p := oneRoute(t, Endpoint{TaskID: "a", Addr: addr(a)})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- p.Serve(ctx, ln, ServeOptions{Fallback: &http.Server{Handler: p}, Grace: 2 * time.Second})
	}()
	url := "http://" + ln.Addr().String()
	idle := dialRaw(t, url)
	idle.do("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	busy := dialRaw(t, url)
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	cancel()
	if resp, _ := busy.read("GET"); resp.StatusCode != 200 {
		t.Errorf("busy request: %d", resp.StatusCode)
	}
	if !idle.closed() || !busy.closed() {
		t.Error("connections left open")
	}
	if err := <-done; err != nil || time.Since(start) > time.Second {
		t.Errorf("Serve returned %v after %s", err, time.Since(start))
	}
}

func TestFastPathACMEPathsGoToFallback(t *testing.T) {
	t.Parallel()
	a, hits := backend(t, "a")
	p := oneRoute(t, Endpoint{TaskID: "a", Addr: addr(a)})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	challenges := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
			fmt.Fprint(w, "token")
			return
		}
		p.ServeHTTP(w, r)
	})
	go p.Serve(ctx, ln, ServeOptions{Fallback: &http.Server{Handler: challenges}, FallbackPaths: []string{"/.well-known/acme-challenge"}})
	c := dialRaw(t, "http://"+ln.Addr().String())
	if _, body := c.do("GET / HTTP/1.1\r\nHost: x\r\n\r\n"); body != "a" {
		t.Errorf("proxied: %q", body)
	}
	if _, body := c.do("GET /.well-known/acme-challenge/t HTTP/1.1\r\nHost: x\r\n\r\n"); body != "token" {
		t.Errorf("challenge: %q", body)
	}
	if hits.Load() != 1 {
		t.Errorf("task hits %d, want 1", hits.Load())
	}
}

// upgradeBackend switches protocols on request, then echoes lines.
func upgradeBackend(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "no upgrade", 400)
			return
		}
		conn, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		rw.Flush()
		line, _ := rw.ReadString('\n')
		rw.WriteString("echo " + line)
		rw.Flush()
	}))
	t.Cleanup(srv.Close)
	return srv
}

// oneShotBackend answers one request per connection, then closes it
// without Connection: close.
func oneShotBackend(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				if _, err := http.ReadRequest(r); err != nil {
					return
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			}()
		}
	}()
	return ln.Addr().String()
}

// TestFastPathNoticesClientLeaving: a client that closes its connection
// while its request waits for a slow task gets the upstream request
// cancelled (the task sees its request's context end) long before the
// task would have answered, and the request counts as 499, not as a
// server error. A client
// that waits still gets the slow answer.
func TestFastPathNoticesClientLeaving(t *testing.T) {
	t.Parallel()
	cancelled := make(chan time.Duration, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		select {
		case <-r.Context().Done():
			cancelled <- time.Since(start)
		case <-time.After(1500 * time.Millisecond):
			io.WriteString(w, "late")
		}
	}))
	t.Cleanup(srv.Close)
	p := oneRoute(t, Endpoint{TaskID: "a", Addr: addr(srv), Revision: 1})
	url := serveFast(t, p)

	c := dialRaw(t, url)
	io.WriteString(c, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(300 * time.Millisecond)
	c.Close()
	select {
	case d := <-cancelled:
		if d > time.Second {
			t.Errorf("the task's request was cancelled after %s", d)
		}
	case <-time.After(1500 * time.Millisecond):
		t.Fatal("the task's request was not cancelled after the client left")
	}
	// Counted as a request, not as a server error a canary gate would
	// hold against the task.
	var requests, errs int64
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline) && requests == 0; time.Sleep(10 * time.Millisecond) {
		requests, errs = 0, 0
		for _, s := range p.Stats() {
			requests, errs = requests+s.Requests, errs+s.Errors
		}
	}
	if requests != 1 || errs != 0 {
		t.Errorf("stats: %d requests, %d errors; want 1 and 0", requests, errs)
	}

	c2 := dialRaw(t, url)
	if resp, body := c2.do("GET /wait HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 200 || body != "late" {
		t.Fatalf("a client that waits: %d %q", resp.StatusCode, body)
	}
	// The connection serves on after a watched request.
	if resp, body := c2.do("GET /wait HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 200 || body != "late" {
		t.Fatalf("second request on the connection: %d %q", resp.StatusCode, body)
	}
}
