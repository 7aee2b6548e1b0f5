// Command registry measures push and pull throughput of a 200 MB image in
// several layers to berth's embedded registry and to Debian's
// docker-registry (distribution 2.x, the registry most people run), on
// the same machine in the same run: both on loopback, both with
// filesystem storage in the same temporary directory's disk, driven by
// the same client (go-containerregistry). berth's registry checks its
// credential on every request; docker-registry runs without
// authentication (its htpasswd check is a bcrypt per request, which
// would measure bcrypt rather than the registry). It prints a Markdown section for
// bench/RESULTS.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/berth-dev/berth/bench/internal/host"
	"github.com/berth-dev/berth/registry"
)

func main() {
	rounds := flag.Int("n", 3, "pushes and pulls per registry (fresh repository each)")
	layers := flag.Int("layers", 5, "layers of the image")
	size := flag.Int64("mb", 200, "image size in MB")
	flag.Parse()
	if err := run(*rounds, *layers, *size<<20); err != nil {
		fmt.Fprintln(os.Stderr, "bench/registry:", err)
		os.Exit(1)
	}
}

type target struct {
	name string
	addr string
	auth authn.Authenticator
}

func run(rounds, layers int, size int64) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "berth-bench-registry-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	reg, err := registry.Open(ctx, registry.Options{Dir: filepath.Join(dir, "berth"), Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	go func() { _ = reg.Serve(ctx) }()
	user, pass := reg.Credential()
	auth := &authn.Basic{Username: user, Password: pass}
	dr, stop, err := dockerRegistry(dir)
	if err != nil {
		return err
	}
	defer stop()
	targets := []target{{"berth (embedded distribution v3)", reg.Addr(), auth}, {"Debian docker-registry", dr, authn.Anonymous}}

	img, err := random.Image(size/int64(layers), int64(layers))
	if err != nil {
		return err
	}
	total, err := imageBytes(img)
	if err != nil {
		return err
	}
	push := map[string][]time.Duration{}
	pull := map[string][]time.Duration{}
	for i := 0; i < rounds; i++ {
		for _, tg := range targets { // alternate, so neither always runs on a warmer machine
			ref, err := name.ParseReference(fmt.Sprintf("%s/bench/r%d:1", tg.addr, i), name.Insecure)
			if err != nil {
				return err
			}
			opt := remote.WithAuth(tg.auth)
			start := time.Now()
			if err := remote.Write(ref, img, opt); err != nil {
				return fmt.Errorf("push to %s: %w", tg.name, err)
			}
			push[tg.name] = append(push[tg.name], time.Since(start))
			start = time.Now()
			if err := pullAll(ref, opt); err != nil {
				return fmt.Errorf("pull from %s: %w", tg.name, err)
			}
			pull[tg.name] = append(pull[tg.name], time.Since(start))
		}
	}
	mb := float64(total) / (1 << 20)
	fmt.Printf("## Registry throughput (issue: delivery pipeline and private registry) — %s\n\n", time.Now().Format("2006-01-02"))
	fmt.Printf("Command: `go run ./bench/registry -n %d -layers %d -mb %d`. Machine: %s, %d CPUs (shared with other work). "+
		"A %.0f MB image (%d layers of random, incompressible data) pushed to a fresh repository and pulled back (every layer read) %d times per registry, alternating; "+
		"both registries on loopback with filesystem storage on the same disk, driven by go-containerregistry; berth's checks its credential on every request, docker-registry runs without authentication. Median of the runs.\n\n",
		rounds, layers, size>>20, host.CPUModel(), host.CPUs(), mb, layers, rounds)
	fmt.Println("| registry | push MB/s | pull MB/s |")
	fmt.Println("|---|---|---|")
	rate := func(ds []time.Duration) float64 { return mb / median(ds).Seconds() }
	for _, tg := range targets {
		fmt.Printf("| %s | %.0f | %.0f |\n", tg.name, rate(push[tg.name]), rate(pull[tg.name]))
	}
	b, d := targets[0].name, targets[1].name
	fmt.Printf("\nRatio berth / docker-registry: push %.2f×, pull %.2f× (goal ≥ 0.9×).\n",
		rate(push[b])/rate(push[d]), rate(pull[b])/rate(pull[d]))
	return nil
}

func imageBytes(img v1.Image) (int64, error) {
	ls, err := img.Layers()
	if err != nil {
		return 0, err
	}
	var n int64
	for _, l := range ls {
		s, err := l.Size()
		if err != nil {
			return 0, err
		}
		n += s
	}
	return n, nil
}

func pullAll(ref name.Reference, opt remote.Option) error {
	img, err := remote.Image(ref, opt)
	if err != nil {
		return err
	}
	ls, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// dockerRegistry starts Debian's docker-registry with the same storage.
func dockerRegistry(dir string) (string, func(), error) {
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		return "", nil, fmt.Errorf("docker-registry not found: install Debian's docker-registry")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\n  cache:\n    blobdescriptor: inmemory\n  redirect:\n    disable: true\nhttp:\n  addr: %s\n",
		filepath.Join(dir, "docker-registry"), addr)
	path := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "serve", path)
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	for i := 0; i < 100; i++ {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return addr, stop, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	return "", nil, fmt.Errorf("docker-registry did not answer on %s", addr)
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
