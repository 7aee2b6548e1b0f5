package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/compose"
	"github.com/spf13/cobra"
)

type composeFlags struct {
	files    []string
	stack    string
	profiles []string
	envFiles []string
}

func (f *composeFlags) add(c *cobra.Command) {
	c.Flags().StringArrayVarP(&f.files, "file", "f", nil, "Compose file (repeat to merge overrides; default compose.yaml)")
	c.Flags().StringVar(&f.stack, "stack", "", "stack name (default: the Compose project name)")
	c.Flags().StringArrayVar(&f.profiles, "profile", nil, "Compose profile to enable (repeatable)")
	c.Flags().StringArrayVar(&f.envFiles, "env-file", nil, "environment file for interpolation (default .env beside the Compose file)")
}

func (f *composeFlags) load(ctx context.Context) (*api.Stack, error) {
	st, _, err := f.loadWithEnv(ctx)
	return st, err
}

// loadWithEnv loads the stack and returns the environment it was
// interpolated with (secrets with environment: read it).
func (f *composeFlags) loadWithEnv(ctx context.Context) (*api.Stack, map[string]string, error) {
	files := f.files
	if len(files) == 0 {
		for _, name := range []string{"compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml"} {
			if _, err := os.Stat(name); err == nil {
				files = []string{name}
				break
			}
		}
		if len(files) == 0 {
			return nil, nil, fmt.Errorf("%w: no compose.yaml in this directory; pass -f FILE", api.ErrInvalid)
		}
	}
	environ := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			environ[k] = v
		}
	}
	st, err := compose.Load(ctx, compose.Options{
		Files: files, EnvFiles: f.envFiles, Environ: environ, Profiles: f.profiles, StackName: f.stack,
	})
	return st, environ, err
}

func newValidateCmd(g *globals) *cobra.Command {
	var cf composeFlags
	c := &cobra.Command{
		Use:   "validate [-f FILE]...",
		Short: "Check a Compose file the way deploy would, without deploying",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			st, err := cf.load(c.Context())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(g.stdout, st)
			}
			for _, w := range st.Warnings {
				fmt.Fprintln(g.stderr, "warning: "+w)
			}
			fmt.Fprintf(g.stdout, "%s: valid, %d service(s)\n", st.Name, len(st.Services))
			return nil
		},
	}
	cf.add(c)
	addJSON(c, g)
	return c
}

type deployOptions struct {
	composeFlags
	tenant  string
	dryRun  bool
	detach  bool
	timeout time.Duration
}

func newDeployCmd(g *globals) *cobra.Command {
	var o deployOptions
	c := &cobra.Command{
		Use:   "deploy [-f FILE]... [--stack NAME]",
		Short: "Deploy a Compose file as a stack and wait until it runs",
		Long: `Deploy a Compose file as a stack. Image tags are pinned to the digests
they have now; every changed service gets a new revision. Deploying the
same file again changes nothing. Without --detach, deploy waits until every
service runs its replicas, and fails with the tasks' reasons if they do not.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx := c.Context()
			st, environ, err := o.loadWithEnv(ctx)
			if err != nil {
				return err
			}
			for _, w := range st.Warnings {
				fmt.Fprintln(g.stderr, "warning: "+w)
			}
			values, err := compose.SecretValues(st, environ)
			if err != nil {
				return err
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			resp, err := cl.Deploy(ctx, api.DeployRequest{Stack: *st, DryRun: o.dryRun, Secrets: values, Tenant: o.tenant})
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(g.stdout, resp)
			}
			printChanges(g, resp)
			if o.dryRun || o.detach {
				return nil
			}
			want := map[string]int{}
			for _, ch := range resp.Changes {
				if ch.Action == api.ChangeCreated || ch.Action == api.ChangeUpdated {
					want[ch.Service] = ch.Revision
				}
			}
			return waitConverged(ctx, g, cl, st.Name, want, o.timeout)
		},
	}
	o.composeFlags.add(c)
	c.Flags().BoolVar(&o.dryRun, "dry-run", false, "show what would change without deploying")
	c.Flags().StringVar(&o.tenant, "tenant", "", "tenant a new stack belongs to (a tenant's token deploys into its own)")
	c.Flags().BoolVarP(&o.detach, "detach", "d", false, "return once the deploy is stored, without waiting")
	c.Flags().DurationVar(&o.timeout, "timeout", 3*time.Minute, "how long to wait for the stack to run")
	addJSON(c, g)
	return c
}

func printChanges(g *globals, resp api.DeployResponse) {
	prefix := ""
	if resp.DryRun {
		prefix = "(dry run) "
	}
	for _, ch := range resp.Changes {
		switch ch.Action {
		case api.ChangeRemoved:
			fmt.Fprintf(g.stdout, "%s%s/%s: removed\n", prefix, resp.Stack, ch.Service)
		default:
			fmt.Fprintf(g.stdout, "%s%s/%s: %s, revision %d, %d replica(s)\n", prefix, resp.Stack, ch.Service, ch.Action, ch.Revision, ch.Replicas)
		}
	}
}

// waitConverged polls the stack until every service runs its replicas of
// its current revision, printing progress as it changes. want maps
// services to the revisions this deploy created: if berth rolls one of
// them back, the deploy failed.
func waitConverged(ctx context.Context, g *globals, cl *client.Client, stack string, want map[string]int, timeout time.Duration) error {
	var follow sync.WaitGroup
	defer follow.Wait()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The stack's events (a rollout's steps and end, a task failing) wake
	// the loop at once; the poll catches the rest.
	wake := make(chan struct{}, 1)
	follow.Add(1)
	go func() {
		defer follow.Done()
		_ = cl.FollowEvents(ctx, stack, 1, func(api.Event) error {
			select {
			case wake <- struct{}{}:
			default:
			}
			return nil
		})
	}()
	last := ""
	gates := map[string]int{}
	for {
		st, err := cl.Stack(ctx, stack)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("stack %s did not converge within %s", stack, timeout)
			}
			return err
		}
		printGates(g, stack, st, gates)
		for _, s := range st.Services {
			if r := s.Rollout; r != nil && r.State == api.RolloutRolledBack && want[s.Name] != 0 && r.To == want[s.Name] {
				return fmt.Errorf("%s/%s: revision %d was rolled back to %d: %s\nsee `berth history %s` and `berth events %s`",
					stack, s.Name, r.To, r.From, r.Reason, stack, stack)
			}
		}
		done, line, problems := convergence(st)
		if line != last {
			fmt.Fprintln(g.stdout, line)
			last = line
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			msg := fmt.Sprintf("stack %s did not converge within %s", stack, timeout)
			if len(problems) > 0 {
				msg += ":\n  " + strings.Join(problems, "\n  ")
			}
			return fmt.Errorf("%s\nsee `berth ps %s` and `berth events %s`", msg, stack, stack)
		case <-wake:
		case <-time.After(100 * time.Millisecond): // a local read
		}
	}
}

func convergence(st api.StackStatus) (bool, string, []string) {
	done := true
	var parts, problems []string
	for _, s := range st.Services {
		if s.Schedule != "" {
			parts = append(parts, fmt.Sprintf("%s: scheduled (%s)", s.Name, s.Schedule))
			continue
		}
		want := s.Replicas
		if s.Stopped {
			want = 0
		}
		tasks := 0
		for _, t := range s.Tasks {
			if t.Task.Revision != s.Revision && t.Task.Desired == api.DesiredStopped {
				continue // a blue-green rollout's previous set, kept for rollback
			}
			tasks++
		}
		if s.Running != want || tasks != s.Replicas {
			done = false
		}
		part := fmt.Sprintf("%s %d/%d", s.Name, s.Running, want)
		if r := s.Rollout; r != nil && r.State == api.RolloutInProgress && r.To == s.Revision {
			done = false
			part += " (" + rolloutProgress(s) + ")"
		}
		parts = append(parts, part)
		for _, t := range s.Tasks {
			switch {
			case t.Task.Unplaced != "":
				problems = append(problems, fmt.Sprintf("%s.%d: not placed: %s", s.Name, t.Task.Slot, t.Task.Unplaced))
			case t.Status != nil && t.Status.State != api.StateRunning && t.Status.Reason != "":
				problems = append(problems, fmt.Sprintf("%s.%d: %s: %s", s.Name, t.Task.Slot, t.Status.State, t.Status.Reason))
			}
		}
	}
	sort.Strings(problems)
	return done, st.Name + ": " + strings.Join(parts, ", "), problems
}

// rolloutProgress describes a rollout in progress: where it is (strategy,
// step, switch), the new revision's tasks started and ready, the tasks
// serving traffic per revision, and the traffic split.
func rolloutProgress(s api.ServiceStatus) string {
	r := s.Rollout
	var b strings.Builder
	fmt.Fprintf(&b, "%s to revision %d", r.Strategy, r.To)
	switch r.Strategy {
	case api.Canary:
		fmt.Fprintf(&b, ", step %d", r.Step+1)
	case api.BlueGreen:
		if r.Switched {
			b.WriteString(", switched")
		} else {
			b.WriteString(", staging")
		}
	}
	split := api.TrafficSplit{}
	for _, t := range s.Tasks {
		if t.Task.Traffic.Gen > split.Gen {
			split = t.Task.Traffic
		}
	}
	var started, ready, newServing, oldServing int
	for _, t := range s.Tasks {
		if t.Task.Desired == api.DesiredStopped {
			continue
		}
		up := t.Status != nil && t.Status.State == api.StateRunning
		serving := up && shareOf(split, t.Task.Revision) > 0
		if t.Task.Revision == r.To {
			if t.Status != nil && t.Status.State != api.StatePending && t.Status.State != api.StateCreated {
				started++
			}
			if up {
				ready++
			}
			if serving {
				newServing++
			}
		} else if serving {
			oldServing++
		}
	}
	fmt.Fprintf(&b, ": new %d started, %d ready, %d serving; old %d serving", started, ready, newServing, oldServing)
	if split.Revision != 0 {
		fmt.Fprintf(&b, "; traffic %d%% to revision %d", split.Percent, split.Revision)
	}
	switch {
	case r.Paused:
		b.WriteString("; paused")
	case !r.Observing.IsZero():
		b.WriteString("; watching")
	}
	return b.String()
}

// shareOf is the percent of a service's traffic a revision's tasks get
// under a split (every revision alike without one).
func shareOf(split api.TrafficSplit, revision int) int {
	switch {
	case split.Revision == 0:
		return 100
	case split.Revision == revision:
		return split.Percent
	default:
		return 100 - split.Percent
	}
}

// printGates prints the gate results not printed yet.
func printGates(g *globals, stack string, st api.StackStatus, seen map[string]int) {
	for _, s := range st.Services {
		r := s.Rollout
		if r == nil {
			continue
		}
		key := fmt.Sprintf("%s/%d", s.Name, r.To)
		for _, gr := range r.Gates[min(seen[key], len(r.Gates)):] {
			verdict := "passed"
			if !gr.Passed {
				verdict = "FAILED"
			}
			fmt.Fprintf(g.stdout, "%s/%s: revision %d step %d: %s gate %s: %s\n", stack, s.Name, r.To, gr.Step+1, gr.Gate, verdict, gr.Detail)
		}
		seen[key] = len(r.Gates)
	}
}

func printJSON(w interface{ Write([]byte) (int, error) }, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
