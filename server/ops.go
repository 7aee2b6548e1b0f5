package server

import (
	"net/http"
	"strconv"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/logs"
)

// Ops are the operational parts the API serves when the process has them:
// the node's log store, the Prometheus handler and the short metrics
// history behind `berth top`.
type Ops struct {
	Logs    *logs.Store
	Metrics http.Handler
	Top     TopSource
}

// SetOps gives the server its operational parts (call before Serve).
func (s *Server) SetOps(o Ops) { s.ops = o }

func (s *Server) opsRoutes(mux *routeMux) {
	mux.HandleFunc("GET /v1/stacks/{stack}/logs", s.logs)
	mux.HandleFunc("GET /v1/top", s.wrap(s.top))
	mux.HandleFunc("GET /metrics", s.metrics)
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	if s.ops.Metrics == nil {
		writeError(w, unavailablef("metrics are not collected by this process"))
		return
	}
	s.ops.Metrics.ServeHTTP(w, r)
}

// TopSource reports the short metrics history (all stacks when stack is "").
type TopSource interface {
	Top(stack string, history bool) api.TopReport
}

func (s *Server) top(w http.ResponseWriter, r *http.Request) (any, error) {
	if s.ops.Top == nil {
		return nil, unavailablef("this process keeps no metrics history")
	}
	stack := r.URL.Query().Get("stack")
	if stack != "" {
		if err := api.ValidateName("stack name", stack); err != nil {
			return nil, err
		}
	}
	history, _ := strconv.ParseBool(r.URL.Query().Get("history"))
	return s.ops.Top.Top(stack, history), nil
}
