// Command core measures berth's core figures against baselines taken in the
// same run on the same engine:
//
//   - converge N containers from empty through `berth deploy`, against a raw
//     parallel create+start loop of the same containers;
//   - time for a SIGKILLed task to run again;
//   - resident memory of an idle `berth up` holding 10 stacks / 30 containers.
//
// It prints a Markdown section for bench/RESULTS.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/bench/internal/host"
	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/runtime/docker"
)

const image = "berth-bench/probe:dev"

func main() {
	sizes := flag.String("n", "50,200", "container counts to converge")
	kills := flag.Int("kills", 20, "SIGKILLs for the restart figure")
	flag.Parse()
	if err := run(*sizes, *kills); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(sizes string, kills int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "bbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	drv, err := docker.New(docker.Options{})
	if err != nil {
		return err
	}
	berthBin := filepath.Join(dir, "berth")
	probeBin := filepath.Join(dir, "probe")
	for _, b := range [][2]string{{berthBin, "./cmd/berth"}, {probeBin, "./testdata/apps/probe"}} {
		if err := host.GoBuild(b[0], b[1]); err != nil {
			return err
		}
	}
	if _, err := docker.BuildScratchImage(ctx, drv, image, probeBin, map[string]string{"io.berth.bench": "1"}, []string{"/probe"}); err != nil {
		return err
	}
	defer exec.Command("docker", "rmi", "-f", image).Run()

	info, _ := drv.Info(ctx)
	fmt.Printf("## Core (issue: berth core) — %s\n\n", time.Now().UTC().Format("2006-01-02"))
	fmt.Printf("Machine: %s, %d CPUs, %.1f GiB, Docker Engine %s. Command: `make bench` (go run ./bench/core).\n\n",
		host.CPUModel(), info.NanoCPUs/1e9, float64(info.Memory)/(1<<30), info.Version)

	fmt.Println("| figure | berth | baseline (same run) | ratio | goal |")
	fmt.Println("|---|---|---|---|---|")
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return err
		}
		raw, err := rawLoop(ctx, drv, n)
		if err != nil {
			return fmt.Errorf("raw loop: %w", err)
		}
		b, err := berthConverge(ctx, drv, berthBin, dir, n)
		if err != nil {
			return fmt.Errorf("berth converge: %w", err)
		}
		fmt.Printf("| converge %d containers from empty | %s | %s (raw parallel create+start, 16 workers) | %.2f× | ≤ 1.3× |\n",
			n, b.Round(time.Millisecond), raw.Round(time.Millisecond), b.Seconds()/raw.Seconds())
	}
	med, p90, err := restartLatency(ctx, drv, berthBin, dir, kills)
	if err != nil {
		return fmt.Errorf("restart latency: %w", err)
	}
	fmt.Printf("| SIGKILLed container running again, median of %d (p90) | %s (%s) | — | — | ≤ 1 s median |\n",
		kills, med.Round(time.Millisecond), p90.Round(time.Millisecond))
	rss, err := idleRSS(ctx, drv, berthBin, dir)
	if err != nil {
		return fmt.Errorf("idle rss: %w", err)
	}
	fmt.Printf("| RSS of idle `berth up`, 10 stacks / 30 containers | %.1f MB | — | — | ≤ 100 MB |\n", float64(rss)/1e6)
	return nil
}

// rawLoop creates and starts n containers with 16 workers, the way a
// script against the engine API would, and returns the wall time.
func rawLoop(ctx context.Context, drv *docker.Driver, n int) (time.Duration, error) {
	label := map[string]string{"io.berth.bench": "raw-" + strconv.FormatInt(time.Now().UnixNano(), 36)}
	_, _ = drv.EnsureNetwork(ctx, "berth-bench-raw", label, false)
	defer func() {
		cleanup(drv, label)
		_ = drv.RemoveNetwork(context.Background(), "berth-bench-raw")
	}()
	start := time.Now()
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			spec := runtime.ContainerSpec{
				Name: fmt.Sprintf("berth-bench-raw-%d-%d", time.Now().UnixNano(), i), Image: image, Labels: label,
				Network: "berth-bench-raw", Memory: 64 << 20, LogMaxSize: "10m", LogMaxFiles: 3,
			}
			id, err := drv.Create(ctx, spec)
			if err == nil {
				err = drv.Start(ctx, id)
			}
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return time.Since(start), firstErr
}

func cleanup(drv *docker.Driver, labels map[string]string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cs, _ := drv.List(ctx, labels)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		sem <- struct{}{}
		go func() { defer wg.Done(); defer func() { <-sem }(); _ = drv.Remove(ctx, c.ID) }()
	}
	wg.Wait()
	nets, _ := drv.ListNetworks(ctx, labels)
	for _, n := range nets {
		if err := drv.RemoveNetwork(ctx, n.ID); err != nil {
			fmt.Fprintln(os.Stderr, "cleanup:", err)
		}
	}
}

type instance struct {
	cmd     *exec.Cmd
	cl      *client.Client
	cluster string
	dir     string
}

func startBerth(ctx context.Context, bin, parent string) (*instance, error) {
	dir, err := os.MkdirTemp(parent, "d")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "up", "--data-dir", dir, "--log-level", "warn", "--proxy", "inline", "--http-addr", "off")
	logf, _ := os.Create(filepath.Join(dir, "log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	cl, _ := client.New("unix://" + filepath.Join(dir, "berth.sock"))
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := cl.WaitReady(wctx); err != nil {
		_ = cmd.Process.Kill()
		return nil, err
	}
	id, _ := os.ReadFile(filepath.Join(dir, "cluster-id"))
	return &instance{cmd: cmd, cl: cl, cluster: strings.TrimSpace(string(id)), dir: dir}, nil
}

func (in *instance) stop(drv *docker.Driver) {
	_ = in.cmd.Process.Signal(os.Interrupt)
	_, _ = in.cmd.Process.Wait()
	cleanup(drv, map[string]string{api.LabelCluster: in.cluster})
	vols, _ := drv.ListVolumes(context.Background(), map[string]string{api.LabelCluster: in.cluster})
	for _, v := range vols {
		_ = drv.RemoveVolume(context.Background(), v.Name)
	}
}

func benchStack(name string, replicas int) api.Stack {
	return api.Stack{Name: name, Services: map[string]*api.ServiceSpec{
		"web": {Name: "web", Image: image, Replicas: replicas, Restart: api.RestartPolicy{Condition: api.RestartAny},
			Resources: api.Resources{MemoryBytes: 64 << 20}},
	}}
}

// berthConverge deploys n replicas and waits until all run.
func berthConverge(ctx context.Context, drv *docker.Driver, bin, dir string, n int) (time.Duration, error) {
	in, err := startBerth(ctx, bin, dir)
	if err != nil {
		return 0, err
	}
	defer in.stop(drv)
	start := time.Now()
	name := fmt.Sprintf("conv%d", n)
	if _, err := in.cl.Deploy(ctx, api.DeployRequest{Stack: benchStack(name, n)}); err != nil {
		return 0, err
	}
	for {
		st, err := in.cl.Stack(ctx, name)
		if err != nil {
			return 0, err
		}
		if st.Services[0].Running == n {
			return time.Since(start), nil
		}
		if time.Since(start) > 10*time.Minute {
			return 0, fmt.Errorf("did not converge: %d/%d", st.Services[0].Running, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// restartLatency SIGKILLs a task's container repeatedly and measures the
// time until the engine reports it running again.
func restartLatency(ctx context.Context, drv *docker.Driver, bin, dir string, kills int) (time.Duration, time.Duration, error) {
	in, err := startBerth(ctx, bin, dir)
	if err != nil {
		return 0, 0, err
	}
	defer in.stop(drv)
	if _, err := in.cl.Deploy(ctx, api.DeployRequest{Stack: benchStack("kill", 1)}); err != nil {
		return 0, 0, err
	}
	var samples []time.Duration
	for i := 0; i < kills; i++ {
		var c runtime.Container
		for {
			cs, err := drv.List(ctx, map[string]string{api.LabelCluster: in.cluster})
			if err != nil {
				return 0, 0, err
			}
			if len(cs) == 1 && cs[0].Running() {
				c = cs[0]
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		// Let the task be stable so each kill is a first failure: the figure
		// is time-to-recover, not the crash-loop backoff.
		time.Sleep(11 * time.Second)
		before, _ := drv.Inspect(ctx, c.ID)
		killed := time.Now()
		if err := drv.Kill(ctx, c.ID, "KILL"); err != nil {
			return 0, 0, err
		}
		for {
			cur, err := drv.Inspect(ctx, c.ID)
			if err == nil && cur.Running() && cur.StartedAt.After(before.StartedAt) {
				samples = append(samples, time.Since(killed))
				break
			}
			if time.Since(killed) > time.Minute {
				return 0, 0, fmt.Errorf("container not restarted within a minute")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	return samples[len(samples)/2], samples[len(samples)*9/10], nil
}

// idleRSS deploys 10 stacks of 3 containers, lets berth settle and reads
// its resident set size.
func idleRSS(ctx context.Context, drv *docker.Driver, bin, dir string) (int64, error) {
	in, err := startBerth(ctx, bin, dir)
	if err != nil {
		return 0, err
	}
	defer in.stop(drv)
	for i := 0; i < 10; i++ {
		if _, err := in.cl.Deploy(ctx, api.DeployRequest{Stack: benchStack(fmt.Sprintf("idle%d", i), 3)}); err != nil {
			return 0, err
		}
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		views, err := in.cl.Tasks(ctx, "")
		if err != nil {
			return 0, err
		}
		n := 0
		for _, v := range views {
			if v.Status != nil && v.Status.State == api.StateRunning {
				n++
			}
		}
		if n == 30 {
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("only %d/30 running", n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(30 * time.Second) // idle: a few resyncs and heartbeats
	return host.RSS(in.cmd.Process.Pid)
}
