// Package compose turns Compose files into berth's api.Stack. compose-go
// does the loading (several files, .env interpolation, profiles, extends);
// this package checks every key against what berth can honour, converts,
// and says where a problem is (file:line:col) and what to do about it.
package compose

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"

	"github.com/berth-dev/berth/api"
)

// Options for Load.
type Options struct {
	Files      []string          // -f files, in order; later files override earlier ones
	WorkingDir string            // default: the first file's directory
	EnvFiles   []string          // default: .env in WorkingDir if present
	Environ    map[string]string // process environment used for interpolation
	Profiles   []string
	StackName  string // default: the Compose name: or the directory name
}

// Load parses, interpolates, merges, checks and converts Compose files.
// Warnings are returned in the stack's Warnings. Every error wraps
// api.ErrInvalid, so nothing half-valid reaches a deploy.
func Load(ctx context.Context, opts Options) (st *api.Stack, err error) {
	defer func() {
		// compose-go is a large parser fed with user input; a panic in it
		// must not take down the CLI or a server that converts files.
		if p := recover(); p != nil {
			st, err = nil, fmt.Errorf("%w: the Compose file could not be parsed (%v)", api.ErrInvalid, p)
		}
	}()
	if len(opts.Files) == 0 {
		return nil, fmt.Errorf("%w: no Compose file given; pass -f compose.yaml", api.ErrInvalid)
	}
	ps, err := parseFiles(opts.Files)
	if err != nil {
		return nil, err
	}
	var warnings, problems []string
	for _, f := range checkKeys(ps) {
		line := f.pos.String() + ": " + f.msg
		if f.verdict == warned {
			warnings = append(warnings, line)
		} else {
			problems = append(problems, line)
		}
	}
	if len(problems) > 0 {
		return nil, invalid(problems)
	}

	project, err := loadProject(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", api.ErrInvalid, ps.locate(cleanComposeError(err)))
	}
	c := converter{ps: ps, warnings: warnings}
	st = c.convert(project, opts)
	if len(c.problems) > 0 {
		return nil, invalid(c.problems)
	}
	st.Warnings = c.warnings
	if err := st.Validate(); err != nil {
		return nil, err
	}
	return st, nil
}

func invalid(problems []string) error {
	sort.Strings(problems)
	return fmt.Errorf("%w: %s", api.ErrInvalid, strings.Join(problems, "\n  "))
}

func loadProject(ctx context.Context, opts Options) (*composeProject, error) {
	wd := opts.WorkingDir
	if wd == "" {
		wd = filepath.Dir(opts.Files[0])
	}
	env := make([]string, 0, len(opts.Environ))
	for k, v := range opts.Environ {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	popts := []cli.ProjectOptionsFn{
		cli.WithWorkingDirectory(wd),
		cli.WithEnv(env),
		cli.WithProfiles(opts.Profiles),
		cli.WithResolvedPaths(true),
	}
	if len(opts.EnvFiles) > 0 {
		for _, f := range opts.EnvFiles {
			if _, err := os.Stat(f); err != nil {
				return nil, fmt.Errorf("env file %s: %w", f, err)
			}
		}
		popts = append(popts, cli.WithEnvFiles(opts.EnvFiles...))
	} else {
		popts = append(popts, cli.WithEnvFiles())
	}
	popts = append(popts, cli.WithDotEnv)
	if opts.StackName != "" {
		popts = append(popts, cli.WithName(opts.StackName))
	}
	po, err := cli.NewProjectOptions(opts.Files, popts...)
	if err != nil {
		return nil, err
	}
	return po.LoadProject(ctx)
}

var absPathRE = regexp.MustCompile(`validating [^:]+: `)

// cleanComposeError drops compose-go's absolute-path prefixes; the position
// says which file.
func cleanComposeError(err error) string {
	msg := err.Error()
	msg = absPathRE.ReplaceAllString(msg, "")
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Sprintf("%s: %v", pe.Path, pe.Err)
	}
	return msg
}
