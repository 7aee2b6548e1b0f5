package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/docker/go-units"
	"github.com/spf13/cobra"
)

func newTokenCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "token",
		Short: "Manage API tokens for the remote API (admin)",
	}
	var req api.TokenRequest
	var ttl time.Duration
	create := &cobra.Command{
		Use:   "create --role admin|deployer|viewer [--tenant T] [--ttl 720h] [--name N]",
		Short: "Create a token; it is shown once, and stored only as a hash",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			req.TTL = api.Duration(ttl)
			res, err := cl.CreateToken(c.Context(), req)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(g.stdout, res)
			}
			scope := "every tenant"
			if res.Token.Tenant != "" {
				scope = "tenant " + res.Token.Tenant
			}
			fmt.Fprintf(g.stderr, "token %s: role %s, %s, expires %s (shown once; keep it safe)\n", res.Token.ID, res.Token.Role, scope, res.Token.ExpiresAt.Format(time.RFC3339))
			fmt.Fprintln(g.stdout, res.Secret)
			return nil
		},
	}
	create.Flags().StringVar(&req.Role, "role", "", "admin, deployer or viewer")
	create.Flags().StringVar(&req.Tenant, "tenant", "", "limit the token to one tenant's stacks")
	create.Flags().StringVar(&req.Name, "name", "", "a name to recognise the token by")
	create.Flags().DurationVar(&ttl, "ttl", 30*24*time.Hour, "how long the token is valid")
	addJSON(create, g)
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List tokens",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			ts, err := cl.Tokens(c.Context())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(g.stdout, ts)
			}
			tw := table(g.stdout)
			fmt.Fprintln(tw, "ID\tNAME\tROLE\tTENANT\tEXPIRES\tSTATE")
			for _, t := range ts {
				state := "active"
				switch {
				case !t.RevokedAt.IsZero():
					state = "revoked"
				case time.Now().After(t.ExpiresAt):
					state = "expired"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Role, t.Tenant, t.ExpiresAt.Format(time.RFC3339), state)
			}
			return tw.Flush()
		},
	}
	addJSON(ls, g)
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token at once",
		Args:  exactArgs(1, "ID"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			if _, err := cl.RevokeToken(c.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "token %s revoked\n", args[0])
			return nil
		},
	}
	c.AddCommand(create, ls, revoke)
	return c
}

func newTenantCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "tenant",
		Short: "Tenants and their quotas (admin)",
	}
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List tenants with their quotas and usage",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			ts, err := cl.Tenants(c.Context())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(g.stdout, ts)
			}
			tw := table(g.stdout)
			fmt.Fprintln(tw, "TENANT\tTASKS\tCPUS\tMEMORY")
			for _, t := range ts {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name,
					quota(fmt.Sprint(t.Used.Tasks), fmt.Sprint(t.Quota.Tasks), t.Quota.Tasks == 0),
					quota(fmt.Sprintf("%.2f", float64(t.Used.NanoCPUs)/1e9), fmt.Sprintf("%.2f", float64(t.Quota.NanoCPUs)/1e9), t.Quota.NanoCPUs == 0),
					quota(units.BytesSize(float64(t.Used.MemoryBytes)), units.BytesSize(float64(t.Quota.MemoryBytes)), t.Quota.MemoryBytes == 0))
			}
			return tw.Flush()
		},
	}
	addJSON(ls, g)
	var cpus float64
	var mem string
	var tasks int
	set := &cobra.Command{
		Use:   "set TENANT [--cpus N] [--memory SIZE] [--tasks N]",
		Short: "Set a tenant's quotas (0 lifts a bound); deploys past them are refused",
		Args:  exactArgs(1, "TENANT"),
		RunE: func(c *cobra.Command, args []string) error {
			q := api.Quota{NanoCPUs: int64(cpus * 1e9), Tasks: tasks}
			if mem != "" && mem != "0" {
				b, err := units.RAMInBytes(mem)
				if err != nil {
					return fmt.Errorf("%w: --memory %q: %v", api.ErrInvalid, mem, err)
				}
				q.MemoryBytes = b
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			if _, err := cl.SetTenant(c.Context(), args[0], q); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "tenant %s: quotas set\n", args[0])
			return nil
		},
	}
	set.Flags().Float64Var(&cpus, "cpus", 0, "CPU limits the tenant's tasks may add up to")
	set.Flags().StringVar(&mem, "memory", "", "memory limits the tenant's tasks may add up to (e.g. 4g)")
	set.Flags().IntVar(&tasks, "tasks", 0, "tasks (replicas) the tenant may run")
	c.AddCommand(ls, set)
	return c
}

func quota(used, limit string, unbounded bool) string {
	if unbounded {
		return used
	}
	return used + "/" + limit
}

func newAuditCmd(g *globals) *cobra.Command {
	var stack string
	var limit int
	c := &cobra.Command{
		Use:   "audit [--stack S] [--limit N]",
		Short: "The audit log: every mutating API call, who made it, from where, and how it ended",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			es, err := cl.Audit(c.Context(), stack, limit)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(g.stdout, es)
			}
			tw := table(g.stdout)
			fmt.Fprintln(tw, "TIME\tWHO\tFROM\tCALL\tOUTCOME")
			for _, e := range es {
				out := fmt.Sprintf("%s (%d)", e.Outcome, e.Status)
				if e.Error != "" {
					out += ": " + firstLine(e.Error)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s %s\t%s\n", e.Time.Local().Format(time.DateTime), e.Who, e.From, e.Method, e.Path, out)
			}
			return tw.Flush()
		},
	}
	c.Flags().StringVar(&stack, "stack", "", "only calls on this stack")
	c.Flags().IntVar(&limit, "limit", 100, "newest N entries")
	addJSON(c, g)
	c.AddCommand(newAuditHostCmd(g))
	return c
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}

func newWhoamiCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show who the server takes this CLI for (role and tenant)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			w, err := cl.Whoami(c.Context())
			if err != nil {
				return err
			}
			t := "every tenant"
			if w.Tenant != "" {
				t = "tenant " + w.Tenant
			}
			fmt.Fprintf(g.stdout, "%s: %s of %s\n", w.Who, w.Role, t)
			return nil
		},
	}
}
