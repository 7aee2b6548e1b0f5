package agent

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/secrets"
)

// SecretValues opens the value of one version of a stack's secret. The
// agent writes it to the tmpfs and forgets it.
type SecretValues interface {
	Value(ctx context.Context, stack, name string, version int) ([]byte, error)
}

// deliverSecrets writes the service's secrets for owner (a task or job
// ID) to the tmpfs and adds the read-only bind mount at /run/secrets to
// cs. With x-berth.secrets_as_env they are also put in the environment.
func (a *Agent) deliverSecrets(ctx context.Context, owner, stack string, spec *api.ServiceSpec, cs *runtime.ContainerSpec) error {
	if len(spec.Secrets) == 0 {
		return nil
	}
	if a.cfg.Secrets == nil || a.cfg.SecretFiles == nil {
		return fmt.Errorf("service %q uses secrets, and this agent has no secret store", spec.Name)
	}
	uid, gid, err := a.secretOwner(ctx, spec, cs.Image)
	if err != nil {
		return err
	}
	files := make([]secrets.File, 0, len(spec.Secrets))
	defer func() {
		for _, f := range files {
			clear(f.Data)
		}
	}()
	for _, ref := range spec.Secrets {
		name, err := ref.SecretFile()
		if err != nil {
			return err
		}
		val, err := a.cfg.Secrets.Value(ctx, stack, ref.Source, max(ref.Version, 1))
		if err != nil {
			return fmt.Errorf("secret %q: %w", ref.Source, err)
		}
		f := secrets.File{Name: name, Data: val, UID: uid, GID: gid, Mode: os.FileMode(ref.Mode)}
		if ref.UID != "" {
			if f.UID, err = strconv.Atoi(ref.UID); err != nil {
				return fmt.Errorf("secret %q: uid %q must be a number", ref.Source, ref.UID)
			}
		}
		if ref.GID != "" {
			if f.GID, err = strconv.Atoi(ref.GID); err != nil {
				return fmt.Errorf("secret %q: gid %q must be a number", ref.Source, ref.GID)
			}
		}
		files = append(files, f)
		if spec.SecretsAsEnv {
			cs.Env = append(cs.Env, envName(name)+"="+string(val))
		}
	}
	dir, err := a.cfg.SecretFiles.Write(owner, uid, gid, files)
	if err != nil {
		return fmt.Errorf("deliver secrets: %w", err)
	}
	cs.Mounts = append(cs.Mounts, runtime.Mount{Type: api.MountBind, Source: dir, Target: api.SecretsDir, ReadOnly: true})
	return nil
}

// envName turns a secret file name into an environment variable name.
func envName(file string) string {
	return strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(file))
}

// secretOwner is the numeric user and group the container runs as: the
// service's user, else the image's, else root.
func (a *Agent) secretOwner(ctx context.Context, spec *api.ServiceSpec, image string) (int, int, error) {
	user := spec.User
	if user == "" {
		ictx, cancel := a.engineCtx(ctx)
		img, err := a.drv.ImageInspect(ictx, image)
		cancel()
		if err != nil {
			return 0, 0, fmt.Errorf("read the image's user for its secret files: %w", err)
		}
		user = img.User
	}
	if user == "" {
		return 0, 0, nil
	}
	u, g, hasGroup := strings.Cut(user, ":")
	uid, err := strconv.Atoi(u)
	if err != nil || uid < 0 {
		return 0, 0, fmt.Errorf("service %q runs as user %q: berth makes secret files owned by the container's user and needs it numeric; set user: \"UID:GID\"", spec.Name, user)
	}
	gid := uid
	if hasGroup {
		if gid, err = strconv.Atoi(g); err != nil || gid < 0 {
			return 0, 0, fmt.Errorf("service %q runs as group %q: set a numeric group (user: \"UID:GID\") for its secret files", spec.Name, g)
		}
	}
	return uid, gid, nil
}

// removeSecrets deletes an owner's secret files.
func (a *Agent) removeSecrets(owner string) {
	if a.cfg.SecretFiles == nil || owner == "" {
		return
	}
	if err := a.cfg.SecretFiles.Remove(owner); err != nil {
		a.log.Warn("remove secret files", "owner", owner, "err", err)
	}
}

// sweepSecrets removes the secret files of owners that have neither a
// desired task, nor a container, nor a running job: left by a crash.
func (a *Agent) sweepSecrets(desired map[string]api.Task, containers []runtime.Container) {
	if a.cfg.SecretFiles == nil {
		return
	}
	keep := map[string]bool{}
	for id := range desired {
		keep[id] = true
	}
	for _, c := range containers {
		if id := c.Labels[api.LabelTask]; id != "" {
			keep[id] = true
		}
		if id := c.Labels[api.LabelJob]; id != "" {
			keep[jobSecretsOwner(id)] = true
		}
	}
	a.mu.Lock()
	for id := range a.jobs {
		keep[jobSecretsOwner(id)] = true
	}
	a.mu.Unlock()
	for _, owner := range a.cfg.SecretFiles.Owners() {
		if !keep[owner] {
			a.removeSecrets(owner)
		}
	}
}

func jobSecretsOwner(id string) string { return "job-" + id }

// redeliverSecrets writes a task's secret files again before its
// container starts: a restart after the tmpfs was lost (a reboot) must
// find them in place.
func (a *Agent) redeliverSecrets(ctx context.Context, t api.Task) error {
	spec, err := a.spec(ctx, t)
	if err != nil || len(spec.Secrets) == 0 {
		return nil
	}
	cs := a.containerSpec(t, spec)
	return a.deliverSecrets(ctx, t.ID, t.Stack, spec, &cs)
}
