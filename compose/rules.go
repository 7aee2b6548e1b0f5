package compose

import (
	"fmt"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// What berth does with each Compose key. Every key of the Compose
// specification is listed (TestRulesCoverComposeGo holds compose-go's
// types to that), so nothing a user writes is silently ignored: it is
// honoured, warned about with the reason, or rejected with what to do.
type verdict int

const (
	honoured verdict = iota
	warned           // accepted, has no effect under berth: a warning says why
	rejected         // an error says why and what to do
)

type rule struct {
	verdict verdict
	why     string
	// harmless: a rejected key set to its default (false, 0, "") is fine.
	harmless bool
	// sub checks the keys of a mapping value; nil: not checked further.
	sub map[string]rule
}

func ok() rule                     { return rule{verdict: honoured} }
func okSub(s map[string]rule) rule { return rule{verdict: honoured, sub: s} }
func warn(why string) rule         { return rule{verdict: warned, why: why} }
func reject(why string) rule       { return rule{verdict: rejected, why: why, harmless: true} }

var resourceRules = map[string]rule{
	"cpus":              ok(),
	"memory":            ok(),
	"pids":              ok(),
	"devices":           reject("device reservations are not supported by berth"),
	"generic_resources": reject("generic resources are not supported by berth"),
}

var deployRules = map[string]rule{
	"mode":     ok(), // value checked in conversion: only replicated
	"replicas": ok(),
	"labels":   ok(),
	"resources": okSub(map[string]rule{
		"limits":       okSub(resourceRules),
		"reservations": okSub(resourceRules),
	}),
	"restart_policy": okSub(map[string]rule{"condition": ok(), "delay": ok(), "max_attempts": ok(), "window": ok()}),
	"placement": okSub(map[string]rule{
		"constraints":           ok(),
		"max_replicas_per_node": ok(),
		"preferences":           warn("placement preferences are ignored: berth spreads replicas across nodes"),
	}),
	"update_config": okSub(map[string]rule{
		"parallelism":       ok(),
		"order":             ok(),
		"delay":             warn("update_config.delay is ignored: berth moves to the next slot as soon as the new task is ready"),
		"failure_action":    warn("update_config.failure_action is ignored: a new revision that never gets ready leaves the old tasks serving"),
		"monitor":           warn("update_config.monitor is ignored"),
		"max_failure_ratio": warn("update_config.max_failure_ratio is ignored"),
	}),
	"rollback_config": warn("deploy.rollback_config is ignored"),
	"endpoint_mode":   warn("deploy.endpoint_mode is ignored: services are reached by name on the stack network"),
}

var healthRules = map[string]rule{
	"test": ok(), "interval": ok(), "timeout": ok(), "retries": ok(),
	"start_period": ok(), "start_interval": ok(), "disable": ok(),
}

var serviceRules = map[string]rule{
	"name":              ok(), // the service's own name, as compose-go fills it in
	"image":             ok(),
	"build":             ok(), // checked in conversion: needs image
	"command":           ok(),
	"entrypoint":        ok(),
	"environment":       ok(),
	"env_file":          ok(),
	"user":              ok(),
	"working_dir":       ok(),
	"hostname":          ok(),
	"labels":            ok(),
	"deploy":            okSub(deployRules),
	"restart":           ok(),
	"scale":             ok(),
	"healthcheck":       okSub(healthRules),
	"read_only":         ok(),
	"cap_add":           ok(),
	"cap_drop":          ok(),
	"security_opt":      ok(),
	"sysctls":           ok(),
	"ulimits":           ok(),
	"stop_grace_period": ok(),
	"stop_signal":       ok(),
	"network_mode":      ok(), // value checked in conversion
	"networks":          ok(),
	"ports":             ok(),
	"volumes":           ok(), // docker socket checked in conversion
	"tmpfs":             ok(),
	"depends_on":        ok(),
	"secrets":           ok(),
	"configs":           ok(),
	"profiles":          ok(),
	"extends":           ok(),
	"cpus":              ok(),
	"cpu_shares":        ok(),
	"mem_limit":         ok(),
	"mem_reservation":   ok(),
	"pids_limit":        ok(),

	"container_name":     warn("container_name is ignored: berth names containers STACK-SERVICE-SLOT-TASK so replicas and rollouts can coexist"),
	"expose":             warn("expose has no effect: services on a stack network reach each other on any port"),
	"links":              warn("links are ignored: services resolve each other by name on the stack network"),
	"external_links":     warn("external_links are ignored: stacks are isolated from each other"),
	"logging":            warn("logging is ignored: berth caps the engine's json-file logs itself"),
	"log_driver":         warn("log_driver is ignored: berth caps the engine's json-file logs itself"),
	"log_opt":            warn("log_opt is ignored: berth caps the engine's json-file logs itself"),
	"dns":                warn("dns is ignored: containers use the engine's resolver for service discovery"),
	"dns_opt":            warn("dns_opt is ignored"),
	"dns_search":         warn("dns_search is ignored"),
	"extra_hosts":        warn("extra_hosts is not supported yet and is ignored"),
	"domainname":         warn("domainname is ignored"),
	"mac_address":        warn("mac_address is ignored"),
	"stdin_open":         warn("stdin_open is ignored: services run detached; use berth run for one-off commands"),
	"tty":                warn("tty is ignored: services run detached; use berth run for one-off commands"),
	"pull_policy":        warn("pull_policy is ignored: berth pins the image the tag names at deploy time"),
	"pull_refresh_after": warn("pull_refresh_after is ignored: berth pins the image the tag names at deploy time"),
	"platform":           warn("platform is ignored: the engine runs images of its own platform"),
	"annotations":        warn("annotations are ignored"),
	"attach":             warn("attach is ignored: use berth logs"),
	"develop":            warn("develop (watch) is a development feature and is ignored"),
	"init":               warn("init is ignored: run an init in the image if the program does not reap children"),
	"oom_score_adj":      warn("oom_score_adj is ignored"),
	"shm_size":           warn("shm_size is ignored"),
	"label_file":         warn("label_file is ignored; write labels: in the file"),

	"privileged":          reject("privileged containers can take over the host; berth does not run them. Add only the capabilities you need with cap_add"),
	"pid":                 reject("sharing the host's (or another container's) PID namespace is not allowed; remove pid:"),
	"ipc":                 reject("sharing the host's (or another container's) IPC namespace is not allowed; remove ipc:"),
	"uts":                 reject("sharing the host's UTS namespace is not allowed; remove uts:"),
	"userns_mode":         reject("userns_mode is not supported; remove it"),
	"cgroup_parent":       reject("berth places containers in the engine's cgroups; remove cgroup_parent:"),
	"cgroup":              reject("cgroup namespaces other than the engine's default are not supported; remove cgroup:"),
	"devices":             reject("host devices are not exposed to berth containers; remove devices:"),
	"device_cgroup_rules": reject("device cgroup rules are not supported; remove device_cgroup_rules:"),
	"gpus":                reject("GPUs are not supported yet; remove gpus:"),
	"volumes_from":        reject("volumes_from couples containers' lifecycles; use a named volume in both services"),
	"isolation":           reject("isolation is a Windows setting; remove it"),
	"runtime":             reject("alternative OCI runtimes are not supported yet; remove runtime:"),
	"cpu_count":           reject("cpu_count is a Windows setting; use deploy.resources.limits.cpus"),
	"cpu_percent":         reject("cpu_percent is a Windows setting; use deploy.resources.limits.cpus"),
	"cpu_period":          reject("use deploy.resources.limits.cpus instead of cpu_period"),
	"cpu_quota":           reject("use deploy.resources.limits.cpus instead of cpu_quota"),
	"cpu_rt_period":       reject("real-time CPU scheduling is not supported"),
	"cpu_rt_runtime":      reject("real-time CPU scheduling is not supported"),
	"cpuset":              reject("pinning CPUs is not supported; use deploy.resources.limits.cpus"),
	"blkio_config":        reject("block IO weights are not supported yet; remove blkio_config:"),
	"memswap_limit":       reject("berth gives containers no swap beyond their memory limit; remove memswap_limit:"),
	"mem_swappiness":      reject("mem_swappiness is not supported; remove it"),
	"oom_kill_disable":    reject("disabling the OOM killer can hang the host; remove oom_kill_disable:"),
	"group_add":           reject("group_add is not supported yet; set user: UID:GID"),
	"credential_spec":     reject("credential_spec is a Windows setting; remove it"),
	"storage_opt":         reject("storage_opt is not supported; remove it"),
	"volume_driver":       reject("set the driver on the top-level volume instead of volume_driver"),
	"use_api_socket":      reject("use_api_socket gives the container the Docker socket, which is root on the host"),
	"models":              reject("models are not supported"),
	"provider":            reject("provider services are not supported"),
	"pre_start":           reject("lifecycle hooks are not supported yet; run setup in the entrypoint"),
	"post_start":          reject("lifecycle hooks are not supported yet; run setup in the entrypoint"),
	"pre_stop":            reject("lifecycle hooks are not supported yet; handle SIGTERM in the program"),
	"net":                 reject("net is obsolete; berth puts every service on its stack network"),
	"umask":               reject("umask is not supported; set it in the entrypoint"),
	"dockerfile":          reject("dockerfile belongs under build:"),
}

var topRules = map[string]rule{
	"version":  warn("version is obsolete and ignored"),
	"name":     ok(),
	"services": ok(), // each service is checked with serviceRules
	"include":  ok(),
	"networks": ok(), // each network with networkRules
	"volumes":  ok(),
	"secrets":  ok(),
	"configs":  ok(),
	"models":   reject("models are not supported"),
	"jobs":     reject("top-level jobs are not supported; use a service with x-berth.schedule"),
}

var networkRules = map[string]rule{
	"driver":      ok(), // checked: bridge only
	"internal":    ok(),
	"labels":      ok(),
	"name":        warn("network names are ignored: berth gives each stack one network named berth_STACK"),
	"external":    reject("berth creates each stack's network itself; external networks would bridge stacks"),
	"ipam":        warn("ipam is ignored: the engine assigns the stack network's subnet"),
	"attachable":  warn("attachable is ignored"),
	"driver_opts": warn("driver_opts are ignored"),
	"enable_ipv4": warn("enable_ipv4 is ignored"),
	"enable_ipv6": warn("enable_ipv6 is ignored"),
}

var volumeRules = map[string]rule{
	"driver": ok(), "driver_opts": ok(), "labels": ok(), "external": ok(), "name": ok(),
}

var secretRules = map[string]rule{
	"file": ok(), "environment": ok(), "name": ok(), "labels": ok(),
	"external":        reject("external secrets are not supported yet; give file: or environment:"),
	"driver":          reject("secret drivers are not supported"),
	"driver_opts":     reject("secret drivers are not supported"),
	"template_driver": reject("secret templates are not supported"),
	"content":         ok(),
}

// Extension keys berth reads.
var berthServiceRules = map[string]rule{
	"schedule": ok(),
	"routes":   ok(), // a list; each route is checked in conversion
	"rollout":  okSub(map[string]rule{"deadline": ok()}),
	"security": okSub(map[string]rule{"keep_default_capabilities": ok(), "allow_new_privileges": ok()}),
}

var berthTopRules = map[string]rule{
	"environment": ok(),
}

// finding is one key a rule did not honour.
type finding struct {
	pos     Pos
	path    string
	verdict verdict
	msg     string
}

// checkKeys walks every file's keys against the rules.
func checkKeys(ps *positions) []finding {
	var out []finding
	for _, f := range ps.files {
		c := checker{file: f.name, out: &out}
		c.mapping(f.root, "", topRules, func(key string, v *yaml.Node, path string) bool {
			var sub map[string]rule
			switch key {
			case "services":
				sub = serviceRules
			case "networks":
				sub = networkRules
			case "volumes":
				sub = volumeRules
			case "secrets", "configs":
				sub = secretRules
			default:
				return false
			}
			c.each(v, path, func(name string, body *yaml.Node, p string) {
				c.mapping(body, p, sub, func(k string, v *yaml.Node, path string) bool {
					if k == "x-berth" && key == "services" {
						c.mapping(v, path, berthServiceRules, nil)
						return true
					}
					return false
				})
			})
			return true
		})
		c.extension(f.root)
	}
	return out
}

type checker struct {
	file string
	out  *[]finding
}

// mapping checks the keys of a mapping node. custom may handle a key's
// value itself and return true.
func (c *checker) mapping(n *yaml.Node, path string, rules map[string]rule, custom func(key string, v *yaml.Node, path string) bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key, p := k.Value, join(path, k.Value)
		pos := Pos{File: c.file, Line: k.Line, Col: k.Column}
		if custom != nil && custom(key, v, p) {
			continue
		}
		if strings.HasPrefix(key, "x-") {
			continue // extensions: Compose semantics, ours are checked where they apply
		}
		r, known := rules[key]
		switch {
		case !known:
			msg := fmt.Sprintf("%s: unknown key %q", path, key)
			if s := suggest(key, rules); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			*c.out = append(*c.out, finding{pos: pos, path: p, verdict: rejected, msg: msg})
		case r.verdict == rejected && !(r.harmless && isDefault(v)):
			*c.out = append(*c.out, finding{pos: pos, path: p, verdict: rejected, msg: fmt.Sprintf("%s: %s", p, r.why)})
		case r.verdict == warned:
			*c.out = append(*c.out, finding{pos: pos, path: p, verdict: warned, msg: fmt.Sprintf("%s: %s", p, r.why)})
		case r.sub != nil:
			c.mapping(v, p, r.sub, nil)
		}
	}
}

// each calls f for every entry of a mapping of named things.
func (c *checker) each(n *yaml.Node, path string, f func(name string, body *yaml.Node, path string)) {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		f(n.Content[i].Value, n.Content[i+1], join(path, n.Content[i].Value))
	}
}

// extension checks the top-level x-berth.
func (c *checker) extension(root *yaml.Node) {
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "x-berth" {
			c.mapping(root.Content[i+1], "x-berth", berthTopRules, nil)
		}
	}
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isDefault(n *yaml.Node) bool {
	n = deref(n)
	if n == nil {
		return true
	}
	if n.Kind != yaml.ScalarNode {
		return len(n.Content) == 0
	}
	switch strings.ToLower(n.Value) {
	case "", "false", "0", "no", "null", "~":
		return true
	}
	return false
}

// suggest returns the known key closest to key, if close enough.
func suggest(key string, rules map[string]rule) string {
	keys := make([]string, 0, len(rules))
	for k := range rules {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	best, bestD := "", 3
	for _, k := range keys {
		if d := distance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// distance is the Levenshtein distance.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
