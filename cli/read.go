package cli

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/spf13/cobra"
)

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

func newLsCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "ls",
		Short: "List deployed stacks",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			stacks, err := cl.Stacks(c.Context())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(g.stdout, stacks)
			}
			tw := table(g.stdout)
			fmt.Fprintln(tw, "STACK\tSERVICES\tTASKS\tRUNNING\tUPDATED")
			for _, s := range stacks {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", s.Name, s.Services, s.Tasks, s.Running, ago(s.Updated))
			}
			return tw.Flush()
		},
	}
	addJSON(c, g)
	return c
}

func newPsCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "ps [STACK]",
		Short: "List tasks with their state, restarts and reasons",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			stack := ""
			if len(args) == 1 {
				stack = args[0]
			}
			tasks, err := cl.Tasks(c.Context(), stack)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(g.stdout, tasks)
			}
			printTasks(g.stdout, tasks)
			return nil
		},
	}
	addJSON(c, g)
	return c
}

func printTasks(w io.Writer, tasks []api.TaskView) {
	tw := table(w)
	fmt.Fprintln(tw, "TASK\tSTACK\tSERVICE\tSLOT\tREV\tSTATE\tRESTARTS\tCONTAINER\tADDRESS\tSINCE\tREASON")
	for _, v := range tasks {
		t := v.Task
		state, restarts, ctr, addr, since, reason := "pending", "0", "", "", "", t.Unplaced
		if s := v.Status; s != nil {
			state, restarts, ctr, addr, reason = s.State, fmt.Sprint(s.Restarts), short12(s.ContainerID), s.Address, s.Reason
			if !s.StartedAt.IsZero() {
				since = ago(s.StartedAt)
			}
		}
		if t.Desired == api.DesiredStopped && state != api.StateStopped {
			state += " (stopping)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n",
			t.ID, t.Stack, t.Service, t.Slot, t.Revision, state, restarts, ctr, addr, since, reason)
	}
	_ = tw.Flush()
}

func newStatusCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "status STACK",
		Short: "Show a stack's services, revisions and tasks",
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
			if g.json {
				return printJSON(g.stdout, st)
			}
			fmt.Fprintf(g.stdout, "stack %s (updated %s)\n\n", st.Name, ago(st.UpdatedAt))
			tw := table(g.stdout)
			fmt.Fprintln(tw, "SERVICE\tREVISION\tRUNNING\tIMAGE\tNOTE")
			var all []api.TaskView
			for _, s := range st.Services {
				note := ""
				switch {
				case s.Schedule != "":
					note = "scheduled: " + s.Schedule
				case s.Stopped:
					note = "stopped"
				case s.PendingUpdate != nil:
					note = pendingNote(st.Name, s)
				}
				fmt.Fprintf(tw, "%s\t%d\t%d/%d\t%s\t%s\n", s.Name, s.Revision, s.Running, s.Replicas, imageCell(s), note)
				all = append(all, s.Tasks...)
			}
			_ = tw.Flush()
			if len(all) > 0 {
				fmt.Fprintln(g.stdout)
				printTasks(g.stdout, all)
			}
			printDegraded(c.Context(), g.stdout, cl, all)
			return nil
		},
	}
	addJSON(c, g)
	return c
}

func newInspectCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "inspect STACK [SERVICE]",
		Short: "Print a stack's status, or a service's revisions, as JSON",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			if len(args) == 2 {
				revs, err := cl.Revisions(c.Context(), args[0], args[1])
				if err != nil {
					return err
				}
				return printJSON(g.stdout, revs)
			}
			st, err := cl.Stack(c.Context(), args[0])
			if err != nil {
				return err
			}
			return printJSON(g.stdout, st)
		},
	}
	return c
}

func newEventsCmd(g *globals) *cobra.Command {
	var follow bool
	var limit int
	c := &cobra.Command{
		Use:   "events [STACK]",
		Short: "Show recent events (deploys, restarts, crash loops, OOM kills)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			stack := ""
			if len(args) == 1 {
				stack = args[0]
			}
			print := func(e api.Event) error {
				if g.json {
					return printJSON(g.stdout, e)
				}
				where := e.Stack
				if e.Service != "" {
					where += "/" + e.Service
				}
				if e.Task != "" {
					where += " " + e.Task
				}
				_, err := fmt.Fprintf(g.stdout, "%s  %-18s %-28s %s\n", e.Time.Local().Format("2006-01-02 15:04:05"), e.Type, where, e.Message)
				return err
			}
			if follow {
				return cl.FollowEvents(c.Context(), stack, limit, print)
			}
			evs, err := cl.Events(c.Context(), stack, limit)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(g.stdout, evs)
			}
			for _, e := range evs {
				if err := print(e); err != nil {
					return err
				}
			}
			return nil
		},
	}
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep streaming new events")
	c.Flags().IntVarP(&limit, "limit", "n", 50, "how many recent events to show")
	addJSON(c, g)
	return c
}

func newJobsCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "jobs STACK",
		Short: "List a stack's job runs (berth run and scheduled jobs)",
		Args:  exactArgs(1, "a stack name"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			runs, err := cl.Jobs(c.Context(), args[0])
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(g.stdout, runs)
			}
			tw := table(g.stdout)
			fmt.Fprintln(tw, "JOB\tSERVICE\tREV\tKIND\tSTATE\tEXIT\tSTARTED\tDURATION\tREASON")
			for _, r := range runs {
				kind := "run"
				if r.Scheduled {
					kind = "scheduled"
				}
				dur := ""
				if !r.EndedAt.IsZero() {
					dur = r.EndedAt.Sub(r.StartedAt).Round(time.Millisecond).String()
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%d\t%s\t%s\t%s\n", r.ID, r.Service, r.Revision, kind, r.State, r.ExitCode, ago(r.StartedAt), dur, r.Reason)
			}
			return tw.Flush()
		},
	}
	addJSON(c, g)
	return c
}

func newVersionCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "version",
		Short: "Print the client's and the server's versions",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			out := map[string]any{"client": map[string]string{"version": Version, "commit": Commit}}
			cl, err := g.client()
			if err != nil {
				return err
			}
			v, serr := cl.Version(c.Context())
			if serr == nil {
				out["server"] = v
			}
			if g.json {
				return printJSON(g.stdout, out)
			}
			fmt.Fprintf(g.stdout, "client: %s %s\n", Version, Commit)
			if serr != nil {
				fmt.Fprintf(g.stdout, "server: %v\n", serr)
				return nil
			}
			fmt.Fprintf(g.stdout, "server: %s %s (%s), cluster %s, engine %s\n", v.Version, v.Commit, v.GoVersion, v.ClusterID, v.Engine)
			return nil
		},
	}
	addJSON(c, g)
	return c
}

func ago(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := time.Since(t).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	default:
		return t.Local().Format("2006-01-02")
	}
}

func short12(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}
