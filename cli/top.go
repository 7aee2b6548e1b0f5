package cli

import (
	"fmt"
	"strings"

	"github.com/docker/go-units"
	"github.com/spf13/cobra"
)

func newTopCmd(g *globals) *cobra.Command {
	var history bool
	c := &cobra.Command{
		Use:   "top [STACK]",
		Short: "Show CPU, memory and requests per service, now and over the last hour",
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
			rep, err := cl.Top(c.Context(), stack, history || !g.json)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(g.stdout, rep)
			}
			tw := table(g.stdout)
			fmt.Fprintln(tw, "STACK\tSERVICE\tTASKS\tCPU\tMEMORY\tREQ/S\tERR/S\tCPU (LAST HOUR)\tREQ/S (LAST HOUR)")
			for _, s := range rep.Services {
				cpu := make([]float64, len(s.History))
				rps := make([]float64, len(s.History))
				for i, h := range s.History {
					cpu[i], rps[i] = h.CPU, h.Requests
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f%%\t%s\t%.1f\t%.1f\t%s\t%s\n", s.Stack, s.Service, s.Tasks,
					s.Latest.CPU*100, units.BytesSize(float64(s.Latest.MemoryBytes)), s.Latest.Requests, s.Latest.Errors,
					sparkline(cpu, 30), sparkline(rps, 30))
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&history, "history", false, "with --json: include the samples of the last hour")
	addJSON(c, g)
	return c
}

// sparkline draws the last width values scaled to their maximum.
func sparkline(vs []float64, width int) string {
	if len(vs) == 0 {
		return "-"
	}
	// Average into at most width buckets.
	n := min(width, len(vs))
	bars := []rune("▁▂▃▄▅▆▇█")
	sums := make([]float64, n)
	counts := make([]int, n)
	for i, v := range vs {
		b := i * n / len(vs)
		sums[b] += v
		counts[b]++
	}
	var top float64
	for i := range sums {
		sums[i] /= float64(max(counts[i], 1))
		top = max(top, sums[i])
	}
	var sb strings.Builder
	for _, v := range sums {
		k := 0
		if top > 0 {
			k = int(v / top * float64(len(bars)-1))
		}
		sb.WriteRune(bars[k])
	}
	return sb.String()
}
