package api

import "time"

// Engine health states, as the agent's watchdog classifies them.
const (
	EngineHealthy = "healthy"
	EngineSlow    = "slow"
	EngineWedged  = "wedged"
)

// EngineHealth is the watchdog's judgement of a node's container engine,
// kept on the node record. A wedged engine makes the node degraded: the
// scheduler places nothing on it and the agent stops sending it calls
// that would only hang.
type EngineHealth struct {
	State  string    `json:"state"`
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since"`
	// LastProbe is when the last probe ended, and Latency how long each of
	// its calls took (ping, list, inspect), in milliseconds.
	LastProbe time.Time          `json:"last_probe,omitzero"`
	Latency   map[string]float64 `json:"latency_ms,omitempty"`
}

// Alert states.
const (
	AlertFiring   = "firing"
	AlertResolved = "resolved"
)

// Alert is one condition a rule raised: firing until the events that
// resolve it arrive. Notifiers hear of it when it fires, when it
// resolves, and again every repeat interval while it keeps firing.
type Alert struct {
	ID       string `json:"id"`
	Rule     string `json:"rule"`
	Severity string `json:"severity"` // critical, warning
	State    string `json:"state"`
	Summary  string `json:"summary"`
	Stack    string `json:"stack,omitempty"`
	Service  string `json:"service,omitempty"`
	Node     string `json:"node,omitempty"`
	Subject  string `json:"subject,omitempty"`
	// Members are what keeps the alert firing (tasks of a crash-looping
	// service, say); it resolves when the last one recovers or goes.
	Members    []string  `json:"members,omitempty"`
	Count      int       `json:"count"` // events that fired it
	LastEvent  Event     `json:"last_event"`
	StartedAt  time.Time `json:"started_at"`
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
	NotifiedAt time.Time `json:"notified_at,omitzero"`
}

// Housekeeping object kinds.
const (
	ObjectImage      = "image"
	ObjectContainer  = "container"
	ObjectVolume     = "volume"
	ObjectBuildCache = "build-cache"
)

// Collectable is one object a collection removes (or would remove).
type Collectable struct {
	Kind   string `json:"kind"`
	ID     string `json:"id"`
	Name   string `json:"name,omitempty"`
	Stack  string `json:"stack,omitempty"`
	Size   int64  `json:"size"`
	Reason string `json:"reason"`
	Error  string `json:"error,omitempty"` // set when the removal failed
}

// GCRequest asks for a collection.
type GCRequest struct {
	DryRun bool `json:"dry_run,omitempty"`
	// Volumes also collects named volumes that no revision of any stack
	// references (never done by automatic runs).
	Volumes bool `json:"volumes,omitempty"`
}

// GCReport is what a collection removed (or would remove).
type GCReport struct {
	DryRun  bool          `json:"dry_run"`
	Objects []Collectable `json:"objects"`
	Freed   int64         `json:"freed"` // bytes (or would free, on a dry run)
}

// StackUsage is the disk one stack's objects take on a node.
type StackUsage struct {
	Stack      string `json:"stack"`
	Images     int64  `json:"images"`     // bytes of images its revisions use
	Containers int64  `json:"containers"` // writable layers
	Volumes    int64  `json:"volumes"`
	Reclaim    int64  `json:"reclaimable"` // what a collection would free
}

// DiskUsage is `berth df`: the disk berth's objects take, per stack, and
// what a collection would free.
type DiskUsage struct {
	Stacks []StackUsage `json:"stacks"`
	// Other is berth's objects that belong to no stack (dangling images).
	Other      StackUsage `json:"other"`
	Total      int64      `json:"total"`
	Reclaim    int64      `json:"reclaimable"`
	Budget     int64      `json:"budget,omitempty"`
	BuildCache int64      `json:"build_cache"` // the engine's, all of it
	// Disk is the file system holding the engine's data, when berth can
	// see it: used and total bytes.
	DiskUsed  int64 `json:"disk_used,omitempty"`
	DiskTotal int64 `json:"disk_total,omitempty"`
}
