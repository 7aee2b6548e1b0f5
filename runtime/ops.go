package runtime

import (
	"context"
	"io"
	"time"
)

// Pinger is a driver that can check the engine answers with the cheapest
// call it has (the Docker Engine's /_ping). The watchdog uses it when the
// driver offers it, Info otherwise.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Housekeeper is a driver that can list, measure and remove images and
// report the engine's disk usage: what housekeeping needs beyond Driver.
// Like Driver, it never touches an object the caller did not name.
type Housekeeper interface {
	// ListImages returns the engine's images; labels, if given, select
	// those carrying all of them.
	ListImages(ctx context.Context, labels map[string]string) ([]ImageSummary, error)
	// RemoveImage removes an image by ID (untagging every tag it has).
	// An image in use by a container is refused (ErrConflict).
	RemoveImage(ctx context.Context, id string) error
	// DiskUsage reports sizes of images, containers, volumes and build
	// cache (it can take a while on a large engine).
	DiskUsage(ctx context.Context) (EngineDiskUsage, error)
	// PruneBuildCache removes build cache not used for olderThan and
	// reports the bytes freed. Build cache carries no labels: this is
	// engine-wide.
	PruneBuildCache(ctx context.Context, olderThan time.Duration) (int64, error)
	// ImageUsers returns the IDs of the images used by any container on
	// the engine, berth's or not (read only: it decides what is in use).
	ImageUsers(ctx context.Context) (map[string]bool, error)
}

// ImageSummary is an image as the engine lists it.
type ImageSummary struct {
	ID       string
	RepoTags []string
	Labels   map[string]string
	Size     int64
	Created  time.Time
}

// EngineDiskUsage is the engine's /system/df, reduced to what berth reads.
type EngineDiskUsage struct {
	Images     []ImageSummary
	Containers []ContainerUsage
	Volumes    []VolumeUsage
	BuildCache int64
	// RootDir is the engine's data root (DockerRootDir).
	RootDir string
}

// ContainerUsage is a container's writable layer size.
type ContainerUsage struct {
	ID     string
	Image  string
	State  string
	Labels map[string]string
	SizeRw int64
}

// VolumeUsage is a volume's size (-1 when the engine does not know).
type VolumeUsage struct {
	Name   string
	Labels map[string]string
	Size   int64
}

// Archiver is a driver that copies files in and out of a container's file
// system as tar streams (the engine's archive API): volume backups use it
// on a container that is created and never started.
type Archiver interface {
	// CreateIdle creates (never starts) a container of image with no
	// network, mounting the given mounts: something to copy through.
	CreateIdle(ctx context.Context, name, image string, mounts []Mount, labels map[string]string) (string, error)
	CopyFrom(ctx context.Context, container, path string) (io.ReadCloser, error)
	CopyTo(ctx context.Context, container, path string, tar io.Reader) error
}
