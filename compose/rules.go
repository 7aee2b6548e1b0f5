package compose

// What berth does with each Compose key: the table to audit. Every key of
// compose-go's model is listed (TestRulesCoverComposeGo walks its types by
// reflection, so an upgrade that adds a key fails the build until the key
// is decided), so nothing a user writes is silently ignored: it is
// honoured, warned about with the reason, or rejected with what to do.
//
// The rules are applied twice: to the keys written in each file (exact
// positions, did-you-mean for unknown keys), and to the model compose-go
// loaded, which also holds what extends: and include: brought in.

type verdict int

const (
	honoured verdict = iota
	warned           // accepted, has no effect under berth: a warning says why
	rejected         // an error says why and what to do
)

type rule struct {
	verdict verdict
	why     string
	// sub holds the rules for the keys of the value (a mapping).
	sub map[string]rule
	// each: sub applies to every entry of the value, a list or a mapping
	// of named entries (ports:, networks:), not to the value itself.
	each bool
	// opaque: honoured as a whole; the converter or compose-go reads the
	// value, so its inner keys need no rules of their own.
	opaque bool
	// filled: compose-go fills this key in itself, so only a key written
	// in a file can be judged, not a value in the loaded model.
	filled bool
	// legacy: compose-go's model has the key but its schema refuses it,
	// with a cryptic message; berth refuses it first, saying what to use.
	legacy bool
}

// A rejected key set to its default (false, 0, "") is harmless and
// accepted: `privileged: false` says what berth does anyway.

func ok() rule                      { return rule{verdict: honoured} }
func okSub(s map[string]rule) rule  { return rule{verdict: honoured, sub: s} }
func okEach(s map[string]rule) rule { return rule{verdict: honoured, sub: s, each: true} }
func opaque() rule                  { return rule{verdict: honoured, opaque: true} }
func warn(why string) rule          { return rule{verdict: warned, why: why} }
func reject(why string) rule        { return rule{verdict: rejected, why: why} }
func (r rule) filledIn() rule       { r.filled = true; return r }
func checked() rule                 { return rule{verdict: honoured} } // the value is checked in convert.go
func legacy(why string) rule        { return rule{verdict: rejected, why: why, legacy: true} }

var limitRules = map[string]rule{
	"cpus":              ok(),
	"memory":            ok(),
	"pids":              ok(),
	"devices":           reject("devices are not supported by berth; remove devices:"),
	"generic_resources": reject("generic resources are not supported by berth; remove generic_resources:"),
}

var reservationRules = map[string]rule{
	"cpus":              ok(),
	"memory":            ok(),
	"pids":              warn("reservations.pids is ignored: berth limits pids (limits.pids), it does not reserve them"),
	"devices":           reject("device reservations (GPUs) are not supported by berth; remove devices:"),
	"generic_resources": reject("generic resources are not supported by berth; remove generic_resources:"),
}

var deployRules = map[string]rule{
	"mode":     checked(), // only replicated
	"replicas": ok(),
	"labels":   ok(),
	"resources": okSub(map[string]rule{
		"limits":       okSub(limitRules),
		"reservations": okSub(reservationRules),
	}),
	"restart_policy": okSub(map[string]rule{"condition": ok(), "delay": ok(), "max_attempts": ok(), "window": ok()}),
	"placement": okSub(map[string]rule{
		"constraints":           checked(),
		"max_replicas_per_node": ok(),
		"preferences":           warn("placement preferences are ignored: berth spreads replicas across nodes"),
	}),
	"update_config": okSub(map[string]rule{
		"parallelism":       ok(),
		"order":             checked(),
		"delay":             warn("update_config.delay is ignored: berth moves to the next slot as soon as the new task is ready"),
		"failure_action":    warn("update_config.failure_action is ignored: a revision that does not get ready is rolled back"),
		"monitor":           ok(), // the stability time of each new task
		"max_failure_ratio": warn("update_config.max_failure_ratio is ignored: any failing new task rolls the service back"),
	}),
	"rollback_config": warn("deploy.rollback_config is ignored: a rollback replaces tasks like a rollout does"),
	"endpoint_mode":   warn("deploy.endpoint_mode is ignored: services are reached by name on the stack network"),
}

var healthRules = map[string]rule{
	"test": checked(), "interval": ok(), "timeout": ok(), "retries": ok(),
	"start_period": ok(), "start_interval": ok(), "disable": ok(),
}

var portRules = map[string]rule{
	"target":       ok(),
	"published":    checked(), // one port, no ranges
	"protocol":     checked(), // tcp or udp
	"host_ip":      ok(),
	"mode":         checked(), // compose-go fills "ingress"; host is warned about
	"name":         warn("port names are ignored"),
	"app_protocol": warn("app_protocol is ignored; declare HTTP routes with x-berth.routes"),
}

var mountRules = map[string]rule{
	"type":        checked(), // volume, bind or tmpfs
	"source":      checked(), // declared volume, absolute bind path, not the Docker socket
	"target":      ok(),
	"read_only":   ok(),
	"consistency": warn("consistency only matters on Docker Desktop and is ignored"),
	"bind": okSub(map[string]rule{
		"propagation":      warn("bind propagation is ignored: berth uses the engine's default (rprivate)"),
		"selinux":          warn("SELinux relabelling (:z, :Z) is ignored: label the host path yourself"),
		"recursive":        warn("bind recursive is ignored: the engine's default applies"),
		"create_host_path": warn("create_host_path is ignored: the bind source must exist on every node").filledIn(),
	}),
	"volume": okSub(map[string]rule{
		"nocopy":  warn("nocopy is ignored: an empty named volume is filled from the image"),
		"labels":  warn("labels on a mount are ignored; put them on the top-level volume"),
		"subpath": reject("volume subpaths are not supported yet; mount the whole volume"),
	}),
	"tmpfs": okSub(map[string]rule{
		"size": warn("tmpfs size is ignored: berth mounts tmpfs rw,noexec,nosuid with the engine's default size"),
		"mode": warn("tmpfs mode is ignored: berth mounts tmpfs rw,noexec,nosuid"),
	}),
	"image": reject("image mounts are not supported; copy the files into the service's image"),
}

var serviceNetworkRules = map[string]rule{
	"aliases":                ok(),
	"ipv4_address":           warn("fixed addresses are ignored: the engine assigns them; reach services by name"),
	"ipv6_address":           warn("fixed addresses are ignored: the engine assigns them; reach services by name"),
	"link_local_ips":         warn("link_local_ips are ignored"),
	"mac_address":            warn("mac_address is ignored"),
	"driver_opts":            warn("driver_opts on a service network are ignored"),
	"priority":               warn("network priority is ignored: berth attaches one stack network"),
	"gw_priority":            warn("gw_priority is ignored: berth attaches one stack network"),
	"interface_name":         warn("interface_name is ignored"),
	"use_service_name_alias": warn("use_service_name_alias is ignored: a service is always reachable by its name"),
}

var dependsRules = map[string]rule{
	"condition": checked(), // compose-go fills service_started; others are warned about
	"required":  ok(),      // compose-go drops missing optional dependencies
	"restart":   warn("depends_on restart is ignored: berth does not restart a service when its dependency restarts"),
}

var fileRefRules = map[string]rule{"source": ok(), "target": ok(), "uid": ok(), "gid": ok(), "mode": ok()}

var ulimitRules = map[string]rule{"single": ok(), "soft": ok(), "hard": ok()}

var serviceRules = map[string]rule{
	"name":              ok(), // the service's key, as compose-go fills it in
	"image":             ok(),
	"build":             opaque(), // needs image:; warned about in conversion
	"command":           ok(),
	"entrypoint":        ok(),
	"environment":       ok(),
	"env_file":          opaque(), // read by compose-go into environment
	"user":              ok(),
	"working_dir":       ok(),
	"hostname":          ok(),
	"labels":            ok(),
	"deploy":            okSub(deployRules),
	"restart":           checked(),
	"scale":             ok(),
	"healthcheck":       okSub(healthRules),
	"read_only":         ok(),
	"cap_add":           checked(), // ALL and SYS_ADMIN are rejected
	"cap_drop":          ok(),
	"security_opt":      checked(), // unconfined profiles are rejected
	"sysctls":           ok(),
	"ulimits":           okEach(ulimitRules),
	"stop_grace_period": ok(),
	"stop_signal":       ok(),
	"network_mode":      checked(), // "" or host
	"networks":          okEach(serviceNetworkRules),
	"ports":             okEach(portRules),
	"volumes":           okEach(mountRules),
	"tmpfs":             checked(), // options are warned about
	"depends_on":        okEach(dependsRules),
	"secrets":           okEach(fileRefRules),
	"configs":           okEach(fileRefRules),
	"profiles":          ok(),     // applied by compose-go
	"extends":           opaque(), // resolved by compose-go; the result is judged like any service
	"cpus":              ok(),
	"cpu_shares":        ok(),
	"mem_limit":         ok(),
	"mem_reservation":   ok(),
	"pids_limit":        ok(),
	"logging":           okSub(map[string]rule{"driver": checked(), "options": checked()}), // max-size and max-file of the json-file log
	"x-berth": okSub(map[string]rule{
		"schedule": checked(), // a cron expression
		"routes":   checked(), // a list of {host, path, port, timeout}
		"deploy": okSub(map[string]rule{"strategy": ok(), "steps": ok(), "interval": ok(), "max_error_rate": ok(),
			"max_p99": ok(), "rollback_window": ok(), "deadline": ok(), "max_surge": ok(), "max_unavailable": ok(), "stability": ok()}),
		"security":       okSub(map[string]rule{"keep_default_capabilities": ok(), "allow_new_privileges": ok()}),
		"secrets_as_env": checked(), // true or false, warned
		"update":         okSub(map[string]rule{"follow": ok(), "approval": ok(), "interval": ok()}),
	}),

	"container_name":     warn("container_name is ignored: berth names containers STACK-SERVICE-SLOT-TASK so replicas and rollouts can coexist"),
	"expose":             warn("expose has no effect: services on a stack network reach each other on any port"),
	"links":              warn("links are ignored: services resolve each other by name on the stack network"),
	"external_links":     warn("external_links are ignored: stacks are isolated from each other"),
	"log_driver":         legacy("log_driver is not part of the Compose specification; remove it (berth keeps logs from the engine's json-file log; logging.options sets its max-size and max-file)"),
	"log_opt":            legacy("log_opt is not part of the Compose specification; use logging.options (max-size and max-file are honoured)"),
	"dns":                warn("dns is ignored: containers use the engine's resolver for service discovery"),
	"dns_opt":            warn("dns_opt is ignored: containers use the engine's resolver for service discovery"),
	"dns_search":         warn("dns_search is ignored: containers use the engine's resolver for service discovery"),
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
	"label_file":         warn("label_file is ignored; write labels: in the Compose file"),

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
	"cpu_rt_period":       reject("real-time CPU scheduling is not supported; remove cpu_rt_period:"),
	"cpu_rt_runtime":      reject("real-time CPU scheduling is not supported; remove cpu_rt_runtime:"),
	"cpuset":              reject("pinning CPUs is not supported; use deploy.resources.limits.cpus"),
	"blkio_config":        reject("block IO weights are not supported yet; remove blkio_config:"),
	"memswap_limit":       reject("berth gives containers no swap beyond their memory limit; remove memswap_limit:"),
	"mem_swappiness":      reject("mem_swappiness is not supported; remove it"),
	"oom_kill_disable":    reject("disabling the OOM killer can hang the host; remove oom_kill_disable:"),
	"group_add":           reject("group_add is not supported yet; set user: UID:GID"),
	"credential_spec":     reject("credential_spec is a Windows setting; remove it"),
	"storage_opt":         reject("storage_opt is not supported; remove it"),
	"volume_driver":       legacy("volume_driver is not part of the Compose specification; set driver: on the top-level volume"),
	"use_api_socket":      reject("use_api_socket gives the container the Docker socket, which is root on the host"),
	"models":              reject("models are not supported; remove models:"),
	"provider":            reject("provider services are not supported; run the provider's service as an image"),
	"pre_start":           reject("lifecycle hooks are not supported yet; run setup in the entrypoint"),
	"post_start":          reject("lifecycle hooks are not supported yet; run setup in the entrypoint"),
	"pre_stop":            reject("lifecycle hooks are not supported yet; handle SIGTERM in the program"),
	"net":                 legacy("net is not part of the Compose specification; remove it: berth puts every service on its stack network"),
	"umask":               reject("umask is not supported; set it in the entrypoint"),
	"dockerfile":          legacy("dockerfile belongs under build: (build: {context: ., dockerfile: ...})"),
}

var networkRules = map[string]rule{
	"driver":      checked(), // bridge only
	"internal":    ok(),
	"labels":      ok(),
	"name":        warn("network names are ignored: berth gives each stack one network named after the stack").filledIn(),
	"external":    reject("berth creates each stack's network itself; an external network would bridge stacks. Remove external:"),
	"ipam":        warn("ipam is ignored: the engine assigns the stack network's subnet"),
	"attachable":  warn("attachable is ignored: only the stack's tasks join its network"),
	"driver_opts": warn("driver_opts are ignored"),
	"enable_ipv4": warn("enable_ipv4 is ignored"),
	"enable_ipv6": warn("enable_ipv6 is ignored"),
}

var volumeRules = map[string]rule{
	"driver": ok(), "driver_opts": ok(), "labels": ok(), "external": ok(),
	"name": checked().filledIn(), // external volumes are looked up by key
}

var secretRules = map[string]rule{
	"file":            ok(),
	"environment":     ok(),
	"name":            warn("secret names are ignored: berth stores a stack's secrets under their keys").filledIn(),
	"labels":          warn("labels on secrets are ignored"),
	"external":        ok(), // made with `berth secret create`
	"driver":          reject("secret drivers are not supported; give file: or environment:"),
	"driver_opts":     reject("secret drivers are not supported; give file: or environment:"),
	"template_driver": reject("secret templates are not supported; give file: or environment:"),
	"content":         legacy("secrets take file: or environment:, not content: (it would sit in the Compose file)").filledIn(), // compose-go reads environment: into content
}

var configRules = map[string]rule{
	"file":            ok(),
	"content":         ok(),
	"environment":     checked(), // must be set: read into content by compose-go
	"name":            warn("config names are ignored: berth stores a stack's configs under their keys").filledIn(),
	"labels":          warn("labels on configs are ignored"),
	"external":        reject("external configs are not supported; give file:, content: or environment:"),
	"driver":          legacy("configs have no driver in the Compose specification; give file:, content: or environment:"),
	"driver_opts":     legacy("configs have no driver in the Compose specification; give file:, content: or environment:"),
	"template_driver": reject("config templates are not supported; give file:, content: or environment:"),
}

var topRules = map[string]rule{
	"version":  warn("version is obsolete and ignored"),
	"name":     ok(),
	"services": okEach(serviceRules),
	"include":  opaque(), // read by compose-go; what it brings in is judged in the loaded model
	"networks": okEach(networkRules),
	"volumes":  okEach(volumeRules),
	"secrets":  okEach(secretRules),
	"configs":  okEach(configRules),
	"models":   reject("models are not supported; remove models:"),
	"jobs":     reject("top-level jobs are not supported; use a service with x-berth.schedule"),
	"x-berth": okSub(map[string]rule{
		"environment": ok(),      // the environment's name; production refuses latest and untagged images
		"trust":       checked(), // {keys: [public key files]}
	}),
}
