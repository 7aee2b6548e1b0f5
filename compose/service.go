package compose

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	units "github.com/docker/go-units"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/scheduler"
)

// maxReplicas matches api.ServiceSpec.Validate.
const maxReplicas = 1000

func (c *converter) service(st *api.Stack, s *types.ServiceConfig) *api.ServiceSpec {
	path := "services." + s.Name
	if err := api.ValidateName("service name", s.Name); err != nil {
		c.problem(path, "%s; rename the service", trimKind(err))
		return nil
	}
	spec := &api.ServiceSpec{
		Name:       s.Name,
		Image:      s.Image,
		Command:    []string(s.Command),
		Entrypoint: []string(s.Entrypoint),
		WorkingDir: s.WorkingDir,
		User:       s.User,
		Hostname:   s.Hostname,
		Replicas:   1,
		Restart:    api.RestartPolicy{Condition: api.RestartAny},
		StopSignal: s.StopSignal,
	}
	c.image(s, path)
	c.environment(spec, s, path)
	spec.Labels = merged(s.Labels, deployLabels(s.Deploy))
	c.replicas(spec, s, path)
	c.deploy(spec, s, path)
	c.resources(spec, s, path)
	c.restart(spec, s, path)
	c.health(spec, s, path)
	c.security(spec, s, path)
	c.network(st, spec, s, path)
	c.ports(spec, s, path)
	c.mounts(st, spec, s, path)
	c.refs(st, spec, s, path)
	c.extension(spec, s, path)
	c.logging(spec, s, path)
	if s.StopGracePeriod != nil {
		spec.StopGracePeriod = api.Duration(*s.StopGracePeriod)
	}
	for _, dep := range sortedKeys(s.DependsOn) {
		spec.DependsOn = append(spec.DependsOn, dep)
		switch cond := s.DependsOn[dep].Condition; cond {
		case "", types.ServiceConditionStarted:
		default:
			c.warn(path+".depends_on."+dep, "condition %s is not waited for: berth starts %s first but does not wait for it to be healthy or to finish", cond, dep)
		}
	}
	return spec
}

// minLogSize is the smallest max-size berth takes: a smaller file rotates
// faster than a busy task's output can be read back.
const minLogSize = 64 << 10

// logging honours the rotation of the engine's json-file log a service
// asks for (logging.options max-size and max-file). berth reads every
// task's output from that log, so another driver and other options are
// ignored with a warning.
func (c *converter) logging(spec *api.ServiceSpec, s *types.ServiceConfig, path string) {
	l := s.Logging
	if l == nil {
		return
	}
	path += ".logging"
	if l.Driver != "" && l.Driver != "json-file" {
		c.warn(path+".driver", "logging driver %q is ignored: berth keeps every task's output from the engine's json-file log (berth logs)", l.Driver)
	}
	for _, k := range sortedKeys(l.Options) {
		v := l.Options[k]
		switch k {
		case "max-size":
			n, err := units.RAMInBytes(v)
			if err != nil || n < minLogSize {
				c.problem(path+".options.max-size", "max-size %q: use a size of at least 64k, like 64k, 10m or 1g", v)
				continue
			}
			spec.Logs.MaxSize = v
		case "max-file":
			n, err := strconv.Atoi(v)
			if err != nil || n < 2 || n > 100 {
				c.problem(path+".options.max-file", "max-file %q: use a number of files from 2 to 100 (berth reads the rotated files too)", v)
				continue
			}
			spec.Logs.MaxFiles = n
		default:
			c.warn(path+".options."+k, "logging option %s is ignored: berth honours max-size and max-file of the json-file log", k)
		}
	}
}

func (c *converter) image(s *types.ServiceConfig, path string) {
	switch {
	case s.Image == "" && s.Build != nil:
		c.problem(path+".build", "build: without image: berth runs images; add image: NAME so `berth build` can tag it and deploy can pin it")
	case s.Image == "":
		c.problem(path, "no image: set image: to the image to run")
	case s.Build != nil:
		c.warn(path+".build", "build is ignored by deploy; run `berth build` to build and tag the image first")
	}
}

// environment keeps the variables that have a value. compose-go already
// took the values of bare names (environment: [TOKEN]) from the
// environment and .env; what is still unset is left out, as Compose does,
// but said.
func (c *converter) environment(spec *api.ServiceSpec, s *types.ServiceConfig, path string) {
	for _, k := range sortedKeys(s.Environment) {
		v := s.Environment[k]
		if v == nil {
			c.warn(path+".environment", "%s has no value and is not set in the environment or .env; it is left out", k)
			continue
		}
		if spec.Environment == nil {
			spec.Environment = map[string]string{}
		}
		spec.Environment[k] = *v
	}
}

func deployLabels(d *types.DeployConfig) types.Labels {
	if d == nil {
		return nil
	}
	return d.Labels
}

// merged returns the union of label sets (later ones win), nil if empty.
func merged(sets ...types.Labels) map[string]string {
	var out map[string]string
	for _, set := range sets {
		for k, v := range set {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}

func (c *converter) replicas(spec *api.ServiceSpec, s *types.ServiceConfig, path string) {
	// compose-go refuses scale: and deploy.replicas with distinct values.
	spec.Replicas = s.GetScale()
	if spec.Replicas < 0 || spec.Replicas > maxReplicas {
		where := path + ".deploy.replicas"
		if s.Scale != nil {
			where = path + ".scale"
		}
		c.problem(where, "replicas %d out of range 0..%d", spec.Replicas, maxReplicas)
	}
}

// deploy reads the deploy: keys other than replicas, resources and restart.
func (c *converter) deploy(spec *api.ServiceSpec, s *types.ServiceConfig, path string) {
	d := s.Deploy
	if d == nil {
		return
	}
	if d.Mode != "" && d.Mode != "replicated" {
		c.problem(path+".deploy.mode", "mode %q is not supported yet; use replicated (the default) with deploy.replicas", d.Mode)
	}
	spec.Placement = api.Placement{Constraints: sorted(d.Placement.Constraints), MaxPerNode: int(min(d.Placement.MaxReplicas, maxReplicas))}
	for i, con := range d.Placement.Constraints {
		// The scheduler's own parser, so that what deploy accepts is
		// exactly what placement understands.
		if _, err := scheduler.ParseConstraint(con); err != nil {
			c.problem(fmt.Sprintf("%s.deploy.placement.constraints.%d", path, i), "%s", strings.TrimPrefix(err.Error(), api.ErrInvalid.Error()+": "))
		}
	}
	if u := d.UpdateConfig; u != nil {
		if u.Parallelism != nil {
			spec.Update.Parallelism = int(min(*u.Parallelism, maxReplicas))
		}
		if u.Monitor != 0 {
			if d := time.Duration(u.Monitor); d < 0 {
				c.problem(path+".deploy.update_config.monitor", "monitor %s: use a positive duration like 5s", d)
			} else {
				spec.Update.Stability = api.Duration(d)
			}
		}
		switch u.Order {
		case "", api.StartFirst, api.StopFirst:
			spec.Update.Order = u.Order
		default:
			c.problem(path+".deploy.update_config.order", "order %q: use start-first or stop-first", u.Order)
		}
	}
}

func (c *converter) resources(spec *api.ServiceSpec, s *types.ServiceConfig, path string) {
	r := &spec.Resources
	// The service-level forms (mem_limit, cpus, pids_limit) first; deploy
	// wins where both are set (compose-go refuses distinct values).
	r.MemoryBytes = int64(s.MemLimit)
	r.NanoCPUs = nanoCPUs(s.CPUS)
	r.PidsLimit = s.PidsLimit
	r.CPUShares = s.CPUShares
	r.ReserveMemoryBytes = int64(s.MemReservation)
	if d := s.Deploy; d != nil {
		if l := d.Resources.Limits; l != nil {
			r.MemoryBytes = firstSet(int64(l.MemoryBytes), r.MemoryBytes)
			r.NanoCPUs = firstSet(nanoCPUs(float32(l.NanoCPUs)), r.NanoCPUs)
			r.PidsLimit = firstSet(l.Pids, r.PidsLimit)
		}
		if rv := d.Resources.Reservations; rv != nil {
			r.ReserveMemoryBytes = firstSet(int64(rv.MemoryBytes), r.ReserveMemoryBytes)
			r.ReserveNanoCPUs = nanoCPUs(float32(rv.NanoCPUs))
		}
	}
	// pids_limit: -1 means unlimited in Compose; berth's limits are
	// defaults it always applies, so say so rather than drop it silently.
	if r.PidsLimit == -1 {
		c.warn(path+".pids_limit", "pids_limit -1 (unlimited) is replaced by berth's default limit; set a number")
		r.PidsLimit = 0
	}
	if r.MemoryBytes < 0 || r.NanoCPUs < 0 || r.PidsLimit < 0 || r.CPUShares < 0 || r.ReserveMemoryBytes < 0 || r.ReserveNanoCPUs < 0 {
		c.problem(path, "resource limits and reservations must not be negative")
	}
	if r.MemoryBytes > 0 && r.MemoryBytes < 6<<20 {
		where := path + ".mem_limit"
		if d := s.Deploy; d != nil && d.Resources.Limits != nil && d.Resources.Limits.MemoryBytes != 0 {
			where = path + ".deploy.resources.limits.memory"
		}
		c.problem(where, "memory limit %d bytes is below the engine's minimum of 6MiB; give at least 6M", r.MemoryBytes)
	}
}

func firstSet(v, fallback int64) int64 {
	if v != 0 {
		return v
	}
	return fallback
}

func (c *converter) restart(spec *api.ServiceSpec, s *types.ServiceConfig, path string) {
	rp := &spec.Restart
	switch {
	case s.Restart == "" || s.Restart == "always" || s.Restart == "unless-stopped":
		rp.Condition = api.RestartAny
	case s.Restart == "no":
		rp.Condition = api.RestartNone
	case s.Restart == "on-failure" || strings.HasPrefix(s.Restart, "on-failure:"):
		rp.Condition = api.RestartOnFailure
		if _, n, ok := strings.Cut(s.Restart, ":"); ok {
			max, err := strconv.Atoi(n)
			if err != nil || max < 0 {
				c.problem(path+".restart", "restart %q: use on-failure or on-failure:N with N a number of attempts", s.Restart)
			}
			rp.MaxAttempts = max
		}
	default:
		c.problem(path+".restart", "restart %q: use no, always, unless-stopped or on-failure[:N]", s.Restart)
	}
	if s.Deploy == nil || s.Deploy.RestartPolicy == nil {
		return
	}
	if s.Restart != "" {
		c.warn(path+".restart", "both restart: and deploy.restart_policy are set; deploy.restart_policy wins")
	}
	d := s.Deploy.RestartPolicy
	switch d.Condition {
	case "", api.RestartAny:
		rp.Condition = api.RestartAny
	case api.RestartOnFailure:
		rp.Condition = api.RestartOnFailure
	case api.RestartNone:
		rp.Condition = api.RestartNone
	default:
		c.problem(path+".deploy.restart_policy.condition", "condition %q: use any, on-failure or none", d.Condition)
	}
	rp.MaxAttempts = 0
	if d.MaxAttempts != nil {
		rp.MaxAttempts = int(min(*d.MaxAttempts, 1<<20))
	}
	if d.Delay != nil {
		rp.Delay = api.Duration(*d.Delay)
	}
	if d.Window != nil {
		rp.Window = api.Duration(*d.Window)
	}
}

func (c *converter) health(spec *api.ServiceSpec, s *types.ServiceConfig, path string) {
	h := s.HealthCheck
	if h == nil || h.Disable {
		return
	}
	if len(h.Test) == 0 {
		c.warn(path+".healthcheck", "a healthcheck without test: is ignored: berth cannot change only the timings of the image's HEALTHCHECK; give test:")
		return
	}
	switch h.Test[0] {
	case "NONE":
		return
	case "CMD", "CMD-SHELL":
		if len(h.Test) < 2 {
			c.problem(path+".healthcheck.test", "test %v has no command after %s", []string(h.Test), h.Test[0])
		}
	default:
		c.problem(path+".healthcheck.test", "test must be a string, or a list starting with CMD, CMD-SHELL or NONE; not %q", h.Test[0])
	}
	hc := &api.HealthCheck{Test: []string(h.Test)}
	for _, d := range []struct {
		name string
		in   *types.Duration
		out  *api.Duration
	}{
		{"interval", h.Interval, &hc.Interval}, {"timeout", h.Timeout, &hc.Timeout},
		{"start_period", h.StartPeriod, &hc.StartPeriod}, {"start_interval", h.StartInterval, &hc.StartInterval},
	} {
		if d.in == nil {
			continue
		}
		*d.out = api.Duration(*d.in)
		if *d.in < 0 || (d.name != "start_period" && *d.in != 0 && time.Duration(*d.in) < time.Millisecond) {
			c.problem(path+".healthcheck."+d.name, "%s %s is too short; use at least 1ms", d.name, time.Duration(*d.in))
		}
	}
	if h.Retries != nil {
		hc.Retries = int(min(*h.Retries, 1<<20))
	}
	spec.Health = hc
}

func (c *converter) security(spec *api.ServiceSpec, s *types.ServiceConfig, path string) {
	sec := &spec.Security
	sec.CapAdd = upper(s.CapAdd)
	sec.CapDrop = upper(s.CapDrop)
	sec.ReadOnly = s.ReadOnly
	sec.SecurityOpt = sorted(s.SecurityOpt)
	for _, o := range s.SecurityOpt {
		switch norm := strings.ReplaceAll(o, ":", "="); {
		case strings.HasPrefix(norm, "seccomp=unconfined"), strings.HasPrefix(norm, "apparmor=unconfined"),
			strings.HasPrefix(norm, "label=disable"), strings.HasPrefix(norm, "systempaths=unconfined"):
			c.problem(path+".security_opt", "%q turns off a kernel protection; berth keeps the default profiles. Remove it", o)
		case strings.HasPrefix(norm, "no-new-privileges"):
			c.warn(path+".security_opt", "no-new-privileges is berth's default; to turn it off use x-berth.security.allow_new_privileges")
		}
	}
	for _, cp := range sec.CapAdd {
		if cp == "ALL" || cp == "SYS_ADMIN" {
			c.problem(path+".cap_add", "cap_add %s gives the container control of the host; add the specific capabilities it needs", cp)
		}
	}
	sec.Sysctls = merged(types.Labels(s.Sysctls))
	for _, name := range sortedKeys(s.Ulimits) {
		u := s.Ulimits[name]
		if u == nil {
			continue
		}
		soft, hard := int64(u.Soft), int64(u.Hard)
		if u.Single != 0 {
			soft, hard = int64(u.Single), int64(u.Single)
		}
		if soft > hard {
			c.problem(path+".ulimits."+name, "soft limit %d is above the hard limit %d", soft, hard)
		}
		if sec.Ulimits == nil {
			sec.Ulimits = map[string]api.Ulimit{}
		}
		sec.Ulimits[name] = api.Ulimit{Soft: soft, Hard: hard}
	}
}

// sorted returns a sorted copy: lists whose order means nothing are
// sorted so that reordering them does not make a new revision.
func sorted(list []string) []string {
	if len(list) == 0 {
		return nil
	}
	out := append([]string(nil), list...)
	sort.Strings(out)
	return out
}

func upper(caps []string) []string {
	if len(caps) == 0 {
		return nil
	}
	out := make([]string, len(caps))
	for i, c := range caps {
		out[i] = strings.TrimPrefix(strings.ToUpper(c), "CAP_")
	}
	sort.Strings(out)
	return out
}

func (c *converter) network(st *api.Stack, spec *api.ServiceSpec, s *types.ServiceConfig, path string) {
	switch s.NetworkMode {
	case "":
	case "host":
		spec.NetworkMode = "host"
	default:
		c.problem(path+".network_mode", "network_mode %q is not supported: services join their stack's network (remove network_mode:), or use network_mode: host", s.NetworkMode)
	}
	seen := map[string]bool{}
	for _, name := range sortedKeys(s.Networks) {
		if name != "default" {
			if _, ok := st.Networks[name]; !ok {
				c.problem(path+".networks."+name, "network %q is not declared under the top-level networks:; add it there", name)
			}
			spec.Networks = append(spec.Networks, name)
		}
		if n := s.Networks[name]; n != nil {
			for _, a := range n.Aliases {
				if !seen[a] {
					seen[a] = true
					spec.Aliases = append(spec.Aliases, a)
				}
			}
		}
	}
	sort.Strings(spec.Aliases)
}

// ports keeps Compose's order: it is the order users read them in.
func (c *converter) ports(spec *api.ServiceSpec, s *types.ServiceConfig, path string) {
	for i, pc := range s.Ports {
		p := fmt.Sprintf("%s.ports.%d", path, i)
		port := api.Port{Target: uint16(pc.Target), Protocol: pc.Protocol, HostIP: pc.HostIP}
		if pc.Target == 0 || pc.Target > 65535 {
			c.problem(p, "target port %d: give the container port (1-65535)", pc.Target)
		}
		switch pc.Protocol {
		case "", "tcp", "udp":
		default:
			c.problem(p, "protocol %q: berth forwards tcp and udp", pc.Protocol)
		}
		if pc.Mode == "host" {
			c.warn(p, "mode: host is ignored: berth's ingress listens on the published port on every node and forwards to ready tasks")
		}
		if pc.Published != "" {
			n, err := strconv.ParseUint(pc.Published, 10, 16)
			if err != nil || n == 0 {
				c.problem(p, "published port %q: berth publishes one port (1-65535) per target; ranges are not supported", pc.Published)
			}
			port.Published = uint16(n)
		}
		spec.Ports = append(spec.Ports, port)
	}
}

func (c *converter) mounts(st *api.Stack, spec *api.ServiceSpec, s *types.ServiceConfig, path string) {
	for i, v := range s.Volumes {
		p := fmt.Sprintf("%s.volumes.%d", path, i)
		m := api.Mount{Type: v.Type, Source: v.Source, Target: v.Target, ReadOnly: v.ReadOnly}
		switch v.Type {
		case types.VolumeTypeVolume:
			if _, ok := st.Volumes[v.Source]; v.Source != "" && !ok {
				c.problem(p, "volume %q is not declared under the top-level volumes:; add it there", v.Source)
			}
		case types.VolumeTypeBind:
			if isDockerSocket(v.Source) {
				c.problem(p, "mounting the Docker socket (%s) gives the container root on the host; berth does not allow it", v.Source)
			}
			if !filepath.IsAbs(v.Source) {
				c.problem(p, "bind source %q must be an absolute path", v.Source)
			}
		case types.VolumeTypeTmpfs:
		default:
			c.problem(p, "volume type %q is not supported; use volume, bind or tmpfs", v.Type)
		}
		if !strings.HasPrefix(v.Target, "/") {
			c.problem(p, "target %q must be an absolute path in the container", v.Target)
		}
		spec.Mounts = append(spec.Mounts, m)
	}
	for i, t := range s.Tmpfs {
		p := fmt.Sprintf("%s.tmpfs.%d", path, i)
		target, opts, _ := strings.Cut(t, ":")
		if opts != "" {
			c.warn(p, "tmpfs options %q are ignored: berth mounts tmpfs rw,noexec,nosuid", opts)
		}
		if !strings.HasPrefix(target, "/") {
			c.problem(p, "tmpfs target %q must be an absolute path", target)
		}
		spec.Tmpfs = append(spec.Tmpfs, target)
	}
	sort.Strings(spec.Tmpfs)
}

func isDockerSocket(p string) bool {
	p = filepath.Clean(p)
	return strings.HasSuffix(p, "/docker.sock") || p == "/var/run/docker" || p == "/run/docker" ||
		p == "/var/run" || p == "/run"
}

// refs reads the service's secrets and configs references.
func (c *converter) refs(st *api.Stack, spec *api.ServiceSpec, s *types.ServiceConfig, path string) {
	for i, sec := range s.Secrets {
		ref := fileRef(types.FileReferenceConfig(sec))
		spec.Secrets = append(spec.Secrets, ref)
		p := fmt.Sprintf("%s.secrets.%d", path, i)
		if _, ok := st.Secrets[sec.Source]; !ok {
			c.problem(p, "secret %q is not declared under the top-level secrets:; add it there", sec.Source)
		}
		if _, err := ref.SecretFile(); err != nil {
			c.problem(p+".target", "%s", trimKind(err))
		}
	}
	for i, cf := range s.Configs {
		spec.Configs = append(spec.Configs, fileRef(types.FileReferenceConfig(cf)))
		if _, ok := st.Configs[cf.Source]; !ok {
			c.problem(fmt.Sprintf("%s.configs.%d", path, i), "config %q is not declared under the top-level configs:; add it there", cf.Source)
		}
	}
	// Said plainly rather than silently ignored: configs are stored with
	// the revision but the agent does not mount them yet.
	if len(spec.Configs) > 0 {
		c.warn(path, "configs are recorded but not yet mounted into containers by this version of berth")
	}
}

func fileRef(f types.FileReferenceConfig) api.FileRef {
	r := api.FileRef{Source: f.Source, Target: f.Target, UID: f.UID, GID: f.GID}
	if f.Mode != nil {
		r.Mode = uint32(*f.Mode)
	}
	return r
}
