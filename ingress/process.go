package ingress

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/api"
)

// The ingress can run as its own process (`berth proxy`), so that stopping,
// upgrading or crashing berth cuts no traffic: the proxy keeps serving the
// endpoints it last heard of. berth up starts it (or finds it running) and
// drives it over a unix socket with the same three calls the agent makes
// on an in-process Controller.

// readyRequest is the body of a task-ready call.
type readyRequest struct {
	Task   api.Task        `json:"task"`
	Routes []api.HTTPRoute `json:"routes,omitempty"`
	Ports  []api.Port      `json:"ports,omitempty"`
	Addr   string          `json:"addr"`
}

// ProcessStatus is what a running proxy process reports.
type ProcessStatus struct {
	PID      int    `json:"pid"`
	HTTPAddr string `json:"http_addr,omitempty"`
	Tasks    int    `json:"tasks"`
	// PortErrors are published ports it could not listen on.
	PortErrors []PortError `json:"port_errors,omitempty"`
}

// ControlHandler is the proxy process's control API over its unix socket.
func ControlHandler(c *Controller, httpAddr string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		n := len(c.tasks)
		c.mu.Unlock()
		perrs, _ := c.PortErrors(r.Context())
		_ = json.NewEncoder(w).Encode(ProcessStatus{PID: os.Getpid(), HTTPAddr: httpAddr, Tasks: n, PortErrors: perrs})
	})
	mux.HandleFunc("GET /v1/stats", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(c.http.Stats())
	})
	mux.HandleFunc("POST /v1/ready", func(w http.ResponseWriter, r *http.Request) {
		var req readyRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.TaskReady(req.Task, &api.ServiceSpec{Routes: req.Routes, Ports: req.Ports}, req.Addr)
	})
	mux.HandleFunc("POST /v1/notready", func(w http.ResponseWriter, r *http.Request) {
		var t api.Task
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&t); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.TaskNotReady(t)
	})
	mux.HandleFunc("POST /v1/stopping", func(w http.ResponseWriter, r *http.Request) {
		var t api.Task
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&t); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.TaskStopping(r.Context(), t)
	})
	return mux
}

// Remote drives a proxy process; it implements the agent's hooks. Calls
// that cannot reach the process are logged and dropped: the agent calls
// TaskReady on every pass, so a restarted proxy is filled in again.
type Remote struct {
	sock string
	hc   *http.Client
	log  *slog.Logger
}

// NewRemote returns hooks that talk to the proxy process at sock.
func NewRemote(sock string, logger *slog.Logger) *Remote {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}
	return &Remote{sock: sock, hc: &http.Client{Transport: tr}, log: logger}
}

func (r *Remote) post(ctx context.Context, path string, body any, timeout time.Duration) error {
	b, _ := json.Marshal(body)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://proxy"+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("proxy %s: %s: %s", path, resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

// TaskReady implements the agent's hook.
func (r *Remote) TaskReady(t api.Task, spec *api.ServiceSpec, addr string) {
	if addr == "" || (len(spec.Routes) == 0 && len(spec.Ports) == 0) {
		return
	}
	if err := r.post(context.Background(), "/v1/ready", readyRequest{Task: t, Routes: spec.Routes, Ports: spec.Ports, Addr: addr}, 5*time.Second); err != nil {
		r.log.Warn("proxy: task ready", "task", t.ID, "err", err)
	}
}

// TaskNotReady implements the agent's hook.
func (r *Remote) TaskNotReady(t api.Task) {
	if err := r.post(context.Background(), "/v1/notready", t, 5*time.Second); err != nil {
		r.log.Debug("proxy: task not ready", "task", t.ID, "err", err)
	}
}

// TaskStopping implements the agent's hook: it returns once the proxy has
// drained the task.
func (r *Remote) TaskStopping(ctx context.Context, t api.Task) {
	if err := r.post(ctx, "/v1/stopping", t, 5*time.Minute); err != nil {
		r.log.Warn("proxy: drain task", "task", t.ID, "err", err)
	}
}

// Status asks the proxy process how it is.
func (r *Remote) Status(ctx context.Context) (ProcessStatus, error) {
	var st ProcessStatus
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://proxy/v1/status", nil)
	resp, err := r.hc.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// PortErrors are the published ports the proxy process could not bind.
func (r *Remote) PortErrors(ctx context.Context) ([]PortError, error) {
	st, err := r.Status(ctx)
	return st.PortErrors, err
}

// Stats reads the proxy process's per-route, per-revision counters.
func (r *Remote) Stats(ctx context.Context) ([]RevisionStats, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://proxy/v1/stats", nil)
	resp, err := r.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("proxy stats: %s", resp.Status)
	}
	var out []RevisionStats
	return out, json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&out)
}

// Supervisor keeps a proxy process running: it finds one already serving
// the socket (after a restart of berth) or starts one, and starts it again
// if it dies. The process is started in its own session so that it
// outlives berth.
type Supervisor struct {
	Remote *Remote
	Args   []string // the proxy command line (berth proxy ...)
	Dir    string   // where proxy.log goes
	Log    *slog.Logger
}

// Ensure makes sure a proxy answers on the socket and returns its status.
func (s *Supervisor) Ensure(ctx context.Context) (ProcessStatus, error) {
	if st, err := s.Remote.Status(ctx); err == nil {
		return st, nil
	}
	logf, err := os.OpenFile(filepath.Join(s.Dir, "proxy.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return ProcessStatus{}, err
	}
	defer logf.Close()
	cmd := exec.Command(s.Args[0], s.Args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return ProcessStatus{}, fmt.Errorf("start proxy: %w", err)
	}
	pid := cmd.Process.Pid
	go func() { _, _ = cmd.Process.Wait() }() // reap it if it exits while berth runs
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if st, err := s.Remote.Status(ctx); err == nil {
			s.Log.Info("proxy process started", "pid", st.PID)
			return st, nil
		}
		if err := syscall.Kill(pid, 0); err != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := os.ReadFile(filepath.Join(s.Dir, "proxy.log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return ProcessStatus{}, fmt.Errorf("proxy process did not come up; last log line: %s", lines[len(lines)-1])
}

// Run checks the proxy every few seconds and restarts it if it is gone,
// until ctx ends. It leaves the proxy running when it returns.
func (s *Supervisor) Run(ctx context.Context) error {
	t := time.NewTicker(3 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if _, err := s.Ensure(ctx); err != nil && ctx.Err() == nil {
				s.Log.Warn("proxy process", "err", err)
			}
		}
	}
}

// PIDFile is where `berth proxy` records its process ID.
func PIDFile(dir string) string { return filepath.Join(dir, "proxy.pid") }

// ReadPID reads a proxy's PID file (tests, berth stop scripts).
func ReadPID(dir string) (int, error) {
	b, err := os.ReadFile(PIDFile(dir))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
