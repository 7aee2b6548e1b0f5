package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/docker/api/types/build"
)

// BuildScratchImage builds an image FROM scratch holding one static binary
// at /NAME (the file's base name), tagged tag, with labels and the given
// entrypoint. FROM scratch needs no pull, so it works on an engine with no
// registry access. It returns the image ID.
func BuildScratchImage(ctx context.Context, d *Driver, tag, binaryPath string, labels map[string]string, entrypoint []string) (string, error) {
	bin, err := os.ReadFile(binaryPath)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", binaryPath, err)
	}
	name := filepath.Base(binaryPath)
	ep, _ := json.Marshal(entrypoint)
	dockerfile := fmt.Sprintf("FROM scratch\nCOPY %s /%s\nENTRYPOINT %s\n", name, name, ep)

	var ctxTar bytes.Buffer
	tw := tar.NewWriter(&ctxTar)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{{"Dockerfile", 0o644, []byte(dockerfile)}, {name, 0o755, bin}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: time.Unix(0, 0)}); err != nil {
			return "", err
		}
		if _, err := tw.Write(f.data); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}

	bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	resp, err := d.cli.ImageBuild(bctx, &ctxTar, build.ImageBuildOptions{
		Tags: []string{tag}, Labels: labels, Remove: true, ForceRemove: true, Dockerfile: "Dockerfile",
	})
	if err != nil {
		return "", d.wrap("build image "+tag, err)
	}
	defer resp.Body.Close()
	// Drain the progress stream; it carries build errors.
	dec := json.NewDecoder(resp.Body)
	var log strings.Builder
	for {
		var msg struct {
			Stream      string `json:"stream"`
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); err != nil {
			if err == io.EOF {
				break
			}
			return "", fmt.Errorf("build image %s: read progress: %w", tag, err)
		}
		if msg.Error != "" {
			return "", fmt.Errorf("build image %s: %s", tag, msg.Error)
		}
		log.WriteString(msg.Stream)
	}
	img, err := d.ImageInspect(ctx, tag)
	if err != nil {
		return "", fmt.Errorf("build image %s: %w\n%s", tag, err, log.String())
	}
	return img.ID, nil
}
