// Package runtime is the seam between berth and a container engine. The
// Docker driver (runtime/docker) is the product; runtime/fake exists only for
// unit tests and simulations.
//
// Contract for every implementation: each method honours ctx (callers give
// every call a deadline), returns errors that wrap the kinds below so callers
// can branch on them, and never touches an object whose labels it was not
// asked about.
package runtime

import (
	"context"
	"errors"
	"io"
	"time"
)

// Error kinds a driver wraps.
var (
	ErrNotFound    = errors.New("not found")    // no such container, image, network or volume
	ErrConflict    = errors.New("conflict")     // a name already in use
	ErrEngine      = errors.New("engine error") // the engine answered with a failure
	ErrUnreachable = errors.New("engine unreachable")
)

// Driver runs containers on one engine.
type Driver interface {
	// Info pings the engine and reports its version and capacity.
	Info(ctx context.Context) (EngineInfo, error)

	// EnsureNetwork creates a bridge network with the given name and labels,
	// or returns the ID of an existing one. An existing network whose labels
	// lack any of the given labels is not ours: ErrConflict.
	EnsureNetwork(ctx context.Context, name string, labels map[string]string, internal bool) (string, error)
	// RemoveNetwork removes a network by ID or name; callers holding a
	// listing pass the ID, which stays unambiguous if a name was ever
	// created twice.
	RemoveNetwork(ctx context.Context, nameOrID string) error
	// ListNetworks returns networks carrying all the given labels.
	ListNetworks(ctx context.Context, labels map[string]string) ([]Network, error)

	// EnsureVolume creates a named volume, or accepts an existing one whose
	// labels include the given ones (ErrConflict otherwise).
	EnsureVolume(ctx context.Context, v VolumeSpec) error
	RemoveVolume(ctx context.Context, name string) error
	ListVolumes(ctx context.Context, labels map[string]string) ([]Volume, error)

	// Create creates (does not start) a container. A name already in use is
	// ErrConflict; callers then adopt the existing container by its labels.
	Create(ctx context.Context, spec ContainerSpec) (string, error)
	Start(ctx context.Context, id string) error
	// Stop sends the stop signal, waits up to grace, then kills.
	Stop(ctx context.Context, id string, grace time.Duration) error
	Kill(ctx context.Context, id string, signal string) error
	// Remove removes a container (forcefully if running) and its anonymous volumes.
	Remove(ctx context.Context, id string) error
	Inspect(ctx context.Context, id string) (Container, error)
	// List returns containers, running or not, carrying all the given labels.
	List(ctx context.Context, labels map[string]string) ([]Container, error)
	// Wait blocks until the container is not running and returns its exit code.
	Wait(ctx context.Context, id string) (int, error)
	// Logs streams a container's output, demultiplexed into stdout and stderr.
	Logs(ctx context.Context, id string, opts LogOptions, stdout, stderr io.Writer) error

	// Events streams container events for containers carrying all the given
	// labels until ctx ends. The error channel gets one value when the
	// stream breaks; callers resubscribe and resync.
	Events(ctx context.Context, labels map[string]string) (<-chan Event, <-chan error)

	// ImageInspect resolves a reference to the image's ID (sha256 digest)
	// and repo digests. A missing image is ErrNotFound.
	ImageInspect(ctx context.Context, ref string) (Image, error)
}

// EngineInfo describes the engine.
type EngineInfo struct {
	Version       string
	APIVersion    string
	NanoCPUs      int64
	Memory        int64
	Hostname      string
	OS            string
	CgroupVersion string
}

// Network is an engine network.
type Network struct {
	ID     string
	Name   string
	Labels map[string]string
}

// VolumeSpec describes a named volume to create.
type VolumeSpec struct {
	Name       string
	Driver     string
	DriverOpts map[string]string
	Labels     map[string]string
}

// Volume is an engine volume.
type Volume struct {
	Name   string
	Labels map[string]string
}

// ContainerSpec is everything needed to create a container.
type ContainerSpec struct {
	Name       string
	Image      string // image ID or reference
	Cmd        []string
	Entrypoint []string
	Env        []string // KEY=VALUE
	User       string
	WorkingDir string
	Hostname   string
	Labels     map[string]string

	// Network is the user-defined network to join ("" with HostNetwork).
	Network     string
	Aliases     []string
	HostNetwork bool

	Mounts []Mount
	Tmpfs  map[string]string // target → options (e.g. "rw,noexec,nosuid,size=1m")

	Memory      int64
	NanoCPUs    int64
	CPUShares   int64
	PidsLimit   int64
	CapAdd      []string
	CapDrop     []string
	SecurityOpt []string
	ReadOnly    bool
	Sysctls     map[string]string
	Ulimits     []Ulimit

	Health *HealthConfig

	StopSignal  string
	StopTimeout time.Duration

	// LogMaxSize and LogMaxFiles cap the engine's json-file log.
	LogMaxSize  string
	LogMaxFiles int
}

// Mount is a volume, bind or tmpfs mount.
type Mount struct {
	Type     string // volume, bind, tmpfs
	Source   string
	Target   string
	ReadOnly bool
}

// Ulimit is a named soft/hard limit.
type Ulimit struct {
	Name       string
	Soft, Hard int64
}

// HealthConfig is the engine's health check.
type HealthConfig struct {
	Test          []string // ["CMD", ...] or ["CMD-SHELL", "..."]
	Interval      time.Duration
	Timeout       time.Duration
	StartPeriod   time.Duration
	StartInterval time.Duration
	Retries       int
}

// HealthResult is one run of a container's health check. ExitCode is the
// check's own exit status, or NoVerdict when the engine got no answer: the
// check timed out or could not be run.
type HealthResult struct {
	Start    time.Time
	End      time.Time
	ExitCode int
	Output   string
}

// NoVerdict is the exit code the engine records for a health check that
// gave no answer of its own.
const NoVerdict = -1

// Container states as the engine reports them.
const (
	StateCreated    = "created"
	StateRunning    = "running"
	StateExited     = "exited"
	StateDead       = "dead"
	StatePaused     = "paused"
	StateRestarting = "restarting"
	StateRemoving   = "removing"
)

// Container is an engine container.
type Container struct {
	ID        string
	Name      string
	Image     string // image ID it was created from
	Labels    map[string]string
	State     string
	ExitCode  int
	OOMKilled bool
	Error     string
	Health    string // "", starting, healthy, unhealthy
	// HealthLog holds the engine's last few health check results, oldest
	// first (Inspect only).
	HealthLog  []HealthResult
	StartedAt  time.Time
	FinishedAt time.Time
	// Addresses maps network name to the container's IPv4 address on it.
	Addresses map[string]string
	Pid       int
	// LogDriver is the container's log driver ("json-file" for berth's
	// tasks) and LogPath the json-file log's path on the engine's host:
	// both from Inspect only. The path is the engine's, not necessarily
	// readable by berth (rootless or remote engine).
	LogDriver string
	LogPath   string
}

// Running reports whether the container's process is up.
func (c Container) Running() bool { return c.State == StateRunning }

// Event actions berth reacts to.
const (
	EventStart   = "start"
	EventDie     = "die"
	EventOOM     = "oom"
	EventDestroy = "destroy"
	EventHealth  = "health_status"
	EventCreate  = "create"
	EventStop    = "stop"
	EventKill    = "kill"
)

// Event is a container event from the engine.
type Event struct {
	Action   string // one of the Event* constants; health_status carries Health
	ID       string
	Labels   map[string]string
	ExitCode int    // for die
	Health   string // for health_status: healthy or unhealthy
	Time     time.Time
}

// LogOptions selects a range of a container's output.
type LogOptions struct {
	Follow     bool
	Since      time.Time
	Until      time.Time
	Timestamps bool
	Tail       string // "all" or a number
}

// Image is a resolved image.
type Image struct {
	ID          string // sha256:...
	RepoTags    []string
	RepoDigests []string
	User        string // the image's configured user
	Created     time.Time
	Size        int64
}

// ContainerStats is one reading of a container's resource use.
type ContainerStats struct {
	Time time.Time
	// CPU is the CPU time used since the container (re)started.
	CPU time.Duration
	// MemoryBytes is the memory in use, page cache that can be dropped excluded.
	MemoryBytes int64
	// RxBytes and TxBytes are network bytes received and sent since start.
	RxBytes, TxBytes uint64
}
