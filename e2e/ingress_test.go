package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// load runs request functions round-robin on several workers until Stop.
// Each function returns the label to count a success under, or an error.
type load struct {
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	mu       sync.Mutex
	counts   map[string]int
	failures []string
}

func startLoad(workers int, fns ...func() (string, error)) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel, counts: map[string]int{}}
	for i := 0; i < workers; i++ {
		fn := fns[i%len(fns)]
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				label, err := fn()
				l.mu.Lock()
				if err != nil {
					l.failures = append(l.failures, err.Error())
				} else {
					l.counts[label]++
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// Stop ends the load and returns the successes by label and the failures.
func (l *load) Stop() (map[string]int, []string) {
	l.cancel()
	l.wg.Wait()
	return l.counts, l.failures
}

func total(counts map[string]int) int {
	n := 0
	for _, c := range counts {
		n += c
	}
	return n
}

func httpGet(url, host string) (int, string, error) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if host != "" {
		req.Host = host
	}
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// TestIngressPortsRoutesAndDrain: a published port and an HTTP route reach
// the example app through the ingress, and a slow request in flight on a
// task that is scaled away completes.
func TestIngressPortsRoutesAndDrain(t *testing.T) {
	t.Parallel()
	b := startBerth(t)
	port := freePort(t)
	doc := fmt.Sprintf(`
services:
  web:
    image: %s
    environment:
      VERSION: v1
    ports:
      - "%d:8080"
    deploy:
      replicas: 2
    healthcheck:
      test: ["CMD", "/hello", "-healthcheck"]
      interval: 1s
      timeout: 2s
      retries: 3
    x-berth:
      routes:
        - host: hello.test
          port: 8080
`, helloImage, port)
	b.deploy("ing", doc)
	b.waitRunning("ing", "web", 2)

	portURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitFor(t, 20*time.Second, "the published port to answer", func() (bool, string) {
		code, body, err := httpGet(portURL+"/", "")
		return err == nil && code == 200 && strings.Contains(body, "version v1"), fmt.Sprint(code, body, err)
	})
	v, err := b.cl.Version(context.Background())
	if err != nil || v.Ingress == "" {
		t.Fatalf("no ingress address: %v %+v", err, v)
	}
	routeURL := "http://" + v.Ingress
	waitFor(t, 20*time.Second, "the HTTP route to answer", func() (bool, string) {
		code, body, err := httpGet(routeURL+"/", "hello.test")
		return err == nil && code == 200 && strings.Contains(body, "hello from"), fmt.Sprint(code, body, err)
	})
	if code, _, _ := httpGet(routeURL+"/", "other.test"); code != http.StatusNotFound {
		t.Errorf("unrouted host answered %d, want 404", code)
	}

	// Slow requests in flight on both tasks while the service scales to
	// one: the task that goes is drained before it is stopped.
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body, err := httpGet(routeURL+"/slow?d=2s", "hello.test")
			if err != nil || code != 200 || !strings.Contains(body, "slept 2s") {
				errs <- fmt.Sprint(code, " ", body, " ", err)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	b.mustCLI("scale", "ing", "web=1")
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("a request in flight failed while its task was removed: %s", e)
	}
	b.waitRunning("ing", "web", 1)
	if code, _, err := httpGet(portURL+"/", ""); err != nil || code != 200 {
		t.Errorf("after scale-down the published port answers %d %v", code, err)
	}
}

// TestRedeployDropsNoRequest: a new revision replaces every task start-first
// while clients hammer the published port: no request fails.
func TestRedeployDropsNoRequest(t *testing.T) {
	t.Parallel()
	b := startBerth(t)
	port := freePort(t)
	doc := func(version string) string {
		return fmt.Sprintf(`
services:
  web:
    image: %s
    environment:
      VERSION: %s
    ports:
      - "%d:8080"
    deploy:
      replicas: 3
    healthcheck:
      test: ["CMD", "/hello", "-healthcheck"]
      interval: 500ms
      timeout: 2s
      retries: 3
`, helloImage, version, port)
	}
	b.deploy("zero", doc("v1"))
	b.waitRunning("zero", "web", 3)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	waitFor(t, 20*time.Second, "the published port", func() (bool, string) {
		code, _, err := httpGet(url, "")
		return err == nil && code == 200, fmt.Sprint(code, err)
	})

	c := http.Client{Timeout: 5 * time.Second}
	l := startLoad(4, func() (string, error) {
		resp, err := c.Get(url)
		if err != nil {
			return "", err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return "", fmt.Errorf("%s", resp.Status)
		}
		return strings.TrimSpace(string(body[strings.LastIndex(string(body), "version"):])), nil
	})
	time.Sleep(500 * time.Millisecond)
	// Requests of 3 s that start just before their tasks are replaced: the
	// drain lets each finish before its task is signalled.
	slow := make(chan string, 6)
	for range cap(slow) {
		go func() {
			code, body, err := httpGet(url+"slow?d=3s", "")
			if err != nil || code != 200 || !strings.Contains(body, "slept 3s") {
				slow <- fmt.Sprint(code, " ", body, " ", err)
				return
			}
			slow <- ""
		}()
	}
	time.Sleep(100 * time.Millisecond)
	b.deploy("zero", doc("v2"))
	svc := b.waitRunning("zero", "web", 3)
	for range cap(slow) {
		if e := <-slow; e != "" {
			t.Errorf("a 3 s request started just before the redeploy failed: %s", e)
		}
	}
	time.Sleep(time.Second)
	versions, failed := l.Stop()
	if svc.Revision != 2 {
		t.Fatalf("revision %d after the redeploy", svc.Revision)
	}
	if len(failed) > 0 {
		t.Fatalf("%d of %d requests failed during the redeploy; first: %s", len(failed), total(versions)+len(failed), failed[0])
	}
	if versions["version v2)"] == 0 {
		t.Fatalf("no request reached v2: %v", versions)
	}
	t.Logf("%d requests, 0 failed, by version: %v", total(versions), versions)
}

// TestTrafficSurvivesBerthCrash: kill -9 berth up while clients use a
// published port: the proxy process keeps serving, and berth coming back
// adopts it. No request fails.
func TestTrafficSurvivesBerthCrash(t *testing.T) {
	t.Parallel()
	b := startBerth(t)
	port := freePort(t)
	doc := fmt.Sprintf(`
services:
  web:
    image: %s
    ports:
      - "%d:8080"
    deploy:
      replicas: 2
`, helloImage, port)
	b.deploy("crash", doc)
	b.waitRunning("crash", "web", 2)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	waitFor(t, 20*time.Second, "the published port", func() (bool, string) {
		code, _, err := httpGet(url, "")
		return err == nil && code == 200, fmt.Sprint(code, err)
	})
	l := startLoad(4, func() (string, error) {
		code, _, err := httpGet(url, "")
		if err == nil && code != 200 {
			err = fmt.Errorf("status %d", code)
		}
		return "ok", err
	})
	for i := 0; i < 3; i++ {
		time.Sleep(700 * time.Millisecond)
		b.kill9()
		time.Sleep(time.Second)
		b.start()
	}
	time.Sleep(time.Second)
	counts, failed := l.Stop()
	if len(failed) > 0 {
		t.Fatalf("%d of %d requests failed across berth crashes; first: %s", len(failed), total(counts)+len(failed), failed[0])
	}
	if counts["ok"] == 0 {
		t.Fatal("no request succeeded")
	}
	t.Logf("%d requests across 3 kill -9 of berth, 0 failed", counts["ok"])
}

// TestGaplessCyclesThroughRoute is the stress test of zero-downtime
// delivery: 8 workers send GETs, POSTs with a body and streaming GETs
// through the ingress while the service goes through 20 cycles of
// rolling deploy, rollback, canary promotion and blue-green switch; not
// one request may fail or get a non-2xx answer.
func TestGaplessCyclesThroughRoute(t *testing.T) {
	t.Parallel()
	b := startBerth(t)
	doc := func(v, strategy string) string {
		return fmt.Sprintf(`
services:
  web:
    image: %s
    environment:
      VERSION: %s
    deploy:
      replicas: 2
    x-berth:
      routes:
        - host: gapless.test
          port: 8080
      deploy:
        strategy: %s
        interval: 1s
%s`, helloImage, v, strategy, map[bool]string{true: "        steps: [50, 100]\n"}[strategy == "canary"])
	}
	b.deploy("gap", doc("v1", "rolling"))
	b.waitRunning("gap", "web", 2)
	v, err := b.cl.Version(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + v.Ingress
	waitFor(t, 20*time.Second, "the route", func() (bool, string) {
		code, _, err := httpGet(base+"/", "gapless.test")
		return err == nil && code == 200, fmt.Sprint(code, err)
	})

	client := &http.Client{Timeout: 10 * time.Second}
	do := func(method, path, body string) (string, error) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Host = "gapless.test"
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return "", err
		}
		if resp.StatusCode != 200 {
			return "", fmt.Errorf("%s %s: %s", method, path, resp.Status)
		}
		return string(b), nil
	}
	l := startLoad(8,
		func() (string, error) { _, err := do("GET", "/", ""); return "get", err },
		func() (string, error) {
			out, err := do("POST", "/echo", "payload-123")
			if err == nil && out != "payload-123" {
				err = fmt.Errorf("echo returned %q", out)
			}
			return "post", err
		},
		func() (string, error) {
			out, err := do("GET", "/stream?n=6", "")
			if err == nil && strings.Count(out, "\n") != 6 {
				err = fmt.Errorf("stream cut short: %q", out)
			}
			return "stream", err
		},
	)
	// 20 cycles: rolling deploy, rollback, canary promotion, blue-green
	// switch, five times over.
	for i := range 20 {
		began := time.Now()
		switch i % 4 {
		case 0:
			b.deploy("gap", doc(fmt.Sprintf("v%d", i+2), "rolling"))
		case 1:
			b.mustCLI("rollback", "gap", "--timeout", "60s")
		case 2:
			b.deploy("gap", doc(fmt.Sprintf("v%d", i+2), "canary"))
		case 3:
			b.deploy("gap", doc(fmt.Sprintf("v%d", i+2), "blue-green"))
		}
		b.waitRunning("gap", "web", 2)
		t.Logf("cycle %d (%s) took %s", i+1, []string{"rolling deploy", "rollback", "canary", "blue-green"}[i%4], time.Since(began).Round(time.Millisecond))
	}
	time.Sleep(500 * time.Millisecond)
	counts, failures := l.Stop()
	if len(failures) > 0 {
		t.Fatalf("%d requests failed across 20 deploy, rollback, canary and blue-green cycles; first: %s (succeeded: %v)", len(failures), failures[0], counts)
	}
	for _, k := range []string{"get", "post", "stream"} {
		if counts[k] == 0 {
			t.Fatalf("no %s request completed: %v", k, counts)
		}
	}
	t.Logf("0 failed across 20 deploy, rollback, canary and blue-green cycles: %v", counts)
}
