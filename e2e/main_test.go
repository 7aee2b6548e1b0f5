// Package e2e runs berth end to end against the real Docker Engine: the
// berth binary as a subprocess (so tests can kill -9 it), images built
// locally FROM scratch, and every object cleaned up by its cluster label.
package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth-dev/berth/runtime/docker"
)

// Images the tests deploy; built once per run in TestMain. The tag names
// the run, so that test runs sharing one engine (several checkouts, CI)
// never deploy or remove each other's images.
var (
	probeImage = fmt.Sprintf("berth-test/probe:e2e-%d", os.Getpid())
	helloImage = fmt.Sprintf("berth-test/hello:e2e-%d", os.Getpid())
)

var (
	berthBin string
	drv      *docker.Driver
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped in -short mode")
		return 0
	}
	dir, err := os.MkdirTemp("", "berth-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	berthBin = filepath.Join(dir, "berth")
	if err := goBuild(ctx, berthBin, "../cmd/berth"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build berth:", err)
		return 1
	}
	drv, err = docker.New(docker.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: docker client:", err)
		return 1
	}
	if _, err := drv.Info(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: the Docker Engine is required and not reachable:", err)
		return 1
	}
	for _, img := range []struct{ tag, pkg, bin string }{
		{probeImage, "../testdata/apps/probe", "probe"},
		{helloImage, "../examples/hello", "hello"},
	} {
		bin := filepath.Join(dir, img.bin)
		if err := goBuild(ctx, bin, img.pkg); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: build", img.pkg, err)
			return 1
		}
		if _, err := docker.BuildScratchImage(ctx, drv, img.tag, bin, map[string]string{"io.berth.test": "e2e"}, []string{"/" + img.bin}); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: build image", img.tag, err)
			return 1
		}
	}
	code := m.Run()
	// The images stay for the next run's build cache only if asked.
	if os.Getenv("BERTH_E2E_KEEP_IMAGES") == "" {
		for _, tag := range []string{probeImage, helloImage} {
			_ = exec.Command("docker", "rmi", "-f", tag).Run()
		}
	}
	return code
}

func goBuild(ctx context.Context, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	b, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, b)
	}
	return nil
}
