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
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/berth-dev/berth/bench/internal/host"
	"github.com/berth-dev/berth/ingress"
)

func main() {
	backend := flag.String("backend", "", "internal: serve the backend on this address")
	proxy := flag.String("proxy", "", "internal: serve berth's proxy on this address")
	upstream := flag.String("upstream", "", "internal: the proxy's upstream")
	netHTTP := flag.Bool("nethttp", false, "internal: serve berth's proxy with net/http only (no fast path)")
	duration := flag.Duration("d", 15*time.Second, "wrk duration per target, over all rounds")
	wrkRounds := flag.Int("wrk-rounds", 3, "rounds of wrk, targets taking turns")
	conns := flag.Int("c", 64, "wrk connections (and the paced load's)")
	pace := flag.Duration("pace", 5*time.Second, "paced load duration per target at half of berth's maximum (0: skip)")
	rounds := flag.Int("rounds", 3, "rounds of paced load")
	flag.Parse()
	var err error
	switch {
	case *backend != "":
		err = serveBackend(*backend)
	case *proxy != "":
		err = serveProxy(*proxy, *upstream, *netHTTP)
	default:
		err = run(*duration, *wrkRounds, *conns, *pace, *rounds)
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

func serveProxy(addr, upstream string, netHTTP bool) error {
	p := ingress.New(ingress.Options{})
	if err := p.Update(ingress.Table{Routes: []ingress.Route{{Name: "bench/web", Endpoints: []ingress.Endpoint{{TaskID: "t", Addr: upstream}}}}}); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	if netHTTP {
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

func run(d time.Duration, wrkRounds, conns int, paceFor time.Duration, paceRounds int) error {
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
	// The same proxy served by net/http alone (the TLS listener's path,
	// and the HTTP listener's before the fast path).
	nhAddr := freeAddr()
	nh, err := start("berth net/http", nhAddr, self, "-proxy", nhAddr, "-upstream", backendAddr, "-nethttp")
	if err != nil {
		return err
	}
	defer nh.stop()
	targets = append(targets, nh)

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
	// On a shared machine the load of other work drifts within seconds:
	// targets take turns, wrkRounds slices of d each, the order rotating,
	// and each is reported by its median slice.
	rounds := map[string][]result{}
	slice := d / time.Duration(wrkRounds)
	for round := 0; round < wrkRounds; round++ {
		for i := range targets {
			t := targets[(i+round)%len(targets)]
			out, err := exec.Command("wrk", "-t2", fmt.Sprintf("-c%d", conns), "-d"+slice.String(), "--latency", "http://"+t.addr+"/").CombinedOutput()
			if err != nil {
				return fmt.Errorf("wrk %s: %v\n%s", t.name, err, out)
			}
			r := result{}
			r.rps, r.p50, r.p99, r.errors = parseWrk(string(out))
			rounds[t.name] = append(rounds[t.name], r)
		}
	}
	results := map[string]result{}
	spread := map[string]string{}
	for name, rs := range rounds {
		slices.SortFunc(rs, func(a, b result) int { return int(a.rps - b.rps) })
		results[name] = rs[len(rs)/2]
		spread[name] = fmt.Sprintf("%.0f–%.0f", rs[0].rps, rs[len(rs)-1].rps)
	}

	fmt.Printf("## Ingress proxy (issue: zero-downtime delivery) — %s\n\n", time.Now().UTC().Format("2006-01-02"))
	fmt.Printf("Machine: %s, %d CPUs; wrk, proxy and backend share the cores. Command: `go run ./bench/proxy` (wrk -t2 -c%d, keep-alive, loopback, 23-byte response; %d rounds of %s per target, taking turns; the median round is reported, p50 and p99 from it).\n\n", host.CPUModel(), host.CPUs(), conns, wrkRounds, slice)
	fmt.Println("| target | requests/s (median) | range over rounds | × direct | × nginx | × caddy | p50 | p99 | socket errors |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	direct, ng := results["direct"].rps, results["nginx"].rps
	ratio := func(v, of float64) string {
		if of <= 0 {
			return "—"
		}
		return fmt.Sprintf("%.2f", v/of)
	}
	for _, t := range targets {
		r := results[t.name]
		fmt.Printf("| %s | %.0f | %s | %s | %s | %s | %s | %s | %s |\n", t.name, r.rps, spread[t.name], ratio(r.rps, direct), ratio(r.rps, ng), ratio(r.rps, results["caddy"].rps), r.p50, r.p99, r.errors)
	}
	if paceFor > 0 && results["berth"].rps > 0 {
		rate := results["berth"].rps / 2
		fmt.Printf("\nLatency at half of berth's maximum: %.0f requests/s, open loop (each request sent on a fixed schedule over %d keep-alive connections, latency from its scheduled time, so a stall is charged for every request it delays), %s per target, %d rounds in this order.\n\n", rate, conns, paceFor, paceRounds)
		fmt.Println("| round | target | sent | errors | p50 | p99 | p99.9 | p99 added (vs direct, same round) |")
		fmt.Println("|---|---|---|---|---|---|---|---|")
		added := map[string][]time.Duration{}
		for round := 1; round <= paceRounds; round++ {
			var directP99 time.Duration
			for _, t := range targets {
				if t.name != "direct" && t.name != "berth" && t.name != "nginx" {
					continue
				}
				r, err := paced(t.addr, rate, conns, paceFor)
				if err != nil {
					return fmt.Errorf("paced load on %s: %w", t.name, err)
				}
				plus := "—"
				if t.name == "direct" {
					directP99 = r.p99
				} else {
					a := (r.p99 - directP99).Round(time.Microsecond)
					added[t.name] = append(added[t.name], a)
					plus = a.String()
				}
				fmt.Printf("| %d | %s | %d | %d | %s | %s | %s | %s |\n", round, t.name, r.sent, r.errors, r.p50, r.p99, r.p999, plus)
			}
		}
		for _, name := range []string{"berth", "nginx"} {
			if a := added[name]; len(a) > 0 {
				slices.Sort(a)
				fmt.Printf("\np99 added by %s at this rate, median of %d rounds: %s (range %s to %s).\n", name, len(a), a[len(a)/2], a[0], a[len(a)-1])
			}
		}
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

type pacedResult struct {
	sent, errors   int
	p50, p99, p999 time.Duration
}

// paced sends rate requests/s to addr for d over conns keep-alive
// connections, open loop: request i is due at start + i/rate and goes on
// connection i mod conns as soon as both it is due and that connection's
// previous response is in. Its latency counts from when it was due, not
// from when it could be sent (wrk's closed loop leaves out the requests a
// stall delays: coordinated omission).
func paced(addr string, rate float64, conns int, d time.Duration) (pacedResult, error) {
	cs := make([]net.Conn, conns)
	for i := range cs {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return pacedResult{}, err
		}
		defer c.Close()
		cs[i] = c
	}
	total := int(rate * d.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now().Add(50 * time.Millisecond)
	lat := make([][]time.Duration, conns)
	errs := make([]int, conns)
	var wg sync.WaitGroup
	for k := range cs {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			c := cs[k]
			r := bufio.NewReader(c)
			req := []byte("GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
			for i := k; i < total; i += conns {
				due := start.Add(time.Duration(i) * interval)
				if wait := time.Until(due); wait > 0 {
					time.Sleep(wait)
				}
				_, err := c.Write(req)
				var resp *http.Response
				if err == nil {
					resp, err = http.ReadResponse(r, nil)
				}
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				switch {
				case err != nil || resp.StatusCode != 200:
					errs[k]++
				default:
					lat[k] = append(lat[k], time.Since(due))
				}
				if err != nil || resp.Close {
					// nginx closes a connection after 1,000 requests; wrk
					// reconnects too.
					c.Close()
					if c, err = net.Dial("tcp", addr); err != nil {
						errs[k] += (total - i - 1) / conns
						return
					}
					cs[k] = c
					r = bufio.NewReader(c)
				}
			}
		}(k)
	}
	wg.Wait()
	var all []time.Duration
	res := pacedResult{}
	for k := range lat {
		all = append(all, lat[k]...)
		res.errors += errs[k]
	}
	res.sent = len(all) + res.errors
	if len(all) == 0 {
		return res, errors.New("no request succeeded")
	}
	slices.Sort(all)
	q := func(f float64) time.Duration {
		return all[min(len(all)-1, int(f*float64(len(all))))].Round(time.Microsecond)
	}
	res.p50, res.p99, res.p999 = q(0.50), q(0.99), q(0.999)
	return res, nil
}
