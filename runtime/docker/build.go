package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/docker/api/types/build"
)

// BuildTimeout bounds BuildScratchImage when the caller's ctx has no
// sooner deadline.
const BuildTimeout = 5 * time.Minute

// BuildScratchImage builds an image FROM scratch holding one static binary
// (build it with CGO_ENABLED=0) at /NAME, NAME being the file's base name,
// tagged tag, with labels and the given entrypoint (["/NAME"] if empty).
// FROM scratch needs no pull, so it works on an engine with no registry
// access. It returns the image ID (sha256:...). A failed build returns the
// builder's error message and the build output.
func BuildScratchImage(ctx context.Context, d *Driver, tag, binaryPath string, labels map[string]string, entrypoint []string) (string, error) {
	bin, err := os.ReadFile(binaryPath)
	if err != nil {
		return "", fmt.Errorf("build image %s: read binary: %w", tag, err)
	}
	name := filepath.Base(binaryPath)
	if name == "Dockerfile" || name == ".dockerignore" {
		return "", fmt.Errorf("build image %s: the binary may not be called %s", tag, name)
	}
	if len(entrypoint) == 0 {
		entrypoint = []string{"/" + name}
	}
	ep, err := json.Marshal(entrypoint)
	if err != nil {
		return "", fmt.Errorf("build image %s: entrypoint: %w", tag, err)
	}
	dockerfile := fmt.Sprintf("FROM scratch\nCOPY %s /%s\nENTRYPOINT %s\n", name, name, ep)
	buildCtx, err := tarFiles([]tarFile{
		{name: "Dockerfile", mode: 0o644, data: []byte(dockerfile)},
		{name: name, mode: 0o755, data: bin},
	})
	if err != nil {
		return "", fmt.Errorf("build image %s: build context: %w", tag, err)
	}

	bctx, cancel := context.WithTimeout(ctx, BuildTimeout)
	defer cancel()
	resp, err := d.cli.ImageBuild(bctx, buildCtx, build.ImageBuildOptions{
		Tags:        []string{tag},
		Labels:      labels,
		Dockerfile:  "Dockerfile",
		Remove:      true,
		ForceRemove: true,
		// The classic builder needs no BuildKit session and no pull.
		Version: build.BuilderV1,
	})
	if err != nil {
		return "", d.wrap("build image "+tag, err)
	}
	defer resp.Body.Close()
	id, out, err := readBuildOutput(resp.Body)
	if err != nil {
		if bctx.Err() != nil {
			err = bctx.Err()
		}
		return "", fmt.Errorf("build image %s: %w\nbuild output:\n%s", tag, d.wrap("build", err), out)
	}
	if id != "" {
		return id, nil
	}
	img, err := d.ImageInspect(ctx, tag)
	if err != nil {
		return "", fmt.Errorf("build image %s: %w\nbuild output:\n%s", tag, err, out)
	}
	return img.ID, nil
}

// readBuildOutput drains the builder's JSON progress stream. It returns the
// image ID the builder reports (if it does), the text output, and the
// build's error.
func readBuildOutput(r io.Reader) (id, output string, err error) {
	dec := json.NewDecoder(r)
	var log strings.Builder
	for {
		var msg struct {
			Stream      string `json:"stream"`
			Status      string `json:"status"`
			Error       string `json:"error"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
			Aux *struct {
				ID string `json:"ID"`
			} `json:"aux"`
		}
		if derr := dec.Decode(&msg); derr != nil {
			if derr == io.EOF {
				return id, log.String(), nil
			}
			return "", log.String(), fmt.Errorf("read build output: %w", derr)
		}
		log.WriteString(msg.Stream)
		if msg.Status != "" {
			log.WriteString(msg.Status + "\n")
		}
		if msg.Aux != nil && msg.Aux.ID != "" {
			id = msg.Aux.ID
		}
		if msg.ErrorDetail != nil && msg.ErrorDetail.Message != "" {
			return "", log.String(), errors.New(msg.ErrorDetail.Message)
		}
		if msg.Error != "" {
			return "", log.String(), errors.New(msg.Error)
		}
	}
}

type tarFile struct {
	name string
	mode int64
	data []byte
}

// tarFiles returns a tar archive of files with fixed timestamps, so equal
// inputs give equal build contexts.
func tarFiles(files []tarFile) (*bytes.Buffer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		hdr := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return &buf, nil
}
