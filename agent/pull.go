package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/runtime"
)

// PullTimeout bounds one image pull.
const PullTimeout = 10 * time.Minute

// ensureImage makes sure the engine has the image a spec pinned to a
// registry digest, pulling it if not. Specs of local images pass.
func (a *Agent) ensureImage(ctx context.Context, spec *api.ServiceSpec) error {
	if spec.ImageDigest == "" || a.cfg.PullImage == nil {
		return nil
	}
	ictx, cancel := a.engineCtx(ctx)
	_, err := a.drv.ImageInspect(ictx, spec.ImageDigest)
	cancel()
	if err == nil || !errors.Is(err, runtime.ErrNotFound) {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, PullTimeout)
	defer cancel()
	if err := a.cfg.PullImage(pctx, spec.ImageDigest); err != nil {
		return fmt.Errorf("pull %s: %w", spec.ImageDigest, err)
	}
	return nil
}
