package trust

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/nacl/secretbox"
	"golang.org/x/crypto/scrypt"
)

func testRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func pushRandom(t *testing.T, ref string) {
	t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := name.ParseReference(ref)
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
}

func keyPair(t *testing.T) (string, string) {
	t.Helper()
	prefix := filepath.Join(t.TempDir(), "k")
	if err := GenerateKey(prefix); err != nil {
		t.Fatal(err)
	}
	priv, _ := os.ReadFile(prefix + ".key")
	pub, _ := os.ReadFile(prefix + ".pub")
	if fi, _ := os.Stat(prefix + ".key"); fi.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %o", fi.Mode().Perm())
	}
	return string(priv), string(pub)
}

func TestSignAndVerify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := testRegistry(t)
	a, b := reg+"/app/a:v1", reg+"/app/b:v1"
	pushRandom(t, a)
	pushRandom(t, b)
	privPEM, pubPEM := keyPair(t)
	_, otherPub := keyPair(t)
	key, err := ParsePrivateKey([]byte(privPEM), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := New(Options{})

	if _, err := c.Verify(ctx, a, []string{pubPEM}); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "is not signed") {
		t.Fatalf("unsigned: %v", err)
	}
	signed, err := c.Sign(ctx, a, key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Verify(ctx, a, []string{otherPub, pubPEM})
	if err != nil || got != signed {
		t.Fatalf("verify = %q, %v; want %q", got, err, signed)
	}
	if got, err := c.Verify(ctx, signed, []string{pubPEM}); err != nil || got != signed {
		t.Fatalf("verify by digest = %q, %v", got, err)
	}
	if _, err := c.Verify(ctx, a, []string{otherPub}); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("wrong key: %v", err)
	}
	// A second signature is added beside the first.
	if _, err := c.Sign(ctx, a, key); err != nil {
		t.Fatal(err)
	}

	// Tampered: a's signature manifest copied to b's digest names a's
	// digest, so it does not vouch for b.
	da, _ := c.Resolve(ctx, a)
	db, _ := c.Resolve(ctx, b)
	ta, _ := signatureTag(da)
	tb, _ := signatureTag(db)
	sigImg, err := remote.Image(ta)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tb, sigImg); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Verify(ctx, b, []string{pubPEM}); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "not this digest") {
		t.Fatalf("copied signature: %v", err)
	}
	// Tampered: b's signature bytes changed.
	if _, err := c.Sign(ctx, b, key); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Verify(ctx, b, []string{pubPEM}); err != nil {
		t.Fatalf("b after signing: %v", err)
	}
	sigImg, _ = remote.Image(tb)
	m, _ := sigImg.Manifest()
	fresh := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	for _, l := range m.Layers {
		layer, err := sigImg.LayerByDigest(l.Digest)
		if err != nil {
			t.Fatal(err)
		}
		sig, _ := base64.StdEncoding.DecodeString(l.Annotations[signatureAnnotation])
		sig[len(sig)/2] ^= 0x55
		fresh, err = mutate.Append(fresh, mutate.Addendum{Layer: layer, MediaType: payloadMediaType,
			Annotations: map[string]string{signatureAnnotation: base64.StdEncoding.EncodeToString(sig)}})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := remote.Write(tb, fresh); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Verify(ctx, b, []string{pubPEM}); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("tampered signature: %v", err)
	}
	if _, err := c.Verify(ctx, reg+"/app/none:v1", []string{pubPEM}); err == nil {
		t.Fatal("a missing image verified")
	}
	if _, err := c.Verify(ctx, a, []string{"not a key"}); err == nil || !strings.Contains(err.Error(), "trusted key 1") {
		t.Fatalf("bad key: %v", err)
	}
}

// TestEncryptedCosignKey opens a key in cosign's encrypted format.
func TestEncryptedCosignKey(t *testing.T) {
	t.Parallel()
	privPEM, pubPEM := keyPair(t)
	b, _ := pem.Decode([]byte(privPEM))
	salt := make([]byte, 32)
	var nonce [24]byte
	_, _ = rand.Read(salt)
	_, _ = rand.Read(nonce[:])
	k, err := scrypt.Key([]byte("pw"), salt, 1<<15, 8, 1, 32)
	if err != nil {
		t.Fatal(err)
	}
	var key [32]byte
	copy(key[:], k)
	var doc encryptedKey
	doc.KDF.Name, doc.KDF.Salt = "scrypt", salt
	doc.KDF.Params.N, doc.KDF.Params.R, doc.KDF.Params.P = 1<<15, 8, 1
	doc.Cipher.Name, doc.Cipher.Nonce = "nacl/secretbox", nonce[:]
	doc.Ciphertext = secretbox.Seal(nil, b.Bytes, &nonce, &key)
	raw, _ := json.Marshal(doc)
	enc := pem.EncodeToMemory(&pem.Block{Type: pemSigstoreEncrypt, Bytes: raw})
	signer, err := ParsePrivateKey(enc, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := ParsePublicKey([]byte(pubPEM))
	sig, _ := sign(signer, []byte("payload"))
	if !verify(pub, []byte("payload"), sig) {
		t.Fatal("signature with the decrypted key does not verify")
	}
	if _, err := ParsePrivateKey(enc, []byte("wrong")); err == nil || !strings.Contains(err.Error(), "wrong password") {
		t.Fatalf("wrong password: %v", err)
	}
	doc.KDF.Params.N = 1 << 30
	raw, _ = json.Marshal(doc)
	if _, err := ParsePrivateKey(pem.EncodeToMemory(&pem.Block{Type: pemSigstoreEncrypt, Bytes: raw}), []byte("pw")); err == nil {
		t.Fatal("a key asking for 2^30 scrypt rounds was accepted")
	}
}

// FuzzParseKeys: hostile key files never panic the parsers.
func FuzzParseKeys(f *testing.F) {
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"))
	f.Add([]byte("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\neyJrZGYiOnt9fQ==\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ParsePublicKey(data)
		_, _ = ParsePrivateKey(data, []byte("pw"))
	})
}
