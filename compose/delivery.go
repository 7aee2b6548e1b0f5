package compose

import (
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/distribution/reference"

	"github.com/berth-dev/berth/api"
)

// Production is the x-berth.environment whose stacks must pin images.
const Production = "production"

// environment is the stack's top-level x-berth.environment ("" if unset).
func environment(p *types.Project) string {
	m, _ := p.Extensions["x-berth"].(map[string]any)
	s, _ := m["environment"].(string)
	return s
}

// productionImages refuses, in a production stack, images that name no
// version: untagged (which means latest) or tagged latest. A digest or
// any other tag passes; the deploy pins tags to digests either way.
func (c *converter) productionImages(p *types.Project, st *api.Stack) {
	if environment(p) != Production {
		return
	}
	for _, name := range sortedKeys(st.Services) {
		img := st.Services[name].Image
		path := "services." + name + ".image"
		ref, err := reference.ParseNormalizedNamed(img)
		if err != nil {
			continue // reported with the image itself
		}
		if _, ok := ref.(reference.Digested); ok {
			continue
		}
		tagged, ok := ref.(reference.Tagged)
		switch {
		case !ok:
			c.problem(path, "image %q has no tag, which means latest: x-berth.environment is production, so give a version tag or a digest (%s:1.4.2 or %s@sha256:…)", img, img, img)
		case tagged.Tag() == "latest":
			c.problem(path, "image %q: x-berth.environment is production, which never runs latest; give a version tag or a digest", img)
		}
	}
}

// berthUpdate reads x-berth.update: follow the image's tag and roll out
// (or hold for approval) each new digest it points to.
func (c *converter) berthUpdate(spec *api.ServiceSpec, v any, path string) {
	rules := serviceRules["x-berth"].sub["update"].sub
	m, ok := v.(map[string]any)
	if !ok {
		c.problem(path, "update must be a mapping; valid keys: %s", strings.Join(sortedKeys(rules), ", "))
		return
	}
	c.unknownExtensionKeys(path, m, rules)
	au := &api.AutoUpdate{Approval: api.ApprovalAuto}
	if v, ok := m["follow"]; ok {
		b, isBool := v.(bool)
		if !isBool {
			c.problem(path+".follow", "follow %v: use true or false", v)
		}
		au.Follow = b
	}
	if v, ok := m["approval"]; ok {
		switch s, _ := v.(string); s {
		case api.ApprovalAuto, api.ApprovalRequired:
			au.Approval = s
		default:
			c.problem(path+".approval", "approval %v: use auto (roll out through the health gates) or required (wait for berth update approve)", v)
		}
	}
	if v, ok := m["interval"]; ok {
		s, _ := v.(string)
		d, err := time.ParseDuration(s)
		if err != nil || d < time.Second {
			c.problem(path+".interval", "interval %v: use a duration of at least 1s, like 1m", v)
		} else {
			au.Interval = api.Duration(d)
		}
	}
	if !au.Follow {
		return
	}
	// Only a tag in a registry can move: the image must name its registry
	// and a tag.
	ref, err := reference.ParseNormalizedNamed(spec.Image)
	if err != nil {
		return
	}
	_, digested := ref.(reference.Digested)
	_, isTagged := ref.(reference.Tagged)
	switch {
	case !explicitRegistry(spec.Image):
		c.problem(path+".follow", "service image %q names no registry, so there is no tag to follow: use registry/repo:tag, like 127.0.0.1:5000/%s", spec.Image, spec.Image)
	case digested:
		c.problem(path+".follow", "service image %q is pinned by digest, which never moves: follow a tag instead", spec.Image)
	case !isTagged:
		c.problem(path+".follow", "service image %q has no tag to follow: name one, like %s:stable", spec.Image, spec.Image)
	default:
		spec.AutoUpdate = au
	}
}

// explicitRegistry reports whether an image reference names its
// registry (the Docker rule: a first component with a dot or a port, or
// localhost).
func explicitRegistry(img string) bool {
	first, _, found := strings.Cut(img, "/")
	return found && (strings.ContainsAny(first, ".:") || first == "localhost")
}
