package docker

import (
	"context"
	"fmt"

	"github.com/docker/docker/api/types/build"
)

// BuildFrom builds an image FROM a local base image, adding only labels,
// and tags it tag: a new image ID that shares every layer with base.
// Tests and benchmarks use it to make images of distinct revisions (and
// images of a given owner) without a registry.
func BuildFrom(ctx context.Context, d *Driver, tag, base string, labels map[string]string) (string, error) {
	buildCtx, err := tarFiles([]tarFile{{name: "Dockerfile", mode: 0o644, data: []byte("FROM " + base + "\n")}})
	if err != nil {
		return "", err
	}
	bctx, cancel := context.WithTimeout(ctx, BuildTimeout)
	defer cancel()
	resp, err := d.cli.ImageBuild(bctx, buildCtx, build.ImageBuildOptions{
		Tags: []string{tag}, Labels: labels, Dockerfile: "Dockerfile", Remove: true, ForceRemove: true, Version: build.BuilderV1,
	})
	if err != nil {
		return "", d.wrap("build image "+tag, err)
	}
	defer resp.Body.Close()
	id, out, err := readBuildOutput(resp.Body)
	if err != nil {
		return "", fmt.Errorf("build image %s: %w\nbuild output:\n%s", tag, err, out)
	}
	if id == "" {
		img, err := d.ImageInspect(ctx, tag)
		if err != nil {
			return "", err
		}
		id = img.ID
	}
	return id, nil
}
