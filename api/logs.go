package api

import "time"

// LogLine is one line of a container's output as berth keeps it.
type LogLine struct {
	Time     time.Time `json:"time"`
	Stack    string    `json:"stack"`
	Service  string    `json:"service"`
	Task     string    `json:"task"` // task ID, or job ID for job containers
	Revision int       `json:"revision,omitempty"`
	Stream   string    `json:"stream"` // stdout or stderr
	Line     string    `json:"line"`
	// Container is the engine container the line came from (short ID).
	Container string `json:"container,omitempty"`
}

// Log streams.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
)

// LogsRequest selects lines for `berth logs`; it travels as query
// parameters of GET /v1/stacks/{stack}/logs.
type LogsRequest struct {
	// Target is a service name or a task ID (or a prefix of one).
	Target   string
	Follow   bool
	Since    time.Time
	Until    time.Time
	Grep     string // a regular expression (RE2) matched against each line
	Revision int
	Tail     int // the last N lines only (0: all)
}
