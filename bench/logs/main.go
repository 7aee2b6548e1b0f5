// Command logs measures berth's log figures against baselines taken in the
// same run on the same machine:
//
//   - ingest: one container writes N lines as fast as it can; the lines per
//     second berth keeps (from the container's start until the collector
//     has kept all N) and berth's CPU per 10k lines/s, against the rate at
//     which dockerd's own json-file path takes the same container's output
//     with no reader (the container's run time); berth reads the
//     container's json-file log directly, and the engine's log API (its
//     fallback) is timed on the finished container for comparison;
//   - query: the last 1,000 lines of a stack from a 1 GB store, through
//     `berth logs --tail 1000` over the API and from the store directly,
//     against `tail -n 1000` of the same lines in a flat 1 GB file.
//
// It prints a Markdown section for bench/RESULTS.md, with the machine's
// load average (1 min) before and after each figure: the machine may be
// shared.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/bench/internal/host"
	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/logs"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/runtime/docker"
)

const image = "berth-bench/logspew:dev"

func main() {
	lines := flag.Int("lines", 500000, "lines the container writes for the ingest figure")
	storeGB := flag.Float64("store-gb", 1, "size of the store for the query figure, in GiB")
	runs := flag.Int("runs", 20, "queries for the query figure's median")
	flag.Parse()
	if err := run(*lines, *storeGB, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(lines int, storeGB float64, runs int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "blogs")
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
	fmt.Printf("## Logs (issue: log ingest) — %s\n\n", time.Now().UTC().Format("2006-01-02"))
	fmt.Printf("Machine: %s, %d CPUs, %.1f GiB, Docker Engine %s. Command: `go run ./bench/logs -lines %d -store-gb %g -runs %d`.\n\n",
		host.CPUModel(), info.NanoCPUs/1e9, float64(info.Memory)/(1<<30), info.Version, lines, storeGB, runs)

	fmt.Println("| figure | berth | baseline (same run) | ratio | goal | load avg (1 min) before → after |")
	fmt.Println("|---|---|---|---|---|---|")
	if lines > 0 {
		if err := ingestFigures(ctx, drv, berthBin, dir, lines, loadAvg()); err != nil {
			return err
		}
	}
	if storeGB <= 0 {
		return nil
	}
	load0 := loadAvg()
	q, err := queryFigure(ctx, berthBin, dir, storeGB, runs)
	if err != nil {
		return fmt.Errorf("query: %w", err)
	}
	load := load0 + " → " + loadAvg()
	fmt.Printf("| last 1,000 lines of a stack from a %.2f GB store, `berth logs --tail 1000` over the API, median of %d (p90) | %s (%s) | %s (`tail -n 1000` of a flat %.2f GB file of the same lines) | %.2f× | ≤ 50 ms | %s |\n",
		q.storeBytes/1e9, runs, q.api.Round(100*time.Microsecond), q.apiP90.Round(100*time.Microsecond), q.tail.Round(100*time.Microsecond), q.flatBytes/1e9, q.api.Seconds()/q.tail.Seconds(), load)
	fmt.Printf("| the same from the store directly (logs.Store.Read), median of %d | %s | — | — | — | %s |\n", runs, q.direct.Round(100*time.Microsecond), load)
	return nil
}

func ingestFigures(ctx context.Context, drv *docker.Driver, berthBin, dir string, lines int, load0 string) error {
	base, err := jsonFileRate(ctx, drv, lines)
	if err != nil {
		return fmt.Errorf("json-file baseline: %w", err)
	}
	load1 := loadAvg()
	ing, err := berthIngest(ctx, drv, berthBin, dir, lines)
	if err != nil {
		return fmt.Errorf("berth ingest: %w", err)
	}
	load2 := loadAvg()
	fmt.Printf("| log ingest, one container writing %d lines as fast as it can | %.0f lines/s kept | %.0f lines/s (dockerd json-file, no reader) | %.2f× | ≥ 50,000 lines/s | %s → %s (baseline), → %s (berth) |\n",
		lines, ing.rate, base, ing.rate/base, load0, load1, load2)
	fmt.Printf("| the engine's log API reading the same finished container (berth's fallback path) | — | %.0f lines/s | — | — | — |\n", ing.read)
	fmt.Printf("| berth's CPU while ingesting, per 10k lines/s (all of berth up) | %.3f cores | — | — | — | — |\n", ing.cpu/(ing.rate/10000))
	fmt.Printf("| lines read back from berth (`berth logs`), each attributed to the service and task | all %d, none twice | — | — | no loss, no duplicate | — |\n", lines)
	fmt.Printf("| the same container's run time with berth following it | %s (%.0f lines/s written) | — | — | — | — |\n",
		ing.container.Round(time.Millisecond), float64(lines)/ing.container.Seconds())

	return nil
}

// jsonFileRate runs the spewing container with no reader and returns the
// lines per second dockerd took into its json-file log.
func jsonFileRate(ctx context.Context, drv *docker.Driver, lines int) (float64, error) {
	label := map[string]string{"io.berth.bench": "logs-" + strconv.FormatInt(time.Now().UnixNano(), 36)}
	defer cleanup(drv, label)
	id, err := drv.Create(ctx, runtime.ContainerSpec{Name: "berth-bench-logs-" + label["io.berth.bench"], Image: image,
		Cmd: []string{"-spew", strconv.Itoa(lines)}, Labels: label, Memory: 256 << 20, LogMaxSize: "100m", LogMaxFiles: 3})
	if err != nil {
		return 0, err
	}
	if err := drv.Start(ctx, id); err != nil {
		return 0, err
	}
	if _, err := drv.Wait(ctx, id); err != nil {
		return 0, err
	}
	c, err := drv.Inspect(ctx, id)
	if err != nil {
		return 0, err
	}
	return float64(lines) / c.FinishedAt.Sub(c.StartedAt).Seconds(), nil
}

func cleanup(drv *docker.Driver, labels map[string]string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cs, _ := drv.List(ctx, labels)
	for _, c := range cs {
		_ = drv.Remove(ctx, c.ID)
	}
	nets, _ := drv.ListNetworks(ctx, labels)
	for _, n := range nets {
		_ = drv.RemoveNetwork(ctx, n.ID)
	}
}

type ingest struct {
	read      float64       // lines per second the engine's log API serves of the finished container
	rate      float64       // lines kept per second
	cpu       float64       // berth's cores used meanwhile
	container time.Duration // the container's run time
}

// berthIngest deploys the spewing container under berth and waits until
// the collector has kept every line.
func berthIngest(ctx context.Context, drv *docker.Driver, bin, parent string, lines int) (ingest, error) {
	dir, err := os.MkdirTemp(parent, "d")
	if err != nil {
		return ingest{}, err
	}
	cmd := exec.Command(bin, "up", "--data-dir", dir, "--log-level", "warn", "--proxy", "inline", "--http-addr", "off", "--monitor-interval", "0")
	logf, _ := os.Create(filepath.Join(dir, "log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return ingest{}, err
	}
	sock := filepath.Join(dir, "berth.sock")
	cl, _ := client.New("unix://" + sock)
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := cl.WaitReady(wctx); err != nil {
		_ = cmd.Process.Kill()
		return ingest{}, err
	}
	id, _ := os.ReadFile(filepath.Join(dir, "cluster-id"))
	cluster := strings.TrimSpace(string(id))
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_, _ = cmd.Process.Wait()
		cleanup(drv, map[string]string{api.LabelCluster: cluster})
	}()
	cpu0, err := host.CPUTime(cmd.Process.Pid)
	if err != nil {
		return ingest{}, err
	}
	stack := api.Stack{Name: "spew" + strconv.FormatInt(time.Now().UnixNano()%1e6, 10), Services: map[string]*api.ServiceSpec{
		"web": {Name: "web", Image: image, Replicas: 1, Command: []string{"-spew", strconv.Itoa(lines)},
			Restart: api.RestartPolicy{Condition: api.RestartNone}, Resources: api.Resources{MemoryBytes: 256 << 20}},
	}}
	if _, err := cl.Deploy(ctx, api.DeployRequest{Stack: stack}); err != nil {
		return ingest{}, err
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	deadline := time.Now().Add(10 * time.Minute)
	var kept float64
	for {
		kept, err = collected(hc)
		if err != nil {
			return ingest{}, err
		}
		if int(kept) >= lines {
			break
		}
		if time.Now().After(deadline) {
			return ingest{}, fmt.Errorf("berth kept %.0f of %d lines in 10 minutes", kept, lines)
		}
		time.Sleep(20 * time.Millisecond)
	}
	done := time.Now()
	cpu1, _ := host.CPUTime(cmd.Process.Pid)
	// Every line kept once: read them all back (once the store has
	// flushed what was appended last) and check the numbers.
	var dups, stray, missing int
	for try := 0; try < 20; try++ {
		time.Sleep(200 * time.Millisecond)
		if dups, stray, missing, err = readBack(ctx, cl, stack.Name, lines); err != nil {
			return ingest{}, err
		}
		if missing == 0 {
			break
		}
	}
	if dups+stray+missing > 0 {
		return ingest{}, fmt.Errorf("lines read back: %d missing, %d twice, %d not the container's", missing, dups, stray)
	}
	cs, err := drv.List(ctx, map[string]string{api.LabelCluster: cluster})
	if err != nil || len(cs) != 1 {
		return ingest{}, fmt.Errorf("find the container: %v (%d)", err, len(cs))
	}
	c, err := drv.Inspect(ctx, cs[0].ID)
	if err != nil {
		return ingest{}, err
	}
	wall := done.Sub(c.StartedAt)
	var cnt lineCounter
	readStart := time.Now()
	if err := drv.Logs(ctx, c.ID, runtime.LogOptions{Timestamps: true}, &cnt, &cnt); err != nil {
		return ingest{}, err
	}
	read := float64(cnt.n) / time.Since(readStart).Seconds()
	return ingest{read: read, rate: float64(lines) / wall.Seconds(), cpu: (cpu1 - cpu0).Seconds() / wall.Seconds(),
		container: c.FinishedAt.Sub(c.StartedAt)}, nil
}

// loadAvg is the machine's 1-minute load average.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

// readBack reads every line of the stack and counts the spew's numbers
// missing, read twice, and lines that are not the spew's.
func readBack(ctx context.Context, cl *client.Client, stack string, lines int) (dups, stray, missing int, err error) {
	seen := make([]bool, lines)
	err = cl.Logs(ctx, stack, api.LogsRequest{}, func(l api.LogLine) error {
		f := strings.Fields(l.Line)
		n := -1
		if len(f) > 2 && f[0] == "spew" {
			n, _ = strconv.Atoi(f[2])
		}
		switch {
		case n < 0 || n >= lines || l.Service != "web" || l.Task == "":
			stray++
		case seen[n]:
			dups++
		default:
			seen[n] = true
		}
		return nil
	})
	if err != nil {
		return 0, 0, 0, fmt.Errorf("read the lines back: %w", err)
	}
	for _, ok := range seen {
		if !ok {
			missing++
		}
	}
	return dups, stray, missing, nil
}

type lineCounter struct{ n int }

func (c *lineCounter) Write(p []byte) (int, error) {
	c.n += strings.Count(string(p), "\n")
	return len(p), nil
}

// collected reads berth_log_lines_collected_total from /metrics.
func collected(hc *http.Client) (float64, error) {
	resp, err := hc.Get("http://berth/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "berth_log_lines_collected_total{") {
			return strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
		}
	}
	return 0, sc.Err()
}

type query struct {
	storeBytes, flatBytes float64
	api, apiP90           time.Duration
	direct, tail          time.Duration
}

// queryFigure builds a store of about gb GiB for one stack (3 services,
// 12 tasks, lines of ~100 bytes) and the same lines in a flat file, then
// times the last 1,000 lines both ways.
func queryFigure(ctx context.Context, bin, parent string, gb float64, runs int) (query, error) {
	dir, err := os.MkdirTemp(parent, "q")
	if err != nil {
		return query{}, err
	}
	ret := logs.Retention{MaxAge: 365 * 24 * time.Hour, StackBytes: int64(gb*(1<<30)) * 2, TotalBytes: int64(gb*(1<<30)) * 2}
	st, err := logs.Open(logs.Options{Dir: filepath.Join(dir, "logs"), Retention: ret})
	if err != nil {
		return query{}, err
	}
	flat, err := os.Create(filepath.Join(dir, "flat.log"))
	if err != nil {
		return query{}, err
	}
	fw := bufio.NewWriterSize(flat, 1<<20)
	t0 := time.Now().Add(-24 * time.Hour).UTC()
	target := int64(gb * (1 << 30))
	batch := make([]api.LogLine, 0, 1000)
	for i := 0; ; i++ {
		svc := []string{"web", "api", "worker"}[i%3]
		l := api.LogLine{Time: t0.Add(time.Duration(i) * 10 * time.Microsecond), Service: svc, Task: fmt.Sprintf("task%07d", i%12),
			Revision: 3, Stream: api.StreamStdout, Container: "0123456789ab",
			Line: fmt.Sprintf("GET /items/%d 200 %dms user=%d the quick brown fox jumps over the lazy dog", i, i%97, i%1013)}
		batch = append(batch, l)
		fmt.Fprintf(fw, "%s %s %s\n", l.Time.Format(time.RFC3339Nano), l.Service, l.Line)
		if len(batch) == cap(batch) {
			if err := st.Append("bench", batch); err != nil {
				return query{}, err
			}
			batch = batch[:0]
			if i%100000 == 99999 {
				if err := st.Flush(); err != nil {
					return query{}, err
				}
				if st.Usage().Total >= target {
					break
				}
			}
		}
	}
	fw.Flush()
	flat.Close()
	if err := st.Close(); err != nil {
		return query{}, err
	}
	var q query
	fi, _ := os.Stat(filepath.Join(dir, "flat.log"))
	q.flatBytes = float64(fi.Size())

	// From the store directly (as berth's API does, minus the HTTP).
	st, err = logs.Open(logs.Options{Dir: filepath.Join(dir, "logs"), Retention: ret})
	if err != nil {
		return query{}, err
	}
	q.storeBytes = float64(st.Usage().Total)
	q.direct, _, err = timeRuns(runs, func() error {
		n := 0
		_, err := st.Read(ctx, logs.Query{Stack: "bench", Tail: 1000}, func(api.LogLine) error { n++; return nil })
		if err == nil && n != 1000 {
			err = fmt.Errorf("read %d lines", n)
		}
		return err
	})
	st.Close()
	if err != nil {
		return query{}, err
	}

	// Through berth up's API, as `berth logs --tail 1000` asks it.
	cmd := exec.Command(bin, "up", "--data-dir", dir, "--log-level", "warn", "--proxy", "inline", "--http-addr", "off",
		"--monitor-interval", "0", "--log-budget", fmt.Sprint(ret.TotalBytes), "--log-stack-size", fmt.Sprint(ret.StackBytes), "--log-max-age", "8760h")
	logf, _ := os.Create(filepath.Join(dir, "berth.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return query{}, err
	}
	defer func() { _ = cmd.Process.Signal(os.Interrupt); _, _ = cmd.Process.Wait() }()
	cl, _ := client.New("unix://" + filepath.Join(dir, "berth.sock"))
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := cl.WaitReady(wctx); err != nil {
		return query{}, err
	}
	q.api, q.apiP90, err = timeRuns(runs, func() error {
		n := 0
		err := cl.Logs(ctx, "bench", api.LogsRequest{Tail: 1000}, func(api.LogLine) error { n++; return nil })
		if err == nil && n != 1000 {
			err = fmt.Errorf("got %d lines", n)
		}
		return err
	})
	if err != nil {
		return query{}, err
	}
	q.tail, _, err = timeRuns(runs, func() error {
		out, err := exec.Command("tail", "-n", "1000", filepath.Join(dir, "flat.log")).Output()
		if err == nil && strings.Count(string(out), "\n") != 1000 {
			err = fmt.Errorf("tail printed %d lines", strings.Count(string(out), "\n"))
		}
		_, _ = io.Discard.Write(out)
		return err
	})
	return q, err
}

// timeRuns returns the median and p90 of n runs of f.
func timeRuns(n int, f func() error) (time.Duration, time.Duration, error) {
	var ds []time.Duration
	for i := 0; i < n; i++ {
		start := time.Now()
		if err := f(); err != nil {
			return 0, 0, err
		}
		ds = append(ds, time.Since(start))
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2], ds[len(ds)*9/10], nil
}
