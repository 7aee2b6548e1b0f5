package compose

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/berth-dev/berth/api"
)

// converter turns a loaded project into a stack, collecting problems and
// warnings with their positions.
type converter struct {
	ps       *positions
	findings []finding
}

func (c *converter) add(path string, v verdict, format string, args ...any) {
	msg := path + ": " + fmt.Sprintf(format, args...)
	if len(c.ps.files) > 0 && !strings.Contains(c.ps.written(path), ".") && path != "services" {
		// Neither the key nor the object it belongs to is written in the
		// named files: the position alone would mislead.
		msg += " (it comes from include:)"
	}
	c.findings = append(c.findings, finding{pos: c.ps.at(path), path: path, verdict: v, msg: msg})
}

func (c *converter) problem(path, format string, args ...any) { c.add(path, rejected, format, args...) }
func (c *converter) warn(path, format string, args ...any)    { c.add(path, warned, format, args...) }

// maxConfigSize bounds a config's content: configs travel in the spec.
const maxConfigSize = 512 << 10

var invalidNameChars = regexp.MustCompile(`[^a-z0-9_-]+`)

// stackName is --stack, else the project's name, normalised.
func stackName(p *types.Project, opts Options) string {
	if opts.StackName != "" {
		return opts.StackName
	}
	n := invalidNameChars.ReplaceAllString(strings.ToLower(p.Name), "-")
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
	c.topExtension(p)
	c.trust(st, p)
	c.networks(st, p)
	c.volumes(st, p)
	c.secrets(st, p)
	c.configs(st, p)
	if len(p.Services) == 0 {
		msg := "no services to deploy; add a services: section with at least one service"
		if n := len(p.DisabledServices); n > 0 {
			msg = fmt.Sprintf("no services to deploy: all %d are in profiles that are not active; pass --profile NAME", n)
		}
		c.problem("services", "%s", msg)
	}
	published := map[string]string{}
	for _, name := range sortedKeys(p.Services) {
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
			key := fmt.Sprintf("%d/%s", port.Published, orTCP(port.Protocol))
			if other, ok := published[key]; ok && other != name {
				c.problem("services."+name+".ports", "port %s is already published by service %q; publish another port", key, other)
			}
			published[key] = name
		}
	}
	c.productionImages(p, st)
	return st
}

func orTCP(proto string) string {
	if proto == "" {
		return "tcp"
	}
	return proto
}

func (c *converter) networks(st *api.Stack, p *types.Project) {
	for _, name := range sortedKeys(p.Networks) {
		n, path := p.Networks[name], "networks."+name
		if name == "default" && n.Driver == "" && !n.Internal && len(n.Labels) == 0 {
			continue // the stack network berth creates anyway
		}
		if err := api.ValidateName("network name", name); err != nil {
			c.problem(path, "%s", trimKind(err))
		}
		if n.Driver != "" && n.Driver != "bridge" {
			c.problem(path+".driver", "driver %q: berth gives each stack a bridge network; remove driver:", n.Driver)
		}
		st.Networks[name] = api.NetworkSpec{Internal: n.Internal, Labels: n.Labels}
	}
}

func (c *converter) volumes(st *api.Stack, p *types.Project) {
	for _, name := range sortedKeys(p.Volumes) {
		v, path := p.Volumes[name], "volumes."+name
		if err := api.ValidateName("volume name", name); err != nil {
			c.problem(path, "%s", trimKind(err))
		}
		// compose-go fills name in: the key for external volumes, the
		// project-prefixed key for others. berth looks external volumes
		// up by key and names its own STACK_KEY.
		switch {
		case bool(v.External) && v.Name != "" && v.Name != name:
			c.problem(path+".name", "berth looks up an external volume by its key; rename the key %q to %q and drop name:", name, v.Name)
		case !bool(v.External) && v.Name != "" && v.Name != p.Name+"_"+name:
			c.warn(path+".name", "name is ignored: berth names the stack's volumes after the stack and the key")
		}
		st.Volumes[name] = api.VolumeSpec{Driver: v.Driver, DriverOpts: v.DriverOpts, Labels: v.Labels, External: bool(v.External)}
	}
}

// maxSecretSize bounds a secret file, like the engine's 500KiB.
const maxSecretSize = 500 << 10

func (c *converter) secrets(st *api.Stack, p *types.Project) {
	for _, name := range sortedKeys(p.Secrets) {
		s, path := p.Secrets[name], "secrets."+name
		if err := api.ValidateName("secret name", name); err != nil {
			c.problem(path, "%s", trimKind(err))
		}
		switch {
		case bool(s.External):
			// Created with `berth secret create STACK NAME`.
		case s.File != "":
			// Checked now so that a deploy does not fail half-way on it.
			if err := checkFile(s.File, maxSecretSize); err != nil {
				c.problem(path+".file", "%v", err)
			}
		case s.Environment == "":
			c.problem(path, "give file:, environment: or external: true (a secret made with `berth secret create`) for the secret's value")
		}
		st.Secrets[name] = api.SecretSource{File: s.File, Environment: s.Environment, External: bool(s.External)}
	}
}

func (c *converter) configs(st *api.Stack, p *types.Project) {
	for _, name := range sortedKeys(p.Configs) {
		cf, path := p.Configs[name], "configs."+name
		if err := api.ValidateName("config name", name); err != nil {
			c.problem(path, "%s", trimKind(err))
		}
		src := api.ConfigSource{File: cf.File, Content: cf.Content}
		switch {
		case cf.Environment != "" && cf.Content == "":
			c.problem(path+".environment", "environment variable %s is not set; set it or give the content another way", cf.Environment)
		case cf.File != "" && cf.Content == "":
			b, err := readLimited(cf.File, maxConfigSize)
			if err != nil {
				c.problem(path+".file", "%v", err)
			}
			src.Content = string(b)
		}
		if len(src.Content) > maxConfigSize {
			c.problem(path, "the content is %d bytes; configs are limited to %d", len(src.Content), maxConfigSize)
		}
		st.Configs[name] = src
	}
}

// checkFile checks a file the Compose file names before a deploy needs
// it: it exists, is a regular file (not a FIFO that would block) and is
// not too large.
func checkFile(path string, limit int64) error {
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return fmt.Errorf("%w; fix the path (it is relative to the Compose file)", err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file", path)
	case fi.Size() > limit:
		return fmt.Errorf("%s is %d bytes; the limit is %d", path, fi.Size(), limit)
	}
	return nil
}

func readLimited(path string, limit int64) ([]byte, error) {
	if err := checkFile(path, limit); err != nil {
		return nil, err
	}
	return os.ReadFile(path)
}

// topExtension checks the top-level x-berth; its keys are checked by
// the rules, its values here.
func (c *converter) topExtension(p *types.Project) {
	raw, ok := p.Extensions["x-berth"]
	if !ok || raw == nil {
		return
	}
	m, ok := raw.(map[string]any)
	if !ok {
		c.problem("x-berth", "x-berth must be a mapping; valid keys: %s", strings.Join(sortedKeys(topRules["x-berth"].sub), ", "))
		return
	}
	c.unknownExtensionKeys("x-berth", m, topRules["x-berth"].sub)
	if v, ok := m["environment"]; ok {
		if s, isStr := v.(string); !isStr || s == "" {
			c.problem("x-berth.environment", "environment must be a name such as production")
		}
	}
}

// unknownExtensionKeys reports keys of an x-berth mapping that berth does
// not know. The file check catches those written in the named files; this
// catches those that extends: brought in.
func (c *converter) unknownExtensionKeys(path string, m map[string]any, rules map[string]rule) {
	for _, k := range sortedKeys(m) {
		if _, ok := rules[k]; !ok {
			c.problem(path, "%s", strings.TrimPrefix(unknownKey(path, k, rules), path+": "))
		}
	}
}

func trimKind(err error) string {
	return strings.TrimPrefix(err.Error(), api.ErrInvalid.Error()+": ")
}

// nanoCPUs converts Compose's float32 CPUs exactly: 0.1 must be 1e8, not
// the 100000001 a float32 widened to float64 gives.
func nanoCPUs(cpus float32) int64 {
	f, err := strconv.ParseFloat(strconv.FormatFloat(float64(cpus), 'g', -1, 32), 64)
	if err != nil {
		return 0
	}
	return int64(f*1e9 + 0.5)
}

// SecretValues reads the values of a stack's file and environment
// secrets, for the deploy request. environ is the environment the
// Compose file was interpolated with.
func SecretValues(st *api.Stack, environ map[string]string) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, name := range sortedKeys(st.Secrets) {
		src := st.Secrets[name]
		switch {
		case src.External:
		case src.File != "":
			b, err := readLimited(src.File, maxSecretSize)
			if err != nil {
				return nil, fmt.Errorf("%w: secrets.%s.file: %v", api.ErrInvalid, name, err)
			}
			out[name] = b
		case src.Environment != "":
			v, ok := environ[src.Environment]
			if !ok {
				return nil, fmt.Errorf("%w: secrets.%s.environment: the variable %s is not set; export it before deploying", api.ErrInvalid, name, src.Environment)
			}
			out[name] = []byte(v)
		}
	}
	return out, nil
}
