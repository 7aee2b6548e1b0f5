package cis

import (
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/system"
)

func berthLike() *container.InspectResponse {
	pids := int64(512)
	return &container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{
			Name: "/s-web-1-abc",
			HostConfig: &container.HostConfig{
				CapDrop:        []string{"ALL"},
				SecurityOpt:    []string{"no-new-privileges:true"},
				ReadonlyRootfs: true,
				NetworkMode:    "berth_s",
				RestartPolicy:  container.RestartPolicy{Name: container.RestartPolicyDisabled},
				Resources:      container.Resources{Memory: 512 << 20, CPUShares: 512, PidsLimit: &pids},
			},
		},
		Config:          &container.Config{Healthcheck: &container.HealthConfig{Test: []string{"CMD", "/probe", "-healthcheck"}}},
		NetworkSettings: &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{"berth_s": {}}},
	}
}

func levels(rs []Result) map[string]string {
	out := map[string]string{}
	for _, r := range rs {
		out[r.ID] = r.Level
	}
	return out
}

func TestContainerChecks(t *testing.T) {
	t.Parallel()
	for id, lvl := range levels(CheckContainer(berthLike())) {
		if lvl != Pass && id != "5.13" {
			t.Errorf("berth-like container: %s is %s", id, lvl)
		}
	}
	tests := []struct {
		desc   string
		mutate func(c *container.InspectResponse)
		want   string // the check that must warn
	}{
		{"privileged", func(c *container.InspectResponse) { c.HostConfig.Privileged = true }, "5.4"},
		{"default caps", func(c *container.InspectResponse) { c.HostConfig.CapDrop = nil }, "5.3"},
		{"sys_admin", func(c *container.InspectResponse) { c.HostConfig.CapAdd = []string{"CAP_SYS_ADMIN"} }, "5.3"},
		{"host etc", func(c *container.InspectResponse) { c.Mounts = []container.MountPoint{{Type: "bind", Source: "/etc/"}} }, "5.5"},
		{"docker socket", func(c *container.InspectResponse) {
			c.Mounts = []container.MountPoint{{Type: "bind", Source: "/var/run/docker.sock"}}
		}, "5.31"},
		{"host network", func(c *container.InspectResponse) { c.HostConfig.NetworkMode = "host" }, "5.9"},
		{"host pid", func(c *container.InspectResponse) { c.HostConfig.PidMode = "host" }, "5.15"},
		{"host ipc", func(c *container.InspectResponse) { c.HostConfig.IpcMode = "host" }, "5.16"},
		{"host uts", func(c *container.InspectResponse) { c.HostConfig.UTSMode = "host" }, "5.20"},
		{"host userns", func(c *container.InspectResponse) { c.HostConfig.UsernsMode = "host" }, "5.30"},
		{"no memory", func(c *container.InspectResponse) { c.HostConfig.Memory = 0 }, "5.10"},
		{"default shares", func(c *container.InspectResponse) { c.HostConfig.CPUShares = 0 }, "5.11"},
		{"writable root", func(c *container.InspectResponse) { c.HostConfig.ReadonlyRootfs = false }, "5.12"},
		{"restart always", func(c *container.InspectResponse) { c.HostConfig.RestartPolicy.Name = "always" }, "5.14"},
		{"on-failure 10", func(c *container.InspectResponse) {
			c.HostConfig.RestartPolicy = container.RestartPolicy{Name: "on-failure", MaximumRetryCount: 10}
		}, "5.14"},
		{"seccomp off", func(c *container.InspectResponse) {
			c.HostConfig.SecurityOpt = append(c.HostConfig.SecurityOpt, "seccomp=unconfined")
		}, "5.21"},
		{"new privileges", func(c *container.InspectResponse) { c.HostConfig.SecurityOpt = nil }, "5.25"},
		{"no health", func(c *container.InspectResponse) { c.Config.Healthcheck = nil }, "5.26"},
		{"health NONE", func(c *container.InspectResponse) { c.Config.Healthcheck.Test = []string{"NONE"} }, "5.26"},
		{"no pids", func(c *container.InspectResponse) { c.HostConfig.PidsLimit = nil }, "5.28"},
		{"docker0", func(c *container.InspectResponse) { c.HostConfig.NetworkMode = "default" }, "5.29"},
		{"devices", func(c *container.InspectResponse) {
			c.HostConfig.Devices = []container.DeviceMapping{{PathOnHost: "/dev/kvm"}}
		}, "5.17"},
		{"shared propagation", func(c *container.InspectResponse) {
			c.Mounts = []container.MountPoint{{Type: "volume", Propagation: "rshared"}}
		}, "5.19"},
		{"cgroup parent", func(c *container.InspectResponse) { c.HostConfig.CgroupParent = "/x" }, "5.24"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			c := berthLike()
			tc.mutate(c)
			rs := CheckContainer(c)
			if got := levels(rs)[tc.want]; got != Warn {
				t.Errorf("%s = %q, want WARN", tc.want, got)
			}
			for _, r := range rs {
				if r.Level == Warn && r.Remediation == "" {
					t.Errorf("%s warns without a remediation", r.ID)
				}
			}
		})
	}
}

func TestDaemonChecks(t *testing.T) {
	t.Parallel()
	info := system.Info{Driver: "overlay2", LoggingDriver: "json-file", SecurityOptions: []string{"name=seccomp,profile=default"}}
	got := levels(CheckDaemon(info, HostFacts{BridgeOptions: map[string]string{"com.docker.network.bridge.enable_icc": "true"}}))
	want := map[string]string{"2.2": Warn, "2.3": Pass, "2.4": Pass, "2.5": Pass, "2.6": Pass, "2.10": Warn, "2.13": Warn,
		"2.14": Warn, "2.15": Warn, "2.16": Warn, "2.17": Pass, "2.18": Pass}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("%s = %s, want %s", id, got[id], w)
		}
	}
	info.LiveRestoreEnabled = true
	info.SecurityOptions = append(info.SecurityOptions, "name=userns")
	got = levels(CheckDaemon(info, HostFacts{
		DaemonJSON:    map[string]any{"userland-proxy": false, "no-new-privileges": true, "icc": false},
		BridgeOptions: map[string]string{"com.docker.network.bridge.enable_icc": "false"},
		Files:         map[string]FileFacts{"/var/run/docker.sock": {Mode: 0o666}, "/etc/docker/daemon.json": {Mode: 0o600}},
	}))
	for id, w := range map[string]string{"2.2": Pass, "2.10": Pass, "2.14": Pass, "2.15": Pass, "2.16": Pass, "3.15": Warn, "3.17": Pass} {
		if got[id] != w {
			t.Errorf("hardened: %s = %s, want %s", id, got[id], w)
		}
	}
}
