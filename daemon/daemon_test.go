package daemon

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/runtime/docker"
)

// TestUpDeployRemove runs berth up in-process against the real engine,
// deploys a stack through the API, and removes it.
func TestUpDeployRemove(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the Docker Engine")
	}
	drv, err := docker.New(docker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	bin := filepath.Join(t.TempDir(), "probe")
	build := exec.Command("go", "build", "-o", bin, "../testdata/apps/probe")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build probe: %v %s", err, out)
	}
	const image = "berth-test/probe:daemon"
	if _, err := docker.BuildScratchImage(ctx, drv, image, bin, map[string]string{"io.berth.test": "daemon"}, []string{"/probe"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", image).Run() })

	dir, err := os.MkdirTemp("", "bdmn")
	if err != nil {
		t.Fatal(err)
	}
	upCtx, stop := context.WithCancel(ctx)
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Up(upCtx, Config{DataDir: dir, Ready: ready, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	}()
	var cluster string
	t.Cleanup(func() {
		stop()
		<-done
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if cluster != "" {
			cs, _ := drv.List(cctx, map[string]string{api.LabelCluster: cluster})
			for _, c := range cs {
				_ = drv.Remove(cctx, c.ID)
			}
			ns, _ := drv.ListNetworks(cctx, map[string]string{api.LabelCluster: cluster})
			for _, n := range ns {
				_ = drv.RemoveNetwork(cctx, n.ID)
			}
		}
		os.RemoveAll(dir)
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("up: %v", err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "cluster-id"))
	cluster = strings.TrimSpace(string(b))
	cl, err := client.New("unix://" + SocketPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	stack := api.Stack{Name: "smoke", Services: map[string]*api.ServiceSpec{
		"web": {Name: "web", Image: image, Replicas: 2, Restart: api.RestartPolicy{Condition: api.RestartAny}},
	}}
	if _, err := cl.Deploy(ctx, api.DeployRequest{Stack: stack}); err != nil {
		t.Fatal(err)
	}
	for {
		st, err := cl.Stack(ctx, "smoke")
		if err != nil && ctx.Err() != nil {
			views, _ := cl.Tasks(context.Background(), "")
			t.Fatalf("not converged: %v\ntasks: %+v", err, views)
		}
		if err != nil {
			t.Fatal(err)
		}
		if st.Services[0].Running == 2 {
			break
		}
		if ctx.Err() != nil {
			views, _ := cl.Tasks(context.Background(), "")
			t.Fatalf("not converged: %+v\ntasks: %+v", st, views)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := cl.Remove(ctx, "smoke", false); err != nil {
		t.Fatal(err)
	}
	for {
		cs, err := drv.List(ctx, map[string]string{api.LabelCluster: cluster})
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%d containers left after rm", len(cs))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
