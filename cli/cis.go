package cli

import (
	"fmt"

	"github.com/berth-dev/berth/cis"
	"github.com/spf13/cobra"
)

func newAuditHostCmd(g *globals) *cobra.Command {
	var own, warnOnly bool
	c := &cobra.Command{
		Use:   "host [--own] [--warn] [--json]",
		Short: "Check the engine and its running containers against the CIS Docker Benchmark",
		Long: `Run the CIS Docker Benchmark (v1.6.0) checks berth can judge through the
engine's API and its host: the daemon's configuration (section 2), the
socket's and daemon.json's permissions (section 3), and the container runtime
checks of section 5 on every running container (--own: berth's only). Each
result is PASS or WARN, with what to do about a WARN.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			var rep cis.Report
			if err := cl.HostAudit(c.Context(), own, &rep); err != nil {
				return err
			}
			if g.json {
				return printJSON(g.stdout, rep)
			}
			tw := table(g.stdout)
			fmt.Fprintln(tw, "LEVEL\tCHECK\tTARGET\tTITLE")
			for _, r := range rep.Results {
				if warnOnly && r.Level != cis.Warn {
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Level, r.ID, r.Target, r.Title)
				if r.Level == cis.Warn {
					detail := r.Remediation
					if r.Detail != "" {
						detail = r.Detail + "; " + detail
					}
					fmt.Fprintf(tw, "\t\t\t  → %s\n", detail)
				}
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "\nengine %s: %d passed, %d warnings\n", rep.Engine, rep.Pass, rep.Warn)
			return nil
		},
	}
	c.Flags().BoolVar(&own, "own", false, "check berth's own containers only")
	c.Flags().BoolVar(&warnOnly, "warn", false, "show warnings only")
	addJSON(c, g)
	return c
}
