package api

import "time"

// DeployRequest asks the server to make a stack's desired state match Stack.
type DeployRequest struct {
	Stack Stack `json:"stack"`
	// DryRun validates, resolves images and reports changes without storing.
	DryRun bool `json:"dry_run,omitempty"`
	// Secrets are the values of the stack's file and environment
	// secrets, read by the CLI. The server seals them and never stores
	// or returns them in the clear.
	Secrets map[string][]byte `json:"secrets,omitempty"`
	// Tenant the stack belongs to (a tenant token's own tenant wins).
	Tenant string `json:"tenant,omitempty"`
}

// Change actions reported by a deploy.
const (
	ChangeCreated   = "created"
	ChangeUpdated   = "updated"
	ChangeUnchanged = "unchanged"
	ChangeRemoved   = "removed"
	ChangeScaled    = "scaled"
)

// ServiceChange is what a deploy did to one service.
type ServiceChange struct {
	Service  string `json:"service"`
	Action   string `json:"action"`
	Revision int    `json:"revision,omitempty"`
	Replicas int    `json:"replicas"`
	ImageID  string `json:"image_id,omitempty"`
}

// DeployResponse reports a deploy.
type DeployResponse struct {
	Stack    string          `json:"stack"`
	Changes  []ServiceChange `json:"changes"`
	Warnings []string        `json:"warnings,omitempty"`
	DryRun   bool            `json:"dry_run,omitempty"`
}

// ScaleRequest sets a service's replica count.
type ScaleRequest struct {
	Replicas int `json:"replicas"`
}

// TaskView joins a task with what its agent observed.
type TaskView struct {
	Task   Task        `json:"task"`
	Status *TaskStatus `json:"status,omitempty"`
}

// ServiceStatus is a service as `berth status` shows it.
type ServiceStatus struct {
	Name     string `json:"name"`
	Revision int    `json:"revision"`
	Image    string `json:"image"`
	ImageID  string `json:"image_id"`
	// ImageDigest is the registry digest the revision runs, if any.
	ImageDigest string `json:"image_digest,omitempty"`
	// PendingUpdate is a followed tag's new digest awaiting approval.
	PendingUpdate *PendingUpdate `json:"pending_update,omitempty"`
	Replicas      int            `json:"replicas"`
	Running       int            `json:"running"`
	Stopped       bool           `json:"stopped,omitempty"`
	Schedule      string         `json:"schedule,omitempty"`
	Rollout       *Rollout       `json:"rollout,omitempty"`
	History       []Rollout      `json:"history,omitempty"`
	Tasks         []TaskView     `json:"tasks"`
}

// RollbackRequest points services back at an earlier revision.
type RollbackRequest struct {
	Service string `json:"service,omitempty"` // all services when empty
	To      int    `json:"to,omitempty"`      // default: the revision before the current one
}

// StackStatus is a stack as `berth status` shows it.
type StackStatus struct {
	Name      string          `json:"name"`
	Services  []ServiceStatus `json:"services"`
	Sources   []string        `json:"sources,omitempty"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// StackSummary is one row of `berth ls`.
type StackSummary struct {
	Name     string    `json:"name"`
	Services int       `json:"services"`
	Tasks    int       `json:"tasks"`
	Running  int       `json:"running"`
	Updated  time.Time `json:"updated_at"`
}

// RunRequest starts a one-off job in a fresh container of a service's
// current revision.
type RunRequest struct {
	Service     string            `json:"service"`
	Command     []string          `json:"command"`
	Environment map[string]string `json:"environment,omitempty"`
}

// RunFrame is one line of the NDJSON stream of a running job: output, then a
// final frame with Done set.
type RunFrame struct {
	Stream   string `json:"stream,omitempty"` // stdout or stderr
	Data     string `json:"data,omitempty"`
	Done     bool   `json:"done,omitempty"`
	ExitCode int    `json:"exit_code,omitempty"`
	Error    string `json:"error,omitempty"`
	JobID    string `json:"job_id,omitempty"`
}

// VersionInfo answers GET /v1/version.
type VersionInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit,omitempty"`
	GoVersion string `json:"go_version"`
	ClusterID string `json:"cluster_id"`
	Engine    string `json:"engine,omitempty"`
	Ingress   string `json:"ingress,omitempty"` // HTTP ingress address
}
