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
