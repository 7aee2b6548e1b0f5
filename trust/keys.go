// Package trust verifies and makes cosign-compatible image signatures
// (key-based, offline): a signature is a "simple signing" payload naming
// the image's manifest digest, signed with the key, stored in the
// registry next to the image as the manifest tagged sha256-<hex>.sig.
// berth refuses to run a digest whose signature does not verify with one
// of the keys an environment trusts.
package trust

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"golang.org/x/crypto/nacl/secretbox"
	"golang.org/x/crypto/scrypt"
)

// PEM block types of keys.
const (
	pemPublic          = "PUBLIC KEY"
	pemPrivate         = "PRIVATE KEY"
	pemECPrivate       = "EC PRIVATE KEY"
	pemSigstoreEncrypt = "ENCRYPTED SIGSTORE PRIVATE KEY"
	pemCosignEncrypt   = "ENCRYPTED COSIGN PRIVATE KEY"
)

// ParsePublicKey reads a PEM public key (what `cosign generate-key-pair`
// writes to cosign.pub, or `berth keygen` to NAME.pub).
func ParsePublicKey(data []byte) (crypto.PublicKey, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != pemPublic {
		return nil, errors.New("not a PEM public key (-----BEGIN PUBLIC KEY-----)")
	}
	k, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	switch k.(type) {
	case *ecdsa.PublicKey, *rsa.PublicKey, ed25519.PublicKey:
		return k, nil
	}
	return nil, fmt.Errorf("public key of type %T is not supported; use ECDSA, RSA or Ed25519", k)
}

// ParsePrivateKey reads a PEM private key: unencrypted PKCS#8 or SEC 1,
// or cosign's encrypted key (scrypt + NaCl secretbox) opened with
// password.
func ParsePrivateKey(data, password []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, errors.New("not a PEM private key")
	}
	der := b.Bytes
	switch b.Type {
	case pemSigstoreEncrypt, pemCosignEncrypt:
		var err error
		if der, err = decryptCosign(b.Bytes, password); err != nil {
			return nil, err
		}
	case pemECPrivate:
		return x509.ParseECPrivateKey(der)
	case pemPrivate:
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", b.Type)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T cannot sign", k)
	}
	return s, nil
}

// encryptedKey is cosign's encrypted private key document.
type encryptedKey struct {
	KDF struct {
		Name   string `json:"name"`
		Params struct {
			N int `json:"N"`
			R int `json:"r"`
			P int `json:"p"`
		} `json:"params"`
		Salt []byte `json:"salt"`
	} `json:"kdf"`
	Cipher struct {
		Name  string `json:"name"`
		Nonce []byte `json:"nonce"`
	} `json:"cipher"`
	Ciphertext []byte `json:"ciphertext"`
}

func decryptCosign(doc, password []byte) ([]byte, error) {
	var e encryptedKey
	if err := json.Unmarshal(doc, &e); err != nil {
		return nil, fmt.Errorf("encrypted key: %w", err)
	}
	p := e.KDF.Params
	if e.KDF.Name != "scrypt" || e.Cipher.Name != "nacl/secretbox" || len(e.Cipher.Nonce) != 24 {
		return nil, fmt.Errorf("encrypted key uses %s/%s; only scrypt with nacl/secretbox is supported", e.KDF.Name, e.Cipher.Name)
	}
	// Bound the work a hostile key file can ask for.
	if p.N <= 1 || p.N > 1<<20 || p.N&(p.N-1) != 0 || p.R < 1 || p.R > 32 || p.P < 1 || p.P > 16 {
		return nil, errors.New("encrypted key: scrypt parameters out of range")
	}
	key, err := scrypt.Key(password, e.KDF.Salt, p.N, p.R, p.P, 32)
	if err != nil {
		return nil, err
	}
	var k [32]byte
	var n [24]byte
	copy(k[:], key)
	copy(n[:], e.Cipher.Nonce)
	out, ok := secretbox.Open(nil, e.Ciphertext, &n, &k)
	if !ok {
		return nil, errors.New("encrypted key: wrong password (COSIGN_PASSWORD)")
	}
	return out, nil
}

// GenerateKey writes a new ECDSA P-256 key pair: prefix.key (PKCS#8, mode
// 0600) and prefix.pub. cosign verifies signatures made with it.
func GenerateKey(prefix string) error {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(prefix+".key", os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if err := errors.Join(pem.Encode(f, &pem.Block{Type: pemPrivate, Bytes: der}), f.Close()); err != nil {
		return err
	}
	return os.WriteFile(prefix+".pub", pem.EncodeToMemory(&pem.Block{Type: pemPublic, Bytes: pub}), 0o644)
}

// sign signs payload as cosign does: ECDSA and RSA over its SHA-256,
// Ed25519 over the payload itself.
func sign(k crypto.Signer, payload []byte) ([]byte, error) {
	if _, ok := k.Public().(ed25519.PublicKey); ok {
		return k.Sign(rand.Reader, payload, crypto.Hash(0))
	}
	h := sha256.Sum256(payload)
	return k.Sign(rand.Reader, h[:], crypto.SHA256)
}

// verify checks sig over payload with pub.
func verify(pub crypto.PublicKey, payload, sig []byte) bool {
	h := sha256.Sum256(payload)
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return ecdsa.VerifyASN1(k, h[:], sig)
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, h[:], sig) == nil
	case ed25519.PublicKey:
		return ed25519.Verify(k, payload, sig)
	}
	return false
}
