package api

import (
	"regexp"
	"strings"
	"time"
)

// SecretInfo describes a secret of a stack, never its value.
type SecretInfo struct {
	Stack     string    `json:"stack"`
	Name      string    `json:"name"`
	Version   int       `json:"version"`
	KeyID     string    `json:"key_id,omitempty"` // key-encryption key of the newest version
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// UsedBy lists the services whose current revision mounts it.
	UsedBy []string `json:"used_by,omitempty"`
}

// MaxSecretSize bounds a secret's value, like the engine's 500KiB.
const MaxSecretSize = 500 << 10

// SecretValue is the body of `berth secret create` and `rotate`.
type SecretValue struct {
	Value []byte `json:"value"` // base64 in JSON
}

// SecretChange reports a secret write.
type SecretChange struct {
	Secret  SecretInfo      `json:"secret"`
	Changes []ServiceChange `json:"changes,omitempty"` // services rolled to a new revision
}

// SealedSecret is one stored version of a secret: its value sealed with a
// data key, the data key wrapped by a key-encryption key that never
// leaves the server's data directory. It is kept in etcd and never
// returned by the API.
type SealedSecret struct {
	Stack      string    `json:"stack"`
	Name       string    `json:"name"`
	Version    int       `json:"version"`
	KeyID      string    `json:"key_id"`
	WrappedKey []byte    `json:"wrapped_key"`
	Ciphertext []byte    `json:"ciphertext"`
	CreatedAt  time.Time `json:"created_at"`
}

// KeyRotation reports a rotation of the key-encryption key.
type KeyRotation struct {
	KeyID     string `json:"key_id"`
	Rewrapped int    `json:"rewrapped"`
}

// Roles of API tokens, from least to most privileged.
const (
	RoleViewer   = "viewer"   // reads
	RoleDeployer = "deployer" // reads, deploys and operates stacks and their secrets
	RoleAdmin    = "admin"    // everything, tokens, tenants and audit included
)

// RoleRank orders roles; unknown roles rank 0 (no access).
func RoleRank(role string) int {
	switch role {
	case RoleViewer:
		return 1
	case RoleDeployer:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// Token is an API token as stored: the secret part only as a hash.
type Token struct {
	ID        string    `json:"id"`
	Name      string    `json:"name,omitempty"`
	Role      string    `json:"role"`
	Tenant    string    `json:"tenant,omitempty"` // "" = every tenant
	Hash      []byte    `json:"hash,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// TokenRequest creates a token.
type TokenRequest struct {
	Name   string   `json:"name,omitempty"`
	Role   string   `json:"role"`
	Tenant string   `json:"tenant,omitempty"`
	TTL    Duration `json:"ttl,omitempty"` // default 30 days
}

// TokenCreated answers a token creation: the only time the token's
// secret is shown.
type TokenCreated struct {
	Token  Token  `json:"token"`
	Secret string `json:"secret"`
}

// StackOwner records which tenant a stack name belongs to. It is claimed
// by the first deploy or secret of the stack and kept while either exists.
type StackOwner struct {
	Stack     string    `json:"stack"`
	Tenant    string    `json:"tenant"`
	CreatedAt time.Time `json:"created_at"`
}

// Quota bounds what a tenant's stacks may ask for in total; zero means
// no bound.
type Quota struct {
	NanoCPUs    int64 `json:"nano_cpus,omitempty"`
	MemoryBytes int64 `json:"memory_bytes,omitempty"`
	Tasks       int   `json:"tasks,omitempty"`
}

// Tenant is a tenant's settings.
type Tenant struct {
	Name      string    `json:"name"`
	Quota     Quota     `json:"quota"`
	UpdatedAt time.Time `json:"updated_at"`
}

// TenantUsage is a tenant with what its stacks use now.
type TenantUsage struct {
	Tenant
	Used Quota `json:"used"`
}

// AuditEntry records one mutating API call.
type AuditEntry struct {
	Seq      int64     `json:"seq"`
	Time     time.Time `json:"time"`
	Who      string    `json:"who"` // "local" (unix socket) or "token:ID (name)"
	Role     string    `json:"role"`
	Tenant   string    `json:"tenant,omitempty"`
	From     string    `json:"from"` // remote address, or "unix"
	Method   string    `json:"method"`
	Path     string    `json:"path"`
	Stack    string    `json:"stack,omitempty"`
	Status   int       `json:"status"`
	Outcome  string    `json:"outcome"` // ok, denied, failed
	Error    string    `json:"error,omitempty"`
	Duration Duration  `json:"duration"`
}

// Whoami answers GET /v1/whoami.
type Whoami struct {
	Who    string `json:"who"`
	Role   string `json:"role"`
	Tenant string `json:"tenant,omitempty"`
}

// SecretsDir is where secrets appear in a container.
const SecretsDir = "/run/secrets"

// SecretFile is the file name of a secret reference under SecretsDir:
// the target if given (a name, or a path directly under /run/secrets),
// else the source.
func (r FileRef) SecretFile() (string, error) {
	name := r.Target
	if name == "" {
		name = r.Source
	}
	name = strings.TrimPrefix(name, SecretsDir+"/")
	if !secretFileRE.MatchString(name) {
		return "", Invalidf("secret target %q: berth delivers secrets as files directly under %s; give a file name (letters, digits, '.', '_', '-')", r.Target, SecretsDir)
	}
	return name, nil
}

var secretFileRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// TrustPolicy requires image signatures (x-berth.trust): before a digest
// may run, a cosign-compatible signature of it must verify with one of
// Keys.
type TrustPolicy struct {
	Keys []string `json:"keys"` // PEM public keys
}
