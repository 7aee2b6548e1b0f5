package pipeline

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/berth-dev/berth/api"
)

// PromoteOptions say what to copy where.
type PromoteOptions struct {
	// Src is registry/repo:tag or registry/repo@sha256:…
	Src string
	// Dst is a registry (host:port[/prefix]: same path and tag as Src)
	// or a full registry/repo[:tag].
	Dst      string
	Keychain authn.Keychain
	// TestedFile is `berth test`'s record; a tag is promoted only if the
	// image it points to now is one whose tests passed.
	TestedFile string
	Timeout    time.Duration // default 30 minutes
}

// Promote copies a manifest and its blobs from one registry to another
// without rebuilding: the destination serves the same digest. A tag is
// promoted only if it still points to an image that passed `berth test`;
// a source given by digest is taken as the user's decision.
func Promote(ctx context.Context, opts PromoteOptions) (PushResult, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	src, err := ParseRef(opts.Src)
	if err != nil {
		return PushResult{}, err
	}
	dst, err := promoteDst(src, opts.Dst)
	if err != nil {
		return PushResult{}, err
	}
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(keychain(opts.Keychain))}
	desc, err := remote.Get(src, ropts...)
	if err != nil {
		return PushResult{}, RegistryError("promote: read "+src.String(), src, err)
	}
	if want, ok := src.(name.Digest); ok && want.DigestStr() != desc.Digest.String() {
		return PushResult{}, fmt.Errorf("promote: %w: %s served digest %s for %s; the registry's content does not match its digest", api.ErrInvalid, src.Context().RegistryStr(), desc.Digest, want.DigestStr())
	}
	if _, byTag := src.(name.Tag); byTag {
		if err := checkTested(desc, src, opts.TestedFile); err != nil {
			return PushResult{}, err
		}
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return PushResult{}, err
		}
		err = remote.WriteIndex(dst, idx, ropts...)
		if err != nil {
			return PushResult{}, RegistryError("promote to "+dst.String(), dst, err)
		}
	} else {
		img, err := desc.Image()
		if err != nil {
			return PushResult{}, err
		}
		if err := write(ctx, dst, img, opts.Keychain, nil); err != nil {
			return PushResult{}, err
		}
	}
	got, err := remote.Head(dst, ropts...)
	if err != nil {
		return PushResult{}, RegistryError("promote: check "+dst.String(), dst, err)
	}
	if got.Digest != desc.Digest {
		return PushResult{}, fmt.Errorf("promote: %w: %s stored %s as %s, not %s: digest mismatch", api.ErrConflict, dst.Context().RegistryStr(), src, got.Digest, desc.Digest)
	}
	return PushResult{Ref: dst.String(), Digest: desc.Digest.String(), Pinned: dst.Context().Digest(desc.Digest.String()).String()}, nil
}

// checkTested refuses a tag whose image is not in the tested record.
func checkTested(desc *remote.Descriptor, src name.Reference, path string) error {
	if path == "" {
		return nil
	}
	if desc.MediaType.IsIndex() {
		return fmt.Errorf("promote: %w: %s is an image index, which berth test cannot vouch for; promote it by digest (%s) if you mean to",
			api.ErrConflict, src, src.Context().Digest(desc.Digest.String()))
	}
	img, err := desc.Image()
	if err != nil {
		return err
	}
	cfg, err := img.ConfigName()
	if err != nil {
		return err
	}
	at, err := Tested(path, cfg.String())
	if err != nil {
		return err
	}
	if at.IsZero() {
		return fmt.Errorf("promote: %w: %s now points to %s (image %s), which has not passed `berth test`: the tag moved since it was tested, or was never tested; test it, or promote a digest you trust (%s)",
			api.ErrConflict, src, desc.Digest, shortDigest(cfg.String()), src.Context().Digest(desc.Digest.String()))
	}
	return nil
}

// promoteDst is the destination reference: a bare registry keeps the
// source's path and tag; a repository without tag keeps the source's tag.
func promoteDst(src name.Reference, dst string) (name.Reference, error) {
	if strings.Contains(dst, "://") {
		return nil, api.Invalidf("promote: destination %q: give host:port[/prefix] or host:port/repo[:tag], without a scheme", dst)
	}
	tag := ""
	if t, ok := src.(name.Tag); ok {
		tag = t.TagStr()
	}
	if !strings.Contains(dst, "/") {
		if tag == "" {
			return nil, api.Invalidf("promote: %s is named by digest; give the destination a repository and tag (e.g. %s/%s:1.0)", src, dst, src.Context().RepositoryStr())
		}
		return ParseRef(dst + "/" + src.Context().RepositoryStr() + ":" + tag)
	}
	r, err := name.ParseReference(dst, name.WithDefaultTag(""))
	if err == nil {
		if t, ok := r.(name.Tag); ok && t.TagStr() != "" {
			return ParseRef(dst)
		}
	}
	if tag == "" {
		return nil, api.Invalidf("promote: %s is named by digest; give the destination a tag (%s:TAG)", src, dst)
	}
	return ParseRef(dst + ":" + tag)
}

func shortDigest(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		return d[:12]
	}
	return d
}
