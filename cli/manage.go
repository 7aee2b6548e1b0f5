package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/spf13/cobra"
)

func newScaleCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "scale STACK SERVICE=REPLICAS...",
		Short: "Set the number of replicas of services",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) < 2 {
				return fmt.Errorf("%w: scale takes a stack and SERVICE=REPLICAS (e.g. berth scale shop web=5)", errUsage)
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			for _, a := range args[1:] {
				svc, n, ok := strings.Cut(a, "=")
				replicas, err := strconv.Atoi(n)
				if !ok || err != nil {
					return fmt.Errorf("%w: %q: use SERVICE=REPLICAS, e.g. web=3", errUsage, a)
				}
				if err := cl.Scale(c.Context(), args[0], svc, replicas); err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "%s/%s scaled to %d\n", args[0], svc, replicas)
			}
			return nil
		},
	}
}

func newActionCmd(g *globals, action, short string) *cobra.Command {
	return &cobra.Command{
		Use:   action + " STACK [SERVICE]",
		Short: short,
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			svc := ""
			if len(args) == 2 {
				svc = args[1]
			}
			if err := cl.Action(c.Context(), action, args[0], svc); err != nil {
				return err
			}
			target := args[0]
			if svc != "" {
				target += "/" + svc
			}
			fmt.Fprintf(g.stdout, "%s: %s requested\n", target, action)
			return nil
		},
	}
}

func newRmCmd(g *globals) *cobra.Command {
	var volumes bool
	c := &cobra.Command{
		Use:   "rm STACK",
		Short: "Remove a stack and its containers (named volumes are kept unless --volumes)",
		Args:  exactArgs(1, "a stack name"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			if err := cl.Remove(c.Context(), args[0], volumes); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%s removed\n", args[0])
			return nil
		},
	}
	c.Flags().BoolVar(&volumes, "volumes", false, "also remove the stack's named volumes and their data")
	return c
}

func newRunCmd(g *globals) *cobra.Command {
	var env []string
	c := &cobra.Command{
		Use:   "run STACK SERVICE [-- CMD...]",
		Short: "Run a one-off command in a fresh container of a service's current revision",
		Long: `Run a one-off command in a fresh container of the service's current revision,
on the stack's network with the service's environment and limits. Output is
streamed; berth exits with the command's exit code. Run your test suite
inside the exact image you deploy: berth run shop web -- /app -test`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			req := api.RunRequest{Service: args[1], Command: args[2:], Environment: map[string]string{}}
			for _, kv := range env {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return fmt.Errorf("%w: -e %q: use KEY=VALUE", errUsage, kv)
				}
				req.Environment[k] = v
			}
			code, err := cl.Run(c.Context(), args[0], req, g.stdout, g.stderr)
			if err != nil {
				return err
			}
			if code != 0 {
				return codeError{code: code}
			}
			return nil
		},
	}
	c.Flags().StringArrayVarP(&env, "env", "e", nil, "extra environment variable KEY=VALUE (repeatable)")
	return c
}

func newRollbackCmd(g *globals) *cobra.Command {
	var to int
	var detach bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "rollback STACK [SERVICE]",
		Short: "Return services to their previous revision (or --to N), start-first like any rollout",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			req := api.RollbackRequest{To: to}
			if len(args) == 2 {
				req.Service = args[1]
			}
			if err := cl.Rollback(c.Context(), args[0], req); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%s: rollback started\n", args[0])
			if detach {
				return nil
			}
			return waitConverged(c.Context(), g, cl, args[0], nil, timeout)
		},
	}
	c.Flags().IntVar(&to, "to", 0, "revision to return to (default: the one before the current)")
	c.Flags().BoolVarP(&detach, "detach", "d", false, "return without waiting for the rollback to finish")
	c.Flags().DurationVar(&timeout, "timeout", 3*time.Minute, "how long to wait")
	return c
}

func newHistoryCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "history STACK",
		Short: "List each service's revisions, the current one and how the last rollout ended",
		Args:  exactArgs(1, "a stack name"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			st, err := cl.Stack(c.Context(), args[0])
			if err != nil {
				return err
			}
			type row struct {
				Service string       `json:"service"`
				Current bool         `json:"current"`
				Rev     api.Revision `json:"revision"`
				Rollout *api.Rollout `json:"rollout,omitempty"`
			}
			var rows []row
			for _, s := range st.Services {
				revs, err := cl.Revisions(c.Context(), args[0], s.Name)
				if err != nil {
					return err
				}
				for _, r := range revs {
					rw := row{Service: s.Name, Current: r.Number == s.Revision, Rev: r}
					// The newest rollout to this revision tells how it went.
					all := append(append([]api.Rollout(nil), s.History...), derefRollout(s.Rollout)...)
					for i := len(all) - 1; i >= 0; i-- {
						if all[i].To == r.Number {
							rw.Rollout = &all[i]
							break
						}
					}
					rows = append(rows, rw)
				}
			}
			if g.json {
				return printJSON(g.stdout, rows)
			}
			tw := table(g.stdout)
			fmt.Fprintln(tw, "SERVICE\tREV\tCURRENT\tIMAGE\tCREATED\tBY\tROLLOUT")
			for _, r := range rows {
				cur, ro, by := "", "", r.Rev.CreatedBy
				if r.Current {
					cur = "*"
				}
				if r.Rollout != nil {
					if r.Rollout.By != "" {
						by = r.Rollout.By
					}
					ro = r.Rollout.State
					if r.Rollout.Reason != "" {
						ro += ": " + r.Rollout.Reason
					}
				}
				img := r.Rev.Spec.Image + "@" + short12(strings.TrimPrefix(r.Rev.Spec.ImageID, "sha256:"))
				if by == "" {
					by = "-"
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", r.Service, r.Rev.Number, cur, img, ago(r.Rev.CreatedAt), by, ro)
			}
			return tw.Flush()
		},
	}
	addJSON(c, g)
	return c
}

func derefRollout(r *api.Rollout) []api.Rollout {
	if r == nil {
		return nil
	}
	return []api.Rollout{*r}
}

func newRolloutCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "rollout status|pause|resume|abort STACK [SERVICE]",
		Short: "Show or control the rollouts of a stack's services",
		Long: `status shows each service's last rollout (from, to, state, deadline,
reason). pause stops starting further replacements (tasks already replaced
stay); resume continues with a fresh deadline; abort rolls back at once.`,
		Args: cobra.RangeArgs(2, 3),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			action, stack, svc := args[0], args[1], ""
			if len(args) == 3 {
				svc = args[2]
			}
			switch action {
			case "status":
				st, err := cl.Stack(c.Context(), stack)
				if err != nil {
					return err
				}
				if g.json {
					out := map[string]*api.Rollout{}
					for _, s := range st.Services {
						if svc == "" || s.Name == svc {
							out[s.Name] = s.Rollout
						}
					}
					return printJSON(g.stdout, out)
				}
				tw := table(g.stdout)
				fmt.Fprintln(tw, "SERVICE\tFROM\tTO\tSTATE\tSTARTED\tDEADLINE\tREASON")
				for _, s := range st.Services {
					r := s.Rollout
					if (svc != "" && s.Name != svc) || r == nil {
						continue
					}
					state := r.State
					if r.Paused {
						state += " (paused)"
					}
					deadline := ""
					if r.State == api.RolloutInProgress && !r.Paused {
						deadline = "in " + time.Until(r.Deadline).Round(time.Second).String()
					}
					fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\n", s.Name, r.From, r.To, state, ago(r.Started), deadline, r.Reason)
				}
				return tw.Flush()
			case "pause", "resume", "abort":
				if err := cl.RolloutAction(c.Context(), stack, svc, action); err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "%s: rollout %s requested\n", stack, action)
				return nil
			default:
				return fmt.Errorf("%w: unknown rollout action %q; use status, pause, resume or abort", errUsage, action)
			}
		},
	}
	addJSON(c, g)
	return c
}
