package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/berth-dev/berth/api"
)

// Maintenance are the node operations the API exposes beside the stacks:
// alerts, disk usage and collection, backups. daemon/ implements them.
type Maintenance interface {
	Alerts() []api.Alert
	DiskUsage(ctx context.Context) (api.DiskUsage, error)
	Collect(ctx context.Context, req api.GCRequest) (api.GCReport, error)
	// Backup writes a backup archive of the cluster's state to w.
	Backup(ctx context.Context, w io.Writer) error
	// VolumeExport writes a tar of a stack's named volume to w;
	// VolumeImport extracts one into it (creating the volume if needed).
	VolumeExport(ctx context.Context, stack, volume string, w io.Writer) error
	VolumeImport(ctx context.Context, stack, volume string, r io.Reader) error
}

// SetMaintenance connects the node operations; without them their routes
// answer unavailable.
func (s *Server) SetMaintenance(m Maintenance) { s.maint = m }

// maintenanceRoutes registers the maintenance routes.
func (s *Server) maintenanceRoutes(mux *routeMux) {
	mux.HandleFunc("GET /v1/alerts", s.wrap(s.listAlerts))
	mux.HandleFunc("GET /v1/df", s.wrap(s.diskUsage))
	mux.HandleFunc("POST /v1/gc", s.wrap(s.collect))
	mux.HandleFunc("GET /v1/backup", s.backup)
	mux.HandleFunc("GET /v1/stacks/{stack}/volumes/{volume}/archive", s.volumeExport)
	mux.HandleFunc("PUT /v1/stacks/{stack}/volumes/{volume}/archive", s.wrap(s.volumeImport))
}

func (s *Server) needMaintenance() error {
	if s.maint == nil {
		return fmt.Errorf("%w: operations are not available on this server", api.ErrUnavailable)
	}
	return nil
}

func (s *Server) listAlerts(w http.ResponseWriter, r *http.Request) (any, error) {
	if err := s.needMaintenance(); err != nil {
		return nil, err
	}
	all, _ := strconv.ParseBool(r.URL.Query().Get("all"))
	out := []api.Alert{}
	for _, a := range s.maint.Alerts() {
		if all || a.State == api.AlertFiring {
			out = append(out, a)
		}
	}
	return out, nil
}

func (s *Server) diskUsage(w http.ResponseWriter, r *http.Request) (any, error) {
	if err := s.needMaintenance(); err != nil {
		return nil, err
	}
	return s.maint.DiskUsage(r.Context())
}

func (s *Server) collect(w http.ResponseWriter, r *http.Request) (any, error) {
	if err := s.needMaintenance(); err != nil {
		return nil, err
	}
	var req api.GCRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	rep, err := s.maint.Collect(r.Context(), req)
	if err != nil {
		return nil, err
	}
	if !req.DryRun {
		s.event(r.Context(), api.Event{Type: "gc.run", Message: fmt.Sprintf("collected %d objects, %d bytes", len(rep.Objects), rep.Freed)})
	}
	return rep, nil
}

// streamTo answers with a binary stream. An error before the first byte
// is a normal error response; after it, the stream is cut (the client
// sees a truncated body and reports it).
func (s *Server) streamTo(w http.ResponseWriter, contentType string, f func(io.Writer) error) {
	sw := &startWriter{w: w, contentType: contentType}
	if err := f(sw); err != nil {
		if !sw.started {
			writeError(w, err)
			return
		}
		s.log.Warn("stream cut", "err", err)
		panic(http.ErrAbortHandler)
	}
	if !sw.started {
		sw.start()
	}
}

type startWriter struct {
	w           http.ResponseWriter
	contentType string
	started     bool
}

func (s *startWriter) start() {
	s.started = true
	s.w.Header().Set("Content-Type", s.contentType)
	s.w.WriteHeader(http.StatusOK)
}

func (s *startWriter) Write(p []byte) (int, error) {
	if !s.started {
		s.start()
	}
	return s.w.Write(p)
}

func (s *Server) backup(w http.ResponseWriter, r *http.Request) {
	if err := s.needMaintenance(); err != nil {
		writeError(w, err)
		return
	}
	s.streamTo(w, "application/gzip", func(out io.Writer) error { return s.maint.Backup(r.Context(), out) })
}

func (s *Server) volumeArgs(r *http.Request) (string, string, error) {
	if err := s.needMaintenance(); err != nil {
		return "", "", err
	}
	stack, err := pathName(r, "stack", "stack name")
	if err != nil {
		return "", "", err
	}
	vol, err := pathName(r, "volume", "volume name")
	return stack, vol, err
}

func (s *Server) volumeExport(w http.ResponseWriter, r *http.Request) {
	stack, vol, err := s.volumeArgs(r)
	if err != nil {
		writeError(w, err)
		return
	}
	s.streamTo(w, "application/x-tar", func(out io.Writer) error { return s.maint.VolumeExport(r.Context(), stack, vol, out) })
}

func (s *Server) volumeImport(w http.ResponseWriter, r *http.Request) (any, error) {
	stack, vol, err := s.volumeArgs(r)
	if err != nil {
		return nil, err
	}
	if err := s.maint.VolumeImport(r.Context(), stack, vol, r.Body); err != nil {
		return nil, err
	}
	s.event(r.Context(), api.Event{Type: "volume.restored", Stack: stack, Subject: vol, Message: "volume " + vol + " restored from an archive"})
	return nil, nil
}
