package docker

import (
	"context"
	"encoding/json"
	"time"

	"github.com/berth-dev/berth/runtime"
	"github.com/docker/docker/api/types/container"
)

// Stats reads a container's resource use once (the engine's one-shot
// stats, which does not wait a second for a second sample).
func (d *Driver) Stats(ctx context.Context, id string) (runtime.ContainerStats, error) {
	op := "stats of container " + short(id)
	cctx, cancel := d.call(ctx)
	defer cancel()
	resp, err := d.cli.ContainerStatsOneShot(cctx, id)
	if err != nil {
		return runtime.ContainerStats{}, d.wrap(op, err)
	}
	defer resp.Body.Close()
	var s container.StatsResponse
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return runtime.ContainerStats{}, d.wrap(op, err)
	}
	return statsOf(&s), nil
}

func statsOf(s *container.StatsResponse) runtime.ContainerStats {
	out := runtime.ContainerStats{Time: s.Read, CPU: time.Duration(s.CPUStats.CPUUsage.TotalUsage)}
	mem := s.MemoryStats.Usage
	// What `docker stats` shows: usage less the page cache that can be
	// dropped (inactive_file on cgroup v2, total_inactive_file on v1).
	for _, k := range []string{"inactive_file", "total_inactive_file"} {
		if v, ok := s.MemoryStats.Stats[k]; ok && v < mem {
			mem -= v
			break
		}
	}
	out.MemoryBytes = int64(mem)
	for _, n := range s.Networks {
		out.RxBytes += n.RxBytes
		out.TxBytes += n.TxBytes
	}
	if out.Time.IsZero() {
		out.Time = time.Now()
	}
	return out
}
