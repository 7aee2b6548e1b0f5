// Package compose turns Compose files into berth's api.Stack. compose-go
// does the loading (several files, .env interpolation, profiles, extends,
// include); this package checks every key against what berth can honour
// (rules.go), converts, and says where a problem is (file:line:col) and
// what to do about it.
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
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/berth-dev/berth/api"
)

// Options for Load.
type Options struct {
	Files      []string          // -f files, in order; later files override earlier ones
	WorkingDir string            // default: the first file's directory
	EnvFiles   []string          // default: .env in WorkingDir if present
	Environ    map[string]string // process environment used for interpolation
	Profiles   []string
	StackName  string // --stack; default: the Compose name: or the directory name
}

// Load parses, interpolates, merges, checks and converts Compose files.
// Warnings are returned in the stack's Warnings. Every error wraps
// api.ErrInvalid and lists every problem found, one per line, each with
// its file:line:col, so nothing half-valid reaches a deploy.
func Load(ctx context.Context, opts Options) (st *api.Stack, err error) {
	defer func() {
		// compose-go is a large parser fed with user input; a panic in it
		// must not take down the CLI or a server that converts files.
		if p := recover(); p != nil {
			st, err = nil, fmt.Errorf("%w: the Compose files could not be parsed (%v); please report this with the file", api.ErrInvalid, p)
		}
	}()
	if len(opts.Files) == 0 {
		return nil, fmt.Errorf("%w: no Compose file given; pass -f compose.yaml", api.ErrInvalid)
	}
	if opts.StackName != "" {
		if err := api.ValidateName("stack name", opts.StackName); err != nil {
			return nil, fmt.Errorf("%w; pass a valid --stack NAME", err)
		}
	}
	ps, err := parseFiles(opts.Files)
	if err != nil {
		return nil, err
	}
	found := checkKeys(ps)
	for _, f := range found {
		if f.preempt {
			// compose-go's schema would refuse the file with a vaguer
			// message; say all that is wrong with the keys instead.
			return nil, invalid(ps, only(found, rejected))
		}
	}
	unset := &unsetVars{names: map[string]bool{}}
	project, err := loadProject(ctx, opts, cli.WithLoadOptions(unset.option))
	if err != nil {
		return nil, invalid(ps, append(only(found, rejected), composeProblems(ps, err)...))
	}
	found = active(found, project.DisabledServices)
	return convert(ps, project, opts, append(found, unset.warnings(ps)...))
}

// Convert turns a project compose-go already loaded into a stack. It
// applies the same rules as Load, but its messages carry no positions.
func Convert(project *types.Project, opts Options) (*api.Stack, error) {
	return convert(&positions{byPath: map[string]Pos{}}, project, opts, nil)
}

func convert(ps *positions, project *types.Project, opts Options, found []finding) (*api.Stack, error) {
	c := converter{ps: ps, findings: found}
	reported := map[string]bool{}
	for _, f := range found {
		reported[f.path] = true
	}
	judgeProject(project, func(path string, r rule) {
		if reported[path] {
			return
		}
		why := r.why
		// Set in the model, written in no named file, and its object is
		// written there: it came from the file an extends: names.
		if w := ps.written(path); len(ps.files) > 0 && strings.Count(w, ".") == 1 && strings.HasPrefix(w, "services.") {
			why += " (it comes from extends:)"
		}
		c.add(path, r.verdict, "%s", why)
	})
	st := c.convert(project, opts)
	if problems := only(c.findings, rejected); len(problems) > 0 {
		return nil, invalid(ps, problems)
	}
	for _, w := range sortFindings(ps, only(c.findings, warned)) {
		st.Warnings = append(st.Warnings, w.String())
	}
	if err := st.Validate(); err != nil {
		return nil, err
	}
	return st, nil
}

func only(fs []finding, v verdict) []finding {
	var out []finding
	for _, f := range fs {
		if f.verdict == v {
			out = append(out, f)
		}
	}
	return out
}

// sortFindings orders findings as they are written: by file (in -f
// order), line and column.
func sortFindings(ps *positions, fs []finding) []finding {
	order := map[string]int{}
	for i, f := range ps.files {
		order[f.name] = i + 1
	}
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i].pos, fs[j].pos
		if order[a.File] != order[b.File] {
			return order[a.File] < order[b.File]
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Col != b.Col {
			return a.Col < b.Col
		}
		return fs[i].msg < fs[j].msg
	})
	return fs
}

// invalid reports every problem, one per line.
func invalid(ps *positions, problems []finding) error {
	lines := make([]string, 0, len(problems))
	seen := map[string]bool{}
	for _, f := range sortFindings(ps, problems) {
		if s := f.String(); !seen[s] {
			seen[s] = true
			lines = append(lines, s)
		}
	}
	if len(lines) == 1 {
		return fmt.Errorf("%w: %s", api.ErrInvalid, lines[0])
	}
	return fmt.Errorf("%w: %d problems:\n  %s", api.ErrInvalid, len(lines), strings.Join(lines, "\n  "))
}

func loadProject(ctx context.Context, opts Options, extra ...cli.ProjectOptionsFn) (*types.Project, error) {
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
				return nil, fmt.Errorf("env file %s: %w; pass --env-file PATH to an existing file", f, err)
			}
		}
		popts = append(popts, cli.WithEnvFiles(opts.EnvFiles...))
	} else {
		popts = append(popts, cli.WithEnvFiles()) // .env in the working directory, if any
	}
	popts = append(popts, cli.WithDotEnv)
	if opts.StackName != "" {
		popts = append(popts, cli.WithName(opts.StackName))
	}
	po, err := cli.NewProjectOptions(opts.Files, append(popts, extra...)...)
	if err != nil {
		return nil, err
	}
	return po.LoadProject(ctx)
}

// composeProblems turns a compose-go error, which may hold several
// problems, one per line, into positioned findings with what to do.
func composeProblems(ps *positions, err error) []finding {
	var out []finding
	for _, line := range strings.Split(cleanComposeError(err), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "decoding failed due to the following error") {
			continue
		}
		line = explain(line)
		f := finding{verdict: rejected, msg: line}
		if p := ps.locate(line); p != "" {
			f.pos, f.path = ps.at(p), p
		} else if len(ps.files) > 0 {
			f.pos = Pos{File: ps.files[0].name}
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		out = append(out, finding{verdict: rejected, msg: err.Error()})
	}
	return out
}

var absPathRE = regexp.MustCompile(`validating [^:]+: `)

// cleanComposeError drops compose-go's absolute-path prefixes; the position
// says which file.
func cleanComposeError(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Sprintf("%s: %v", pe.Path, pe.Err)
	}
	return absPathRE.ReplaceAllString(err.Error(), "")
}

// rewrites turn compose-go's messages into berth's form, "path: what is
// wrong; what to do". Applied in order; each sees the previous result.
var rewrites = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`: invalid compose project$`), ""},
	{regexp.MustCompile(`\[([A-Za-z0-9_.\-]+)\]`), ".$1"}, // services[web].x
	{regexp.MustCompile(`\.\.(\d)`), ".$1"},               // services.web.environment..0
	{regexp.MustCompile(`^'([^']+)' `), "$1: "},           // the decoder's 'path' message
	{regexp.MustCompile(`^error while interpolating ([^:]+): failed to cast to expected type: strconv\.(?:Atoi|ParseInt|ParseUint): parsing "(.*)": invalid syntax$`), `$1: "$2" is not a whole number`},
	{regexp.MustCompile(`^error while interpolating ([^:]+): failed to cast to expected type: strconv\.ParseFloat: parsing "(.*)": invalid syntax$`), `$1: "$2" is not a number`},
	{regexp.MustCompile(`^error while interpolating ([^:]+): failed to cast to expected type: strconv\.ParseBool: parsing "(.*)": invalid syntax$`), `$1: "$2" is not true or false`},
	{regexp.MustCompile(`^error while interpolating ([^:]+): `), "$1: "},
	{regexp.MustCompile(`: strconv\.Parse\w+: parsing "(.*)": invalid syntax$`), `: "$1" is not a number`},
	{regexp.MustCompile(`^service "([^"]+)" depends on undefined service "?([^":\s]+)"?`), `services.$1.depends_on: service "$2" is not defined; define it, remove it from depends_on, or activate its profile`},
	{regexp.MustCompile(`^service "([^"]+)" refers to undefined (volume|secret|config|network) "?([^":\s]+)"?`), `services.$1.${2}s: $2 "$3" is not declared; add it under the top-level ${2}s:`},
	{regexp.MustCompile(` must be a ([aeiou])`), " must be an $1"},
	{regexp.MustCompile(`^((?:services|networks|volumes|secrets|configs)\.\S+) (must be|is not|does not|Additional property)`), "$1: $2"},
	{regexp.MustCompile(`(time: (?:invalid duration|unknown unit|missing unit).*)$`), "$1; use a duration like 30s or 1m30s"},
	{regexp.MustCompile(`(invalid (?:size|suffix).*)$`), "$1; use a size like 512m or 2g"},
}

func explain(msg string) string {
	for _, r := range rewrites {
		msg = r.re.ReplaceAllString(msg, r.repl)
	}
	return msg
}
