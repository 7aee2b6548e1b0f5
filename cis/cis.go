// Package cis runs the CIS Docker Benchmark (v1.6.0) checks that can be
// judged from the engine's API and the host berth runs on: the daemon's
// configuration (section 2), a few host files (section 3) and the
// container runtime checks of section 5 on every running container.
//
// The checks are pure functions of what the engine reports, so they are
// table-tested without an engine; Run gathers the input.
package cis

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/docker/docker/api/types/container"
)

// Levels of a result.
const (
	Pass = "PASS"
	Warn = "WARN"
	Info = "INFO" // not judged automatically; said for completeness
)

// Result is one check on one target.
type Result struct {
	ID          string `json:"id"`
	Title       string `json:"title"`
	Level       string `json:"level"`
	Target      string `json:"target"` // "daemon", "host" or a container's name
	Detail      string `json:"detail,omitempty"`
	Remediation string `json:"remediation,omitempty"`
}

// Report is a run of the checks.
type Report struct {
	Engine  string   `json:"engine"`
	Results []Result `json:"results"`
	Pass    int      `json:"pass"`
	Warn    int      `json:"warn"`
}

func (r *Report) add(res ...Result) {
	for _, x := range res {
		switch x.Level {
		case Pass:
			r.Pass++
		case Warn:
			r.Warn++
		}
		r.Results = append(r.Results, x)
	}
}

// check is one section 5 check of a container.
type check struct {
	id, title, remediation string
	// judge returns whether the container passes, and a detail.
	judge func(c *container.InspectResponse) (bool, string)
	// applies, when set, says whether the check applies to c at all.
	applies func(c *container.InspectResponse) bool
}

// sensitiveDirs are host paths no container should mount (5.5).
var sensitiveDirs = []string{"/", "/boot", "/dev", "/etc", "/lib", "/proc", "/sys", "/usr"}

// dangerousCaps widen a container's reach to the host (5.3).
var dangerousCaps = []string{"ALL", "SYS_ADMIN", "NET_ADMIN", "SYS_MODULE", "SYS_PTRACE", "SYS_RAWIO", "DAC_READ_SEARCH", "SYS_BOOT", "MAC_ADMIN", "MAC_OVERRIDE", "BPF", "PERFMON"}

func hostCfg(c *container.InspectResponse) *container.HostConfig {
	if c.HostConfig == nil {
		return &container.HostConfig{}
	}
	return c.HostConfig
}

func normCap(s string) string { return strings.TrimPrefix(strings.ToUpper(s), "CAP_") }

// containerChecks are the automatable checks of section 5.
var containerChecks = []check{
	{id: "5.3", title: "Linux kernel capabilities are restricted within containers",
		remediation: "drop all capabilities and add back only those needed (berth does this unless x-berth.security.keep_default_capabilities)",
		judge: func(c *container.InspectResponse) (bool, string) {
			h := hostCfg(c)
			for _, a := range h.CapAdd {
				if slices.Contains(dangerousCaps, normCap(a)) {
					return false, "adds " + normCap(a)
				}
			}
			for _, d := range h.CapDrop {
				if normCap(d) == "ALL" {
					return true, "drops ALL"
				}
			}
			return false, "keeps the engine's default capabilities"
		}},
	{id: "5.4", title: "Privileged containers are not used",
		remediation: "do not run the container with --privileged",
		judge:       func(c *container.InspectResponse) (bool, string) { return !hostCfg(c).Privileged, "" }},
	{id: "5.5", title: "Sensitive host system directories are not mounted on containers",
		remediation: "do not bind-mount /, /boot, /dev, /etc, /lib, /proc, /sys or /usr from the host",
		judge: func(c *container.InspectResponse) (bool, string) {
			for _, m := range c.Mounts {
				if m.Type == "bind" && slices.Contains(sensitiveDirs, filepath.Clean(m.Source)) {
					return false, "mounts " + m.Source
				}
			}
			return true, ""
		}},
	{id: "5.7", title: "Privileged ports are not mapped within containers",
		remediation: "publish ports above 1024 (berth's ingress publishes ports; containers need no port mapping)",
		judge: func(c *container.InspectResponse) (bool, string) {
			for _, bs := range hostCfg(c).PortBindings {
				for _, b := range bs {
					var p int
					if _, err := fmt.Sscan(b.HostPort, &p); err == nil && p > 0 && p < 1024 {
						return false, "maps host port " + b.HostPort
					}
				}
			}
			return true, ""
		}},
	{id: "5.9", title: "The host's network namespace is not shared",
		remediation: "do not use network_mode: host unless the service needs it",
		judge: func(c *container.InspectResponse) (bool, string) {
			return !hostCfg(c).NetworkMode.IsHost(), string(hostCfg(c).NetworkMode)
		}},
	{id: "5.10", title: "The memory usage for containers is limited",
		remediation: "set a memory limit (deploy.resources.limits.memory; berth applies --default-memory otherwise)",
		judge: func(c *container.InspectResponse) (bool, string) {
			return hostCfg(c).Memory > 0, fmt.Sprintf("limit %d bytes", hostCfg(c).Memory)
		}},
	{id: "5.11", title: "CPU priority is set appropriately on containers",
		remediation: "set CPU shares (berth applies --default-cpu-shares otherwise)",
		judge: func(c *container.InspectResponse) (bool, string) {
			s := hostCfg(c).CPUShares
			return s != 0 && s != 1024, fmt.Sprintf("cpu shares %d", s)
		}},
	{id: "5.12", title: "The container's root filesystem is mounted as read only",
		remediation: "set read_only: true and mount writable paths as tmpfs or volumes",
		judge:       func(c *container.InspectResponse) (bool, string) { return hostCfg(c).ReadonlyRootfs, "" }},
	{id: "5.13", title: "Incoming container traffic is bound to a specific host interface",
		remediation: "bind published ports to one address (berth's ingress listens on --publish-host)",
		judge: func(c *container.InspectResponse) (bool, string) {
			for _, bs := range hostCfg(c).PortBindings {
				for _, b := range bs {
					if b.HostIP == "" || b.HostIP == "0.0.0.0" || b.HostIP == "::" {
						return false, "a port is bound to every interface"
					}
				}
			}
			return true, ""
		}},
	{id: "5.14", title: "The 'on-failure' container restart policy is set to '5' or less",
		remediation: "use restart policy no (berth restarts with backoff itself) or on-failure:5",
		judge: func(c *container.InspectResponse) (bool, string) {
			rp := hostCfg(c).RestartPolicy
			switch rp.Name {
			case "", container.RestartPolicyDisabled:
				return true, "no engine restarts"
			case container.RestartPolicyOnFailure:
				return rp.MaximumRetryCount > 0 && rp.MaximumRetryCount <= 5, fmt.Sprintf("on-failure:%d", rp.MaximumRetryCount)
			}
			return false, string(rp.Name)
		}},
	{id: "5.15", title: "The host's process namespace is not shared",
		remediation: "do not use pid: host",
		judge:       func(c *container.InspectResponse) (bool, string) { return !hostCfg(c).PidMode.IsHost(), "" }},
	{id: "5.16", title: "The host's IPC namespace is not shared",
		remediation: "do not use ipc: host",
		judge:       func(c *container.InspectResponse) (bool, string) { return !hostCfg(c).IpcMode.IsHost(), "" }},
	{id: "5.17", title: "Host devices are not directly exposed to containers",
		remediation: "do not pass host devices (devices:)",
		judge: func(c *container.InspectResponse) (bool, string) {
			return len(hostCfg(c).Devices) == 0, fmt.Sprintf("%d devices", len(hostCfg(c).Devices))
		}},
	{id: "5.19", title: "Mount propagation mode is not set to shared",
		remediation: "do not mount volumes with shared propagation",
		judge: func(c *container.InspectResponse) (bool, string) {
			for _, m := range c.Mounts {
				if m.Propagation == "shared" || m.Propagation == "rshared" {
					return false, m.Destination + " is " + string(m.Propagation)
				}
			}
			return true, ""
		}},
	{id: "5.20", title: "The host's UTS namespace is not shared",
		remediation: "do not use uts: host",
		judge:       func(c *container.InspectResponse) (bool, string) { return !hostCfg(c).UTSMode.IsHost(), "" }},
	{id: "5.21", title: "The default seccomp profile is not disabled",
		remediation: "remove seccomp=unconfined from security_opt",
		judge: func(c *container.InspectResponse) (bool, string) {
			for _, o := range hostCfg(c).SecurityOpt {
				if strings.ReplaceAll(o, ":", "=") == "seccomp=unconfined" {
					return false, o
				}
			}
			return true, ""
		}},
	{id: "5.24", title: "cgroup usage is confirmed",
		remediation: "do not set cgroup_parent",
		judge: func(c *container.InspectResponse) (bool, string) {
			return hostCfg(c).CgroupParent == "", hostCfg(c).CgroupParent
		}},
	{id: "5.25", title: "The container is restricted from acquiring additional privileges",
		remediation: "run with no-new-privileges (berth does unless x-berth.security.allow_new_privileges)",
		judge: func(c *container.InspectResponse) (bool, string) {
			for _, o := range hostCfg(c).SecurityOpt {
				if o == "no-new-privileges" || o == "no-new-privileges:true" || o == "no-new-privileges=true" {
					return true, ""
				}
			}
			return false, "no-new-privileges is not set"
		}},
	{id: "5.26", title: "Container health is checked at runtime",
		remediation: "define a healthcheck: in the Compose file",
		judge: func(c *container.InspectResponse) (bool, string) {
			h := c.Config
			ok := h != nil && h.Healthcheck != nil && len(h.Healthcheck.Test) > 0 && h.Healthcheck.Test[0] != "NONE"
			return ok, ""
		}},
	{id: "5.28", title: "The PIDs cgroup limit is used",
		remediation: "set a pids limit (deploy.resources.limits.pids; berth applies --default-pids otherwise)",
		judge: func(c *container.InspectResponse) (bool, string) {
			p := hostCfg(c).PidsLimit
			return p != nil && *p > 0, ""
		}},
	{id: "5.29", title: "Docker's default bridge 'docker0' is not used",
		remediation: "attach containers to a user-defined network (berth gives every stack its own)",
		judge: func(c *container.InspectResponse) (bool, string) {
			m := hostCfg(c).NetworkMode
			if m.IsDefault() || m.IsBridge() {
				return false, "on the default bridge"
			}
			if c.NetworkSettings != nil {
				if _, ok := c.NetworkSettings.Networks["bridge"]; ok {
					return false, "attached to the default bridge"
				}
			}
			return true, string(m)
		}},
	{id: "5.30", title: "The host's user namespaces are not shared",
		remediation: "do not use userns_mode: host",
		judge:       func(c *container.InspectResponse) (bool, string) { return !hostCfg(c).UsernsMode.IsHost(), "" }},
	{id: "5.31", title: "The Docker socket is not mounted inside any containers",
		remediation: "do not mount docker.sock into containers",
		judge: func(c *container.InspectResponse) (bool, string) {
			for _, m := range c.Mounts {
				if strings.HasSuffix(m.Source, "docker.sock") {
					return false, "mounts " + m.Source
				}
			}
			return true, ""
		}},
}

// CheckContainer runs the section 5 checks on one container.
func CheckContainer(c *container.InspectResponse) []Result {
	name := strings.TrimPrefix(c.Name, "/")
	out := make([]Result, 0, len(containerChecks))
	for _, ch := range containerChecks {
		if ch.applies != nil && !ch.applies(c) {
			continue
		}
		ok, detail := ch.judge(c)
		r := Result{ID: ch.id, Title: ch.title, Level: Pass, Target: name, Detail: detail}
		if !ok {
			r.Level, r.Remediation = Warn, ch.remediation
		}
		out = append(out, r)
	}
	return out
}

// IDs of the section 5 checks run on every container.
func ContainerCheckIDs() []string {
	ids := make([]string, 0, len(containerChecks))
	for _, c := range containerChecks {
		ids = append(ids, c.id)
	}
	return ids
}
