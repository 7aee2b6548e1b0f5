package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/spf13/cobra"
)

type logsOptions struct {
	follow     bool
	since      string
	until      string
	grep       string
	revision   int
	tail       int
	timestamps bool
}

func newLogsCmd(g *globals) *cobra.Command {
	var o logsOptions
	c := &cobra.Command{
		Use:   "logs STACK [SERVICE|TASK]",
		Short: "Show a stack's output, merged in time order across its tasks",
		Long: `Show the output (stdout and stderr) of a stack's containers as berth kept it,
merged in time order across tasks: of every service, of one service, or of one
task (its ID or a prefix of it). With -f, new lines follow as they come.

Times for --since and --until are RFC 3339 (2006-01-02T15:04:05Z) or a
duration back from now (10m, 2h).`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return fmt.Errorf("%w: berth logs takes STACK and optionally SERVICE or TASK (see `berth logs --help`)", errUsage)
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			req := api.LogsRequest{Follow: o.follow, Grep: o.grep, Revision: o.revision, Tail: o.tail}
			if len(args) == 2 {
				req.Target = args[1]
			}
			var err error
			now := time.Now()
			if req.Since, err = parseWhen("--since", o.since, now); err != nil {
				return err
			}
			if req.Until, err = parseWhen("--until", o.until, now); err != nil {
				return err
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			w := bufio.NewWriterSize(g.stdout, 64<<10)
			defer w.Flush()
			enc := json.NewEncoder(w)
			return cl.Logs(c.Context(), args[0], req, func(l api.LogLine) error {
				if g.json {
					if err := enc.Encode(l); err != nil {
						return err
					}
				} else {
					if o.timestamps {
						w.WriteString(l.Time.Format(time.RFC3339Nano))
						w.WriteByte(' ')
					}
					fmt.Fprintf(w, "%s.%s | %s\n", l.Service, shortTask(l.Task), l.Line)
				}
				if o.follow {
					return w.Flush()
				}
				return nil
			})
		},
	}
	f := c.Flags()
	f.BoolVarP(&o.follow, "follow", "f", false, "keep printing new lines as they come")
	f.StringVar(&o.since, "since", "", "only lines at or after this time (RFC 3339, or a duration back from now: 10m)")
	f.StringVar(&o.until, "until", "", "only lines before this time (RFC 3339, or a duration back from now)")
	f.StringVar(&o.grep, "grep", "", "only lines matching this regular expression (RE2 syntax)")
	f.IntVar(&o.revision, "revision", 0, "only lines of tasks of this revision")
	f.IntVarP(&o.tail, "tail", "n", 0, "only the last N lines (before following)")
	f.BoolVarP(&o.timestamps, "timestamps", "t", false, "print each line's time")
	addJSON(c, g)
	return c
}

func shortTask(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// parseWhen reads an RFC 3339 time or a duration back from now.
func parseWhen(flag, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(strings.TrimPrefix(v, "-"))
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%w: %s %q: use an RFC 3339 time (2006-01-02T15:04:05Z) or a duration such as 10m", errUsage, flag, v)
	}
	return now.Add(-d), nil
}
