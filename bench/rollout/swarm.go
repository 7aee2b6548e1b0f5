package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/berth-dev/berth/bench/internal/netengine"
	"github.com/berth-dev/berth/runtime/docker"
)

const loadgenImage = "berth-bench/loadgen:1"

// swarmRuns measures `docker service update --update-order start-first`
// of 3 replicas in a single-node Swarm. The swarm runs on an engine of its
// own (a dockerd in a network namespace), so the shared engine never
// becomes a swarm manager. Swarm's routing mesh does not answer on
// 127.0.0.1 here, so the load runs in a container attached to the
// service's overlay network, with the same 8 keep-alive workers as the
// other tools. The service uses DNS round robin (--endpoint-mode dnsrr):
// its virtual IP needs the kernel's IPVS, which these machines lack. The engine runs with DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1:
// without a registry, Swarm would otherwise wait out a failed pull before
// every task (about 20 s here), which is the sandbox's cost, not Swarm's.
func swarmRuns(ctx context.Context, loadgenBin string, cycles int) (result, error) {
	e, err := netengine.Start(ctx, netengine.Options{Name: "bswarm", Subnet: "10.213.0", Env: []string{"DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1"}})
	if err != nil {
		return result{}, err
	}
	defer e.Close()
	if err := e.LoadImage(ctx, image); err != nil {
		return result{}, err
	}
	drv, err := docker.New(docker.Options{Host: e.Host})
	if err != nil {
		return result{}, err
	}
	if _, err := docker.BuildScratchImage(ctx, drv, loadgenImage, loadgenBin, nil, []string{"/loadgen"}); err != nil {
		return result{}, err
	}
	for _, args := range [][]string{
		{"swarm", "init", "--advertise-addr", e.Addr},
		{"network", "create", "-d", "overlay", "--attachable", "bnet"},
		{"service", "create", "-q", "--name", "web", "--replicas", "3", "--network", "bnet", "--endpoint-mode", "dnsrr", "--update-order", "start-first", "--env", "VERSION=v0", image},
	} {
		if err := e.Docker(ctx, args...); err != nil {
			return result{}, err
		}
	}
	var times []time.Duration
	var loads []*load
	for i := 1; i <= cycles; i++ {
		id, err := e.Output(ctx, "run", "-d", "--network", "bnet", loadgenImage, "-addr", "web:8080")
		if err != nil {
			return result{}, err
		}
		id = strings.TrimSpace(id)
		time.Sleep(time.Second)
		start := time.Now()
		err = e.Docker(ctx, "service", "update", "-q", "--env-add", fmt.Sprintf("VERSION=v%d", i), "--update-order", "start-first", "web")
		took := time.Since(start)
		if err != nil {
			return result{}, err
		}
		time.Sleep(time.Second)
		l, err := stopLoadgen(ctx, e, id)
		if err != nil {
			return result{}, err
		}
		times, loads = append(times, took), append(loads, l)
	}
	return collect("docker service update --update-order start-first (single-node Swarm)",
		"3 replicas, start-first, DNS round robin", times, loads), nil
}

// stopLoadgen ends a load generator container and reads its counts.
func stopLoadgen(ctx context.Context, e *netengine.Engine, id string) (*load, error) {
	if err := e.Docker(ctx, "kill", "-s", "TERM", id); err != nil {
		return nil, err
	}
	if err := e.Docker(ctx, "wait", id); err != nil {
		return nil, err
	}
	out, err := e.Output(ctx, "logs", id)
	if err != nil {
		return nil, err
	}
	_ = e.Docker(ctx, "rm", "-f", id)
	var r struct {
		OK       int    `json:"ok"`
		Failed   int    `json:"failed"`
		FirstErr string `json:"first_err"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &r); err != nil {
		return nil, fmt.Errorf("load generator output %q: %w", out, err)
	}
	if r.OK == 0 {
		return nil, fmt.Errorf("the load generator never reached the service: %s", r.FirstErr)
	}
	return &load{ok: r.OK, failed: r.Failed, firstErr: r.FirstErr}, nil
}
