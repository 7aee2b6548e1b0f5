package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/runtime/docker"
)

// engineStarts measures what no orchestrator on this engine can go below:
// n containers of the service's image, created beforehand on the stack's
// network, started one after another with the engine API, as a rollout of
// n slots starts them. It runs under the same load as the redeploys (the
// stack's tasks serving it through the ingress) and returns the median of
// rounds.
func engineStarts(ctx context.Context, drv *docker.Driver, stack string, t target, n, rounds int) (time.Duration, error) {
	tasks, err := drv.List(ctx, map[string]string{api.LabelStack: stack})
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("find the stack's network: %d tasks, %v", len(tasks), err)
	}
	network := ""
	for name := range tasks[0].Addresses {
		network = name
	}
	var took []time.Duration
	for r := 0; r < rounds; r++ {
		var d time.Duration
		_, l, err := measure(t, func() error {
			var err error
			d, err = startInTurn(ctx, drv, network, n)
			return err
		})
		if err != nil {
			return 0, err
		}
		fmt.Fprintf(os.Stderr, "engine: %d starts in a row took %s under %d requests\n", n, d.Round(time.Millisecond), l.ok+l.failed)
		took = append(took, d)
	}
	slices.Sort(took)
	return took[len(took)/2], nil
}

func startInTurn(ctx context.Context, drv *docker.Driver, network string, n int) (time.Duration, error) {
	var ids []string
	defer func() {
		for _, id := range ids {
			_ = drv.Remove(context.WithoutCancel(ctx), id)
		}
	}()
	for i := 0; i < n; i++ {
		id, err := drv.Create(ctx, runtime.ContainerSpec{
			Name: fmt.Sprintf("berth-bench-start-%d-%d", time.Now().UnixNano(), i), Image: image, Network: network,
			Env: []string{"VERSION=engine"}, Labels: map[string]string{"io.berth.bench": "1"},
		})
		if err != nil {
			return 0, err
		}
		ids = append(ids, id)
	}
	start := time.Now()
	for _, id := range ids {
		if err := drv.Start(ctx, id); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}
