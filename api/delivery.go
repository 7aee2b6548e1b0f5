package api

import "time"

// RegistryInfo describes the embedded registry of a berth server. It
// carries the generated credential: the API is reachable only by those
// allowed to manage berth (the socket is 0600; the security issue's
// roles narrow this later).
type RegistryInfo struct {
	Addr     string `json:"addr,omitempty"` // host:port, empty when not serving
	TLS      bool   `json:"tls,omitempty"`
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// Error says why the registry is not serving.
	Error string `json:"error,omitempty"`
}

// RegistryGCRequest asks for a garbage collection of the embedded registry.
type RegistryGCRequest struct {
	// DeleteUntagged also removes manifests no tag points to.
	DeleteUntagged bool `json:"delete_untagged,omitempty"`
	DryRun         bool `json:"dry_run,omitempty"`
}

// RegistryGCResult says what a collection freed.
type RegistryGCResult struct {
	BytesBefore int64    `json:"bytes_before"`
	BytesAfter  int64    `json:"bytes_after"`
	Took        Duration `json:"took"`
}

// Approvals of an auto-update (x-berth.update.approval).
const (
	ApprovalAuto     = "auto"
	ApprovalRequired = "required"
)

// DefaultUpdateInterval is how often a followed tag is checked when the
// service sets no interval (a push to the embedded registry is noticed at
// once).
const DefaultUpdateInterval = time.Minute

// AutoUpdate makes a service follow its image's tag (x-berth.update):
// when the tag points to a new digest, a new revision is rolled out
// through the service's gates (approval auto) or recorded for approval
// (approval required).
type AutoUpdate struct {
	Follow   bool     `json:"follow"`
	Approval string   `json:"approval,omitempty"`
	Interval Duration `json:"interval,omitempty"`
}

// PendingUpdate is a new digest of a followed tag waiting for
// `berth update approve`.
type PendingUpdate struct {
	Image string    `json:"image"` // the tag followed
	From  string    `json:"from"`  // the pinned image running (repo@digest)
	To    string    `json:"to"`    // the pinned image the tag points to now
	Seen  time.Time `json:"seen"`
}

// ImagePin is what an image reference resolved to at deploy time.
type ImagePin struct {
	ID     string // the engine's image ID, when the local engine has it
	Digest string // registry/repo@sha256:… when the reference names a registry
}
