package server

import (
	"context"
	"fmt"
	"sort"

	"github.com/berth-dev/berth/api"
)

// ImageVerifier checks that an image digest carries a valid signature
// by one of keys (PEM public keys) before it may run, and returns the
// verified digest reference (repo@sha256:…). trust.Client is one; the
// pipeline's deploy path calls the same interface.
type ImageVerifier interface {
	Verify(ctx context.Context, ref string, keys []string) (digestRef string, err error)
}

// verifyImages checks the signatures a stack requires (x-berth.trust)
// before anything is stored, and pins each service to the digest that
// was verified: the engine then resolves exactly that digest.
func (s *Server) verifyImages(ctx context.Context, st *api.Stack) error {
	if st.Trust == nil || len(st.Trust.Keys) == 0 {
		return nil
	}
	if s.sec.Trust == nil {
		return fmt.Errorf("%w: stack %q requires signed images and this server cannot verify signatures", api.ErrUnavailable, st.Name)
	}
	names := make([]string, 0, len(st.Services))
	for n := range st.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	var errs []string
	for _, n := range names {
		svc := st.Services[n]
		ref, err := s.sec.Trust.Verify(ctx, svc.Image, st.Trust.Keys)
		if err != nil {
			errs = append(errs, fmt.Sprintf("service %q: image %s: %v", n, svc.Image, err))
			continue
		}
		svc.Image = ref
	}
	if len(errs) > 0 {
		return api.Invalidf("%s; the stack requires images signed by its trusted keys (x-berth.trust), and nothing was deployed", joinErrs(errs))
	}
	return nil
}
