package trust

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// cosign's wire format.
const (
	payloadMediaType    = "application/vnd.dev.cosign.simplesigning.v1+json"
	signatureAnnotation = "dev.cosignproject.cosign/signature"
	payloadType         = "cosign container image signature"
	// maxPayload bounds a signature payload read from a registry.
	maxPayload = 64 << 10
	// maxSignatures bounds the layers of a signature manifest looked at.
	maxSignatures = 64
)

// Payload is cosign's simple signing payload.
type Payload struct {
	Critical struct {
		Identity struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
		Image struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
	Optional map[string]any `json:"optional"`
}

// ErrUntrusted says an image has no signature that verifies.
var ErrUntrusted = errors.New("no valid signature")

// Options configure registry access.
type Options struct {
	// Timeout bounds each operation against a registry (default 30s).
	Timeout time.Duration
	// Keychain finds registry credentials (default: the Docker config).
	Keychain authn.Keychain
}

// Client signs and verifies images in registries.
type Client struct{ opts Options }

// New returns a client.
func New(opts Options) *Client {
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.Keychain == nil {
		opts.Keychain = authn.DefaultKeychain
	}
	return &Client{opts: opts}
}

func (c *Client) remote(ctx context.Context) []remote.Option {
	return []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(c.opts.Keychain)}
}

// Resolve returns the manifest digest an image reference names now.
func (c *Client) Resolve(ctx context.Context, ref string) (name.Digest, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return name.Digest{}, fmt.Errorf("image reference %q: %w", ref, err)
	}
	if d, ok := r.(name.Digest); ok {
		return d, nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	desc, err := remote.Head(r, c.remote(ctx)...)
	if err != nil {
		return name.Digest{}, fmt.Errorf("resolve %s in its registry: %w", ref, err)
	}
	return r.Context().Digest(desc.Digest.String()), nil
}

// signatureTag is where cosign keeps the signatures of digest d.
func signatureTag(d name.Digest) (name.Tag, error) {
	h, err := v1.NewHash(d.DigestStr())
	if err != nil {
		return name.Tag{}, err
	}
	return d.Context().Tag(h.Algorithm + "-" + h.Hex + ".sig"), nil
}

// Sign signs the digest ref names (resolving a tag first) with key and
// adds the signature to the image's signature manifest, as `cosign sign
// --key` does. It returns the signed digest reference.
func (c *Client) Sign(ctx context.Context, ref string, key crypto.Signer) (string, error) {
	d, err := c.Resolve(ctx, ref)
	if err != nil {
		return "", err
	}
	var p Payload
	p.Critical.Identity.DockerReference = d.Context().String()
	p.Critical.Image.DockerManifestDigest = d.DigestStr()
	p.Critical.Type = payloadType
	payload, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	sig, err := sign(key, payload)
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	tag, err := signatureTag(d)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	if img, err := remote.Image(tag, c.remote(ctx)...); err == nil {
		base = img // keep the signatures already there
	} else if !isNotFound(err) {
		return "", fmt.Errorf("read %s: %w", tag, err)
	}
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:       static.NewLayer(payload, payloadMediaType),
		Annotations: map[string]string{signatureAnnotation: base64.StdEncoding.EncodeToString(sig)},
		MediaType:   payloadMediaType,
	})
	if err != nil {
		return "", err
	}
	if err := remote.Write(tag, img, c.remote(ctx)...); err != nil {
		return "", fmt.Errorf("write %s: %w", tag, err)
	}
	return d.String(), nil
}

func isNotFound(err error) bool {
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode == 404
	}
	return false
}

// Verify resolves ref and checks that one of the signatures stored for
// its digest verifies with one of keys (PEM public keys) and names that
// digest. It returns the verified digest reference (repo@sha256:…); a
// deploy runs exactly that. Errors wrap ErrUntrusted when the image is
// unsigned or no signature verifies.
func (c *Client) Verify(ctx context.Context, ref string, keys []string) (string, error) {
	if len(keys) == 0 {
		return "", fmt.Errorf("no trusted keys given")
	}
	pubs := make([]crypto.PublicKey, 0, len(keys))
	for i, k := range keys {
		p, err := ParsePublicKey([]byte(k))
		if err != nil {
			return "", fmt.Errorf("trusted key %d: %w", i+1, err)
		}
		pubs = append(pubs, p)
	}
	d, err := c.Resolve(ctx, ref)
	if err != nil {
		return "", err
	}
	tag, err := signatureTag(d)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	img, err := remote.Image(tag, c.remote(ctx)...)
	if isNotFound(err) {
		return "", fmt.Errorf("%w: %s is not signed (no %s); sign it with `berth sign %s --key KEY` or cosign", ErrUntrusted, d, tag.TagStr(), ref)
	}
	if err != nil {
		return "", fmt.Errorf("read the signatures of %s: %w", d, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return "", fmt.Errorf("read the signatures of %s: %w", d, err)
	}
	var problems []string
	for i, l := range m.Layers {
		if i >= maxSignatures {
			break
		}
		if l.MediaType != payloadMediaType || l.Size > maxPayload {
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(l.Annotations[signatureAnnotation])
		if err != nil || len(sig) == 0 {
			problems = append(problems, "a signature annotation is not base64")
			continue
		}
		layer, err := img.LayerByDigest(l.Digest)
		if err != nil {
			return "", err
		}
		payload, err := readPayload(layer)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		signed := false
		for _, p := range pubs {
			if verify(p, payload, sig) {
				signed = true
				break
			}
		}
		if !signed {
			problems = append(problems, "a signature does not verify with any trusted key")
			continue
		}
		var p Payload
		if err := json.Unmarshal(payload, &p); err != nil {
			problems = append(problems, "a signed payload is not JSON")
			continue
		}
		if p.Critical.Type != payloadType || p.Critical.Image.DockerManifestDigest != d.DigestStr() {
			problems = append(problems, fmt.Sprintf("a signed payload names %s, not this digest", p.Critical.Image.DockerManifestDigest))
			continue
		}
		return d.String(), nil
	}
	if len(problems) == 0 {
		problems = append(problems, "the signature manifest holds no cosign signature")
	}
	return "", fmt.Errorf("%w for %s: %s", ErrUntrusted, d, strings.Join(problems, "; "))
}

// readPayload reads a signature's payload and checks it against its
// digest (the registry is not trusted).
func readPayload(l v1.Layer) ([]byte, error) {
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxPayload+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxPayload {
		return nil, errors.New("a signature payload is too large")
	}
	want, err := l.Digest()
	if err != nil {
		return nil, err
	}
	got, _, err := v1.SHA256(strings.NewReader(string(b)))
	if err != nil || got != want {
		return nil, errors.New("a signature payload does not match its digest")
	}
	return b, nil
}
