package agent

import (
	"cmp"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/runtime"
)

// Defaults are the limits every container gets unless its service sets its
// own: least privilege and bounded resources are the norm, not an option.
type Defaults struct {
	MemoryBytes int64         // memory limit (no swap beyond it)
	PidsLimit   int64         // process limit
	CPUShares   int64         // relative CPU weight (the engine's default is 1024)
	StopGrace   time.Duration // SIGTERM → SIGKILL
	LogMaxSize  string        // engine log file size cap
	LogMaxFiles int           // engine log files kept
}

// DefaultDefaults are berth's shipped defaults.
func DefaultDefaults() Defaults {
	return Defaults{
		MemoryBytes: 512 << 20,
		PidsLimit:   512,
		CPUShares:   512,
		StopGrace:   10 * time.Second,
		LogMaxSize:  "10m",
		LogMaxFiles: 3,
	}
}

// Engine object names. Networks and volumes are named for the stack;
// ownership is decided by labels, never by name.
func networkName(stack string) string { return "berth_" + stack }

// clusterNetworkName is the stack's network when another berth cluster
// on the same engine holds networkName (two clusters with a stack of one
// name: a second install, or test runs sharing an engine).
func clusterNetworkName(stack, cluster string) string {
	if len(cluster) > 6 {
		cluster = cluster[:6]
	}
	return "berth_" + stack + "_" + cluster
}

// stackAddress is a container's address on its stack's network.
func stackAddress(c runtime.Container, stack, cluster string) string {
	if a, ok := c.Addresses[networkName(stack)]; ok {
		return a
	}
	return c.Addresses[clusterNetworkName(stack, cluster)]
}
func volumeName(stack, volume string) string { return stack + "_" + volume }
func containerName(t api.Task) string {
	return fmt.Sprintf("%s-%s-%d-%s", t.Stack, t.Service, t.Slot, t.ID)
}
func jobContainerName(j api.JobRun) string {
	return fmt.Sprintf("%s-%s-job-%s", j.Stack, j.Service, j.ID)
}

// labelStopGrace records a container's stop grace so an orphan can be
// stopped correctly after its task and revision are gone.
const labelStopGrace = "io.berth.stop-grace"

// containerSpec builds the engine spec of a task's container.
func (a *Agent) containerSpec(t api.Task, spec *api.ServiceSpec) runtime.ContainerSpec {
	labels := map[string]string{}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	for k, v := range a.ownLabels() {
		labels[k] = v
	}
	labels[api.LabelStack] = t.Stack
	labels[api.LabelService] = t.Service
	labels[api.LabelTask] = t.ID
	labels[api.LabelSlot] = strconv.Itoa(t.Slot)
	labels[api.LabelRevision] = strconv.Itoa(t.Revision)

	env := map[string]string{
		"BERTH_STACK":   t.Stack,
		"BERTH_SERVICE": t.Service,
		"BERTH_SLOT":    strconv.Itoa(t.Slot),
		"BERTH_TASK":    t.ID,
	}
	if spec.NetworkMode == "host" && t.HostPort != 0 {
		env["PORT"] = strconv.Itoa(int(t.HostPort))
	}
	cs := a.baseSpec(t.Stack, spec, labels, env)
	cs.Name = containerName(t)
	cs.Hostname = spec.Hostname
	return cs
}

// baseSpec is what task and job containers share: image, environment,
// network, mounts, limits and privileges.
func (a *Agent) baseSpec(stack string, spec *api.ServiceSpec, labels, extraEnv map[string]string) runtime.ContainerSpec {
	d := a.cfg.Defaults
	env := map[string]string{}
	for k, v := range spec.Environment {
		env[k] = v
	}
	for k, v := range extraEnv {
		env[k] = v
	}
	grace := spec.StopGracePeriod.D()
	if grace <= 0 {
		grace = d.StopGrace
	}
	labels[labelStopGrace] = grace.String()

	image := spec.ImageID
	if spec.ImageDigest != "" {
		image = spec.ImageDigest
	}
	if image == "" {
		image = spec.Image
	}
	cs := runtime.ContainerSpec{
		Image:       image,
		Cmd:         spec.Command,
		Entrypoint:  spec.Entrypoint,
		Env:         envList(env),
		User:        spec.User,
		WorkingDir:  spec.WorkingDir,
		Labels:      labels,
		Memory:      orDefault(spec.Resources.MemoryBytes, d.MemoryBytes),
		NanoCPUs:    spec.Resources.NanoCPUs,
		CPUShares:   orDefault(spec.Resources.CPUShares, d.CPUShares),
		PidsLimit:   orDefault(spec.Resources.PidsLimit, d.PidsLimit),
		ReadOnly:    spec.Security.ReadOnly,
		Sysctls:     spec.Security.Sysctls,
		StopSignal:  spec.StopSignal,
		StopTimeout: grace,
		LogMaxSize:  cmp.Or(spec.Logs.MaxSize, d.LogMaxSize),
		LogMaxFiles: cmp.Or(spec.Logs.MaxFiles, d.LogMaxFiles),
		Tmpfs:       map[string]string{},
	}
	if spec.NetworkMode == "host" {
		cs.HostNetwork = true
	} else {
		cs.Network = a.stackNetwork(stack)
		cs.Aliases = append([]string{spec.Name}, spec.Aliases...)
	}
	// Least privilege: drop every capability and add back only those the
	// service asks for, unless it opted out explicitly.
	cs.CapAdd = spec.Security.CapAdd
	if spec.Security.KeepDefaultCaps {
		cs.CapDrop = spec.Security.CapDrop
	} else {
		cs.CapDrop = []string{"ALL"}
	}
	if !spec.Security.AllowNewPrivileges {
		cs.SecurityOpt = append(cs.SecurityOpt, "no-new-privileges:true")
	}
	cs.SecurityOpt = append(cs.SecurityOpt, spec.Security.SecurityOpt...)
	for name, u := range spec.Security.Ulimits {
		cs.Ulimits = append(cs.Ulimits, runtime.Ulimit{Name: name, Soft: u.Soft, Hard: u.Hard})
	}
	sort.Slice(cs.Ulimits, func(i, j int) bool { return cs.Ulimits[i].Name < cs.Ulimits[j].Name })
	for _, m := range spec.Mounts {
		switch m.Type {
		case api.MountVolume:
			src := m.Source
			if src != "" {
				src = a.volumeEngineName(stack, m.Source)
			}
			cs.Mounts = append(cs.Mounts, runtime.Mount{Type: m.Type, Source: src, Target: m.Target, ReadOnly: m.ReadOnly})
		case api.MountTmpfs:
			cs.Tmpfs[m.Target] = "rw,noexec,nosuid"
		default:
			cs.Mounts = append(cs.Mounts, runtime.Mount{Type: m.Type, Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly})
		}
	}
	for _, target := range spec.Tmpfs {
		cs.Tmpfs[target] = "rw,noexec,nosuid"
	}
	if h := spec.Health; h != nil && len(h.Test) > 0 {
		cs.Health = &runtime.HealthConfig{
			Test:          h.Test,
			Interval:      h.Interval.D(),
			Timeout:       h.Timeout.D(),
			StartPeriod:   h.StartPeriod.D(),
			StartInterval: h.StartInterval.D(),
			Retries:       h.Retries,
		}
	}
	return cs
}

// volumeEngineName maps a stack volume to its engine name; external
// volumes keep their own name.
func (a *Agent) volumeEngineName(stack, volume string) string {
	if v, ok := a.stackVolumes(stack)[volume]; ok && v.External {
		return volume
	}
	return volumeName(stack, volume)
}

func orDefault(v, d int64) int64 {
	if v > 0 {
		return v
	}
	return d
}

func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}
