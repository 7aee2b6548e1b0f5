// Command rollout measures replacing a running web service with a new
// revision under continuous load: berth (3 replicas behind its ingress,
// start-first rollout) against `docker-compose up -d` after the same
// change (what users do today), on the same engine in the same run. It
// prints a Markdown section for bench/RESULTS.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth-dev/berth/bench/internal/host"
	loadc "github.com/berth-dev/berth/bench/internal/load"
	"github.com/berth-dev/berth/runtime/docker"
)

const image = "berth-bench/hello:1"

var (
	berthLogLevel   string
	proxyMode       string
	withHealthcheck bool
)

func main() {
	cycles := flag.Int("n", 3, "redeploys per tool")
	tools := flag.String("tools", "compose,berth,swarm", "which tools to measure (swarm runs on an engine of its own and needs root)")
	flag.BoolVar(&withHealthcheck, "healthcheck", false, "give berth's service an engine health check every 250 ms (Swarm's service has none; berth's readiness is probed from outside either way)")
	flag.StringVar(&proxyMode, "proxy", "process", "berth up's --proxy: process (the default, the ingress in its own process) or inline")
	flag.StringVar(&berthLogLevel, "berth-log-level", "warn", "log level of the berth under test (debug shows each container's create and start time)")
	flag.Parse()
	if err := run(*cycles, strings.Split(*tools, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "bench/rollout:", err)
		os.Exit(1)
	}
}

type load struct {
	ok, failed int
	firstErr   string
}

// hammer sends requests from 8 workers, each over its own keep-alive
// connection without retries, until stop is closed. host is the Host
// header ("" for addr).
func hammer(addr, host string, stop <-chan struct{}) *load {
	l := &load{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &loadc.Conn{Addr: addr, Host: host}
			defer c.Close()
			for {
				select {
				case <-stop:
					return
				default:
				}
				err := c.Get()
				mu.Lock()
				if err == nil {
					l.ok++
				} else {
					l.failed++
					if l.firstErr == "" {
						l.firstErr = err.Error()
					}
				}
				mu.Unlock()
			}
		}()
	}
	go func() { <-stop; wg.Wait() }()
	return l
}

// measure runs redeploy under load and returns its wall time and the load.
func measure(t target, redeploy func() error) (time.Duration, *load, error) {
	stop := make(chan struct{})
	l := hammer(t.addr, t.host, stop)
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	if berthLogLevel == "debug" {
		fmt.Fprintf(os.Stderr, "redeploy begins at %s\n", start.UTC().Format("15:04:05.000"))
	}
	err := redeploy()
	took := time.Since(start)
	time.Sleep(time.Second)
	close(stop)
	time.Sleep(200 * time.Millisecond)
	return took, l, err
}

func run(cycles int, tools []string) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "bro")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	drv, err := docker.New(docker.Options{})
	if err != nil {
		return err
	}
	berthBin, helloBin, loadgenBin := filepath.Join(dir, "berth"), filepath.Join(dir, "hello"), filepath.Join(dir, "loadgen")
	for out, pkg := range map[string]string{berthBin: "./cmd/berth", helloBin: "./examples/hello", loadgenBin: "./bench/rollout/loadgen"} {
		if err := host.GoBuild(out, pkg); err != nil {
			return err
		}
	}
	if _, err := docker.BuildScratchImage(ctx, drv, image, helloBin, map[string]string{"io.berth.bench": "1"}, []string{"/hello"}); err != nil {
		return err
	}
	defer exec.Command("docker", "rmi", "-f", image).Run()

	var results []result
	var berth, swarm *result
	for _, tool := range tools {
		var r result
		var err error
		switch tool {
		case "compose":
			r, err = composeRuns(dir, cycles)
		case "berth":
			r, err = berthRuns(ctx, drv, dir, berthBin, cycles)
			berth = &r
		case "swarm":
			r, err = swarmRuns(ctx, loadgenBin, cycles)
			swarm = &r
		default:
			return fmt.Errorf("unknown tool %q (compose, berth, swarm)", tool)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", tool, err)
		}
		results = append(results, r)
	}
	fmt.Printf("## Rollout under load (issue: zero-downtime delivery) — %s\n\n", time.Now().UTC().Format("2006-01-02"))
	fmt.Printf("Machine: %s, %d CPUs, Docker Engine 20.10, docker-compose 1.29.2. Command: `go run ./bench/rollout -n %d`. Load: 8 client workers, one keep-alive connection each and no retries (a request on a connection closed under it fails, as with wrk), looping GET / for the whole redeploy, on loopback (berth: through its HTTP ingress, %s, with the route's Host; Swarm: from a container on the service's overlay network); the redeploy changes an environment variable; %s.\n\n", host.CPUModel(), host.CPUs(), cycles, proxyText(), healthText())
	fmt.Println("| tool | what is replaced | wall time per redeploy (median) | requests | failed |")
	fmt.Println("|---|---|---|---|---|")
	for _, r := range results {
		fmt.Printf("| %s | %s | %s | %d | %d (%.1f%%)%s |\n", r.tool, r.what, r.median.Round(10*time.Millisecond), r.ok+r.failed, r.failed,
			100*float64(r.failed)/float64(max(1, r.ok+r.failed)), firstErr(r.firstErr))
	}
	if berth != nil && swarm != nil {
		fmt.Printf("\nberth's rollout is %.1f× faster than Swarm's (median wall time, same run; goal ≥ 3×).\n", float64(swarm.median)/float64(berth.median))
	}
	if berth != nil && berth.engine > 0 {
		fmt.Printf("\nThe engine alone, under the same load: three containers of the image, created beforehand on the stack's network and started one after another with the engine API (what a one-at-a-time rollout of three replicas cannot go below), took %s (median of %d rounds); berth's redeploy spent %s beyond that.",
			berth.engine.Round(10*time.Millisecond), cycles, (berth.median - berth.engine).Round(10*time.Millisecond))
		if swarm != nil {
			fmt.Printf(" Swarm's median is %.1f× those three starts: the most any one-at-a-time rollout could be faster than Swarm on this engine.", float64(swarm.median)/float64(berth.engine))
		}
		fmt.Println()
	}
	return nil
}

func proxyText() string {
	if proxyMode == "inline" {
		return "run inside berth up (-proxy inline)"
	}
	return "berth up's own ingress process (the default)"
}

func healthText() string {
	if withHealthcheck {
		return "berth's service has an engine health check every 250 ms (-healthcheck), Swarm's none"
	}
	return "neither berth's nor Swarm's service has an engine health check (berth probes readiness from outside)"
}

func firstErr(s string) string {
	if s == "" {
		return ""
	}
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return "; e.g. " + s
}

type result struct {
	tool, what string
	median     time.Duration
	engine     time.Duration // berth: the engine's three starts in a row under the same load
	ok, failed int
	firstErr   string
}

func collect(tool, what string, times []time.Duration, loads []*load) result {
	r := result{tool: tool, what: what}
	for i := range times {
		for j := i + 1; j < len(times); j++ {
			if times[j] < times[i] {
				times[i], times[j] = times[j], times[i]
			}
		}
	}
	r.median = times[len(times)/2]
	for _, l := range loads {
		r.ok += l.ok
		r.failed += l.failed
		if r.firstErr == "" {
			r.firstErr = l.firstErr
		}
	}
	return r
}

// redeploys deploys version 0, then measures cycles redeploys of versions
// 1..cycles under load, the same way for every tool.
// target is where the load goes: an address, and the Host header a
// route needs ("" for none).
type target struct{ addr, host string }

func redeploys(tool, what string, url target, cycles int, write func(int) error, deploy func() error) (result, error) {
	if err := write(0); err != nil {
		return result{}, err
	}
	if err := deploy(); err != nil {
		return result{}, err
	}
	if err := waitOK(url); err != nil {
		return result{}, err
	}
	var times []time.Duration
	var loads []*load
	for i := 1; i <= cycles; i++ {
		took, l, err := measure(url, func() error {
			if err := write(i); err != nil {
				return err
			}
			return deploy()
		})
		if err != nil {
			return result{}, err
		}
		times, loads = append(times, took), append(loads, l)
		fmt.Fprintf(os.Stderr, "%s: redeploy %d took %s, %d requests, %d failed\n", tool, i, took.Round(time.Millisecond), l.ok+l.failed, l.failed)
		// Whatever the tool left down must answer before the next cycle.
		if err := waitOK(url); err != nil {
			return result{}, err
		}
	}
	return collect(tool, what, times, loads), nil
}

func freePort() int {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitOK(t target) error {
	c := &loadc.Conn{Addr: t.addr, Host: t.host, Timeout: time.Second}
	defer c.Close()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if c.Get() == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s (Host %q) did not answer", t.addr, t.host)
}

func composeRuns(dir string, cycles int) (result, error) {
	port := freePort()
	proj := filepath.Join(dir, "compose")
	os.MkdirAll(proj, 0o755)
	write := func(v int) error {
		return os.WriteFile(filepath.Join(proj, "docker-compose.yml"), []byte(fmt.Sprintf(`version: "3.8"
services:
  web:
    image: %s
    environment:
      VERSION: v%d
    ports:
      - "127.0.0.1:%d:8080"
`, image, v, port)), 0o644)
	}
	dc := func(args ...string) error {
		cmd := exec.Command("docker-compose", append([]string{"-p", "berthbench", "--project-directory", proj}, args...)...)
		cmd.Dir = proj
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("docker-compose %v: %v %s", args, err, b)
		}
		return nil
	}
	defer dc("down", "-t", "1")
	return redeploys("docker-compose up -d", "1 container (a published port allows one)",
		target{addr: fmt.Sprintf("127.0.0.1:%d", port)}, cycles, write, func() error { return dc("up", "-d") })
}

func berthRuns(ctx context.Context, drv *docker.Driver, dir, berthBin string, cycles int) (result, error) {
	data, err := os.MkdirTemp(dir, "d")
	if err != nil {
		return result{}, err
	}
	ingress := fmt.Sprintf("127.0.0.1:%d", freePort())
	up := exec.Command(berthBin, "up", "--data-dir", data, "--http-addr", ingress, "--https-addr", "off", "--publish-host", "127.0.0.1", "--log-level", berthLogLevel, "--proxy", proxyMode)
	up.Stdout, up.Stderr = os.Stderr, os.Stderr
	if err := up.Start(); err != nil {
		return result{}, err
	}
	env := append(os.Environ(), "BERTH_HOST=unix://"+filepath.Join(data, "berth.sock"))
	cli := func(args ...string) error {
		cmd := exec.Command(berthBin, args...)
		cmd.Env = env
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("berth %v: %v %s", args, err, b)
		}
		return nil
	}
	stack := fmt.Sprintf("ro%d", time.Now().Unix()%100000)
	defer func() {
		_ = cli("rm", stack)
		time.Sleep(3 * time.Second)
		_ = up.Process.Signal(os.Interrupt)
		_, _ = up.Process.Wait()
		// The ingress process outlives berth up by design.
		if b, err := os.ReadFile(filepath.Join(data, "proxy.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				if p, err := os.FindProcess(pid); err == nil {
					_ = p.Signal(syscall.SIGTERM)
				}
			}
		}
	}()
	for i := 0; i < 100; i++ {
		if cli("ls") == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	file := filepath.Join(dir, "berth.yaml")
	healthcheck := ""
	if withHealthcheck {
		healthcheck = `    healthcheck:
      test: ["CMD", "/hello", "-healthcheck"]
      interval: 250ms
      timeout: 2s
      retries: 3
`
	}
	write := func(v int) error {
		return os.WriteFile(file, []byte(fmt.Sprintf(`services:
  web:
    image: %s
    environment:
      VERSION: v%d
    x-berth:
      routes:
        - host: bench.test
          port: 8080
    deploy:
      replicas: 3
%s`, image, v, healthcheck)), 0o644)
	}
	at := target{addr: ingress, host: "bench.test"}
	r, err := redeploys("berth deploy", "3 replicas, start-first, behind the HTTP ingress",
		at, cycles, write, func() error { return cli("deploy", "-f", file, "--stack", stack) })
	if err != nil {
		return r, err
	}
	r.engine, err = engineStarts(ctx, drv, stack, at, 3, cycles)
	return r, err
}
