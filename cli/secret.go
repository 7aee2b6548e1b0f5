package cli

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/client"
	"github.com/spf13/cobra"
)

// addSecurityCmds registers the security commands: secret, token,
// tenant, audit, whoami, ca and sign.
func addSecurityCmds(root *cobra.Command, g *globals) {
	root.AddCommand(newSecretCmd(g), newTokenCmd(g), newTenantCmd(g), newAuditCmd(g), newWhoamiCmd(g), newCACmd(g), newSignCmd(g), newKeygenCmd(g))
}

// remoteClient adds BERTH_TOKEN and BERTH_CA to a client.
func remoteClient(cl *client.Client) (*client.Client, error) {
	if tok := strings.TrimSpace(os.Getenv("BERTH_TOKEN")); tok != "" {
		cl.WithToken(tok)
	}
	if ca := os.Getenv("BERTH_CA"); ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("%w: BERTH_CA: %v", api.ErrInvalid, err)
		}
		return cl.WithCA(pem)
	}
	return cl, nil
}

func newSecretCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "secret",
		Short: "Manage a stack's secrets (encrypted at rest, delivered as files in /run/secrets)",
		Long: `Secrets are encrypted at rest and delivered to the containers of the
services that name them as read-only files at /run/secrets/NAME on a tmpfs,
owned by the container's user with mode 0400. Values are read from stdin or
a file, never from the command line. A Compose file refers to a secret made
here with 'external: true'.`,
	}
	var file string
	valueCmd := func(use, short string, write func(*client.Client, *cobra.Command, string, string, []byte) (api.SecretChange, error)) *cobra.Command {
		cc := &cobra.Command{
			Use:   use + " STACK NAME [--file PATH]",
			Short: short,
			Args:  exactArgs(2, "STACK NAME"),
			RunE: func(c *cobra.Command, args []string) error {
				value, err := readSecretValue(g.stdin, file)
				if err != nil {
					return err
				}
				defer clear(value)
				cl, err := g.client()
				if err != nil {
					return err
				}
				res, err := write(cl, c, args[0], args[1], value)
				if err != nil {
					return err
				}
				if g.json {
					return printJSON(g.stdout, res)
				}
				fmt.Fprintf(g.stdout, "secret %s/%s: version %d\n", res.Secret.Stack, res.Secret.Name, res.Secret.Version)
				for _, ch := range res.Changes {
					fmt.Fprintf(g.stdout, "  %s: rolling to revision %d\n", ch.Service, ch.Revision)
				}
				return nil
			},
		}
		cc.Flags().StringVar(&file, "file", "-", "read the value from this file (- for stdin)")
		addJSON(cc, g)
		return cc
	}
	create := valueCmd("create", "Create a secret (value from stdin or --file)",
		func(cl *client.Client, c *cobra.Command, stack, name string, v []byte) (api.SecretChange, error) {
			return cl.CreateSecret(c.Context(), stack, name, v)
		})
	rotate := valueCmd("rotate", "Store a new value of a secret and roll the services that use it",
		func(cl *client.Client, c *cobra.Command, stack, name string, v []byte) (api.SecretChange, error) {
			return cl.RotateSecret(c.Context(), stack, name, v)
		})
	ls := &cobra.Command{
		Use:   "ls STACK",
		Short: "List a stack's secrets (names and versions, never values)",
		Args:  exactArgs(1, "STACK"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			list, err := cl.Secrets(c.Context(), args[0])
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(g.stdout, list)
			}
			tw := table(g.stdout)
			fmt.Fprintln(tw, "NAME\tVERSION\tUPDATED\tUSED BY")
			for _, s := range list {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", s.Name, s.Version, ago(s.UpdatedAt), strings.Join(s.UsedBy, ","))
			}
			return tw.Flush()
		},
	}
	addJSON(ls, g)
	rm := &cobra.Command{
		Use:   "rm STACK NAME",
		Short: "Remove a secret that no service uses",
		Args:  exactArgs(2, "STACK NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			if err := cl.RemoveSecret(c.Context(), args[0], args[1]); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "secret %s/%s removed\n", args[0], args[1])
			return nil
		},
	}
	rotateKey := &cobra.Command{
		Use:   "rotate-key",
		Short: "Rotate the key-encryption key: every stored secret is re-wrapped with a new key",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			res, err := cl.RotateKey(c.Context())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(g.stdout, res)
			}
			fmt.Fprintf(g.stdout, "key-encryption key is now %s; %d secret versions re-wrapped\n", res.KeyID, res.Rewrapped)
			return nil
		},
	}
	addJSON(rotateKey, g)
	c.AddCommand(create, ls, rm, rotate, rotateKey)
	return c
}

// readSecretValue reads a value from a file or stdin, bounded.
func readSecretValue(stdin io.Reader, file string) ([]byte, error) {
	r := stdin
	if file != "-" && file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", api.ErrInvalid, err)
		}
		defer f.Close()
		r = f
	}
	if r == nil {
		return nil, fmt.Errorf("%w: no value: pipe it to stdin or pass --file", api.ErrInvalid)
	}
	b, err := io.ReadAll(io.LimitReader(r, api.MaxSecretSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > api.MaxSecretSize {
		return nil, fmt.Errorf("%w: the value is larger than %d bytes", api.ErrInvalid, api.MaxSecretSize)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: the value is empty; pipe it to stdin or pass --file", api.ErrInvalid)
	}
	return b, nil
}
