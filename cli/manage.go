package cli

import (
	"fmt"
	"strconv"
	"strings"

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
