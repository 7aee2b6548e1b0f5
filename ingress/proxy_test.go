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
	"sync/atomic"
	"testing"
	"time"
)

// backend is an httptest server that answers with its name.
func backend(t *testing.T, name string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/slow":
			time.Sleep(300 * time.Millisecond)
		case "/headers":
			fmt.Fprintf(w, "xff=%s rid=%s host=%s\n", r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Request-Id"), r.Host)
			return
		case "/stream":
			f := w.(http.Flusher)
			for i := 0; i < 3; i++ {
				fmt.Fprintf(w, "chunk %d\n", i)
				f.Flush()
				time.Sleep(50 * time.Millisecond)
			}
			return
		case "/echo":
			b, _ := io.ReadAll(r.Body)
			w.Write(b)
			return
		}
		fmt.Fprint(w, name)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func addr(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

func serve(t *testing.T, p *Proxy) string {
	t.Helper()
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv.URL
}

func get(t *testing.T, url, host string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRoutesByHostAndPath(t *testing.T) {
	t.Parallel()
	a, _ := backend(t, "a")
	b, _ := backend(t, "b")
	c, _ := backend(t, "c")
	p := New(Options{})
	err := p.Update(Table{Routes: []Route{
		{Name: "shop/web", Host: "shop.example", Endpoints: []Endpoint{{TaskID: "a", Addr: addr(a)}}},
		{Name: "shop/api", Host: "shop.example", PathPrefix: "/api", Endpoints: []Endpoint{{TaskID: "b", Addr: addr(b)}}},
		{Name: "blog/web", PathPrefix: "/", Endpoints: []Endpoint{{TaskID: "c", Addr: addr(c)}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, p)
	tests := []struct{ host, path, want string }{
		{"shop.example", "/", "a"},
		{"shop.example:8080", "/api", "b"},
		{"SHOP.example", "/api/orders", "b"},
		{"shop.example", "/apix", "a"},
		{"other.example", "/api", "c"},
	}
	for _, tt := range tests {
		if code, body := get(t, url+tt.path, tt.host); code != 200 || body != tt.want {
			t.Errorf("%s%s → %d %q, want %q", tt.host, tt.path, code, body, tt.want)
		}
	}
}

func TestNoRouteAndNoEndpoint(t *testing.T) {
	t.Parallel()
	p := New(Options{})
	_ = p.Update(Table{Routes: []Route{{Name: "s/empty", Host: "empty.example"}}})
	url := serve(t, p)
	if code, _ := get(t, url, "nothing.example"); code != http.StatusNotFound {
		t.Errorf("unrouted host: %d, want 404", code)
	}
	if code, _ := get(t, url, "empty.example"); code != http.StatusServiceUnavailable {
		t.Errorf("route without endpoints: %d, want 503", code)
	}
}

func TestRetriesAnotherEndpointWhenConnectFails(t *testing.T) {
	t.Parallel()
	good, _ := backend(t, "good")
	// A port nothing listens on.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	p := New(Options{})
	_ = p.Update(Table{Routes: []Route{{Name: "s/w", Endpoints: []Endpoint{
		{TaskID: "dead", Addr: dead}, {TaskID: "good", Addr: addr(good)},
	}}}})
	url := serve(t, p)
	for i := 0; i < 20; i++ {
		if code, body := get(t, url, ""); code != 200 || body != "good" {
			t.Fatalf("request %d: %d %q", i, code, body)
		}
	}
}

func TestHeadersStreamingAndBodies(t *testing.T) {
	t.Parallel()
	a, _ := backend(t, "a")
	p := New(Options{})
	_ = p.Update(Table{Routes: []Route{{Name: "s/w", Endpoints: []Endpoint{{TaskID: "a", Addr: addr(a)}}}}})
	url := serve(t, p)
	_, body := get(t, url+"/headers", "app.example")
	if !strings.Contains(body, "xff=127.0.0.1") || strings.Contains(body, "rid= ") || !strings.Contains(body, "host=app.example") {
		t.Errorf("forwarded headers: %q", body)
	}
	resp, err := http.Get(url + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(resp.Body)
	start := time.Now()
	line, _ := r.ReadString('\n')
	if line != "chunk 0\n" || time.Since(start) > 40*time.Millisecond {
		t.Errorf("first chunk %q after %s: not streamed", line, time.Since(start))
	}
	resp.Body.Close()
	resp, err = http.Post(url+"/echo", "text/plain", strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "payload" {
		t.Errorf("POST body = %q", b)
	}
}

func TestWeightedRevisions(t *testing.T) {
	t.Parallel()
	old, oldHits := backend(t, "old")
	canary, canaryHits := backend(t, "new")
	p := New(Options{})
	_ = p.Update(Table{Routes: []Route{{Name: "s/w", Endpoints: []Endpoint{
		{TaskID: "o", Addr: addr(old), Revision: 1, Weight: 95},
		{TaskID: "n", Addr: addr(canary), Revision: 2, Weight: 5},
	}}}})
	url := serve(t, p)
	for i := 0; i < 1000; i++ {
		get(t, url, "")
	}
	share := float64(canaryHits.Load()) / float64(canaryHits.Load()+oldHits.Load())
	if share < 0.02 || share > 0.09 {
		t.Errorf("canary share %.3f, want about 0.05", share)
	}
}

// TestDrainLetsInFlightFinish: a request in flight on a task that leaves
// the table completes; Drain returns once it has.
func TestDrainLetsInFlightFinish(t *testing.T) {
	t.Parallel()
	a, _ := backend(t, "a")
	b, _ := backend(t, "b")
	p := New(Options{})
	_ = p.Update(Table{Routes: []Route{{Name: "s/w", Endpoints: []Endpoint{{TaskID: "a", Addr: addr(a)}}}}})
	url := serve(t, p)
	var wg sync.WaitGroup
	wg.Add(1)
	var code int
	go func() { defer wg.Done(); code, _ = get(t, url+"/slow", "") }()
	time.Sleep(50 * time.Millisecond)
	_ = p.Update(Table{Routes: []Route{{Name: "s/w", Endpoints: []Endpoint{{TaskID: "b", Addr: addr(b)}}}}})
	if _, body := get(t, url, ""); body != "b" {
		t.Errorf("new requests still go to the drained task: %q", body)
	}
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
}

func TestWebSocketUpgradePassesThrough(t *testing.T) {
	t.Parallel()
	// A minimal upgrade handler: switch protocols, then echo lines.
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
	t.Cleanup(up.Close)
	p := New(Options{})
	_ = p.Update(Table{Routes: []Route{{Name: "s/ws", Endpoints: []Endpoint{{TaskID: "w", Addr: addr(up)}}}}})
	url := serve(t, p)
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	r := bufio.NewReader(conn)
	status, _ := r.ReadString('\n')
	if !strings.Contains(status, "101") {
		t.Fatalf("status line %q", status)
	}
	for {
		l, _ := r.ReadString('\n')
		if l == "\r\n" || l == "" {
			break
		}
	}
	fmt.Fprint(conn, "hi\n")
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	if l, _ := r.ReadString('\n'); l != "echo hi\n" {
		t.Fatalf("after upgrade got %q", l)
	}
}

func TestTableValidation(t *testing.T) {
	t.Parallel()
	p := New(Options{})
	if err := p.Update(Table{Routes: []Route{{Name: "a", PathPrefix: "api"}}}); err == nil {
		t.Error("a path prefix without / was accepted")
	}
	if err := p.Update(Table{Routes: []Route{{Name: "a", Host: "x"}, {Name: "b", Host: "X"}}}); err == nil {
		t.Error("a duplicate route was accepted")
	}
}
