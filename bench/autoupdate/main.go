// Command autoupdate measures the time from a new digest appearing in a
// registry to 100% of a service's traffic answering from it, with
// x-berth.update approval auto: berth up with its embedded registry and
// ingress, a 2-replica service following a tag, and a push of a rebuilt
// image to that tag. The baseline, in the same run, is the same change
// made by hand: `berth deploy` of the new digest, timed from the command
// to 100% of traffic. It prints a Markdown section for bench/RESULTS.md.
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/berth-dev/berth/bench/internal/host"
	"github.com/berth-dev/berth/client"
)

func main() {
	n := flag.Int("n", 3, "updates per path")
	logFile := flag.String("log", "", "write berth's log (level info) to this file")
	flag.Parse()
	if err := run(*n, *logFile); err != nil {
		fmt.Fprintln(os.Stderr, "bench/autoupdate:", err)
		os.Exit(1)
	}
}

func run(n int, logFile string) error {
	dir, err := os.MkdirTemp("", "berth-bench-au-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	berthBin, shipit := filepath.Join(dir, "berth"), filepath.Join(dir, "shipit")
	for out, pkg := range map[string]string{berthBin: "./cmd/berth", shipit: "./testdata/apps/shipit"} {
		if err := host.GoBuild(out, pkg); err != nil {
			return err
		}
	}
	bin, err := os.ReadFile(shipit)
	if err != nil {
		return err
	}
	data := filepath.Join(dir, "d")
	level, logw := "warn", io.Writer(os.Stderr)
	if logFile != "" {
		f, err := os.Create(logFile)
		if err != nil {
			return err
		}
		defer f.Close()
		level, logw = "info", f
	}
	up := exec.Command(berthBin, "up", "--data-dir", data, "--http-addr", "127.0.0.1:0", "--registry-addr", "127.0.0.1:0",
		"--publish-host", "127.0.0.1", "--log-level", level, "--proxy", "inline")
	up.Stdout, up.Stderr = logw, logw
	if err := up.Start(); err != nil {
		return err
	}
	cl, err := client.New("unix://" + filepath.Join(data, "berth.sock"))
	if err != nil {
		return err
	}
	ctx := context.Background()
	stack := fmt.Sprintf("au%d", time.Now().Unix()%100000)
	env := append(os.Environ(), "BERTH_HOST=unix://"+filepath.Join(data, "berth.sock"))
	cli := func(args ...string) error {
		cmd := exec.Command(berthBin, args...)
		cmd.Env = env
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("berth %v: %v %s", args, err, b)
		}
		return nil
	}
	var pulled string // the repository whose images the engine pulled
	defer func() {
		_ = cli("rm", stack)
		time.Sleep(3 * time.Second)
		_ = up.Process.Signal(os.Interrupt)
		_, _ = up.Process.Wait()
		if pulled != "" {
			removeRepoImages(pulled)
		}
	}()
	var ver struct{ ingress string }
	for i := 0; i < 300; i++ {
		if v, err := cl.Version(ctx); err == nil {
			ver.ingress = v.Ingress
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	reg, err := cl.Registry(ctx)
	if err != nil || reg.Addr == "" {
		return fmt.Errorf("registry: %v %+v", err, reg)
	}
	auth := remote.WithAuth(&authn.Basic{Username: reg.Username, Password: reg.Password})
	pulled = reg.Addr + "/bench/shipit"
	tag, _ := name.ParseReference(reg.Addr+"/bench/shipit:stable", name.Insecure)
	pushTo := func(to name.Reference, version string) (string, error) {
		img, err := shipitImage(bin, version)
		if err != nil {
			return "", err
		}
		if err := remote.Write(to, img, auth); err != nil {
			return "", err
		}
		d, _ := img.Digest()
		return to.Context().Digest(d.String()).String(), nil
	}
	push := func(version string) (string, error) { return pushTo(tag, version) }
	// The baseline's images go to another tag, which nothing follows.
	other, _ := name.ParseReference(reg.Addr+"/bench/shipit:manual", name.Insecure)
	if _, err := push("v0"); err != nil {
		return err
	}
	routeHost := stack + ".bench"
	compose := func(image string) string {
		return fmt.Sprintf(`services:
  web:
    image: %s
    deploy:
      replicas: 2
    x-berth:
      routes:
        - {host: %s, port: 8080}
      update: {follow: true, approval: auto, interval: 10m}
`, image, routeHost)
	}
	file := filepath.Join(dir, "compose.yaml")
	if err := os.WriteFile(file, []byte(compose(tag.String())), 0o644); err != nil {
		return err
	}
	if err := cli("deploy", "-f", file, "--stack", stack, "--timeout", "120s"); err != nil {
		return err
	}
	url := "http://" + ver.ingress + "/"
	var auto, manual []time.Duration
	v := 0
	for i := 0; i < n; i++ {
		v++
		version := fmt.Sprintf("v%d", v)
		w := watch(url, routeHost)
		t0 := time.Now()
		if _, err := push(version); err != nil {
			return err
		}
		d, err := w.until(version, t0, 120*time.Second)
		if err != nil {
			return fmt.Errorf("auto-update to %s: %w", version, err)
		}
		auto = append(auto, d)

		// The same change by hand: push to a tag nothing follows (not
		// timed), then deploy its digest.
		v++
		version = fmt.Sprintf("v%d", v)
		pinned, err := pushTo(other, version)
		if err != nil {
			return err
		}
		if err := os.WriteFile(file, []byte(strings.Replace(compose(pinned), "follow: true", "follow: false", 1)), 0o644); err != nil {
			return err
		}
		w = watch(url, routeHost)
		t0 = time.Now()
		if err := cli("deploy", "-f", file, "--stack", stack, "--detach"); err != nil {
			return err
		}
		d, err = w.until(version, t0, 120*time.Second)
		if err != nil {
			return fmt.Errorf("deploy of %s: %w", version, err)
		}
		manual = append(manual, d)
		if err := os.WriteFile(file, []byte(compose(tag.String())), 0o644); err != nil {
			return err
		}
		if err := cli("deploy", "-f", file, "--stack", stack, "--timeout", "120s"); err != nil {
			return err
		}
	}
	ma, mm := median(auto), median(manual)
	fmt.Printf("## Auto-update: new digest to 100%% of traffic (issue: delivery pipeline and private registry) — %s\n\n", time.Now().Format("2006-01-02"))
	fmt.Printf("Command: `go run ./bench/autoupdate -n %d`. Machine: %s, %d CPUs (shared with other work). "+
		"berth up with its embedded registry and ingress; a 2-replica service (rolling, start-first) follows `registry/bench/shipit:stable` with approval auto. "+
		"Timed from the end of the push of a rebuilt image (go-containerregistry) until every request through the ingress (4 workers) answers from the new image and keeps doing so. "+
		"Baseline in the same run: `berth deploy` of the new digest by hand, timed from the command.\n\n", n, host.CPUModel(), host.CPUs())
	fmt.Println("| path | median | runs |")
	fmt.Println("|---|---|---|")
	fmt.Printf("| auto-update (push notification → rollout) | %s | %s |\n", ma.Round(10*time.Millisecond), list(auto))
	fmt.Printf("| berth deploy of the digest (baseline) | %s | %s |\n", mm.Round(10*time.Millisecond), list(manual))
	fmt.Printf("\nRatio auto-update / manual deploy: %.2f×.\n", ma.Seconds()/mm.Seconds())
	return nil
}

// shipitImage is the shipit app with a base layer saying version.
func shipitImage(bin []byte, version string) (v1.Image, error) {
	base, err := layer(map[string][]byte{"base/version.txt": []byte(version + "\n")}, 0o644)
	if err != nil {
		return nil, err
	}
	app, err := layer(map[string][]byte{"shipit": bin}, 0o755)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, base, app)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	cfg.Config.Entrypoint = []string{"/shipit"}
	return mutate.ConfigFile(img, cfg)
}

func layer(files map[string][]byte, mode int64) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, b := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(b)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(b); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
}

// watcher records which version answered when.
type watcher struct {
	mu      sync.Mutex
	answers []answer
	stop    chan struct{}
	wg      sync.WaitGroup
}

type answer struct {
	at   time.Time
	body string
}

func watch(url, host string) *watcher {
	w := &watcher{stop: make(chan struct{})}
	for i := 0; i < 4; i++ {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			c := http.Client{Timeout: 5 * time.Second}
			for {
				select {
				case <-w.stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.Host = host
				body := "error"
				if resp, err := c.Do(req); err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					body = strings.TrimSpace(string(b))
				}
				w.mu.Lock()
				w.answers = append(w.answers, answer{time.Now(), body})
				w.mu.Unlock()
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	return w
}

// until waits until every answer for 2 s has been version and returns
// how long after t0 the last other answer came.
func (w *watcher) until(version string, t0 time.Time, timeout time.Duration) (time.Duration, error) {
	defer func() { close(w.stop); w.wg.Wait() }()
	want := "shipit " + version
	deadline := t0.Add(timeout)
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		w.mu.Lock()
		lastOther := t0
		seenNew := false
		for _, a := range w.answers {
			if a.body == want {
				seenNew = true
			} else if a.at.After(lastOther) {
				lastOther = a.at
			}
		}
		w.mu.Unlock()
		if seenNew && time.Since(lastOther) > 2*time.Second {
			return lastOther.Sub(t0), nil
		}
	}
	return 0, fmt.Errorf("not all traffic on %s after %s", version, timeout)
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func list(ds []time.Duration) string {
	var parts []string
	for _, d := range ds {
		parts = append(parts, d.Round(10*time.Millisecond).String())
	}
	return strings.Join(parts, ", ")
}

// removeRepoImages removes the engine's images of one repository (what
// the service pulled by digest), once no container uses them.
func removeRepoImages(repo string) {
	out, err := exec.Command("docker", "image", "ls", "--format", "{{.Repository}} {{.ID}}").Output()
	if err != nil {
		return
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == repo && !seen[f[1]] {
			seen[f[1]] = true
			_ = exec.Command("docker", "rmi", "-f", f[1]).Run()
		}
	}
}
