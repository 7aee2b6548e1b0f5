// Package secrets keeps berth's secrets: envelope encryption at rest (each
// value sealed with its own data key, the data key wrapped by a
// key-encryption key kept in a 0600 file under the data directory), and
// delivery to containers as files on a tmpfs berth mounts.
//
// The key-encryption keys never leave the file and never enter etcd, so a
// copy of etcd's data (a backup, a snapshot) holds no usable secret.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
)

// KeyFile is the key-encryption key file's name in the data directory.
const KeyFile = "secrets.key"

// keySize is AES-256.
const keySize = 32

// keyFileDoc is the key file's content: every key still needed to open a
// stored envelope, and the one new envelopes are sealed with.
type keyFileDoc struct {
	Active string            `json:"active"`
	Keys   map[string][]byte `json:"keys"`
}

// Keyring holds the key-encryption keys. It is safe for concurrent use.
type Keyring struct {
	path string
	mu   sync.RWMutex
	doc  keyFileDoc
}

// OpenKeyring reads the key file at path, creating it with a fresh key
// if it does not exist. A key file readable by others is refused: whoever
// can read it can open every secret.
func OpenKeyring(path string) (*Keyring, error) {
	k := &Keyring{path: path}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		id, key, err := newKey()
		if err != nil {
			return nil, err
		}
		k.doc = keyFileDoc{Active: id, Keys: map[string][]byte{id: key}}
		if err := k.save(); err != nil {
			return nil, err
		}
		return k, nil
	case err != nil:
		return nil, fmt.Errorf("secrets key file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("secrets key file %s has mode %04o; it must be readable by its owner only: chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("secrets key file: %w", err)
	}
	if err := json.Unmarshal(b, &k.doc); err != nil {
		return nil, fmt.Errorf("secrets key file %s is damaged (%v); restore it from a backup: without it stored secrets cannot be opened", path, err)
	}
	if key, ok := k.doc.Keys[k.doc.Active]; !ok || len(key) != keySize {
		return nil, fmt.Errorf("secrets key file %s has no valid active key; restore it from a backup", path)
	}
	return k, nil
}

func newKey() (string, []byte, error) {
	key := make([]byte, keySize)
	idb := make([]byte, 6)
	if _, err := rand.Read(key); err != nil {
		return "", nil, err
	}
	if _, err := rand.Read(idb); err != nil {
		return "", nil, err
	}
	return hex.EncodeToString(idb), key, nil
}

// save writes the key file atomically with mode 0600.
func (k *Keyring) save() error {
	b, err := json.Marshal(k.doc)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(k.path), ".secrets-key-*")
	if err != nil {
		return fmt.Errorf("write secrets key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write secrets key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), k.path); err != nil {
		return fmt.Errorf("write secrets key file: %w", err)
	}
	return nil
}

// ActiveKey is the ID of the key new envelopes are sealed with.
func (k *Keyring) ActiveKey() string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.doc.Active
}

// KeyIDs lists the keys in the ring, sorted.
func (k *Keyring) KeyIDs() []string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	ids := make([]string, 0, len(k.doc.Keys))
	for id := range k.doc.Keys {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// AddKey makes a fresh key the active one. Older keys stay in the ring
// until Retire, so envelopes not yet re-wrapped can still be opened.
func (k *Keyring) AddKey() (string, error) {
	id, key, err := newKey()
	if err != nil {
		return "", err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	old := k.doc
	keys := map[string][]byte{id: key}
	for kid, v := range old.Keys {
		keys[kid] = v
	}
	k.doc = keyFileDoc{Active: id, Keys: keys}
	if err := k.save(); err != nil {
		k.doc = old
		return "", err
	}
	return id, nil
}

// Retire drops every key but the active one. Call it only once every
// stored envelope is wrapped with the active key.
func (k *Keyring) Retire() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	old := k.doc
	k.doc = keyFileDoc{Active: old.Active, Keys: map[string][]byte{old.Active: old.Keys[old.Active]}}
	if err := k.save(); err != nil {
		k.doc = old
		return err
	}
	return nil
}

func (k *Keyring) key(id string) ([]byte, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	key, ok := k.doc.Keys[id]
	return key, ok
}

// Envelope is a sealed value: the value encrypted with a random data key
// (AES-256-GCM), and the data key encrypted with a key-encryption key.
// Both are bound to the secret's identity (stack, name, version) as
// additional data, so an envelope copied to another key opens nowhere.
type Envelope struct {
	KeyID      string `json:"key_id"`
	WrappedKey []byte `json:"wrapped_key"`
	Ciphertext []byte `json:"ciphertext"`
}

// Seal encrypts value for the identity aad with the active key.
func (k *Keyring) Seal(value []byte, aad string) (Envelope, error) {
	dek := make([]byte, keySize)
	if _, err := rand.Read(dek); err != nil {
		return Envelope{}, err
	}
	defer clear(dek)
	ct, err := gcmSeal(dek, value, aad)
	if err != nil {
		return Envelope{}, err
	}
	id := k.ActiveKey()
	kek, _ := k.key(id)
	wrapped, err := gcmSeal(kek, dek, "dek:"+aad)
	if err != nil {
		return Envelope{}, err
	}
	return Envelope{KeyID: id, WrappedKey: wrapped, Ciphertext: ct}, nil
}

// Open decrypts an envelope sealed for aad.
func (k *Keyring) Open(e Envelope, aad string) ([]byte, error) {
	dek, err := k.unwrap(e, aad)
	if err != nil {
		return nil, err
	}
	defer clear(dek)
	v, err := gcmOpen(dek, e.Ciphertext, aad)
	if err != nil {
		return nil, fmt.Errorf("open secret %s: %w", aad, err)
	}
	return v, nil
}

// Rewrap wraps an envelope's data key with the active key; the value's
// ciphertext is unchanged. It is what key rotation does to every secret.
func (k *Keyring) Rewrap(e Envelope, aad string) (Envelope, error) {
	if e.KeyID == k.ActiveKey() {
		return e, nil
	}
	dek, err := k.unwrap(e, aad)
	if err != nil {
		return Envelope{}, err
	}
	defer clear(dek)
	id := k.ActiveKey()
	kek, _ := k.key(id)
	wrapped, err := gcmSeal(kek, dek, "dek:"+aad)
	if err != nil {
		return Envelope{}, err
	}
	return Envelope{KeyID: id, WrappedKey: wrapped, Ciphertext: e.Ciphertext}, nil
}

func (k *Keyring) unwrap(e Envelope, aad string) ([]byte, error) {
	kek, ok := k.key(e.KeyID)
	if !ok {
		return nil, fmt.Errorf("secret %s is sealed with key %q, which is not in %s; restore the key file that sealed it", aad, e.KeyID, k.path)
	}
	dek, err := gcmOpen(kek, e.WrappedKey, "dek:"+aad)
	if err != nil {
		return nil, fmt.Errorf("open data key of secret %s: %w", aad, err)
	}
	return dek, nil
}

func gcmSeal(key, plain []byte, aad string) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, g.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return g.Seal(nonce, nonce, plain, []byte(aad)), nil
}

func gcmOpen(key, sealed []byte, aad string) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	if len(sealed) < g.NonceSize() {
		return nil, errors.New("ciphertext too short")
	}
	out, err := g.Open(nil, sealed[:g.NonceSize()], sealed[g.NonceSize():], []byte(aad))
	if err != nil {
		return nil, errors.New("authentication failed (wrong key or tampered data)")
	}
	return out, nil
}

// AAD is the identity a secret version is sealed for.
func AAD(stack, name string, version int) string {
	return fmt.Sprintf("%s/%s/%d", stack, name, version)
}
