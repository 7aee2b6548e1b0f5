// Package pipeline is berth's delivery path, run where the code is (a
// laptop, a CI runner): build an image through the engine's API and tag
// it with the commit, run the tests inside that exact image, push it to a
// registry and promote a digest from one registry to another. The server
// side of delivery (following a tag, auto-updates) is in updates.go.
package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/docker/docker/api/types/build"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/runtime/docker"
)

// OCI annotation keys berth sets as image labels.
const (
	LabelRevision = "org.opencontainers.image.revision"
	LabelSource   = "org.opencontainers.image.source"
	LabelCreated  = "org.opencontainers.image.created"
)

// BuildOptions say what to build and how to tag it.
type BuildOptions struct {
	Dir        string   // the build context
	Dockerfile string   // relative to Dir (default Dockerfile)
	Repo       string   // image repository (default: the directory's name)
	Tags       []string // extra tags besides the commit's
	Labels     map[string]string
	NoCache    bool
	// Progress receives the builder's output as it comes (nil: discarded).
	Progress io.Writer
	// Now stamps org.opencontainers.image.created (default time.Now).
	Now time.Time
}

// BuildResult is what a build produced.
type BuildResult struct {
	ID       string   `json:"id"`       // image ID (sha256:…)
	Refs     []string `json:"refs"`     // repo:tag, the commit's tag first
	Revision string   `json:"revision"` // the commit (short SHA, -dirty if the tree was)
}

// Build builds opts.Dir with the engine's classic builder (no BuildKit
// session is needed) and tags the image repo:<short SHA>[-dirty] plus
// the extra tags. A directory outside a git work tree needs at least one
// extra tag.
func Build(ctx context.Context, eng *docker.Driver, opts BuildOptions) (BuildResult, error) {
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return BuildResult{}, err
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return BuildResult{}, invalidf("build context %s is not a directory", opts.Dir)
	}
	dockerfile, err := checkDockerfile(dir, opts.Dockerfile)
	if err != nil {
		return BuildResult{}, err
	}
	repo := opts.Repo
	if repo == "" {
		repo = strings.ToLower(filepath.Base(dir))
	}
	named, err := reference.ParseNormalizedNamed(repo)
	if err != nil || !reference.IsNameOnly(named) {
		return BuildResult{}, invalidf("image repository %q is not valid: give a name without tag, like shop/web or 127.0.0.1:5000/shop/web", repo)
	}
	git, err := gitInfo(ctx, dir)
	if err != nil {
		return BuildResult{}, err
	}
	var tags []string
	if git.Revision != "" {
		tags = append(tags, git.Revision)
	} else if len(opts.Tags) == 0 {
		return BuildResult{}, invalidf("%s is not in a git work tree, so there is no commit to tag the image with: pass --tag", dir)
	}
	tags = append(tags, opts.Tags...)
	res := BuildResult{Revision: git.Revision}
	for _, t := range tags {
		ref, err := reference.WithTag(named, t)
		if err != nil {
			return BuildResult{}, invalidf("tag %q is not valid: %v", t, err)
		}
		res.Refs = append(res.Refs, reference.FamiliarString(ref))
	}

	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	labels := map[string]string{LabelCreated: now.UTC().Format(time.RFC3339), LabelSource: git.Source}
	if git.Source == "" {
		labels[LabelSource] = dir
	}
	if git.Revision != "" {
		labels[LabelRevision] = git.Commit
	}
	for k, v := range opts.Labels {
		labels[k] = v
	}

	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeContext(pw, dir, dockerfile)) }()
	defer pr.Close()
	stream, err := eng.ImageBuild(ctx, pr, build.ImageBuildOptions{
		Tags: res.Refs, Labels: labels, Dockerfile: filepath.ToSlash(dockerfile),
		Remove: true, ForceRemove: true, NoCache: opts.NoCache, Version: build.BuilderV1,
	})
	if err != nil {
		return BuildResult{}, err
	}
	defer stream.Close()
	id, err := followBuild(stream, opts.Progress)
	if err != nil {
		return BuildResult{}, err
	}
	if id == "" {
		img, err := eng.ImageInspect(ctx, res.Refs[0])
		if err != nil {
			return BuildResult{}, err
		}
		id = img.ID
	}
	res.ID = id
	return res, nil
}

// BuildError is a build that failed in a step of the Dockerfile.
type BuildError struct {
	Step    string // "Step 2/3 : COPY app /app", empty if it failed before any step
	Message string // the builder's error
}

func (e *BuildError) Error() string {
	if e.Step == "" {
		return "build failed: " + e.Message
	}
	return fmt.Sprintf("build failed at %s: %s", e.Step, e.Message)
}

// Unwrap makes a build error of kind invalid: the Dockerfile or the
// context must change.
func (e *BuildError) Unwrap() error { return api.ErrInvalid }

// followBuild copies the builder's progress to out and returns the image
// ID, or a BuildError naming the step that failed.
func followBuild(r io.Reader, out io.Writer) (string, error) {
	if out == nil {
		out = io.Discard
	}
	dec := json.NewDecoder(r)
	var id, step string
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
		if err := dec.Decode(&msg); err != nil {
			if errors.Is(err, io.EOF) {
				return id, nil
			}
			return "", fmt.Errorf("read build progress: %w", err)
		}
		if msg.Stream != "" {
			fmt.Fprint(out, msg.Stream)
			for _, line := range strings.Split(msg.Stream, "\n") {
				if strings.HasPrefix(line, "Step ") {
					step = strings.TrimSpace(line)
				}
			}
		}
		if msg.Status != "" {
			fmt.Fprintln(out, msg.Status)
		}
		if msg.Aux != nil && msg.Aux.ID != "" {
			id = msg.Aux.ID
		}
		text := msg.Error
		if msg.ErrorDetail != nil && msg.ErrorDetail.Message != "" {
			text = msg.ErrorDetail.Message
		}
		if text != "" {
			return "", &BuildError{Step: step, Message: strings.TrimSpace(text)}
		}
	}
}

// gitState is what the work tree says about the build's source.
type gitState struct {
	Commit   string // full SHA
	Revision string // short SHA, "-dirty" appended when the tree has changes
	Source   string // the origin remote's URL, if any
}

// gitInfo reads the commit of the work tree holding dir; an empty state
// when dir is not in one (or git is not installed).
func gitInfo(ctx context.Context, dir string) (gitState, error) {
	run := func(args ...string) (string, error) {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(cctx, "git", append([]string{"-C", dir}, args...)...).Output()
		return strings.TrimSpace(string(out)), err
	}
	commit, err := run("rev-parse", "HEAD")
	if err != nil {
		return gitState{}, nil
	}
	short, err := run("rev-parse", "--short", "HEAD")
	if err != nil {
		return gitState{}, fmt.Errorf("git rev-parse --short HEAD in %s: %w", dir, err)
	}
	status, err := run("status", "--porcelain", "--untracked-files=normal")
	if err != nil {
		return gitState{}, fmt.Errorf("git status in %s: %w", dir, err)
	}
	st := gitState{Commit: commit, Revision: short}
	if status != "" {
		st.Revision += "-dirty"
	}
	st.Source, _ = run("config", "--get", "remote.origin.url")
	return st, nil
}

func invalidf(format string, args ...any) error { return api.Invalidf(format, args...) }
