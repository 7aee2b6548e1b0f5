package docker

import (
	"context"
	"fmt"
	"sort"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"

	"github.com/berth-dev/berth/runtime"
)

// EnsureNetwork creates a bridge network with the labels, or returns the ID
// of an existing one carrying them. A network of that name without them
// belongs to someone else: runtime.ErrConflict.
func (d *Driver) EnsureNetwork(ctx context.Context, name string, labels map[string]string, internal bool) (string, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	if id, err := d.ownNetwork(ctx, name, labels); err == nil || !cerrdefs.IsNotFound(err) {
		return id, err
	}
	// The client asks engines before API 1.44 to check for duplicates, so
	// a concurrent create of the same name fails here rather than making
	// a second network of that name.
	resp, err := d.cli.NetworkCreate(ctx, name, network.CreateOptions{Driver: "bridge", Internal: internal, Labels: labels})
	if err != nil {
		if cerrdefs.IsConflict(err) {
			if id, ierr := d.ownNetwork(ctx, name, labels); ierr == nil {
				return id, nil // created concurrently by another pass of ours
			}
		}
		return "", d.wrap("create network "+name, err)
	}
	d.ok()
	return resp.ID, nil
}

// ownNetwork returns the ID of network name if it carries labels; an
// absent network is the engine's not-found error, unwrapped. Engine 20.10
// can end up with two networks of one name (a create that timed out on
// our side but went through, then a retry): the name is then ambiguous to
// every call that uses it, so the oldest of ours is kept and the other
// empty ones of ours are removed.
func (d *Driver) ownNetwork(ctx context.Context, name string, labels map[string]string) (string, error) {
	// The name filter matches substrings: exact names are picked below.
	list, err := d.cli.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("name", name))})
	if err != nil {
		return "", d.wrap("list networks named "+name, err)
	}
	d.ok()
	var ours []network.Summary
	foreign := false
	for _, n := range list {
		switch {
		case n.Name != name:
		case hasLabels(n.Labels, labels):
			ours = append(ours, n)
		default:
			foreign = true
		}
	}
	switch {
	case len(ours) == 0 && foreign:
		return "", fmt.Errorf("ensure network %s: %w: network %s exists and was not created by this berth cluster; remove or rename it (docker network rm %s)",
			name, runtime.ErrConflict, name, name)
	case len(ours) == 0:
		return "", cerrdefs.ErrNotFound
	}
	sort.Slice(ours, func(i, j int) bool { return ours[i].Created.Before(ours[j].Created) })
	for _, dup := range ours[1:] {
		if err := d.cli.NetworkRemove(ctx, dup.ID); err != nil {
			d.log.Warn("remove duplicate network", "network", name, "id", dup.ID, "err", err)
		}
	}
	return ours[0].ID, nil
}

// RemoveNetwork removes a network by ID or name. One with running
// containers attached is refused by the engine (runtime.ErrEngine).
func (d *Driver) RemoveNetwork(ctx context.Context, nameOrID string) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	return d.wrap("remove network "+nameOrID, d.cli.NetworkRemove(ctx, nameOrID))
}

// ListNetworks returns networks carrying all the labels.
func (d *Driver) ListNetworks(ctx context.Context, labels map[string]string) ([]runtime.Network, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	ns, err := d.cli.NetworkList(ctx, network.ListOptions{Filters: labelFilter(labels)})
	if err != nil {
		return nil, d.wrap("list networks", err)
	}
	d.ok()
	out := make([]runtime.Network, 0, len(ns))
	for _, n := range ns {
		out = append(out, runtime.Network{ID: n.ID, Name: n.Name, Labels: n.Labels})
	}
	return out, nil
}

// EnsureVolume creates a named volume, or accepts an existing one whose
// labels include the given ones (runtime.ErrConflict otherwise).
func (d *Driver) EnsureVolume(ctx context.Context, v runtime.VolumeSpec) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	existing, err := d.cli.VolumeInspect(ctx, v.Name)
	if err != nil && !cerrdefs.IsNotFound(err) {
		return d.wrap("inspect volume "+v.Name, err)
	}
	if err != nil {
		// Creating an existing volume returns it unchanged, so a
		// concurrent creator's labels are checked below either way.
		existing, err = d.cli.VolumeCreate(ctx, volume.CreateOptions{Name: v.Name, Driver: v.Driver, DriverOpts: v.DriverOpts, Labels: v.Labels})
		if err != nil {
			return d.wrap("create volume "+v.Name, err)
		}
	}
	d.ok()
	if !hasLabels(existing.Labels, v.Labels) {
		return fmt.Errorf("ensure volume %s: %w: volume %s exists and was not created by this berth cluster; remove it or declare it external",
			v.Name, runtime.ErrConflict, v.Name)
	}
	return nil
}

// RemoveVolume removes a named volume. One in use by a container, running
// or not, is runtime.ErrConflict.
func (d *Driver) RemoveVolume(ctx context.Context, name string) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	return d.wrap("remove volume "+name, d.cli.VolumeRemove(ctx, name, false))
}

// ListVolumes returns volumes carrying all the labels.
func (d *Driver) ListVolumes(ctx context.Context, labels map[string]string) ([]runtime.Volume, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	resp, err := d.cli.VolumeList(ctx, volume.ListOptions{Filters: labelFilter(labels)})
	if err != nil {
		return nil, d.wrap("list volumes", err)
	}
	d.ok()
	out := make([]runtime.Volume, 0, len(resp.Volumes))
	for _, v := range resp.Volumes {
		if v != nil {
			out = append(out, runtime.Volume{Name: v.Name, Labels: v.Labels})
		}
	}
	return out, nil
}

// ImageInspect resolves a reference (name:tag, name@digest or ID) to an
// image on this engine. It never pulls.
func (d *Driver) ImageInspect(ctx context.Context, ref string) (runtime.Image, error) {
	ctx, cancel := d.call(ctx)
	defer cancel()
	img, err := d.cli.ImageInspect(ctx, ref)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			// runtime.ErrNotFound reads "not found".
			return runtime.Image{}, fmt.Errorf("image %s %w on this engine: build it (berth build / docker build) or push it to a registry berth can pull from", ref, runtime.ErrNotFound)
		}
		return runtime.Image{}, d.wrap("inspect image "+ref, err)
	}
	d.ok()
	out := runtime.Image{ID: img.ID, RepoTags: img.RepoTags, RepoDigests: img.RepoDigests, Size: img.Size, Created: parseTime(img.Created)}
	if img.Config != nil {
		out.User = img.Config.User
	}
	return out, nil
}
