package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/berth-dev/berth/agent"
	"github.com/berth-dev/berth/alerts"
	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/backup"
	"github.com/berth-dev/berth/config"
	"github.com/berth-dev/berth/housekeeping"
	"github.com/berth-dev/berth/metrics"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/runtime/docker"
	"github.com/berth-dev/berth/store"
)

// labelHelper marks the idle containers volume backups copy through.
const labelHelper = "io.berth.helper"

// maintenance is berth up's node maintenance: alerts, engine watchdog
// settings, housekeeping, certificate watch, event retention, backups. It
// implements server.Maintenance.
type maintenance struct {
	cfg       config.File
	st        *store.Store
	drv       *docker.Driver
	alerts    *alerts.Engine
	hk        *housekeeping.Housekeeper
	certs     *certWatch
	dataDir   string
	clusterID string
	version   string
	log       *slog.Logger
}

func newMaintenance(cfg Config, st *store.Store, drv *docker.Driver, clusterID, nodeID string, log *slog.Logger) *maintenance {
	o := &maintenance{cfg: cfg.File, st: st, drv: drv, dataDir: cfg.DataDir, clusterID: clusterID, version: cfg.Version, log: log}
	o.alerts = alerts.New(cfg.File.Alerts, st, clusterID, log.With("component", "alerts"))
	o.hk = housekeeping.New(cfg.File.Housekeeping, st, drv, clusterID, nodeID, log.With("component", "housekeeping"))
	warn := cfg.File.Alerts.CertWarning
	if warn <= 0 {
		warn = alerts.DefaultCertWarning
	}
	o.certs = newCertWatch(st, cfg.DataDir, cfg.Ingress.TLSCert, warn, log.With("component", "certs"))
	return o
}

// agentConfig applies the configuration file's watchdog section.
func (o *maintenance) agentConfig(c *agent.Config) {
	if !o.cfg.Watchdog.Disabled {
		wd := o.cfg.Watchdog
		c.Watchdog = &wd
	}
}

// metricSources are the housekeeper's and the notifiers' readings for
// /metrics.
func (o *maintenance) metricSources(src *metrics.NodeSources) {
	src.Disk = func() metrics.Disk {
		s := o.hk.Status()
		d := metrics.Disk{Used: s.Used, Budget: s.Budget, HostUsed: s.DiskUsed, HostTotal: s.DiskTotal, LastFreed: s.LastFreed}
		if !s.LastRun.IsZero() {
			d.LastRun = s.LastRun.Unix()
		}
		return d
	}
	src.Notifiers = func() []metrics.Notifier {
		var out []metrics.Notifier
		for _, n := range o.alerts.Notifiers() {
			name, sent, failed, dropped := n.Stats()
			out = append(out, metrics.Notifier{Name: name, Sent: sent, Failed: failed, Dropped: dropped})
		}
		return out
	}
}

// parts are the components maintenance runs under berth up's supervisor.
func (o *maintenance) parts() map[string]func(context.Context) error {
	return map[string]func(context.Context) error{
		"alerts":       o.alerts.Run,
		"housekeeping": o.hk.Run,
		"certs":        o.certs.run,
		"events":       o.trimEvents,
	}
}

// trimEvents keeps the event history within its retention.
func (o *maintenance) trimEvents(ctx context.Context) error {
	age := o.cfg.Events.MaxAge
	if age <= 0 {
		age = 30 * 24 * time.Hour
	}
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := o.st.TrimEventsBy(ctx, o.cfg.Events.MaxCount, age); err != nil && ctx.Err() == nil {
				o.log.Warn("trim events", "err", err)
			}
		}
	}
}

// Alerts implements server.Maintenance.
func (o *maintenance) Alerts() []api.Alert { return o.alerts.Alerts() }

// DiskUsage implements server.Maintenance.
func (o *maintenance) DiskUsage(ctx context.Context) (api.DiskUsage, error) {
	return o.hk.DiskUsage(ctx)
}

// Collect implements server.Maintenance.
func (o *maintenance) Collect(ctx context.Context, req api.GCRequest) (api.GCReport, error) {
	return o.hk.Collect(ctx, req)
}

// Backup implements server.Maintenance.
func (o *maintenance) Backup(ctx context.Context, w io.Writer) error {
	return backup.Write(ctx, w, o.st, backup.Options{DataDir: o.dataDir, ClusterID: o.clusterID, Version: o.version, ConfigFile: o.cfg.Path})
}

// VolumeExport implements server.Maintenance: a tar of the volume's content,
// copied out of an idle container that mounts it.
func (o *maintenance) VolumeExport(ctx context.Context, stack, volume string, w io.Writer) error {
	id, done, err := o.volumeContainer(ctx, stack, volume, false)
	if err != nil {
		return err
	}
	defer done()
	rc, err := o.drv.CopyFrom(ctx, id, volumeMount+"/.")
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(w, rc)
	return err
}

// VolumeImport implements server.Maintenance: extracts a tar into the volume
// (created if the stack declares it and it does not exist yet). Files in
// the archive replace files of the same name; others stay.
func (o *maintenance) VolumeImport(ctx context.Context, stack, volume string, r io.Reader) error {
	id, done, err := o.volumeContainer(ctx, stack, volume, true)
	if err != nil {
		return err
	}
	defer done()
	if err := o.drv.CopyTo(ctx, id, volumeMount, r); err != nil {
		if errors.Is(err, runtime.ErrEngine) {
			return fmt.Errorf("%w: %v (is the input a tar archive?)", api.ErrInvalid, err)
		}
		return err
	}
	return nil
}

const volumeMount = "/berth-volume"

// volumeContainer creates an idle container of one of the stack's own
// images that mounts the volume; done removes it.
func (o *maintenance) volumeContainer(ctx context.Context, stack, volume string, create bool) (string, func(), error) {
	rec, _, err := o.st.GetStack(ctx, stack)
	if errors.Is(err, api.ErrNotFound) {
		return "", nil, api.NotFoundf("stack %q is not deployed; see `berth ls`", stack)
	}
	if err != nil {
		return "", nil, err
	}
	spec, ok := rec.Volumes[volume]
	if !ok {
		names := make([]string, 0, len(rec.Volumes))
		for n := range rec.Volumes {
			names = append(names, n)
		}
		sort.Strings(names)
		return "", nil, api.NotFoundf("stack %s has no named volume %q (its volumes: %s)", stack, volume, strings.Join(names, ", "))
	}
	if spec.External {
		return "", nil, api.Invalidf("volume %q of stack %s is external: berth did not create it and does not back it up", volume, stack)
	}
	name := housekeeping.VolumeName(stack, volume)
	labels := map[string]string{api.LabelCluster: o.clusterID, api.LabelStack: stack}
	vctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	vols, err := o.drv.ListVolumes(vctx, labels)
	if err != nil {
		return "", nil, err
	}
	exists := false
	for _, v := range vols {
		exists = exists || v.Name == name
	}
	switch {
	case !exists && !create:
		return "", nil, api.NotFoundf("volume %s of stack %s does not exist on this node yet", volume, stack)
	case !exists:
		vl := map[string]string{}
		for k, v := range spec.Labels {
			vl[k] = v
		}
		for k, v := range labels {
			vl[k] = v
		}
		if err := o.drv.EnsureVolume(vctx, runtime.VolumeSpec{Name: name, Driver: spec.Driver, DriverOpts: spec.DriverOpts, Labels: vl}); err != nil {
			return "", nil, err
		}
	}
	img, err := o.stackImage(vctx, stack)
	if err != nil {
		return "", nil, err
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	cl := map[string]string{api.LabelCluster: o.clusterID, api.LabelStack: stack, labelHelper: "volume"}
	id, err := o.drv.CreateIdle(vctx, "berth-volume-"+stack+"-"+volume+"-"+hex.EncodeToString(suffix), img,
		[]runtime.Mount{{Type: api.MountVolume, Source: name, Target: volumeMount}}, cl)
	if err != nil {
		return "", nil, err
	}
	done := func() {
		rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := o.drv.Remove(rctx, id); err != nil {
			o.log.Warn("remove volume helper container", "id", id, "err", err)
		}
	}
	return id, done, nil
}

// stackImage returns an image of the stack's current revisions that is
// on this engine: creating a container needs one, and no image is pulled.
func (o *maintenance) stackImage(ctx context.Context, stack string) (string, error) {
	svcs, err := o.st.ListServices(ctx, stack)
	if err != nil {
		return "", err
	}
	for _, svc := range svcs {
		rev, err := o.st.GetRevision(ctx, stack, svc.Name, svc.Revision)
		if err != nil || rev.Spec.ImageID == "" {
			continue
		}
		if _, err := o.drv.ImageInspect(ctx, rev.Spec.ImageID); err == nil {
			return rev.Spec.ImageID, nil
		}
	}
	return "", fmt.Errorf("%w: no image of stack %s is on this engine to copy through; deploy the stack first", api.ErrUnavailable, stack)
}
