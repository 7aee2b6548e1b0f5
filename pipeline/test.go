package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/berth-dev/berth/agent"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/runtime/docker"
)

// Labels on the containers `berth test` creates, so that a cleanup finds
// one left behind by a killed run.
const (
	LabelTestRun = "io.berth.test-run"
)

// TestOptions say what to run in which image.
type TestOptions struct {
	Image      string
	Cmd        []string // replaces the image's CMD (the entrypoint stays)
	Entrypoint []string // replaces the image's ENTRYPOINT when set
	Env        map[string]string
	Labels     map[string]string
	// Network is "none" (default: tests reach nothing) or a network name.
	Network string
	// Defaults are the limits a task gets (agent.DefaultDefaults if zero).
	Defaults       agent.Defaults
	Stdout, Stderr io.Writer
	// Timeout bounds the whole run (default 30 minutes).
	Timeout time.Duration
}

// TestResult is one run of a test command in an image.
type TestResult struct {
	Image    string `json:"image"`
	ImageID  string `json:"image_id"`
	ExitCode int    `json:"exit_code"`
}

// Test runs a command in a fresh container of the exact image (resolved
// to its ID first, so a tag moved meanwhile changes nothing), with the
// defaults a task gets: memory, CPU and process limits, every capability
// dropped, no new privileges. Output is streamed; the container is
// removed afterwards. The result carries the command's exit code; the
// error is for failures to run it at all.
func Test(ctx context.Context, eng *docker.Driver, opts TestOptions) (TestResult, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	img, err := eng.ImageInspect(ctx, opts.Image)
	if err != nil {
		return TestResult{}, err
	}
	d := opts.Defaults
	if d == (agent.Defaults{}) {
		d = agent.DefaultDefaults()
	}
	run := newRunID()
	labels := map[string]string{LabelTestRun: run}
	for k, v := range opts.Labels {
		labels[k] = v
	}
	env := make([]string, 0, len(opts.Env))
	for k, v := range opts.Env {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	network := opts.Network
	if network == "" {
		network = "none"
	}
	spec := runtime.ContainerSpec{
		Name: "berth-test-" + run, Image: img.ID, Cmd: opts.Cmd, Entrypoint: opts.Entrypoint, Env: env,
		User: img.User, Labels: labels, Network: network,
		Memory: d.MemoryBytes, CPUShares: d.CPUShares, PidsLimit: d.PidsLimit,
		CapDrop: []string{"ALL"}, SecurityOpt: []string{"no-new-privileges:true"},
		LogMaxSize: d.LogMaxSize, LogMaxFiles: d.LogMaxFiles, StopTimeout: d.StopGrace,
	}
	id, err := eng.Create(ctx, spec)
	if err != nil {
		return TestResult{}, err
	}
	defer func() {
		// Removed even when ctx has ended (interrupt, timeout).
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = eng.Remove(rctx, id)
	}()
	if err := eng.Start(ctx, id); err != nil {
		return TestResult{}, err
	}
	logsDone := make(chan error, 1)
	go func() {
		logsDone <- eng.Logs(ctx, id, runtime.LogOptions{Follow: true}, orDiscard(opts.Stdout), orDiscard(opts.Stderr))
	}()
	code, err := eng.Wait(ctx, id)
	if err != nil {
		return TestResult{}, fmt.Errorf("test in %s: %w", opts.Image, err)
	}
	select {
	case <-logsDone:
	case <-time.After(5 * time.Second):
	}
	return TestResult{Image: opts.Image, ImageID: img.ID, ExitCode: code}, nil
}

func newRunID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}
