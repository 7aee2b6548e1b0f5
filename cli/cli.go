// Package cli is berth's command line: cobra commands that parse flags,
// call the API client (or the daemon for `berth up`) and print. Only main
// exits; commands return errors, and exitCode maps their kinds.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/daemon"
	"github.com/spf13/cobra"
)

// Version and Commit are set at build time (-ldflags -X).
var (
	Version = "dev"
	Commit  = ""
)

// Exit codes.
const (
	exitOK          = 0
	exitError       = 1
	exitInvalid     = 2
	exitNotFound    = 3
	exitConflict    = 4
	exitUnreachable = 5
)

// exitError carries a specific exit code (berth run returns the job's).
type codeError struct{ code int }

func (e codeError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

type globals struct {
	host   string
	json   bool
	stdout io.Writer
	stderr io.Writer
	stdin  io.Reader
}

// Execute runs the CLI and returns the process exit code.
func Execute(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &globals{stdout: stdout, stderr: stderr, stdin: stdin}
	root := newRoot(g)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetIn(stdin)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ce codeError
	if errors.As(err, &ce) {
		return ce.code
	}
	fmt.Fprintln(stderr, "berth: "+err.Error())
	return exitCode(err)
}

func exitCode(err error) int {
	switch {
	case errors.Is(err, client.ErrDaemonUnreachable), errors.Is(err, api.ErrUnavailable):
		return exitUnreachable
	case errors.Is(err, api.ErrInvalid), errors.Is(err, errUsage):
		return exitInvalid
	case errors.Is(err, api.ErrNotFound):
		return exitNotFound
	case errors.Is(err, api.ErrConflict):
		return exitConflict
	default:
		return exitError
	}
}

var errUsage = errors.New("usage")

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "berth",
		Short: "Run containers in production from a Compose file",
		Long: `berth takes a Compose file to production and keeps it there: isolated
networks, resource limits, least privilege, restarts with reasons, and
state that survives berth itself restarting.

Start the daemon with 'berth up', then deploy with 'berth deploy -f compose.yaml'.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.host, "host", "", "berth server address: unix:///path/berth.sock or https://host:port (env BERTH_HOST)")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w: %v (see `%s --help`)", errUsage, err, c.CommandPath())
	})
	root.AddCommand(
		newUpCmd(g),
		newProxyCmd(g),
		newDeployCmd(g),
		newValidateCmd(g),
		newLsCmd(g),
		newPsCmd(g),
		newStatusCmd(g),
		newInspectCmd(g),
		newScaleCmd(g),
		newActionCmd(g, "restart", "Replace the tasks of a stack (or one service) with fresh containers"),
		newActionCmd(g, "stop", "Stop the containers of a stack (or one service); they stay stopped until start"),
		newActionCmd(g, "start", "Start a stopped stack (or one service) again"),
		newRmCmd(g),
		newRollbackCmd(g),
		newRolloutCmd(g),
		newHistoryCmd(g),
		newRunCmd(g),
		newJobsCmd(g),
		newEventsCmd(g),
		newLogsCmd(g),
		newTopCmd(g),
		newVersionCmd(g),
	)
	root.AddCommand(opsCommands(g)...)
	addSecurityCmds(root, g)
	root.AddCommand(pipelineCommands(g)...)
	return root
}

// client returns an API client for --host, BERTH_HOST or the default
// data directory's socket.
func (g *globals) client() (*client.Client, error) {
	host := g.host
	if host == "" {
		host = os.Getenv("BERTH_HOST")
	}
	if host == "" {
		host = "unix://" + daemon.SocketPath(daemon.DefaultDataDir())
	}
	cl, err := client.New(host)
	if err != nil {
		return nil, err
	}
	return remoteClient(cl)
}

func addJSON(c *cobra.Command, g *globals) {
	c.Flags().BoolVar(&g.json, "json", false, "print JSON instead of a table")
}

// exactArgs is cobra.ExactArgs with an error of kind usage.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("%w: %s takes %s (see `%s --help`)", errUsage, c.CommandPath(), names, c.CommandPath())
		}
		return nil
	}
}
