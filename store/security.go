package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-dev/berth/api"
)

// Security state (server is the only writer of each):
//
//	/berth/secrets/STACK/NAME/NNNNNNNN   api.SealedSecret (sealed, never plaintext)
//	/berth/owners/STACK                  api.StackOwner (the stack's tenant)
//	/berth/tokens/ID                     api.Token (hash of the secret only)
//	/berth/tenants/NAME                  api.Tenant (quotas)
//	/berth/audit/NNNNNNNNNNNNNNNNNNNN-R  api.AuditEntry (append-only)
const (
	prefixSecrets = root + "secrets/"
	prefixOwners  = root + "owners/"
	prefixTokens  = root + "tokens/"
	prefixTenants = root + "tenants/"
	prefixAudit   = root + "audit/"
)

// Secrets is the watchable prefix of sealed secrets.
const Secrets = prefixSecrets

func secretPrefix(stack, name string) string { return prefixSecrets + stack + "/" + name + "/" }
func secretKey(stack, name string, v int) string {
	return fmt.Sprintf("%s%08d", secretPrefix(stack, name), v)
}

// MaxSecretVersions is how many versions of a secret are kept: tasks of
// the previous revision may still restart during a rollout.
const MaxSecretVersions = 3

// PutSecretVersion stores a new version of a secret; it fails with
// ErrChanged if that version exists already. Versions beyond
// MaxSecretVersions are trimmed in the same transaction.
func (s *Store) PutSecretVersion(ctx context.Context, sec api.SealedSecret) error {
	key := secretKey(sec.Stack, sec.Name, sec.Version)
	ops := []clientv3.Op{clientv3.OpPut(key, mustJSON(sec))}
	if old := sec.Version - MaxSecretVersions; old >= 1 {
		ops = append(ops, clientv3.OpDelete(secretPrefix(sec.Stack, sec.Name), clientv3.WithRange(secretKey(sec.Stack, sec.Name, old+1))))
	}
	return s.commit(ctx, "store secret "+sec.Stack+"/"+sec.Name,
		[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)}, ops)
}

// ReplaceSecretVersion rewrites a stored version (a re-wrapped data key)
// if it is unchanged since it was read at modRev.
func (s *Store) ReplaceSecretVersion(ctx context.Context, sec api.SealedSecret, modRev int64) error {
	key := secretKey(sec.Stack, sec.Name, sec.Version)
	return s.commit(ctx, "rewrap secret "+sec.Stack+"/"+sec.Name,
		[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", modRev)},
		[]clientv3.Op{clientv3.OpPut(key, mustJSON(sec))})
}

// GetSecretVersion reads one version of a secret.
func (s *Store) GetSecretVersion(ctx context.Context, stack, name string, v int) (api.SealedSecret, error) {
	sec, _, err := getJSON[api.SealedSecret](ctx, s, secretKey(stack, name, v))
	return sec, err
}

// SecretVersionRev is a stored secret version with its etcd version.
type SecretVersionRev struct {
	Secret api.SealedSecret
	ModRev int64
}

// ListSecretVersions returns every stored secret version of a stack (of
// all stacks when stack is ""), by stack, name and version.
func (s *Store) ListSecretVersions(ctx context.Context, stack string) ([]SecretVersionRev, error) {
	p := prefixSecrets
	if stack != "" {
		p += stack + "/"
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, p, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, unavailable("list secrets", err)
	}
	out := make([]SecretVersionRev, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var v api.SealedSecret
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		out = append(out, SecretVersionRev{Secret: v, ModRev: kv.ModRevision})
	}
	return out, nil
}

// DeleteSecret removes every version of a secret.
func (s *Store) DeleteSecret(ctx context.Context, stack, name string) error {
	return s.del(ctx, secretPrefix(stack, name), clientv3.WithPrefix())
}

// --- stack owners ---

// ClaimStack records tenant as the owner of stack unless it has one, and
// returns the owner it has now (first claim wins).
func (s *Store) ClaimStack(ctx context.Context, stack, tenant string) (string, error) {
	key := prefixOwners + stack
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, mustJSON(api.StackOwner{Stack: stack, Tenant: tenant, CreatedAt: time.Now().UTC()}))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return "", unavailable("claim stack", err)
	}
	if resp.Succeeded {
		return tenant, nil
	}
	var o api.StackOwner
	if err := json.Unmarshal(resp.Responses[0].GetResponseRange().Kvs[0].Value, &o); err != nil {
		return "", fmt.Errorf("decode owner of %s: %w", stack, err)
	}
	return o.Tenant, nil
}

// StackOwner returns the tenant of a stack; ok is false for a stack
// nobody claimed.
func (s *Store) StackOwner(ctx context.Context, stack string) (tenant string, ok bool, err error) {
	o, _, err := getJSON[api.StackOwner](ctx, s, prefixOwners+stack)
	if errors.Is(err, ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return o.Tenant, true, nil
}

// ListOwners returns every claimed stack.
func (s *Store) ListOwners(ctx context.Context) ([]api.StackOwner, error) {
	return listJSON[api.StackOwner](ctx, s, prefixOwners)
}

// ReleaseStack forgets a stack's owner if neither the stack nor any of
// its secrets exists any more.
func (s *Store) ReleaseStack(ctx context.Context, stack string) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	_, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(stackKey(stack)), "=", 0),
			clientv3.Compare(clientv3.CreateRevision(prefixSecrets+stack+"/").WithPrefix(), "=", 0)).
		Then(clientv3.OpDelete(prefixOwners + stack)).
		Commit()
	if err != nil {
		return unavailable("release stack", err)
	}
	return nil
}

// --- tokens ---

// PutToken stores a token record.
func (s *Store) PutToken(ctx context.Context, t api.Token) error {
	return s.put(ctx, prefixTokens+t.ID, t)
}

// GetToken reads a token record.
func (s *Store) GetToken(ctx context.Context, id string) (api.Token, error) {
	t, _, err := getJSON[api.Token](ctx, s, prefixTokens+id)
	return t, err
}

// ListTokens returns every token record.
func (s *Store) ListTokens(ctx context.Context) ([]api.Token, error) {
	return listJSON[api.Token](ctx, s, prefixTokens)
}

// --- tenants ---

// PutTenant stores a tenant's settings.
func (s *Store) PutTenant(ctx context.Context, t api.Tenant) error {
	return s.put(ctx, prefixTenants+t.Name, t)
}

// GetTenant reads a tenant; a tenant never set has no quota.
func (s *Store) GetTenant(ctx context.Context, name string) (api.Tenant, error) {
	t, _, err := getJSON[api.Tenant](ctx, s, prefixTenants+name)
	if errors.Is(err, ErrNotFound) {
		return api.Tenant{Name: name}, nil
	}
	return t, err
}

// ListTenants returns every tenant with settings.
func (s *Store) ListTenants(ctx context.Context) ([]api.Tenant, error) {
	return listJSON[api.Tenant](ctx, s, prefixTenants)
}

// --- audit ---

// maxAudit bounds the stored audit log; the oldest entries go first.
const maxAudit = 100000

// AppendAudit stores an audit entry. Entries are never changed: there is
// no other write to this prefix but the trim of the oldest.
func (s *Store) AppendAudit(ctx context.Context, e api.AuditEntry) error {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	return s.put(ctx, logKey(prefixAudit, e.Time), e)
}

// ListAudit returns up to limit audit entries, oldest first, with their
// Seq set; since skips entries up to that Seq.
func (s *Store) ListAudit(ctx context.Context, since int64, limit int) ([]api.AuditEntry, error) {
	return listRecent(ctx, s, prefixAudit, "list audit", since, limit, func(e *api.AuditEntry, seq int64) { e.Seq = seq })
}

// TrimAudit deletes audit entries beyond the newest maxAudit.
func (s *Store) TrimAudit(ctx context.Context) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, prefixAudit, clientv3.WithPrefix(), clientv3.WithKeysOnly(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(maxAudit+1))
	if err != nil {
		return unavailable("trim audit", err)
	}
	if len(resp.Kvs) <= maxAudit {
		return nil
	}
	oldestKept := string(resp.Kvs[maxAudit-1].Key)
	if _, err := s.cli.Delete(ctx, prefixAudit, clientv3.WithRange(oldestKept)); err != nil {
		return unavailable("trim audit", err)
	}
	return nil
}
