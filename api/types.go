// Package api holds berth's wire types: the nouns of the HTTP API and of the
// state kept in etcd, and their validation. It imports nothing of berth's own.
package api

import (
	"time"
)

// Labels that berth puts on every engine object it creates. Adoption, garbage
// collection and cleanup only ever consider objects whose LabelCluster matches
// their own cluster: berth never touches what it did not create.
const (
	LabelCluster  = "io.berth.cluster"
	LabelStack    = "io.berth.stack"
	LabelService  = "io.berth.service"
	LabelTask     = "io.berth.task"
	LabelSlot     = "io.berth.slot"
	LabelRevision = "io.berth.revision"
	LabelJob      = "io.berth.job"
	LabelNode     = "io.berth.node"
)

// Stack is a Compose file deployed under a name.
type Stack struct {
	Name     string                    `json:"name"`
	Services map[string]*ServiceSpec   `json:"services"`
	Networks map[string]NetworkSpec    `json:"networks,omitempty"`
	Volumes  map[string]VolumeSpec     `json:"volumes,omitempty"`
	Secrets  map[string]SecretSource   `json:"secrets,omitempty"`
	Configs  map[string]ConfigSource   `json:"configs,omitempty"`
	Sources  []string                  `json:"sources,omitempty"` // Compose files it came from
	Warnings []string                  `json:"warnings,omitempty"`
	Trust    *TrustPolicy              `json:"trust,omitempty"`
	Extra    map[string]StackExtension `json:"-"`
}

// StackExtension is reserved for settings later issues hang off a stack.
type StackExtension struct{}

// NetworkSpec describes a Compose network. berth gives every stack one
// user-defined bridge; extra Compose networks become aliases on it.
type NetworkSpec struct {
	Internal bool              `json:"internal,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
}

// VolumeSpec describes a named volume of a stack. Named volumes survive
// redeploys and `berth rm` unless --volumes is given.
type VolumeSpec struct {
	Driver     string            `json:"driver,omitempty"`
	DriverOpts map[string]string `json:"driver_opts,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	External   bool              `json:"external,omitempty"`
}

// SecretSource is where a Compose secret's value comes from. The CLI
// reads it and sends the value beside the stack (DeployRequest.Secrets);
// External secrets are created with `berth secret create`.
type SecretSource struct {
	File        string `json:"file,omitempty"`
	Environment string `json:"environment,omitempty"`
	External    bool   `json:"external,omitempty"`
}

// ConfigSource is where a Compose config's content comes from. Content is
// read at conversion time so that the deploy does not depend on client files.
type ConfigSource struct {
	File    string `json:"file,omitempty"`
	Content string `json:"content,omitempty"`
}

// ServiceSpec is the desired state of one Compose service. It is the body of a
// Revision: two specs that marshal to the same JSON are the same revision.
type ServiceSpec struct {
	Name  string `json:"name"`
	Image string `json:"image"`
	// ImageID is the digest the tag resolved to at deploy time. Tasks run this,
	// never the tag, so a moved tag changes nothing until the next deploy.
	ImageID string `json:"image_id,omitempty"`
	// ImageDigest is registry/repo@sha256:… when the image came from a
	// registry: the digest its tag pointed to at deploy time. Tasks run it
	// (pulled if the engine lacks it).
	ImageDigest string `json:"image_digest,omitempty"`
	// AutoUpdate follows the image's tag (x-berth.update).
	AutoUpdate *AutoUpdate `json:"auto_update,omitempty"`

	Command     []string          `json:"command,omitempty"`
	Entrypoint  []string          `json:"entrypoint,omitempty"`
	Environment map[string]string `json:"environment,omitempty"`
	WorkingDir  string            `json:"working_dir,omitempty"`
	User        string            `json:"user,omitempty"`
	Hostname    string            `json:"hostname,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`

	Replicas  int           `json:"replicas"`
	Resources Resources     `json:"resources"`
	Restart   RestartPolicy `json:"restart"`
	Health    *HealthCheck  `json:"health,omitempty"`
	Security  Security      `json:"security"`

	StopSignal      string   `json:"stop_signal,omitempty"`
	StopGracePeriod Duration `json:"stop_grace_period,omitempty"`
	// Logs caps the engine's json-file log of each task (Compose's
	// logging.options max-size and max-file); zero: berth's defaults.
	Logs LogRotation `json:"logs,omitzero"`

	// NetworkMode is "" (the stack's network) or "host". Host-networked tasks
	// get a port from the scheduler in the PORT environment variable.
	NetworkMode string   `json:"network_mode,omitempty"`
	Networks    []string `json:"networks,omitempty"` // Compose networks joined (all map to the stack network)
	Aliases     []string `json:"aliases,omitempty"`
	Ports       []Port   `json:"ports,omitempty"`
	// Routes are HTTP routes on the ingress (x-berth.routes).
	Routes  []HTTPRoute `json:"routes,omitempty"`
	Mounts  []Mount     `json:"mounts,omitempty"`
	Tmpfs   []string    `json:"tmpfs,omitempty"`
	Secrets []FileRef   `json:"secrets,omitempty"`
	Configs []FileRef   `json:"configs,omitempty"`

	Placement Placement    `json:"placement,omitempty"`
	Update    UpdatePolicy `json:"update,omitempty"`
	// Schedule, when set, makes the service a scheduled job: a cron
	// expression; each run is a fresh container; runs never overlap.
	Schedule string `json:"schedule,omitempty"`
	// DependsOn lists services started first (ordering only).
	DependsOn []string `json:"depends_on,omitempty"`
	// SecretsAsEnv also passes the service's secrets as environment
	// variables (x-berth.secrets_as_env): visible in docker inspect.
	SecretsAsEnv bool `json:"secrets_as_env,omitempty"`
}

// LogRotation is when the engine rotates a task's json-file log and how
// many files it keeps. berth reads each file as it is written and follows
// the rotation.
type LogRotation struct {
	MaxSize  string `json:"max_size,omitempty"` // as the engine takes it: 64k, 10m, 1g
	MaxFiles int    `json:"max_files,omitempty"`
}

// Resources are limits and reservations. Zero means "berth's default" for
// limits (see agent configuration) and "none" for reservations.
type Resources struct {
	NanoCPUs           int64 `json:"nano_cpus,omitempty"`            // limit, 1e9 = one CPU
	MemoryBytes        int64 `json:"memory_bytes,omitempty"`         // limit
	PidsLimit          int64 `json:"pids_limit,omitempty"`           // limit
	CPUShares          int64 `json:"cpu_shares,omitempty"`           // relative weight
	ReserveNanoCPUs    int64 `json:"reserve_nano_cpus,omitempty"`    // scheduling request
	ReserveMemoryBytes int64 `json:"reserve_memory_bytes,omitempty"` // scheduling request
}

// Restart conditions, as in Compose's deploy.restart_policy.
const (
	RestartAny       = "any"
	RestartOnFailure = "on-failure"
	RestartNone      = "none"
)

// RestartPolicy says when berth restarts a task's container that exited.
// Restarts back off exponentially from Delay up to MaxDelay; a task that ran
// for Window without exiting is considered stable and its backoff resets.
type RestartPolicy struct {
	Condition   string   `json:"condition"`
	MaxAttempts int      `json:"max_attempts,omitempty"` // 0: unlimited
	Delay       Duration `json:"delay,omitempty"`
	Window      Duration `json:"window,omitempty"`
}

// HealthCheck is the in-container check of Compose's healthcheck.
type HealthCheck struct {
	Test          []string `json:"test"`
	Interval      Duration `json:"interval,omitempty"`
	Timeout       Duration `json:"timeout,omitempty"`
	StartPeriod   Duration `json:"start_period,omitempty"`
	StartInterval Duration `json:"start_interval,omitempty"`
	Retries       int      `json:"retries,omitempty"`
}

// Security holds the container's privileges. berth's defaults are least
// privilege; every field that widens them is an explicit opt-out.
type Security struct {
	CapAdd   []string `json:"cap_add,omitempty"`
	CapDrop  []string `json:"cap_drop,omitempty"` // always includes ALL unless KeepDefaultCaps
	ReadOnly bool     `json:"read_only,omitempty"`
	// KeepDefaultCaps keeps the engine's default capability set instead of
	// dropping all (x-berth.security.keep_default_capabilities).
	KeepDefaultCaps bool `json:"keep_default_caps,omitempty"`
	// AllowNewPrivileges turns off no-new-privileges (x-berth.security.allow_new_privileges).
	AllowNewPrivileges bool              `json:"allow_new_privileges,omitempty"`
	SecurityOpt        []string          `json:"security_opt,omitempty"`
	Sysctls            map[string]string `json:"sysctls,omitempty"`
	Ulimits            map[string]Ulimit `json:"ulimits,omitempty"`
}

// Ulimit is a soft/hard pair.
type Ulimit struct {
	Soft int64 `json:"soft"`
	Hard int64 `json:"hard"`
}

// Port is a Compose published port. The ingress (not Docker port publishing)
// listens on Published and forwards to Target on healthy tasks.
type Port struct {
	Target    uint16 `json:"target"`
	Published uint16 `json:"published,omitempty"`
	Protocol  string `json:"protocol,omitempty"` // tcp or udp
	HostIP    string `json:"host_ip,omitempty"`
}

// HTTPRoute sends requests for Host (any host when empty) under
// PathPrefix on the ingress's HTTP listener to the service's Port.
type HTTPRoute struct {
	Host       string   `json:"host,omitempty"`
	PathPrefix string   `json:"path,omitempty"`
	Port       uint16   `json:"port"`
	Timeout    Duration `json:"timeout,omitempty"`
}

// Mount types.
const (
	MountVolume = "volume"
	MountBind   = "bind"
	MountTmpfs  = "tmpfs"
)

// Mount is a volume, bind or tmpfs mount of a service.
type Mount struct {
	Type     string `json:"type"`
	Source   string `json:"source,omitempty"` // volume name (stack-local) or host path
	Target   string `json:"target"`
	ReadOnly bool   `json:"read_only,omitempty"`
}

// FileRef places a secret or config in a container.
type FileRef struct {
	Source string `json:"source"`
	Target string `json:"target,omitempty"` // default /run/secrets/SOURCE or /SOURCE
	UID    string `json:"uid,omitempty"`
	GID    string `json:"gid,omitempty"`
	Mode   uint32 `json:"mode,omitempty"`
	// Version is the secret version the revision mounts, set by the
	// server at deploy: a rotated secret is a new revision.
	Version int `json:"version,omitempty"`
}

// Update orders, as in Compose's deploy.update_config.order.
const (
	StartFirst = "start-first"
	StopFirst  = "stop-first"
)

// Rollout strategies (x-berth.deploy.strategy).
const (
	// Rolling replaces tasks slot by slot (Compose's update_config).
	Rolling = "rolling"
	// BlueGreen starts a full new set beside the old one, switches all
	// traffic at once when every new task is ready, and keeps the old set
	// stopped for the rollback window.
	BlueGreen = "blue-green"
	// Canary gives new tasks a growing share of traffic in steps, each
	// watched for an interval and judged against the old revision.
	Canary = "canary"
)

// DefaultCanarySteps are the traffic shares (percent) of a canary rollout.
var DefaultCanarySteps = []int{5, 25, 100}

// Gate defaults for a web service.
const (
	DefaultStepInterval   = 30 * time.Second
	DefaultMaxErrorRate   = 0.01
	DefaultRollbackWindow = 10 * time.Minute
)

// UpdatePolicy says how a new revision replaces a service's tasks.
type UpdatePolicy struct {
	// Strategy is rolling (default), blue-green or canary.
	Strategy string `json:"strategy,omitempty"`
	// Steps are a canary's traffic shares in percent, ascending, ending
	// at 100 (default 5, 25, 100).
	Steps []int `json:"steps,omitempty"`
	// Interval is how long each canary step (and a blue-green cutover) is
	// watched before the next (default 30s).
	Interval Duration `json:"interval,omitempty"`
	// MaxErrorRate is the highest share of 5xx answers the new revision
	// may serve, above the old revision's own rate (default 0.01).
	MaxErrorRate float64 `json:"max_error_rate,omitempty"`
	// MaxP99 bounds the new revision's p99 latency as the proxy measures
	// it (0: only the comparison with the old revision applies).
	MaxP99 Duration `json:"max_p99,omitempty"`
	// RollbackWindow is how long a blue-green rollout keeps the old set
	// stopped for a fast rollback (default 10m).
	RollbackWindow Duration `json:"rollback_window,omitempty"`
	// Parallelism is how many slots are replaced at a time (default 1).
	Parallelism int `json:"parallelism,omitempty"`
	// Order is start-first (default: the new task serves before the old
	// one stops) or stop-first.
	Order string `json:"order,omitempty"`
	// Deadline bounds a rollout: not every task ready by then rolls the
	// service back (default 3m; x-berth.rollout.deadline).
	Deadline Duration `json:"deadline,omitempty"`
	// Stability is how long a new task must keep running (and healthy,
	// with a health check) before it counts as ready for the rollout
	// (update_config.monitor, x-berth.deploy.stability). Services berth
	// probes from outside (routes, published ports) default to 0: their
	// probe is the judgement; the others default to DefaultStability.
	Stability Duration `json:"stability,omitempty"`
}

// DefaultStability is the stability time of services judged by their
// container alone.
const DefaultStability = 5 * time.Second

// ProbedFromOutside reports whether berth judges the service's readiness
// from outside the container: its first HTTP route, or its first
// published TCP port.
func (s *ServiceSpec) ProbedFromOutside() bool {
	if len(s.Routes) > 0 {
		return true
	}
	for _, p := range s.Ports {
		if p.Target != 0 && (p.Protocol == "" || p.Protocol == "tcp") {
			return true
		}
	}
	return false
}

// StabilityTime is the time a new task of the service must run before it
// counts as ready.
func (s *ServiceSpec) StabilityTime() time.Duration {
	switch {
	case s.Update.Stability > 0:
		return s.Update.Stability.D()
	case s.ProbedFromOutside():
		return 0
	}
	return DefaultStability
}

// DefaultRolloutDeadline applies when a service sets none.
const DefaultRolloutDeadline = 3 * time.Minute

// Placement constrains where the scheduler may put a service's tasks.
type Placement struct {
	// Constraints are "node.labels.KEY==VALUE", "node.labels.KEY!=VALUE",
	// "node.name==NAME" or "node.name!=NAME", as in Compose's deploy.placement.
	Constraints []string `json:"constraints,omitempty"`
	// MaxPerNode limits replicas of the service on one node (0: no limit).
	MaxPerNode int `json:"max_per_node,omitempty"`
}

// Revision is an immutable, numbered version of a service spec.
type Revision struct {
	Stack     string      `json:"stack"`
	Service   string      `json:"service"`
	Number    int         `json:"number"`
	Hash      string      `json:"hash"`
	Spec      ServiceSpec `json:"spec"`
	CreatedAt time.Time   `json:"created_at"`
	// CreatedBy is who deployed it.
	CreatedBy string `json:"created_by,omitempty"`
}

// ServiceState is the server's record of a deployed service: which revision
// is current and how many replicas it should run.
type ServiceState struct {
	Stack    string `json:"stack"`
	Name     string `json:"name"`
	Revision int    `json:"revision"`
	Replicas int    `json:"replicas"`
	// Stopped services keep their tasks' containers stopped (berth stop).
	Stopped bool `json:"stopped,omitempty"`
	// RestartGen bumps on `berth restart`: tasks with an older generation are replaced.
	RestartGen int       `json:"restart_gen,omitempty"`
	UpdatedAt  time.Time `json:"updated_at"`
	// Rollout is the last change of revision and how it ended.
	Rollout *Rollout `json:"rollout,omitempty"`
	// PendingUpdate is a new digest of a followed tag awaiting approval.
	PendingUpdate *PendingUpdate `json:"pending_update,omitempty"`
	// History holds the rollouts before it, oldest first (at most
	// MaxRolloutHistory).
	History []Rollout `json:"history,omitempty"`
}

// MaxRolloutHistory bounds ServiceState.History.
const MaxRolloutHistory = 20

// BeginRollout makes r the service's rollout and moves the one before it
// into the history.
func (s *ServiceState) BeginRollout(r *Rollout) {
	if s.Rollout != nil {
		s.History = append(s.History, *s.Rollout)
		if n := len(s.History) - MaxRolloutHistory; n > 0 {
			s.History = append([]Rollout(nil), s.History[n:]...)
		}
	}
	s.Rollout = r
}

// Rollout states.
const (
	RolloutInProgress = "in_progress"
	RolloutDone       = "done"
	RolloutRolledBack = "rolled_back"
)

// Rollout records a service moving from one revision to another. It is a
// persisted state machine: a server that restarts mid-rollout picks it up.
type Rollout struct {
	From    int       `json:"from"`
	To      int       `json:"to"`
	State   string    `json:"state"`
	Reason  string    `json:"reason,omitempty"`
	Started time.Time `json:"started"`
	// By is who started it (a deploy or a rollback).
	By       string    `json:"by,omitempty"`
	Deadline time.Time `json:"deadline"`
	Ended    time.Time `json:"ended,omitempty"`
	// Paused rollouts start no further replacements and have no deadline
	// until resumed.
	Paused bool `json:"paused,omitempty"`
	// Strategy is the new revision's update strategy.
	Strategy string `json:"strategy,omitempty"`
	// Step is the canary step under way (index into the steps).
	Step int `json:"step,omitempty"`
	// Switched says a blue-green rollout moved traffic to the new set.
	Switched bool `json:"switched,omitempty"`
	// Observing is when the current step's tasks were all ready and its
	// watch began (zero while they start).
	Observing time.Time `json:"observing,omitzero"`
	// TrafficGen orders the traffic splits this rollout wrote on tasks.
	TrafficGen int64 `json:"traffic_gen,omitempty"`
	// Gates are the last judgements of the new revision.
	Gates []GateResult `json:"gates,omitempty"`
}

// GateResult is one judgement of a rollout gate.
type GateResult struct {
	Step   int       `json:"step"`
	Gate   string    `json:"gate"` // errors, latency, ready
	Passed bool      `json:"passed"`
	Detail string    `json:"detail"`
	At     time.Time `json:"at"`
}

// TrafficSplit is a service's traffic split as the orchestrator last
// decided it: Revision gets Percent of the requests and the other
// revisions share the rest. A zero Revision means every ready task alike.
// The ingress applies the split with the highest Gen it has seen on any
// of the service's tasks, so a switch takes effect at once for the whole
// service, whichever task it hears of first.
type TrafficSplit struct {
	Gen      int64 `json:"gen,omitempty"`
	Revision int   `json:"revision,omitempty"`
	Percent  int   `json:"percent,omitempty"`
}

// StackRecord is the stored part of a stack that is not per service.
type StackRecord struct {
	Name      string                 `json:"name"`
	Networks  map[string]NetworkSpec `json:"networks,omitempty"`
	Volumes   map[string]VolumeSpec  `json:"volumes,omitempty"`
	Sources   []string               `json:"sources,omitempty"`
	Services  []string               `json:"services"`
	Tenant    string                 `json:"tenant,omitempty"`
	CreatedAt time.Time              `json:"created_at"`
	UpdatedAt time.Time              `json:"updated_at"`
}

// Desired task states, written by the server.
const (
	DesiredRunning = "running"
	DesiredStopped = "stopped"
	// DesiredCreated asks for the container to be created and not
	// started: a rolling update prepares the next slots' containers while
	// the current ones start, so each slot waits only for its start.
	DesiredCreated = "created"
)

// Task is one container of one revision in one slot on one node. The server
// writes it; the agent of Node reads it and writes a TaskStatus.
type Task struct {
	ID         string `json:"id"`
	Stack      string `json:"stack"`
	Service    string `json:"service"`
	Slot       int    `json:"slot"`
	Revision   int    `json:"revision"`
	Node       string `json:"node"`
	Desired    string `json:"desired"`
	RestartGen int    `json:"restart_gen,omitempty"`
	HostPort   uint16 `json:"host_port,omitempty"` // network_mode: host only
	// Unplaced says why the scheduler found no node for the task (Node is "").
	Unplaced string `json:"unplaced,omitempty"`
	// Traffic is the service's traffic split (canary, blue-green).
	Traffic   TrafficSplit `json:"traffic,omitzero"`
	CreatedAt time.Time    `json:"created_at"`
}

// Observed task states, written by the agent.
const (
	StatePending    = "pending"    // not yet created
	StateCreated    = "created"    // created ahead of its turn, not started (desired created)
	StateStarting   = "starting"   // created, starting, or health not yet known
	StateRunning    = "running"    // running (and healthy if it has a check)
	StateUnhealthy  = "unhealthy"  // running but failing its health check
	StateRestarting = "restarting" // exited; the restart is scheduled after a backoff, or under way
	StateCrashLoop  = "crashloop"  // exits repeatedly; restarts back off
	StateExited     = "exited"     // exited and will not be restarted by policy
	StateStopped    = "stopped"    // stopped because desired state is stopped
	StateFailed     = "failed"     // cannot be created or started (see Reason)
)

// TaskStatus is what the agent observed of a task.
type TaskStatus struct {
	TaskID      string    `json:"task_id"`
	Node        string    `json:"node"`
	ContainerID string    `json:"container_id,omitempty"`
	State       string    `json:"state"`
	Health      string    `json:"health,omitempty"`
	ExitCode    int       `json:"exit_code,omitempty"`
	OOMKilled   bool      `json:"oom_killed,omitempty"`
	Restarts    int       `json:"restarts"`
	Reason      string    `json:"reason,omitempty"`
	Address     string    `json:"address,omitempty"` // IP on the stack network
	StartedAt   time.Time `json:"started_at,omitempty"`
	NextRestart time.Time `json:"next_restart,omitempty"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Node states.
const (
	NodeReady    = "ready"
	NodeDown     = "down"
	NodeDraining = "draining"
)

// Node is a machine with an agent and a Docker Engine.
type Node struct {
	ID       string            `json:"id"`
	Name     string            `json:"name"`
	Labels   map[string]string `json:"labels,omitempty"`
	Address  string            `json:"address,omitempty"`
	NanoCPUs int64             `json:"nano_cpus"`
	Memory   int64             `json:"memory_bytes"`
	State    string            `json:"state"`
	Engine   string            `json:"engine,omitempty"` // engine version
	Degraded string            `json:"degraded,omitempty"`
	Since    time.Time         `json:"since"`
	// EngineHealth is the engine watchdog's last judgement.
	EngineHealth EngineHealth `json:"engine_health,omitzero"`
}

// Event is a state change a person would want to see later.
type Event struct {
	Seq     int64     `json:"seq"`
	Time    time.Time `json:"time"`
	Type    string    `json:"type"` // e.g. "stack.deploy", "task.crashloop"
	Stack   string    `json:"stack,omitempty"`
	Service string    `json:"service,omitempty"`
	Task    string    `json:"task,omitempty"`
	Node    string    `json:"node,omitempty"`
	// Subject names what the event is about when it is none of the
	// above (a certificate's host, a route).
	Subject string `json:"subject,omitempty"`
	Message string `json:"message"`
}

// Job run states.
const (
	JobPending   = "pending"
	JobRunning   = "running"
	JobSucceeded = "succeeded"
	JobFailed    = "failed"
	JobSkipped   = "skipped" // a scheduled run skipped because the previous one still ran
)

// JobRun is one run of a one-off (`berth run`) or scheduled job.
type JobRun struct {
	ID        string    `json:"id"`
	Stack     string    `json:"stack"`
	Service   string    `json:"service"`
	Revision  int       `json:"revision"`
	Command   []string  `json:"command,omitempty"`
	Scheduled bool      `json:"scheduled,omitempty"`
	Node      string    `json:"node,omitempty"`
	State     string    `json:"state"`
	ExitCode  int       `json:"exit_code"`
	Reason    string    `json:"reason,omitempty"`
	Output    string    `json:"output,omitempty"` // last bytes of output (kept for history)
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at,omitempty"`
}
