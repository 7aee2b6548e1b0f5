package secrets

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/store"
)

// Vault stores and reads sealed secrets in etcd. The server writes; the
// agents of this process read (they share the key ring).
type Vault struct {
	st   *store.Store
	keys *Keyring
}

// NewVault returns a vault over st sealing with keys.
func NewVault(st *store.Store, keys *Keyring) *Vault { return &Vault{st: st, keys: keys} }

// Keys is the vault's key ring.
func (v *Vault) Keys() *Keyring { return v.keys }

// WriteMode says what a write expects of the secret's existence.
type WriteMode int

// Write modes.
const (
	Create WriteMode = iota // the secret must not exist
	Rotate                  // the secret must exist; always a new version
	Ensure                  // a new version only if the value differs (deploys)
)

// List returns the newest version of each secret of a stack (every
// stack when stack is ""), sorted by stack and name.
func (v *Vault) List(ctx context.Context, stack string) ([]api.SecretInfo, error) {
	all, err := v.st.ListSecretVersions(ctx, stack)
	if err != nil {
		return nil, err
	}
	byName := map[string]*api.SecretInfo{}
	var order []string
	for _, r := range all {
		s := r.Secret
		k := s.Stack + "/" + s.Name
		info, ok := byName[k]
		if !ok {
			info = &api.SecretInfo{Stack: s.Stack, Name: s.Name, CreatedAt: s.CreatedAt}
			byName[k] = info
			order = append(order, k)
		}
		if s.Version > info.Version {
			info.Version, info.KeyID, info.UpdatedAt = s.Version, s.KeyID, s.CreatedAt
		}
		if s.CreatedAt.Before(info.CreatedAt) {
			info.CreatedAt = s.CreatedAt
		}
	}
	sort.Strings(order)
	out := make([]api.SecretInfo, 0, len(order))
	for _, k := range order {
		out = append(out, *byName[k])
	}
	return out, nil
}

// Latest returns the newest version number of each secret of a stack.
func (v *Vault) Latest(ctx context.Context, stack string) (map[string]int, error) {
	infos, err := v.List(ctx, stack)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int, len(infos))
	for _, i := range infos {
		out[i.Name] = i.Version
	}
	return out, nil
}

// Write stores value as a secret of stack. It reports whether a new
// version was stored. The value is sealed before it leaves this function.
func (v *Vault) Write(ctx context.Context, stack, name string, value []byte, mode WriteMode) (api.SecretInfo, bool, error) {
	if err := api.ValidateName("stack name", stack); err != nil {
		return api.SecretInfo{}, false, err
	}
	if err := api.ValidateName("secret name", name); err != nil {
		return api.SecretInfo{}, false, err
	}
	if len(value) > api.MaxSecretSize {
		return api.SecretInfo{}, false, api.Invalidf("secret %q is %d bytes; the limit is %d", name, len(value), api.MaxSecretSize)
	}
	infos, err := v.List(ctx, stack)
	if err != nil {
		return api.SecretInfo{}, false, err
	}
	var cur *api.SecretInfo
	for i := range infos {
		if infos[i].Name == name {
			cur = &infos[i]
		}
	}
	switch {
	case mode == Create && cur != nil:
		return *cur, false, api.Conflictf("secret %q of stack %q exists (version %d); change it with `berth secret rotate %s %s`", name, stack, cur.Version, stack, name)
	case mode == Rotate && cur == nil:
		return api.SecretInfo{}, false, api.NotFoundf("stack %q has no secret %q; create it with `berth secret create %s %s`", stack, name, stack, name)
	case mode == Ensure && cur != nil:
		old, err := v.Value(ctx, stack, name, cur.Version)
		if err != nil {
			return api.SecretInfo{}, false, err
		}
		same := subtle.ConstantTimeCompare(old, value) == 1
		clear(old)
		if same {
			return *cur, false, nil
		}
	}
	next := 1
	if cur != nil {
		next = cur.Version + 1
	}
	env, err := v.keys.Seal(value, AAD(stack, name, next))
	if err != nil {
		return api.SecretInfo{}, false, fmt.Errorf("seal secret: %w", err)
	}
	now := time.Now().UTC()
	sealed := api.SealedSecret{Stack: stack, Name: name, Version: next, KeyID: env.KeyID,
		WrappedKey: env.WrappedKey, Ciphertext: env.Ciphertext, CreatedAt: now}
	if err := v.st.PutSecretVersion(ctx, sealed); err != nil {
		if errors.Is(err, store.ErrChanged) {
			return api.SecretInfo{}, false, api.Conflictf("secret %q of stack %q changed concurrently; try again", name, stack)
		}
		return api.SecretInfo{}, false, err
	}
	info := api.SecretInfo{Stack: stack, Name: name, Version: next, KeyID: env.KeyID, CreatedAt: now, UpdatedAt: now}
	if cur != nil {
		info.CreatedAt = cur.CreatedAt
	}
	return info, true, nil
}

// Value opens one version of a secret. Callers must not log or store it.
func (v *Vault) Value(ctx context.Context, stack, name string, version int) ([]byte, error) {
	s, err := v.st.GetSecretVersion(ctx, stack, name, version)
	if errors.Is(err, store.ErrNotFound) {
		return nil, api.NotFoundf("version %d of secret %q of stack %q is not stored (only the last %d versions are kept)", version, name, stack, store.MaxSecretVersions)
	}
	if err != nil {
		return nil, err
	}
	return v.keys.Open(Envelope{KeyID: s.KeyID, WrappedKey: s.WrappedKey, Ciphertext: s.Ciphertext}, AAD(stack, name, version))
}

// Delete removes every version of a secret.
func (v *Vault) Delete(ctx context.Context, stack, name string) error {
	return v.st.DeleteSecret(ctx, stack, name)
}

// RotateKey makes a fresh key-encryption key active, re-wraps every
// stored data key with it, and then drops the old keys. A crash midway
// leaves both keys in the file, so every envelope still opens and the
// next rotation finishes the work.
func (v *Vault) RotateKey(ctx context.Context) (api.KeyRotation, error) {
	id, err := v.keys.AddKey()
	if err != nil {
		return api.KeyRotation{}, err
	}
	n := 0
	// A write that sealed with the old key just before AddKey can land
	// after a pass listed the secrets: pass again until every envelope is
	// wrapped with the new key, and only then drop the old keys.
	for pass := 0; ; pass++ {
		left, err := v.rewrapAll(ctx, id, &n)
		if err != nil {
			return api.KeyRotation{}, err
		}
		if left == 0 {
			break
		}
		if pass == 4 {
			return api.KeyRotation{KeyID: id, Rewrapped: n}, fmt.Errorf("%d secrets are still wrapped with an old key after 5 passes; the old keys are kept, run the rotation again", left)
		}
	}
	if err := v.keys.Retire(); err != nil {
		return api.KeyRotation{}, err
	}
	return api.KeyRotation{KeyID: id, Rewrapped: n}, nil
}

// rewrapAll re-wraps every envelope not wrapped with key id and returns
// how many it found so (0 means the pass had nothing left to do).
func (v *Vault) rewrapAll(ctx context.Context, id string, n *int) (int, error) {
	all, err := v.st.ListSecretVersions(ctx, "")
	if err != nil {
		return 0, err
	}
	found := 0
	for _, r := range all {
		s := r.Secret
		if s.KeyID == id {
			continue
		}
		found++
		aad := AAD(s.Stack, s.Name, s.Version)
		env, err := v.keys.Rewrap(Envelope{KeyID: s.KeyID, WrappedKey: s.WrappedKey, Ciphertext: s.Ciphertext}, aad)
		if err != nil {
			return 0, err
		}
		s.KeyID, s.WrappedKey = env.KeyID, env.WrappedKey
		err = v.st.ReplaceSecretVersion(ctx, s, r.ModRev)
		if errors.Is(err, store.ErrChanged) {
			continue // trimmed or replaced meanwhile: the next pass sees it
		}
		if err != nil {
			return 0, err
		}
		*n++
	}
	return found, nil
}
