package cli

import (
	"fmt"

	"github.com/berth-dev/berth/ca"
	"github.com/berth-dev/berth/daemon"
	"github.com/spf13/cobra"
)

func newCACmd(g *globals) *cobra.Command {
	var dataDir string
	c := &cobra.Command{
		Use:   "ca",
		Short: "berth's own certificate authority for the remote API",
		Long: `berth up --api-addr serves the API over TLS with a certificate issued by
berth's own CA (DATA_DIR/ca) unless --api-cert/--api-key are given. Clients
trust that CA with BERTH_CA=FILE; 'berth ca cert > berth-ca.pem' writes it.`,
	}
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Create the CA in the data directory (done by berth up --api-addr when missing)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			_, created, err := ca.Init(ca.Dir(dataDir))
			if err != nil {
				return err
			}
			if created {
				fmt.Fprintf(g.stdout, "created a CA in %s\n", ca.Dir(dataDir))
			} else {
				fmt.Fprintf(g.stdout, "a CA exists in %s; kept\n", ca.Dir(dataDir))
			}
			return nil
		},
	}
	cert := &cobra.Command{
		Use:   "cert",
		Short: "Print the CA certificate (PEM) for clients' BERTH_CA",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			pem, _, err := ca.Init(ca.Dir(dataDir))
			if err != nil {
				return err
			}
			_, err = g.stdout.Write(pem)
			return err
		},
	}
	c.PersistentFlags().StringVar(&dataDir, "data-dir", daemon.DefaultDataDir(), "berth's data directory (env BERTH_DATA_DIR)")
	c.AddCommand(initCmd, cert)
	return c
}
