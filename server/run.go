package server

import (
	"encoding/json"
	"net/http"
	"sync"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/controller"
)

// run starts a one-off job and streams its output as NDJSON RunFrames,
// ending with a frame that carries the exit code.
func (s *Server) run(w http.ResponseWriter, r *http.Request) {
	stack, err := pathName(r, "stack", "stack name")
	if err != nil {
		writeError(w, err)
		return
	}
	var req api.RunRequest
	if err := decode(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if err := api.ValidateName("service name", req.Service); err != nil {
		writeError(w, err)
		return
	}
	ctx := r.Context()
	if _, _, err := s.store.GetStack(ctx, stack); err != nil {
		writeError(w, notFoundStack(stack))
		return
	}
	fw := &frameWriter{w: w, enc: json.NewEncoder(w)}
	if f, ok := w.(http.Flusher); ok {
		fw.flush = f.Flush
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	started := false
	job, err := s.jobs.Run(ctx, stack, req.Service, req.Command, req.Environment,
		fw.stream("stdout", &started), fw.stream("stderr", &started))
	if err != nil && !started && job.ID == "" {
		writeError(w, err)
		return
	}
	final := api.RunFrame{Done: true, ExitCode: job.ExitCode, JobID: job.ID}
	if err != nil {
		final.Error = err.Error()
		if final.ExitCode == 0 {
			final.ExitCode = -1
		}
	}
	fw.write(final)
	s.log.Info("job finished", "stack", stack, "service", req.Service, "job", job.ID, "exit", job.ExitCode)
}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) (any, error) {
	stack, err := pathName(r, "stack", "stack name")
	if err != nil {
		return nil, err
	}
	runs, err := s.store.ListJobs(r.Context(), stack)
	if err != nil {
		return nil, err
	}
	controller.SortJobs(runs)
	return runs, nil
}

// frameWriter serialises frames from the stdout and stderr writers.
type frameWriter struct {
	mu    sync.Mutex
	w     http.ResponseWriter
	enc   *json.Encoder
	flush func()
}

func (f *frameWriter) write(fr api.RunFrame) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_ = f.enc.Encode(fr)
	if f.flush != nil {
		f.flush()
	}
}

type streamWriter struct {
	f       *frameWriter
	name    string
	started *bool
}

func (f *frameWriter) stream(name string, started *bool) *streamWriter {
	return &streamWriter{f: f, name: name, started: started}
}

func (s *streamWriter) Write(p []byte) (int, error) {
	s.f.mu.Lock()
	*s.started = true
	s.f.mu.Unlock()
	s.f.write(api.RunFrame{Stream: s.name, Data: string(p)})
	return len(p), nil
}
