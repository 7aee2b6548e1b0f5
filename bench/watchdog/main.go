// Command watchdog measures how fast berth notices a wedged Docker
// Engine: berth up runs against the real engine through a fault proxy,
// the proxy starts hanging every call, and the time until berth records
// engine.wedged is taken, n times with the hang injected at varying
// points of the probe cycle. The baseline, in the same run, is the same
// berth with its watchdog turned off: the time until its node record
// says anything is wrong at all (the heartbeat's own engine call timing
// out).
//
// Usage: go run ./bench/watchdog [-n 10] [-baseline 3]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/bench/internal/host"
	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/runtime/docker"
	"github.com/berth-dev/berth/runtime/faultproxy"
)

func main() {
	n := flag.Int("n", 10, "injected hangs with the watchdog")
	base := flag.Int("baseline", 3, "injected hangs without the watchdog")
	flag.Parse()
	if err := run(*n, *base); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type instance struct {
	cmd   *exec.Cmd
	cl    *client.Client
	proxy *faultproxy.Proxy
	dir   string
}

func start(bin, engineSock, config string) (*instance, error) {
	dir, err := os.MkdirTemp("", "bwd")
	if err != nil {
		return nil, err
	}
	proxy, err := faultproxy.Start(filepath.Join(dir, "engine.sock"), engineSock)
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "berth.yaml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "up", "--data-dir", dir, "--docker-host", proxy.Host(), "--config", cfg,
		"--proxy", "inline", "--http-addr", "127.0.0.1:0", "--publish-host", "127.0.0.1")
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	cl, err := client.New("unix://" + filepath.Join(dir, "berth.sock"))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cl.WaitReady(ctx); err != nil {
		return nil, err
	}
	return &instance{cmd: cmd, cl: cl, proxy: proxy, dir: dir}, nil
}

func (i *instance) stop() {
	_ = i.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = i.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = i.cmd.Process.Kill()
		<-done
	}
	i.proxy.Close()
	os.RemoveAll(i.dir)
}

// node returns the (only) node record.
func (i *instance) node(ctx context.Context) (api.Node, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ns, err := i.cl.Nodes(ctx)
	if err != nil || len(ns) != 1 {
		return api.Node{}, fmt.Errorf("nodes %v: %v", ns, err)
	}
	return ns[0], nil
}

func waitNode(ctx context.Context, i *instance, timeout time.Duration, cond func(api.Node) bool) (api.Node, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if n, err := i.node(ctx); err == nil && cond(n) {
			return n, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return api.Node{}, fmt.Errorf("node condition not met within %s", timeout)
}

func run(n, baseN int) error {
	ctx := context.Background()
	drv, err := docker.New(docker.Options{})
	if err != nil {
		return err
	}
	info, err := drv.Info(ctx)
	if err != nil {
		return err
	}
	sock := strings.TrimPrefix(drv.Host(), "unix://")
	tmp, err := os.MkdirTemp("", "bwdbin")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "berth")
	if err := host.GoBuild(bin, "./cmd/berth"); err != nil {
		return err
	}

	// With the watchdog (defaults: probe every 2s, hang after 5s).
	b, err := start(bin, sock, "# defaults\n")
	if err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			b.stop()
		}
	}()
	events := make(chan api.Event, 64)
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = b.cl.FollowEvents(ectx, "", 1, func(e api.Event) error { events <- e; return nil }) }()
	wait := func(typ string, timeout time.Duration) (api.Event, error) {
		t := time.After(timeout)
		for {
			select {
			case e := <-events:
				if e.Type == typ {
					return e, nil
				}
			case <-t:
				return api.Event{}, fmt.Errorf("no %s within %s", typ, timeout)
			}
		}
	}
	time.Sleep(5 * time.Second)
	var took []time.Duration
	for k := 0; k < n; k++ {
		// Vary where in the 2 s probe cycle the hang lands.
		time.Sleep(time.Duration(k%5) * 400 * time.Millisecond)
		t0 := time.Now()
		b.proxy.Set(faultproxy.Hang, 0, "")
		e, err := wait("engine.wedged", time.Minute)
		if err != nil {
			return err
		}
		took = append(took, e.Time.Sub(t0))
		if _, err := waitNode(ctx, b, 10*time.Second, func(n api.Node) bool { return n.EngineHealth.State == api.EngineWedged && n.Degraded != "" }); err != nil {
			return fmt.Errorf("node not degraded after engine.wedged: %w", err)
		}
		b.proxy.Set(faultproxy.Pass, 0, "")
		if _, err := wait("engine.healthy", time.Minute); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "hang %d: wedged after %s\n", k+1, took[k].Round(time.Millisecond))
	}
	cancel()
	b.stop()
	stopped = true

	// Without the watchdog: the heartbeat's own engine call notices.
	var baseTook []time.Duration
	if baseN > 0 {
		nb, err := start(bin, sock, "watchdog: {disabled: true}\n")
		if err != nil {
			return err
		}
		time.Sleep(5 * time.Second)
		for k := 0; k < baseN; k++ {
			t0 := time.Now()
			nb.proxy.Set(faultproxy.Hang, 0, "")
			if _, err := waitNode(ctx, nb, 3*time.Minute, func(n api.Node) bool { return n.Degraded != "" }); err != nil {
				nb.stop()
				return fmt.Errorf("baseline: %w", err)
			}
			baseTook = append(baseTook, time.Since(t0))
			nb.proxy.Set(faultproxy.Pass, 0, "")
			if _, err := waitNode(ctx, nb, 3*time.Minute, func(n api.Node) bool { return n.Degraded == "" }); err != nil {
				nb.stop()
				return fmt.Errorf("baseline recovery: %w", err)
			}
			fmt.Fprintf(os.Stderr, "baseline %d: degraded after %s\n", k+1, baseTook[k].Round(time.Millisecond))
		}
		nb.stop()
	}

	med, lo, hi := stats(took)
	fmt.Printf("## Engine watchdog (issue: operations) — %s\n\n", time.Now().UTC().Format("2006-01-02"))
	fmt.Printf("Machine: %s, %d CPUs, %.1f GiB, Docker Engine %s. Command: `go run ./bench/watchdog -n %d -baseline %d`.\n\n",
		host.CPUModel(), info.NanoCPUs/1e9, float64(info.Memory)/(1<<30), info.Version, n, baseN)
	fmt.Println("| figure | berth | baseline (same run) | ratio | goal |")
	fmt.Println("|---|---|---|---|---|")
	bm, blo, bhi := stats(baseTook)
	ratio := "—"
	if bm > 0 {
		ratio = fmt.Sprintf("%.2f×", float64(med)/float64(bm))
	}
	fmt.Printf("| injected hang → engine.wedged event, median of %d (min–max) | %s (%s–%s) | %s (%s–%s), median of %d, watchdog off: the node's own heartbeat call times out | %s | ≤ 10 s |\n",
		n, sec(med), sec(lo), sec(hi), sec(bm), sec(blo), sec(bhi), baseN, ratio)
	return nil
}

func stats(d []time.Duration) (median, lo, hi time.Duration) {
	if len(d) == 0 {
		return 0, 0, 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return m, s[0], s[len(s)-1]
}

func sec(d time.Duration) string {
	if d == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}
