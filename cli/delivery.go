package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/daemon"
	"github.com/berth-dev/berth/pipeline"
)

// embeddedRegistry asks the berth server for its registry's address and
// credential (an empty address when there is none).
func (g *globals) embeddedRegistry(ctx context.Context) (api.RegistryInfo, error) {
	cl, err := g.client()
	if err != nil {
		return api.RegistryInfo{}, err
	}
	return cl.Registry(ctx)
}

// keychain is the Docker configuration's credentials plus, when the
// berth server answers, its registry's generated one.
func (g *globals) keychain(ctx context.Context) pipeline.Credentials {
	creds := pipeline.Credentials{}
	if info, err := g.embeddedRegistry(ctx); err == nil && info.Addr != "" {
		creds[info.Addr] = authn.Basic{Username: info.Username, Password: info.Password}
	}
	return creds
}

func newPushCmd(g *globals) *cobra.Command {
	var quiet bool
	c := &cobra.Command{
		Use:   "push IMAGE [REGISTRY]",
		Short: "Push a local image to a registry (berth's own by default) and print its digest",
		Long: `Copy IMAGE (repo:tag) from the local engine to REGISTRY (host:port[/prefix]),
keeping its repository path and tag, or to the registry IMAGE names, or to
the berth server's embedded registry when neither names one. Prints the
pinned reference (registry/repo@sha256:…) to deploy or promote.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(c *cobra.Command, args []string) error {
			ctx := c.Context()
			opts := pipeline.PushOptions{Image: args[0], Keychain: g.keychain(ctx)}
			if len(args) == 2 {
				opts.Registry = args[1]
			} else if ref, err := name.ParseReference(args[0]); err == nil && ref.Context().RegistryStr() == name.DefaultRegistry {
				info, err := g.embeddedRegistry(ctx)
				if err != nil {
					return fmt.Errorf("push %s: no REGISTRY given and berth's registry is not reachable: %w", args[0], err)
				}
				if info.Addr == "" {
					return fmt.Errorf("push %s: %w: no REGISTRY given and %s", args[0], api.ErrInvalid, info.Error)
				}
				opts.Registry = info.Addr
			}
			if !quiet {
				opts.Progress = g.stderr
			}
			eng, err := engine()
			if err != nil {
				return err
			}
			defer eng.Close()
			res, err := pipeline.Push(ctx, eng, opts)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(g.stdout, res)
			}
			fmt.Fprintln(g.stdout, res.Pinned)
			return nil
		},
	}
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the pinned reference")
	addJSON(c, g)
	return c
}

func newPromoteCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "promote SRC DST",
		Short: "Copy an image by digest from one registry to another, without rebuilding",
		Long: `Copy SRC (registry/repo:tag or registry/repo@sha256:…) to DST (a registry
host:port[/prefix], keeping the repository path and tag, or registry/repo[:tag]).
The destination serves the same digest. A tag is promoted only while it still
points to an image whose 'berth test' passed on this machine; name SRC by
digest to promote an image you vouch for otherwise.`,
		Args: exactArgs(2, "SRC and DST"),
		RunE: func(c *cobra.Command, args []string) error {
			ctx := c.Context()
			res, err := pipeline.Promote(ctx, pipeline.PromoteOptions{Src: args[0], Dst: args[1], Keychain: g.keychain(ctx), TestedFile: testedPath()})
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(g.stdout, res)
			}
			fmt.Fprintln(g.stdout, res.Pinned)
			return nil
		},
	}
	addJSON(c, g)
	return c
}

func newRegistryCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "registry",
		Short: "Show berth's embedded registry (address, credential) or collect its garbage",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			info, err := g.embeddedRegistry(c.Context())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(g.stdout, info)
			}
			if info.Addr == "" {
				fmt.Fprintln(g.stdout, "no registry: "+info.Error)
				return nil
			}
			fmt.Fprintf(g.stdout, "address:  %s\nuser:     %s\npassword: %s\nlogin:    echo PASSWORD | docker login -u %s --password-stdin %s\n",
				info.Addr, info.Username, info.Password, info.Username, info.Addr)
			return nil
		},
	}
	addJSON(c, g)
	var req api.RegistryGCRequest
	gc := &cobra.Command{
		Use:   "gc",
		Short: "Remove blobs no manifest references (pushes wait while it runs)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			res, err := cl.RegistryGC(c.Context(), req)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(g.stdout, res)
			}
			fmt.Fprintf(g.stdout, "freed %d bytes (%d → %d) in %s\n", res.BytesBefore-res.BytesAfter, res.BytesBefore, res.BytesAfter, res.Took.D())
			return nil
		},
	}
	gc.Flags().BoolVar(&req.DeleteUntagged, "delete-untagged", false, "also remove manifests no tag points to (a revision pinned to one can then not be pulled again)")
	gc.Flags().BoolVar(&req.DryRun, "dry-run", false, "report only")
	addJSON(gc, g)
	c.AddCommand(gc)
	return c
}

func newUpdateCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "update", Short: "Steer auto-updates of services that follow a tag"}
	c.AddCommand(&cobra.Command{
		Use:   "approve STACK SERVICE",
		Short: "Roll out the new digest a followed tag points to (x-berth.update.approval: required)",
		Args:  exactArgs(2, "STACK and SERVICE"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			if err := cl.ApproveUpdate(c.Context(), args[0], args[1]); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%s/%s: update approved, rolling out (berth rollout status %s)\n", args[0], args[1], args[0])
			return nil
		},
	})
	return c
}

// defaultRegistryAddr is on loopback, where engines accept a plain HTTP
// registry without configuration.
const defaultRegistryAddr = "127.0.0.1:5000"

func addRegistryFlags(f *pflag.FlagSet, r *daemon.RegistryConfig) {
	f.StringVar(&r.Addr, "registry-addr", defaultRegistryAddr, "address of the embedded OCI registry (off: none)")
	f.StringVar(&r.TLSCert, "registry-tls-cert", "", "serve the registry over HTTPS with this PEM certificate")
	f.StringVar(&r.TLSKey, "registry-tls-key", "", "and this PEM key")
}

// registryConfig is the registry flags; the default address, which the
// user did not choose, may be busy without failing berth up.
func (o *upOptions) registryConfig(c *cobra.Command) daemon.RegistryConfig {
	r := o.registry
	r.Optional = !c.Flags().Changed("registry-addr")
	return r
}

// imageCell is a service's image and what it is pinned to: the registry
// digest, or the local image ID.
func imageCell(s api.ServiceStatus) string {
	if _, digest, ok := strings.Cut(s.ImageDigest, "@"); ok {
		return s.Image + "@" + short12(strings.TrimPrefix(digest, "sha256:"))
	}
	return s.Image + "@" + short12(strings.TrimPrefix(s.ImageID, "sha256:"))
}

// pendingNote says which update waits for approval and how to give it.
func pendingNote(stack string, s api.ServiceStatus) string {
	_, digest, _ := strings.Cut(s.PendingUpdate.To, "@")
	return fmt.Sprintf("update to %s pending: berth update approve %s %s", short12(strings.TrimPrefix(digest, "sha256:")), stack, s.Name)
}
