package docker

import (
	"context"
	"io"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"

	"github.com/berth-dev/berth/runtime"
)

var (
	_ runtime.Pinger      = (*Driver)(nil)
	_ runtime.Housekeeper = (*Driver)(nil)
	_ runtime.Archiver    = (*Driver)(nil)
)

// Ping calls the engine's /_ping.
func (d *Driver) Ping(ctx context.Context) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	if _, err := d.cli.Ping(ctx); err != nil {
		return d.wrap("ping", err)
	}
	return nil
}

// ListImages lists images carrying all labels.
func (d *Driver) ListImages(ctx context.Context, labels map[string]string) ([]runtime.ImageSummary, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	is, err := d.cli.ImageList(ctx, image.ListOptions{All: false, Filters: labelFilter(labels)})
	if err != nil {
		return nil, d.wrap("list images", err)
	}
	d.ok()
	out := make([]runtime.ImageSummary, 0, len(is))
	for _, i := range is {
		out = append(out, imageSummary(i))
	}
	return out, nil
}

func imageSummary(i image.Summary) runtime.ImageSummary {
	var tags []string
	for _, t := range i.RepoTags {
		if t != "<none>:<none>" {
			tags = append(tags, t)
		}
	}
	return runtime.ImageSummary{ID: i.ID, RepoTags: tags, Labels: i.Labels, Size: i.Size, Created: time.Unix(i.Created, 0).UTC()}
}

// RemoveImage removes an image and all its tags. It does not force a
// removal of an image a container uses: the engine refuses with a
// conflict.
func (d *Driver) RemoveImage(ctx context.Context, id string) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	ii, err := d.cli.ImageInspect(ctx, id)
	if err != nil {
		return d.wrap("inspect image "+short(id), err)
	}
	// Untag every tag first: removing an image by ID that several
	// repositories name needs force, which would also remove images that
	// stopped containers use.
	for _, t := range ii.RepoTags {
		if _, err := d.cli.ImageRemove(ctx, t, image.RemoveOptions{PruneChildren: true}); err != nil {
			return d.wrap("remove image "+t, err)
		}
	}
	if _, err := d.cli.ImageRemove(ctx, id, image.RemoveOptions{PruneChildren: true}); err != nil {
		if len(ii.RepoTags) > 0 && cerrdefs.IsNotFound(err) {
			return nil // the last untag removed it
		}
		return d.wrap("remove image "+short(id), err)
	}
	return nil
}

// ImageUsers returns the image IDs that any container uses.
func (d *Driver) ImageUsers(ctx context.Context) (map[string]bool, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	cs, err := d.cli.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return nil, d.wrap("list containers", err)
	}
	out := make(map[string]bool, len(cs))
	for _, c := range cs {
		out[c.ImageID] = true
	}
	return out, nil
}

// DiskUsage reports the engine's /system/df.
func (d *Driver) DiskUsage(ctx context.Context) (runtime.EngineDiskUsage, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*d.timeout)
	defer cancel()
	du, err := d.cli.DiskUsage(ctx, types.DiskUsageOptions{})
	// Engine 20.10 runs one /system/df at a time and refuses the others
	// (another berth's housekeeping, a `docker system df`): wait for it.
	for err != nil && strings.Contains(err.Error(), "disk usage operation is already running") {
		select {
		case <-ctx.Done():
			return runtime.EngineDiskUsage{}, d.wrap("disk usage", err)
		case <-time.After(250 * time.Millisecond):
		}
		du, err = d.cli.DiskUsage(ctx, types.DiskUsageOptions{})
	}
	if err != nil {
		return runtime.EngineDiskUsage{}, d.wrap("disk usage", err)
	}
	out := runtime.EngineDiskUsage{}
	for _, i := range du.Images {
		if i != nil {
			out.Images = append(out.Images, imageSummary(*i))
		}
	}
	for _, c := range du.Containers {
		if c != nil {
			out.Containers = append(out.Containers, runtime.ContainerUsage{ID: c.ID, Image: c.ImageID, State: c.State, Labels: c.Labels, SizeRw: c.SizeRw})
		}
	}
	for _, v := range du.Volumes {
		if v == nil {
			continue
		}
		size := int64(-1)
		if v.UsageData != nil {
			size = v.UsageData.Size
		}
		out.Volumes = append(out.Volumes, runtime.VolumeUsage{Name: v.Name, Labels: v.Labels, Size: size})
	}
	for _, b := range du.BuildCache {
		if b != nil && !b.Shared {
			out.BuildCache += b.Size
		}
	}
	if info, err := d.cli.Info(ctx); err == nil {
		out.RootDir = info.DockerRootDir
	}
	return out, nil
}

// PruneBuildCache removes build cache unused for olderThan.
func (d *Driver) PruneBuildCache(ctx context.Context, olderThan time.Duration) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*d.timeout)
	defer cancel()
	f := filters.NewArgs(filters.Arg("until", olderThan.String()))
	rep, err := d.cli.BuildCachePrune(ctx, build.CachePruneOptions{Filters: f})
	if err != nil {
		return 0, d.wrap("prune build cache", err)
	}
	return int64(rep.SpaceReclaimed), nil
}

// CopyFrom returns a tar stream of path in a container. The caller closes
// it; ctx bounds the whole copy.
func (d *Driver) CopyFrom(ctx context.Context, id, path string) (io.ReadCloser, error) {
	sctx, answered, cancel := d.stream(ctx)
	rc, _, err := d.cli.CopyFromContainer(sctx, id, path)
	if !answered() && err == nil {
		rc.Close()
		cancel()
		return nil, d.wrap("copy from container", context.DeadlineExceeded)
	}
	if err != nil {
		cancel()
		return nil, d.wrap("copy from container "+short(id), streamErr(sctx, err))
	}
	return readCloser{rc, cancel}, nil
}

// CopyTo extracts a tar stream into path of a container. ctx bounds the
// whole copy (the stream can be large).
func (d *Driver) CopyTo(ctx context.Context, id, path string, tar io.Reader) error {
	err := d.cli.CopyToContainer(ctx, id, path, tar, container.CopyToContainerOptions{})
	return d.wrap("copy to container "+short(id), err)
}

// CreateIdle creates a container that is never started, with no network,
// mounting mounts: the archive API copies through it.
func (d *Driver) CreateIdle(ctx context.Context, name, img string, mounts []runtime.Mount, labels map[string]string) (string, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	hc := &container.HostConfig{NetworkMode: network.NetworkNone}
	for _, m := range mounts {
		hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.Type(m.Type), Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly})
	}
	resp, err := d.cli.ContainerCreate(ctx, &container.Config{Image: img, Labels: labels, Entrypoint: []string{"/berth-idle"}}, hc, nil, nil, name)
	if err != nil {
		return "", d.wrap("create container "+name, err)
	}
	return resp.ID, nil
}
