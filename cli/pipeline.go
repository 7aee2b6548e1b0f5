package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/daemon"
	"github.com/berth-dev/berth/pipeline"
	"github.com/berth-dev/berth/runtime/docker"
)

// pipelineCommands are the delivery commands: they run where the code is,
// against the local engine (DOCKER_HOST), and need no berth server except
// to find the embedded registry.
func pipelineCommands(g *globals) []*cobra.Command {
	return []*cobra.Command{newBuildCmd(g), newTestCmd(g), newPushCmd(g), newPromoteCmd(g), newRegistryCmd(g), newUpdateCmd(g)}
}

func engine() (*docker.Driver, error) {
	return docker.New(docker.Options{})
}

// testedPath is the record of images whose tests passed (see pipeline.TestedFile).
func testedPath() string { return filepath.Join(daemon.DefaultDataDir(), pipeline.TestedFile) }

func newBuildCmd(g *globals) *cobra.Command {
	var opts pipeline.BuildOptions
	var quiet bool
	c := &cobra.Command{
		Use:   "build [PATH]",
		Short: "Build an image through the engine and tag it with the git commit",
		Long: `Build the image in PATH (default .) with the engine's builder. The context is
sent as a tar stream that honours .dockerignore. The image is tagged
REPO:<short commit SHA> (with -dirty when the work tree has changes) and with
every --tag, and labelled with the OCI revision, source and creation time.
The tags are printed, the commit's first.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			opts.Dir = "."
			if len(args) == 1 {
				opts.Dir = args[0]
			}
			if !quiet {
				opts.Progress = g.stderr
			}
			// Images built beside a berth cluster carry its label, so its
			// housekeeping may collect them once dangling (and never
			// anyone else's).
			if id, err := os.ReadFile(filepath.Join(daemon.DefaultDataDir(), "cluster-id")); err == nil {
				opts.Labels = map[string]string{api.LabelCluster: strings.TrimSpace(string(id))}
			}
			eng, err := engine()
			if err != nil {
				return err
			}
			defer eng.Close()
			res, err := pipeline.Build(c.Context(), eng, opts)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(g.stdout, res)
			}
			for _, r := range res.Refs {
				fmt.Fprintln(g.stdout, r)
			}
			return nil
		},
	}
	c.Flags().StringVarP(&opts.Dockerfile, "file", "f", "", "Dockerfile, relative to PATH (default PATH/Dockerfile)")
	c.Flags().StringVarP(&opts.Repo, "repo", "t", "", "image repository, e.g. 127.0.0.1:5000/shop/web (default: the directory's name)")
	c.Flags().StringArrayVar(&opts.Tags, "tag", nil, "extra tag besides the commit's (repeatable)")
	c.Flags().BoolVar(&opts.NoCache, "no-cache", false, "do not use the build cache")
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the tags, not the build's progress")
	addJSON(c, g)
	return c
}

func newTestCmd(g *globals) *cobra.Command {
	var env, labels []string
	var opts pipeline.TestOptions
	c := &cobra.Command{
		Use:   "test IMAGE [-- CMD...]",
		Short: "Run a command (your test suite) in a fresh container of that exact image",
		Long: `Run CMD in a fresh container of IMAGE with the limits and privileges a task
gets (memory, CPU and process limits, every capability dropped, no new
privileges) and no network unless --network names one. Output is streamed,
the container is removed, and berth exits with CMD's exit code. An image
whose tests pass is recorded, so that 'berth promote' can refuse a tag that
has since moved to an untested image.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			opts.Image, opts.Cmd = args[0], args[1:]
			var err error
			if opts.Env, err = keyValues("-e", env); err != nil {
				return err
			}
			if opts.Labels, err = keyValues("--label", labels); err != nil {
				return err
			}
			opts.Stdout, opts.Stderr = g.stdout, g.stderr
			eng, err := engine()
			if err != nil {
				return err
			}
			defer eng.Close()
			res, err := pipeline.Test(c.Context(), eng, opts)
			if err != nil {
				return err
			}
			if res.ExitCode != 0 {
				fmt.Fprintf(g.stderr, "berth: tests in %s failed (exit code %d)\n", res.Image, res.ExitCode)
				return codeError{code: res.ExitCode}
			}
			if err := pipeline.RecordTested(testedPath(), res.ImageID, time.Now()); err != nil {
				return err
			}
			fmt.Fprintf(g.stderr, "berth: tests in %s (%s) passed\n", res.Image, shortID(res.ImageID))
			return nil
		},
	}
	c.Flags().StringArrayVarP(&env, "env", "e", nil, "environment variable KEY=VALUE (repeatable)")
	c.Flags().StringArrayVar(&labels, "label", nil, "extra container label KEY=VALUE (repeatable)")
	c.Flags().StringVar(&opts.Network, "network", "none", "network to join (none: no network)")
	c.Flags().StringSliceVar(&opts.Entrypoint, "entrypoint", nil, "replace the image's entrypoint")
	c.Flags().DurationVar(&opts.Timeout, "timeout", 30*time.Minute, "stop the run after this long")
	return c
}

func keyValues(flag string, kvs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%w: %s %q: use KEY=VALUE", errUsage, flag, kv)
		}
		out[k] = v
	}
	return out, nil
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
