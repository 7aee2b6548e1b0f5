package cli

import (
	"fmt"
	"os"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/trust"
	"github.com/spf13/cobra"
)

func newSignCmd(g *globals) *cobra.Command {
	var keyFile string
	c := &cobra.Command{
		Use:   "sign IMAGE --key FILE",
		Short: "Sign an image's digest in its registry (cosign-compatible, key-based)",
		Long: `Sign the digest IMAGE names now with a private key and store the
signature in the image's registry next to it (the manifest tagged
sha256-<digest>.sig), as 'cosign sign --key' does: 'cosign verify --key' accepts
it, and stacks that require signatures (x-berth.trust) run it. The key is a
PEM private key ('berth keygen', or cosign.key with COSIGN_PASSWORD).`,
		Args: exactArgs(1, "IMAGE"),
		RunE: func(c *cobra.Command, args []string) error {
			if keyFile == "" {
				return fmt.Errorf("%w: --key FILE is required", errUsage)
			}
			pem, err := os.ReadFile(keyFile)
			if err != nil {
				return fmt.Errorf("%w: %v", api.ErrInvalid, err)
			}
			key, err := trust.ParsePrivateKey(pem, []byte(os.Getenv("COSIGN_PASSWORD")))
			if err != nil {
				return fmt.Errorf("%w: %s: %v", api.ErrInvalid, keyFile, err)
			}
			ref, err := trust.New(trust.Options{}).Sign(c.Context(), args[0], key)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "signed %s\n", ref)
			return nil
		},
	}
	c.Flags().StringVar(&keyFile, "key", "", "private key (PEM)")
	return c
}

func newKeygenCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "keygen PREFIX",
		Short: "Create a signing key pair: PREFIX.key (private, 0600) and PREFIX.pub",
		Args:  exactArgs(1, "PREFIX"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := trust.GenerateKey(args[0]); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "wrote %s.key and %s.pub\n", args[0], args[0])
			return nil
		},
	}
}
