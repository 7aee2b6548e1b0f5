package docker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/registry"

	"github.com/berth-dev/berth/runtime"
)

// ImageBuild sends a build context to the engine's builder and returns its
// JSON progress stream, which the caller reads to the end and closes. The
// stream is bounded by ctx (builds take as long as they take); the engine
// must answer the request itself within the call timeout.
func (d *Driver) ImageBuild(ctx context.Context, buildContext io.Reader, opts build.ImageBuildOptions) (io.ReadCloser, error) {
	sctx, answered, cancel := d.stream(ctx)
	resp, err := d.cli.ImageBuild(sctx, buildContext, opts)
	if !answered() || err != nil {
		cancel()
		if err == nil {
			resp.Body.Close()
			err = context.Cause(sctx)
		}
		return nil, d.wrap("build image", streamErr(sctx, err))
	}
	d.ok()
	return readCloser{resp.Body, cancel}, nil
}

// ImageSave streams `docker save` of refs (a tar in the engine's format).
func (d *Driver) ImageSave(ctx context.Context, refs []string) (io.ReadCloser, error) {
	sctx, answered, cancel := d.stream(ctx)
	rc, err := d.cli.ImageSave(sctx, refs)
	if !answered() || err != nil {
		cancel()
		if err == nil {
			rc.Close()
			err = context.Cause(sctx)
		}
		return nil, d.wrap(fmt.Sprintf("save image %v", refs), streamErr(sctx, err))
	}
	d.ok()
	return readCloser{rc, cancel}, nil
}

// RegistryAuth is a credential for one registry, as the engine takes it.
type RegistryAuth struct {
	Username, Password, ServerAddress string
}

// ImagePull pulls ref with the given credential (nil: anonymous) and
// waits until the pull is done; ctx bounds the whole pull.
func (d *Driver) ImagePull(ctx context.Context, ref string, auth *RegistryAuth) error {
	opts := image.PullOptions{}
	if auth != nil {
		b, err := json.Marshal(registry.AuthConfig{Username: auth.Username, Password: auth.Password, ServerAddress: auth.ServerAddress})
		if err != nil {
			return err
		}
		opts.RegistryAuth = base64.URLEncoding.EncodeToString(b)
	}
	sctx, answered, cancel := d.stream(ctx)
	defer cancel()
	rc, err := d.cli.ImagePull(sctx, ref, opts)
	if !answered() || err != nil {
		if err == nil {
			rc.Close()
			err = context.Cause(sctx)
		}
		return d.wrap("pull image "+ref, streamErr(sctx, err))
	}
	defer rc.Close()
	d.ok()
	dec := json.NewDecoder(rc)
	for {
		var msg struct {
			Error       string `json:"error"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); err != nil {
			if err == io.EOF {
				return nil
			}
			return d.wrap("pull image "+ref, err)
		}
		if msg.ErrorDetail != nil && msg.ErrorDetail.Message != "" {
			return fmt.Errorf("pull image %s: %w: %s", ref, runtime.ErrEngine, msg.ErrorDetail.Message)
		}
		if msg.Error != "" {
			return fmt.Errorf("pull image %s: %w: %s", ref, runtime.ErrEngine, msg.Error)
		}
	}
}

// ImageTag adds the tag dst to the image src.
func (d *Driver) ImageTag(ctx context.Context, src, dst string) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	if err := d.cli.ImageTag(ctx, src, dst); err != nil {
		return d.wrap("tag image "+src+" as "+dst, err)
	}
	d.ok()
	return nil
}

// ImageRemove removes an image reference (the image itself once no
// reference is left).
func (d *Driver) ImageRemove(ctx context.Context, ref string) error {
	ctx, cancel := d.call(ctx)
	defer cancel()
	if _, err := d.cli.ImageRemove(ctx, ref, image.RemoveOptions{Force: true}); err != nil {
		return d.wrap("remove image "+ref, err)
	}
	d.ok()
	return nil
}

// readCloser closes a stream and releases its context.
type readCloser struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (r readCloser) Close() error {
	err := r.ReadCloser.Close()
	r.cancel()
	return err
}
