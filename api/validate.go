package api

import (
	"fmt"
	"regexp"
	"strings"
)

// MaxNameLen bounds stack, service, volume and secret names. Names become
// parts of engine object names and etcd keys, so they are kept short and
// free of anything that could step out of a path.
const MaxNameLen = 63

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// ValidateName checks a stack, service, volume, network or secret name.
// what names the thing for the error message ("stack name").
func ValidateName(what, name string) error {
	switch {
	case name == "":
		return Invalidf("%s is empty", what)
	case len(name) > MaxNameLen:
		return Invalidf("%s %q is %d characters long; the limit is %d", what, truncate(name, 20), len(name), MaxNameLen)
	case !nameRE.MatchString(name):
		return Invalidf("%s %q may only contain lowercase letters, digits, '-' and '_', and must start with a letter or digit", what, truncate(name, 40))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Validate checks a whole stack before anything is stored. It reports every
// problem it finds, not only the first.
func (s *Stack) Validate() error {
	var errs []string
	add := func(err error) {
		if err != nil {
			errs = append(errs, strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": "))
		}
	}
	add(ValidateName("stack name", s.Name))
	if len(s.Services) == 0 {
		add(Invalidf("stack %q has no services", s.Name))
	}
	for name, svc := range s.Services {
		if svc == nil {
			add(Invalidf("service %q is empty", name))
			continue
		}
		if svc.Name != name {
			add(Invalidf("service %q is stored under the key %q", svc.Name, name))
		}
		add(svc.Validate(s))
	}
	for name := range s.Volumes {
		add(ValidateName("volume name", name))
	}
	for name := range s.Networks {
		add(ValidateName("network name", name))
	}
	for name, src := range s.Secrets {
		add(ValidateName("secret name", name))
		if !src.External && src.File == "" && src.Environment == "" {
			add(Invalidf("secret %q has no source: give file:, environment: or external: true", name))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(errs, "; "))
	}
	return nil
}

// Validate checks one service spec against its stack.
func (svc *ServiceSpec) Validate(s *Stack) error {
	var errs []string
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Sprintf("service %q: ", svc.Name)+fmt.Sprintf(format, args...))
	}
	if err := ValidateName("service name", svc.Name); err != nil {
		errs = append(errs, strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": "))
	}
	if svc.Image == "" {
		bad("no image; set image: (berth runs built images, use `berth build` first)")
	}
	if svc.Replicas < 0 || svc.Replicas > 1000 {
		bad("replicas %d out of range 0..1000", svc.Replicas)
	}
	switch svc.Restart.Condition {
	case RestartAny, RestartOnFailure, RestartNone:
	default:
		bad("restart condition %q: use any, on-failure or none", svc.Restart.Condition)
	}
	switch svc.NetworkMode {
	case "", "host":
	default:
		bad("network_mode %q: berth supports the stack network (default) or host", svc.NetworkMode)
	}
	if svc.Resources.MemoryBytes < 0 || svc.Resources.NanoCPUs < 0 || svc.Resources.PidsLimit < 0 {
		bad("negative resource limit")
	}
	if svc.Resources.MemoryBytes > 0 && svc.Resources.MemoryBytes < 6<<20 {
		bad("memory limit %d bytes is below the engine's minimum of 6MiB", svc.Resources.MemoryBytes)
	}
	for _, m := range svc.Mounts {
		switch m.Type {
		case MountVolume:
			if _, ok := s.Volumes[m.Source]; !ok && m.Source != "" {
				bad("volume %q is not declared under the top-level volumes:", m.Source)
			}
		case MountBind, MountTmpfs:
		default:
			bad("mount type %q: use volume, bind or tmpfs", m.Type)
		}
		if !strings.HasPrefix(m.Target, "/") {
			bad("mount target %q must be an absolute path", m.Target)
		}
	}
	files := map[string]bool{}
	for _, ref := range svc.Secrets {
		if _, ok := s.Secrets[ref.Source]; !ok {
			bad("secret %q is not declared under the top-level secrets:", ref.Source)
		}
		f, err := ref.SecretFile()
		if err != nil {
			bad("%s", strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": "))
			continue
		}
		if files[f] {
			bad("two secrets are delivered as %s/%s", SecretsDir, f)
		}
		files[f] = true
		if ref.Mode&^0o777 != 0 {
			bad("secret %q: mode %o is not a file permission", ref.Source, ref.Mode)
		}
	}
	for _, d := range svc.DependsOn {
		if _, ok := s.Services[d]; !ok {
			bad("depends_on names unknown service %q", d)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(errs, "; "))
	}
	return nil
}
