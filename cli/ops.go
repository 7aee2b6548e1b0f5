package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/backup"
	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/daemon"
)

// opsCommands are the operations commands: alerts, nodes, df, gc,
// backup, restore, volume.
func opsCommands(g *globals) []*cobra.Command {
	return []*cobra.Command{newAlertsCmd(g), newNodesCmd(g), newDfCmd(g), newGCCmd(g), newBackupCmd(g), newRestoreCmd(g), newVolumeCmd(g)}
}

func size(n int64) string { return units.HumanSize(float64(n)) }

func newAlertsCmd(g *globals) *cobra.Command {
	var all bool
	c := &cobra.Command{
		Use:   "alerts",
		Short: "List firing alerts (--all: also those resolved in the last day)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			as, err := cl.Alerts(c.Context(), all)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(g.stdout, as)
			}
			tw := table(g.stdout)
			fmt.Fprintln(tw, "STATE\tSEVERITY\tALERT\tSINCE\tEVENTS\tLAST")
			for _, a := range as {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", a.State, a.Severity, a.Summary, ago(a.StartedAt), a.Count, a.LastEvent.Message)
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&all, "all", false, "also list alerts resolved in the last day")
	addJSON(c, g)
	return c
}

func newNodesCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "nodes",
		Short: "List nodes with their state and their engine's health",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			ns, err := cl.Nodes(c.Context())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(g.stdout, ns)
			}
			tw := table(g.stdout)
			fmt.Fprintln(tw, "NODE\tNAME\tSTATE\tENGINE\tENGINE HEALTH\tPROBE (ping/list/inspect ms)\tNOTE")
			for _, n := range ns {
				state := n.State
				if n.Degraded != "" {
					state += " (degraded)"
				}
				h := n.EngineHealth
				health, probe := h.State, ""
				if h.State != "" {
					health += " " + ago(h.Since)
					probe = fmt.Sprintf("%.0f/%.0f/%.0f", h.Latency["ping"], h.Latency["list"], h.Latency["inspect"])
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", short12(n.ID), n.Name, state, n.Engine, health, probe, n.Degraded)
			}
			return tw.Flush()
		},
	}
	addJSON(c, g)
	return c
}

func newDfCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "df",
		Short: "Show the disk berth's objects take, per stack, and what `berth gc` would free",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			du, err := cl.DiskUsage(c.Context())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(g.stdout, du)
			}
			tw := table(g.stdout)
			fmt.Fprintln(tw, "STACK\tIMAGES\tCONTAINERS\tVOLUMES\tRECLAIMABLE")
			for _, s := range append(du.Stacks, withName(du.Other, "(no stack)")) {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Stack, size(s.Images), size(s.Containers), size(s.Volumes), size(s.Reclaim))
			}
			_ = tw.Flush()
			fmt.Fprintf(g.stdout, "\ntotal %s, reclaimable %s", size(du.Total), size(du.Reclaim))
			if du.Budget > 0 {
				fmt.Fprintf(g.stdout, ", budget %s", size(du.Budget))
			}
			if du.DiskTotal > 0 {
				fmt.Fprintf(g.stdout, "; engine disk %s of %s used (%.0f%%)", size(du.DiskUsed), size(du.DiskTotal), float64(du.DiskUsed)*100/float64(du.DiskTotal))
			}
			fmt.Fprintf(g.stdout, "; engine build cache %s\n", size(du.BuildCache))
			return nil
		},
	}
	addJSON(c, g)
	return c
}

func withName(s api.StackUsage, name string) api.StackUsage { s.Stack = name; return s }

func newGCCmd(g *globals) *cobra.Command {
	var req api.GCRequest
	c := &cobra.Command{
		Use:   "gc",
		Short: "Collect berth's unused objects: old revisions' images, exited containers, dangling images",
		Long: `Collect berth's own unused objects by policy: images that only revisions
older than the newest N (housekeeping.keep_revisions, default 5) of their
service use, exited containers of tasks that no longer exist, and dangling
images berth built. Nothing berth did not create is touched, nor any
image a container uses. --volumes also removes named volumes that no
revision of any stack references (a removed stack's volumes, say).`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			rep, err := cl.GC(c.Context(), req)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(g.stdout, rep)
			}
			tw := table(g.stdout)
			fmt.Fprintln(tw, "KIND\tOBJECT\tSTACK\tSIZE\tREASON")
			failed := 0
			for _, o := range rep.Objects {
				name := o.Name
				if name == "" {
					name = short12(strings.TrimPrefix(o.ID, "sha256:"))
				}
				reason := o.Reason
				if o.Error != "" {
					reason = "NOT REMOVED: " + o.Error
					failed++
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", o.Kind, name, o.Stack, size(o.Size), reason)
			}
			_ = tw.Flush()
			verb := "freed"
			if rep.DryRun {
				verb = "would free"
			}
			fmt.Fprintf(g.stdout, "\n%d objects, %s %s\n", len(rep.Objects), verb, size(rep.Freed))
			if failed > 0 {
				return fmt.Errorf("%d objects could not be removed (see above)", failed)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&req.DryRun, "dry-run", false, "list what would be collected, remove nothing")
	c.Flags().BoolVar(&req.Volumes, "volumes", false, "also remove named volumes no revision references")
	addJSON(c, g)
	return c
}

func newBackupCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "backup FILE",
		Short: "Write a backup of berth's state (etcd snapshot, identity, configuration, keys) to FILE",
		Long: `Write a backup archive: a consistent snapshot of berth's etcd (stacks,
revisions, tasks, events; secrets stay encrypted as stored) and the data
directory's identity, configuration, key and certificate files. Volumes'
contents are backed up with 'berth volume backup'. Restore it with
'berth restore FILE --data-dir NEW_DIR'. FILE "-" writes to stdout.`,
		Args: exactArgs(1, "a file name"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			if args[0] == "-" {
				return cl.Backup(c.Context(), g.stdout)
			}
			return writeAtomically(args[0], func(w io.Writer) error { return cl.Backup(c.Context(), w) })
		},
	}
}

// writeAtomically writes path through a temporary file renamed into place
// on success, so a failed backup never leaves a truncated file behind.
func writeAtomically(path string, f func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("%w: %v", api.ErrInvalid, err)
	}
	defer os.Remove(tmp.Name())
	if err := f(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func newRestoreCmd(g *globals) *cobra.Command {
	var dataDir string
	c := &cobra.Command{
		Use:   "restore FILE",
		Short: "Restore a backup into a fresh data directory (then start berth up on it)",
		Long: `Restore a backup written by 'berth backup' into a data directory that
does not exist or is empty; berth must not be running on it. Then run
'berth up --data-dir DIR': it starts from the backed-up state, adopts the
containers that still run and recreates the others.`,
		Args: exactArgs(1, "a backup file"),
		RunE: func(c *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return fmt.Errorf("%w: %v", api.ErrInvalid, err)
			}
			defer f.Close()
			m, err := backup.Restore(f, dataDir)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "restored cluster %s (backup of %s, %d files) into %s\nstart it with: berth up --data-dir %s\n",
				m.ClusterID, m.Created.Format("2006-01-02 15:04:05 MST"), len(m.Files), dataDir, dataDir)
			return nil
		},
	}
	c.Flags().StringVar(&dataDir, "data-dir", daemon.DefaultDataDir(), "the fresh data directory to restore into (env BERTH_DATA_DIR)")
	return c
}

func newVolumeCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "volume", Short: "Back up and restore a stack's named volumes"}
	c.AddCommand(&cobra.Command{
		Use:   "backup STACK VOLUME",
		Short: "Write a tar of a named volume's content to stdout",
		Args:  exactArgs(2, "a stack and a volume name"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			return cl.VolumeExport(c.Context(), args[0], args[1], g.stdout)
		},
	}, &cobra.Command{
		Use:   "restore STACK VOLUME",
		Short: "Extract a tar from stdin into a named volume (created if missing)",
		Long: `Extract a tar (as 'berth volume backup' writes it) from stdin into a
stack's named volume, creating the volume if it does not exist yet. Files
in the archive replace files of the same name; other files stay.`,
		Args: exactArgs(2, "a stack and a volume name"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			return cl.VolumeImport(c.Context(), args[0], args[1], g.stdin)
		},
	})
	return c
}

// printDegraded warns about degraded nodes that run tasks of a stack.
func printDegraded(ctx context.Context, w io.Writer, cl *client.Client, tasks []api.TaskView) {
	used := map[string]bool{}
	for _, tv := range tasks {
		used[tv.Task.Node] = true
	}
	ns, err := cl.Nodes(ctx)
	if err != nil {
		return
	}
	for _, n := range ns {
		if used[n.ID] && n.Degraded != "" {
			fmt.Fprintf(w, "\nnode %s (%s) is degraded: %s\n", n.Name, short12(n.ID), n.Degraded)
		}
	}
}
