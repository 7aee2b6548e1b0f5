// Command proxy measures berth's HTTP ingress against the same backend
// reached directly and through Debian's nginx, haproxy and caddy, all in
// one run with wrk on loopback, and the memory an idle keep-alive
// connection costs berth. It prints a Markdown section for
// bench/RESULTS.md. Needs wrk, nginx, haproxy and caddy on PATH (see
// scripts/bench.sh).
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/berth-dev/berth/bench/internal/host"
	"github.com/berth-dev/berth/ingress"
)

func main() {
	backend := flag.String("backend", "", "internal: serve the backend on this address")
	proxy := flag.String("proxy", "", "internal: serve berth's proxy on this address")
	upstream := flag.String("upstream", "", "internal: the proxy's upstream")
	duration := flag.Duration("d", 10*time.Second, "wrk duration per target")
	conns := flag.Int("c", 64, "wrk connections")
	flag.Parse()
	var err error
	switch {
	case *backend != "":
		err = serveBackend(*backend)
	case *proxy != "":
		err = serveProxy(*proxy, *upstream)
	default:
		err = run(*duration, *conns)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/proxy:", err)
		os.Exit(1)
	}
}

func serveBackend(addr string) error {
	body := []byte("hello from the backend\n")
	return http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	}))
}

func serveProxy(addr, upstream string) error {
	p := ingress.New(ingress.Options{})
	if err := p.Update(ingress.Table{Routes: []ingress.Route{{Name: "bench/web", Endpoints: []ingress.Endpoint{{TaskID: "t", Addr: upstream}}}}}); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	if os.Getenv("BERTH_BENCH_NETHTTP") != "" {
		return srv.Serve(ln)
	}
	return p.Serve(context.Background(), ln, ingress.ServeOptions{Fallback: srv})
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type target struct {
	name string
	addr string
	cmd  *exec.Cmd
}

func start(name, addr string, args ...string) (*target, error) {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	t := &target{name: name, addr: addr, cmd: cmd}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return t, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.stop()
	return nil, fmt.Errorf("%s did not answer on %s", name, addr)
}

func (t *target) stop() {
	if t.cmd != nil && t.cmd.Process != nil {
		_ = t.cmd.Process.Kill()
		_, _ = t.cmd.Process.Wait()
	}
}

func run(d time.Duration, conns int) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "berth-proxy-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	backendAddr := freeAddr()
	be, err := start("backend", backendAddr, self, "-backend", backendAddr)
	if err != nil {
		return err
	}
	defer be.stop()

	targets := []*target{{name: "direct", addr: backendAddr}}
	berthAddr := freeAddr()
	bt, err := start("berth", berthAddr, self, "-proxy", berthAddr, "-upstream", backendAddr)
	if err != nil {
		return err
	}
	defer bt.stop()
	targets = append(targets, bt)

	for _, mk := range []func(string, string) (*target, error){nginx, haproxy, caddy} {
		t, err := mk(dir, backendAddr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "skipping:", err)
			continue
		}
		defer t.stop()
		targets = append(targets, t)
	}

	type result struct {
		rps      float64
		p50, p99 time.Duration
		errors   string
	}
	results := map[string]result{}
	for _, t := range targets {
		out, err := exec.Command("wrk", "-t2", fmt.Sprintf("-c%d", conns), "-d"+d.String(), "--latency", "http://"+t.addr+"/").CombinedOutput()
		if err != nil {
			return fmt.Errorf("wrk %s: %v\n%s", t.name, err, out)
		}
		r := result{}
		r.rps, r.p50, r.p99, r.errors = parseWrk(string(out))
		results[t.name] = r
	}

	fmt.Printf("## Ingress proxy (issue: zero-downtime delivery) — %s\n\n", time.Now().UTC().Format("2006-01-02"))
	fmt.Printf("Machine: %s, %d CPUs; wrk, proxy and backend share the cores. Command: `go run ./bench/proxy` (wrk -t2 -c%d -d%s, keep-alive, loopback, 23-byte response).\n\n", host.CPUModel(), host.CPUs(), conns, d)
	fmt.Println("| target | requests/s | × direct | × nginx | p50 | p99 | socket errors |")
	fmt.Println("|---|---|---|---|---|---|---|")
	direct, ng := results["direct"].rps, results["nginx"].rps
	for _, t := range targets {
		r := results[t.name]
		vsNginx := "—"
		if ng > 0 {
			vsNginx = fmt.Sprintf("%.2f", r.rps/ng)
		}
		fmt.Printf("| %s | %.0f | %.2f | %s | %s | %s | %s |\n", t.name, r.rps, r.rps/direct, vsNginx, r.p50, r.p99, r.errors)
	}
	perConn, err := idleConnCost(bt, 1000)
	if err != nil {
		return err
	}
	fmt.Printf("\nMemory per idle keep-alive client connection through berth's proxy: %.1f KiB (RSS growth over 1,000 idle connections, each with its upstream connection).\n", perConn/1024)
	return nil
}

var (
	rpsRE     = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	latRE     = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s)`)
	socketErr = regexp.MustCompile(`Socket errors: (.*)`)
)

func parseWrk(out string) (float64, time.Duration, time.Duration, string) {
	var rps float64
	if m := rpsRE.FindStringSubmatch(out); m != nil {
		rps, _ = strconv.ParseFloat(m[1], 64)
	}
	var p50, p99 time.Duration
	for _, m := range latRE.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[3]]
		d := time.Duration(v * float64(unit))
		if m[1] == "50" {
			p50 = d
		} else {
			p99 = d
		}
	}
	errs := "0"
	if m := socketErr.FindStringSubmatch(out); m != nil {
		errs = m[1]
	}
	return rps, p50.Round(time.Microsecond), p99.Round(time.Microsecond), errs
}

func nginx(dir, backend string) (*target, error) {
	if _, err := exec.LookPath("nginx"); err != nil {
		return nil, errors.New("nginx not installed")
	}
	addr := freeAddr()
	conf := filepath.Join(dir, "nginx.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`worker_processes auto;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s; proxy_temp_path %[1]s; fastcgi_temp_path %[1]s; uwsgi_temp_path %[1]s; scgi_temp_path %[1]s;
  upstream be { server %[2]s; keepalive 128; }
  server {
    listen %[3]s;
    location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
`, dir, backend, addr)), 0o644)
	return start("nginx", addr, "nginx", "-c", conf, "-p", dir, "-g", "daemon off;")
}

func haproxy(dir, backend string) (*target, error) {
	if _, err := exec.LookPath("haproxy"); err != nil {
		return nil, errors.New("haproxy not installed")
	}
	addr := freeAddr()
	conf := filepath.Join(dir, "haproxy.cfg")
	os.WriteFile(conf, []byte(fmt.Sprintf(`global
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend fe
  bind %s
  default_backend be
backend be
  server s1 %s
`, addr, backend)), 0o644)
	return start("haproxy", addr, "haproxy", "-f", conf)
}

func caddy(dir, backend string) (*target, error) {
	if _, err := exec.LookPath("caddy"); err != nil {
		return nil, errors.New("caddy not installed")
	}
	addr := freeAddr()
	conf := filepath.Join(dir, "Caddyfile")
	os.WriteFile(conf, []byte(fmt.Sprintf("{\n  admin off\n  auto_https off\n}\nhttp://%s {\n  reverse_proxy %s\n}\n", addr, backend)), 0o644)
	t, err := start("caddy", addr, "caddy", "run", "--config", conf, "--adapter", "caddyfile")
	return t, err
}

// idleConnCost opens n keep-alive connections through the proxy, leaves
// them idle and returns the RSS growth per connection.
func idleConnCost(t *target, n int) (float64, error) {
	before, err := host.RSS(t.cmd.Process.Pid)
	if err != nil {
		return 0, err
	}
	var cs []net.Conn
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", t.addr)
		if err != nil {
			return 0, err
		}
		cs = append(cs, c)
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
		r := bufio.NewReader(c)
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
	}
	time.Sleep(2 * time.Second)
	after, err := host.RSS(t.cmd.Process.Pid)
	if err != nil {
		return 0, err
	}
	return float64(after-before) / float64(n), nil
}
