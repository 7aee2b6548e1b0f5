package compose

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/robfig/cron/v3"

	"github.com/berth-dev/berth/api"
)

type composeProject = types.Project

// converter turns a loaded project into a stack, collecting problems and
// warnings with their positions.
type converter struct {
	ps       *positions
	problems []string
	warnings []string
}

func (c *converter) problem(path, format string, args ...any) {
	c.problems = append(c.problems, c.ps.at(path).String()+": "+path+": "+fmt.Sprintf(format, args...))
}

func (c *converter) warn(path, format string, args ...any) {
	c.warnings = append(c.warnings, c.ps.at(path).String()+": "+path+": "+fmt.Sprintf(format, args...))
}

// cronParser accepts five fields or a descriptor (@hourly, @every 5m).
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

var invalidNameChars = regexp.MustCompile(`[^a-z0-9_-]+`)

// stackName is --stack, else the project's name, normalised.
func stackName(p *types.Project, opts Options) string {
	if opts.StackName != "" {
		return opts.StackName
	}
	n := strings.ToLower(p.Name)
	n = invalidNameChars.ReplaceAllString(n, "-")
	return strings.Trim(n, "-_")
}

func (c *converter) convert(p *types.Project, opts Options) *api.Stack {
	st := &api.Stack{
		Name:     stackName(p, opts),
		Services: map[string]*api.ServiceSpec{},
		Networks: map[string]api.NetworkSpec{},
		Volumes:  map[string]api.VolumeSpec{},
		Secrets:  map[string]api.SecretSource{},
		Configs:  map[string]api.ConfigSource{},
	}
	for _, f := range opts.Files {
		st.Sources = append(st.Sources, filepath.Base(f))
	}
	for name, n := range p.Networks {
		path := "networks." + name
		if name == "default" && n.Driver == "" {
			continue
		}
		if err := api.ValidateName("network name", name); err != nil {
			c.problem(path, "%v", trimKind(err))
		}
		if n.Driver != "" && n.Driver != "bridge" {
			c.problem(path+".driver", "driver %q: berth gives each stack a bridge network; remove driver:", n.Driver)
		}
		st.Networks[name] = api.NetworkSpec{Internal: n.Internal, Labels: n.Labels}
	}
	for name, v := range p.Volumes {
		path := "volumes." + name
		if err := api.ValidateName("volume name", name); err != nil {
			c.problem(path, "%v", trimKind(err))
		}
		st.Volumes[name] = api.VolumeSpec{Driver: v.Driver, DriverOpts: v.DriverOpts, Labels: v.Labels, External: bool(v.External)}
	}
	for name, s := range p.Secrets {
		st.Secrets[name] = api.SecretSource{File: s.File, Environment: s.Environment}
	}
	for name, cf := range p.Configs {
		src := api.ConfigSource{File: cf.File, Content: cf.Content}
		if cf.File != "" && cf.Content == "" {
			b, err := os.ReadFile(cf.File)
			if err != nil {
				c.problem("configs."+name+".file", "read %s: %v", cf.File, err)
			} else if len(b) > 512<<10 {
				c.problem("configs."+name+".file", "%s is %d bytes; configs are limited to 512KiB", cf.File, len(b))
			} else {
				src.Content = string(b)
			}
		}
		st.Configs[name] = src
	}
	names := make([]string, 0, len(p.Services))
	for name := range p.Services {
		names = append(names, name)
	}
	sort.Strings(names)
	published := map[uint16]string{}
	for _, name := range names {
		svc := p.Services[name]
		spec := c.service(st, &svc)
		if spec == nil {
			continue
		}
		st.Services[name] = spec
		for _, port := range spec.Ports {
			if port.Published == 0 {
				continue
			}
			if other, ok := published[port.Published]; ok && other != name {
				c.problem("services."+name+".ports", "port %d is already published by service %q", port.Published, other)
			}
			published[port.Published] = name
		}
	}
	return st
}

func trimKind(err error) string {
	return strings.TrimPrefix(err.Error(), api.ErrInvalid.Error()+": ")
}

func (c *converter) service(st *api.Stack, s *types.ServiceConfig) *api.ServiceSpec {
	path := "services." + s.Name
	if err := api.ValidateName("service name", s.Name); err != nil {
		c.problem(path, "%v", trimKind(err))
		return nil
	}
	spec := &api.ServiceSpec{
		Name:        s.Name,
		Image:       s.Image,
		Command:     []string(s.Command),
		Entrypoint:  []string(s.Entrypoint),
		Environment: map[string]string{},
		WorkingDir:  s.WorkingDir,
		User:        s.User,
		Hostname:    s.Hostname,
		Labels:      map[string]string{},
		Replicas:    1,
		Restart:     api.RestartPolicy{Condition: api.RestartAny},
		StopSignal:  s.StopSignal,
	}
	if s.Image == "" {
		if s.Build != nil {
			c.problem(path+".build", "build: without image: berth runs images; add image: NAME so `berth build` can tag it and deploy can pin it")
		} else {
			c.problem(path, "no image: set image: to the image to run")
		}
	} else if s.Build != nil {
		c.warn(path+".build", "build is ignored by deploy; build and tag the image first (berth build, docker build)")
	}
	for k, v := range s.Environment {
		if v == nil {
			c.warn(path+".environment", "%s has no value and is not set in the environment; it is left out", k)
			continue
		}
		spec.Environment[k] = *v
	}
	for k, v := range s.Labels {
		spec.Labels[k] = v
	}
	c.replicas(spec, s, path)
	c.resources(spec, s, path)
	c.restart(spec, s, path)
	c.health(spec, s, path)
	c.security(spec, s, path)
	c.network(st, spec, s, path)
	c.mounts(st, spec, s, path)
	c.extension(spec, s, path)
	if s.StopGracePeriod != nil {
		spec.StopGracePeriod = api.Duration(*s.StopGracePeriod)
	}
	for dep := range s.DependsOn {
		spec.DependsOn = append(spec.DependsOn, dep)
	}
	sort.Strings(spec.DependsOn)
	for _, sec := range s.Secrets {
		spec.Secrets = append(spec.Secrets, fileRef(sec.Source, sec.Target, sec.UID, sec.GID, sec.Mode))
		if _, ok := st.Secrets[sec.Source]; !ok {
			c.problem(path+".secrets", "secret %q is not declared under the top-level secrets:", sec.Source)
		}
	}
	for _, cf := range s.Configs {
		spec.Configs = append(spec.Configs, fileRef(cf.Source, cf.Target, cf.UID, cf.GID, cf.Mode))
		if _, ok := st.Configs[cf.Source]; !ok {
			c.problem(path+".configs", "config %q is not declared under the top-level configs:", cf.Source)
		}
	}
	// Said plainly rather than silently ignored: these are stored with the
	// revision but not yet acted on by the agent.
	if len(spec.Secrets) > 0 || len(spec.Configs) > 0 {
		c.warn(path, "secrets and configs are recorded but not yet mounted into containers by this version of berth")
	}
	if len(spec.Environment) == 0 {
		spec.Environment = nil
	}
	if len(spec.Labels) == 0 {
		spec.Labels = nil
	}
	return spec
}

func fileRef(source, target, uid, gid string, mode *types.FileMode) api.FileRef {
	r := api.FileRef{Source: source, Target: target, UID: uid, GID: gid}
	if mode != nil {
		r.Mode = uint32(*mode)
	}
	return r
}

func (c *converter) replicas(spec *api.ServiceSpec, s *types.ServiceConfig, path string) {
	if s.Scale != nil {
		spec.Replicas = *s.Scale
	}
	d := s.Deploy
	if d == nil {
		return
	}
	if d.Mode != "" && d.Mode != "replicated" {
		c.problem(path+".deploy.mode", "mode %q is not supported yet; use replicated with deploy.replicas", d.Mode)
	}
	if d.Replicas != nil {
		spec.Replicas = *d.Replicas
	}
	if spec.Replicas < 0 || spec.Replicas > 1000 {
		c.problem(path+".deploy.replicas", "replicas %d out of range 0..1000", spec.Replicas)
	}
	for k, v := range d.Labels {
		if spec.Labels == nil {
			spec.Labels = map[string]string{}
		}
		spec.Labels[k] = v
	}
	spec.Placement = api.Placement{Constraints: d.Placement.Constraints, MaxPerNode: int(d.Placement.MaxReplicas)}
	if u := d.UpdateConfig; u != nil {
		if u.Parallelism != nil {
			spec.Update.Parallelism = int(*u.Parallelism)
		}
		switch u.Order {
		case "", api.StartFirst, api.StopFirst:
			spec.Update.Order = u.Order
		default:
			c.problem(path+".deploy.update_config.order", "order %q: use start-first or stop-first", u.Order)
		}
	}
	for i, con := range d.Placement.Constraints {
		if !constraintRE.MatchString(con) {
			c.problem(fmt.Sprintf("%s.deploy.placement.constraints.%d", path, i),
				"constraint %q: use node.labels.KEY==VALUE, node.name==NAME or node.id==ID (or !=)", con)
		}
	}
}

var constraintRE = regexp.MustCompile(`^\s*node\.(labels\.[^=!\s]+|name|hostname|id)\s*(==|!=)\s*\S.*$`)

func (c *converter) resources(spec *api.ServiceSpec, s *types.ServiceConfig, path string) {
	r := &spec.Resources
	r.MemoryBytes = int64(s.MemLimit)
	r.NanoCPUs = int64(float64(s.CPUS) * 1e9)
	r.PidsLimit = s.PidsLimit
	r.CPUShares = s.CPUShares
	r.ReserveMemoryBytes = int64(s.MemReservation)
	if d := s.Deploy; d != nil {
		if l := d.Resources.Limits; l != nil {
			if l.MemoryBytes > 0 {
				r.MemoryBytes = int64(l.MemoryBytes)
			}
			if l.NanoCPUs > 0 {
				r.NanoCPUs = int64(float64(l.NanoCPUs) * 1e9)
			}
			if l.Pids > 0 {
				r.PidsLimit = l.Pids
			}
		}
		if rv := d.Resources.Reservations; rv != nil {
			if rv.MemoryBytes > 0 {
				r.ReserveMemoryBytes = int64(rv.MemoryBytes)
			}
			if rv.NanoCPUs > 0 {
				r.ReserveNanoCPUs = int64(float64(rv.NanoCPUs) * 1e9)
			}
		}
	}
	if r.MemoryBytes < 0 || r.NanoCPUs < 0 || r.PidsLimit < 0 {
		c.problem(path, "resource limits must not be negative")
	}
	if r.MemoryBytes > 0 && r.MemoryBytes < 6<<20 {
		c.problem(path+".deploy.resources.limits.memory", "memory limit %d bytes is below the engine's minimum of 6MiB", r.MemoryBytes)
	}
}

func (c *converter) restart(spec *api.ServiceSpec, s *types.ServiceConfig, path string) {
	rp := &spec.Restart
	switch {
	case s.Restart == "" || s.Restart == "always" || s.Restart == "unless-stopped":
		rp.Condition = api.RestartAny
	case s.Restart == "no":
		rp.Condition = api.RestartNone
	case strings.HasPrefix(s.Restart, "on-failure"):
		rp.Condition = api.RestartOnFailure
		if _, n, ok := strings.Cut(s.Restart, ":"); ok {
			max, err := strconv.Atoi(n)
			if err != nil || max < 0 {
				c.problem(path+".restart", "restart %q: use on-failure or on-failure:N", s.Restart)
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
	case "", "any":
		rp.Condition = api.RestartAny
	case "on-failure":
		rp.Condition = api.RestartOnFailure
	case "none":
		rp.Condition = api.RestartNone
	default:
		c.problem(path+".deploy.restart_policy.condition", "condition %q: use any, on-failure or none", d.Condition)
	}
	if d.Delay != nil {
		rp.Delay = api.Duration(*d.Delay)
	}
	if d.Window != nil {
		rp.Window = api.Duration(*d.Window)
	}
	if d.MaxAttempts != nil {
		rp.MaxAttempts = int(*d.MaxAttempts)
	}
}

func (c *converter) health(spec *api.ServiceSpec, s *types.ServiceConfig, path string) {
	h := s.HealthCheck
	if h == nil || h.Disable || len(h.Test) == 0 || (len(h.Test) > 0 && h.Test[0] == "NONE") {
		return
	}
	switch h.Test[0] {
	case "CMD", "CMD-SHELL":
	default:
		c.problem(path+".healthcheck.test", "test must start with CMD or CMD-SHELL (or be a string), not %q", h.Test[0])
	}
	hc := &api.HealthCheck{Test: []string(h.Test)}
	if h.Interval != nil {
		hc.Interval = api.Duration(*h.Interval)
	}
	if h.Timeout != nil {
		hc.Timeout = api.Duration(*h.Timeout)
	}
	if h.StartPeriod != nil {
		hc.StartPeriod = api.Duration(*h.StartPeriod)
	}
	if h.StartInterval != nil {
		hc.StartInterval = api.Duration(*h.StartInterval)
	}
	if h.Retries != nil {
		hc.Retries = int(*h.Retries)
	}
	for _, d := range []struct {
		name string
		v    api.Duration
	}{{"interval", hc.Interval}, {"timeout", hc.Timeout}, {"start_interval", hc.StartInterval}} {
		if d.v != 0 && d.v.D() < time.Millisecond {
			c.problem(path+".healthcheck."+d.name, "%s %s is too short; use at least 1ms", d.name, d.v)
		}
	}
	spec.Health = hc
}

func (c *converter) security(spec *api.ServiceSpec, s *types.ServiceConfig, path string) {
	sec := &spec.Security
	sec.CapAdd = upper(s.CapAdd)
	sec.CapDrop = upper(s.CapDrop)
	sec.ReadOnly = s.ReadOnly
	sec.SecurityOpt = s.SecurityOpt
	for _, o := range s.SecurityOpt {
		switch {
		case strings.HasPrefix(o, "seccomp=unconfined"), strings.HasPrefix(o, "seccomp:unconfined"),
			strings.HasPrefix(o, "apparmor=unconfined"), strings.HasPrefix(o, "apparmor:unconfined"):
			c.problem(path+".security_opt", "%q turns off a kernel protection; berth keeps the default profiles", o)
		case strings.HasPrefix(o, "no-new-privileges"):
			c.warn(path+".security_opt", "no-new-privileges is berth's default; to turn it off use x-berth.security.allow_new_privileges")
		}
	}
	for _, cp := range sec.CapAdd {
		if cp == "ALL" || cp == "CAP_ALL" || cp == "SYS_ADMIN" || cp == "CAP_SYS_ADMIN" {
			c.problem(path+".cap_add", "cap_add %s gives the container control of the host; add the specific capabilities it needs", cp)
		}
	}
	if len(s.Sysctls) > 0 {
		sec.Sysctls = map[string]string{}
		for k, v := range s.Sysctls {
			sec.Sysctls[k] = v
		}
	}
	if len(s.Ulimits) > 0 {
		sec.Ulimits = map[string]api.Ulimit{}
		for name, u := range s.Ulimits {
			if u == nil {
				continue
			}
			soft, hard := int64(u.Soft), int64(u.Hard)
			if u.Single != 0 {
				soft, hard = int64(u.Single), int64(u.Single)
			}
			sec.Ulimits[name] = api.Ulimit{Soft: soft, Hard: hard}
		}
	}
}

func upper(caps []string) []string {
	if len(caps) == 0 {
		return nil
	}
	out := make([]string, len(caps))
	for i, c := range caps {
		out[i] = strings.ToUpper(strings.TrimPrefix(strings.ToUpper(c), "CAP_"))
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
		c.problem(path+".network_mode", "network_mode %q is not supported: services join their stack's network, or use network_mode: host", s.NetworkMode)
	}
	names := make([]string, 0, len(s.Networks))
	for name := range s.Networks {
		names = append(names, name)
	}
	sort.Strings(names)
	seen := map[string]bool{}
	for _, name := range names {
		if name != "default" {
			if _, ok := st.Networks[name]; !ok {
				c.problem(path+".networks", "network %q is not declared under the top-level networks:", name)
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
	for i, pc := range s.Ports {
		port := api.Port{Target: uint16(pc.Target), Protocol: pc.Protocol, HostIP: pc.HostIP}
		if pc.Published != "" {
			n, err := strconv.ParseUint(pc.Published, 10, 16)
			if err != nil {
				c.problem(fmt.Sprintf("%s.ports.%d", path, i), "published port %q: berth publishes one port per target (ranges are not supported)", pc.Published)
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
			if v.Source != "" {
				if _, ok := st.Volumes[v.Source]; !ok {
					c.problem(p, "volume %q is not declared under the top-level volumes:; add it there", v.Source)
				}
			}
		case types.VolumeTypeBind:
			if isDockerSocket(v.Source) {
				c.problem(p, "mounting the Docker socket (%s) gives the container root on the host", v.Source)
			}
			if !filepath.IsAbs(v.Source) {
				c.problem(p, "bind source %q must be an absolute path", v.Source)
			}
		case types.VolumeTypeTmpfs:
		default:
			c.problem(p, "volume type %q is not supported; use volume, bind or tmpfs", v.Type)
		}
		spec.Mounts = append(spec.Mounts, m)
	}
	spec.Tmpfs = append(spec.Tmpfs, s.Tmpfs...)
}

func isDockerSocket(p string) bool {
	p = filepath.Clean(p)
	return strings.HasSuffix(p, "/docker.sock") || p == "/var/run/docker" || p == "/run/docker"
}

// extension reads the service's x-berth.
func (c *converter) extension(spec *api.ServiceSpec, s *types.ServiceConfig, path string) {
	raw, ok := s.Extensions["x-berth"]
	if !ok {
		return
	}
	p := path + ".x-berth"
	m, ok := raw.(map[string]any)
	if !ok {
		c.problem(p, "x-berth must be a mapping")
		return
	}
	if v, ok := m["schedule"]; ok {
		sched, isStr := v.(string)
		if !isStr || sched == "" {
			c.problem(p+".schedule", "schedule must be a cron expression string, e.g. \"0 3 * * *\" or \"@every 10m\"")
		} else if _, err := cronParser.Parse(sched); err != nil {
			c.problem(p+".schedule", "schedule %q: %v; use five cron fields (minute hour day month weekday) or @hourly, @daily, @every 10m", sched, err)
		} else {
			spec.Schedule = sched
		}
	}
	if v, ok := m["routes"]; ok {
		c.routes(spec, v, p+".routes")
	}
	if v, ok := m["rollout"]; ok {
		rm, _ := v.(map[string]any)
		if d, ok := rm["deadline"]; ok {
			ds, _ := d.(string)
			dur, err := time.ParseDuration(ds)
			if err != nil || dur <= 0 {
				c.problem(p+".rollout.deadline", "deadline %v: use a duration like 2m", d)
			}
			spec.Update.Deadline = api.Duration(dur)
		}
	}
	if v, ok := m["security"]; ok {
		sm, isMap := v.(map[string]any)
		if !isMap {
			c.problem(p+".security", "security must be a mapping")
			return
		}
		for key, field := range map[string]*bool{
			"keep_default_capabilities": &spec.Security.KeepDefaultCaps,
			"allow_new_privileges":      &spec.Security.AllowNewPrivileges,
		} {
			if val, ok := sm[key]; ok {
				b, isBool := val.(bool)
				if !isBool {
					c.problem(p+".security."+key, "%s must be true or false", key)
					continue
				}
				*field = b
				if b {
					c.warn(p+".security."+key, "%s widens the container's privileges", key)
				}
			}
		}
	}
}

// routes reads x-berth.routes: [{host, path, port, timeout}].
func (c *converter) routes(spec *api.ServiceSpec, v any, path string) {
	list, ok := v.([]any)
	if !ok {
		c.problem(path, "routes must be a list of {host, path, port}")
		return
	}
	for i, item := range list {
		p := fmt.Sprintf("%s.%d", path, i)
		m, ok := item.(map[string]any)
		if !ok {
			c.problem(p, "a route must be a mapping with host, path and port")
			continue
		}
		var r api.HTTPRoute
		for k, val := range m {
			switch k {
			case "host":
				h, _ := val.(string)
				if h == "" || strings.ContainsAny(h, "/: ") {
					c.problem(p+".host", "host %v: give a host name like shop.example.com (no scheme, port or path)", val)
				}
				r.Host = strings.ToLower(h)
			case "path":
				pp, _ := val.(string)
				if !strings.HasPrefix(pp, "/") {
					c.problem(p+".path", "path %v must start with /", val)
				}
				r.PathPrefix = pp
			case "port":
				n, ok := asInt(val)
				if !ok || n < 1 || n > 65535 {
					c.problem(p+".port", "port %v: give the container port the service listens on (1-65535)", val)
				}
				r.Port = uint16(n)
			case "timeout":
				ds, _ := val.(string)
				d, err := time.ParseDuration(ds)
				if err != nil || d <= 0 {
					c.problem(p+".timeout", "timeout %v: use a duration like 30s", val)
				}
				r.Timeout = api.Duration(d)
			default:
				c.problem(p, "unknown route key %q; use host, path, port and timeout", k)
			}
		}
		if r.Port == 0 {
			c.problem(p, "a route needs port: the container port to send requests to")
		}
		if spec.NetworkMode == "host" {
			c.problem(p, "routes need the stack network; remove network_mode: host")
		}
		spec.Routes = append(spec.Routes, r)
	}
}

func asInt(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case int64:
		return int(n), true
	case uint64:
		return int(n), true
	case float64:
		return int(n), n == float64(int(n))
	}
	return 0, false
}
