package cis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/client"
)

// HostFacts are what the daemon checks read besides the engine's info.
type HostFacts struct {
	// DaemonJSON is /etc/docker/daemon.json, nil when absent or when the
	// engine is not on this host.
	DaemonJSON map[string]any
	// BridgeOptions are the default bridge's driver options.
	BridgeOptions map[string]string
	// Files maps host paths to their mode and owner (section 3); only
	// files that exist and are on this host are listed.
	Files map[string]FileFacts
}

// FileFacts are a host file's permissions and owner.
type FileFacts struct {
	Mode fs.FileMode
	UID  uint32
}

func result(id, title string, ok bool, detail, remediation string) Result {
	r := Result{ID: id, Title: title, Level: Pass, Target: "daemon", Detail: detail}
	if !ok {
		r.Level, r.Remediation = Warn, remediation
	}
	return r
}

func jsonBool(m map[string]any, key string) (bool, bool) {
	v, ok := m[key].(bool)
	return v, ok
}

func hasSecOpt(info system.Info, name string) bool {
	for _, o := range info.SecurityOptions {
		if strings.Contains(o, "name="+name) {
			return true
		}
	}
	return false
}

// CheckDaemon runs the section 2 and 3 checks.
func CheckDaemon(info system.Info, h HostFacts) []Result {
	var out []Result
	icc := h.BridgeOptions["com.docker.network.bridge.enable_icc"]
	out = append(out, result("2.2", "Network traffic is restricted between containers on the default bridge", icc == "false",
		"enable_icc="+icc, `set "icc": false in /etc/docker/daemon.json (berth never uses the default bridge)`))
	lvl, _ := h.DaemonJSON["log-level"].(string)
	out = append(out, result("2.3", "The logging level is set to 'info'", lvl == "" || lvl == "info",
		"log-level="+lvl, `remove "log-level" or set it to "info" in /etc/docker/daemon.json`))
	ipt, set := jsonBool(h.DaemonJSON, "iptables")
	out = append(out, result("2.4", "Docker is allowed to make changes to iptables", !set || ipt,
		"", `remove "iptables": false from /etc/docker/daemon.json`))
	var insecure []string
	if rc := info.RegistryConfig; rc != nil {
		for _, c := range rc.InsecureRegistryCIDRs {
			if s := c.String(); s != "127.0.0.0/8" && s != "::1/128" {
				insecure = append(insecure, s)
			}
		}
		for name, ic := range rc.IndexConfigs {
			if ic != nil && !ic.Secure {
				insecure = append(insecure, name)
			}
		}
	}
	sort.Strings(insecure)
	out = append(out, result("2.5", "Insecure registries are not used", len(insecure) == 0,
		strings.Join(insecure, ", "), `remove "insecure-registries" from /etc/docker/daemon.json and use TLS`))
	out = append(out, result("2.6", "aufs storage driver is not used", info.Driver != "aufs",
		"storage driver "+info.Driver, "use overlay2"))
	out = append(out, result("2.10", "User namespace support is enabled", hasSecOpt(info, "userns"),
		"", `set "userns-remap": "default" in /etc/docker/daemon.json (check that volumes and images work with it first)`))
	out = append(out, result("2.13", "Centralized and remote logging is configured", info.LoggingDriver != "json-file" && info.LoggingDriver != "local",
		"logging driver "+info.LoggingDriver, "ship logs off the host (a syslog or journald driver, or a log collector)"))
	out = append(out, result("2.14", "Containers are restricted from acquiring new privileges by default", func() bool { v, _ := jsonBool(h.DaemonJSON, "no-new-privileges"); return v }(),
		"", `set "no-new-privileges": true in /etc/docker/daemon.json (berth sets it on its containers anyway)`))
	out = append(out, result("2.15", "Live restore is enabled", info.LiveRestoreEnabled,
		"", `set "live-restore": true in /etc/docker/daemon.json so containers survive an engine restart`))
	up, set := jsonBool(h.DaemonJSON, "userland-proxy")
	out = append(out, result("2.16", "Userland proxy is disabled", set && !up,
		"", `set "userland-proxy": false in /etc/docker/daemon.json (berth publishes ports through its own ingress)`))
	out = append(out, result("2.17", "A daemon-wide custom seccomp profile is applied if appropriate", hasSecOpt(info, "seccomp"),
		"", "run the engine with seccomp support (the default profile is enough)"))
	out = append(out, result("2.18", "Experimental features are not used in production", !info.ExperimentalBuild,
		"", `remove "experimental": true from /etc/docker/daemon.json`))
	for _, f := range []struct{ id, path, title string }{
		{"3.15", "/var/run/docker.sock", "Docker socket file ownership is set to root:docker and permissions to 660 or more restrictive"},
		{"3.17", "/etc/docker/daemon.json", "daemon.json file ownership is root and permissions 644 or more restrictive"},
	} {
		ff, ok := h.Files[f.path]
		if !ok {
			continue
		}
		limit := fs.FileMode(0o644)
		if f.id == "3.15" {
			limit = 0o660
		}
		r := result(f.id, f.title, ff.UID == 0 && ff.Mode.Perm()&^limit == 0,
			fmt.Sprintf("%s: mode %04o, uid %d", f.path, ff.Mode.Perm(), ff.UID), fmt.Sprintf("chown root %s && chmod %o %s", f.path, limit, f.path))
		r.Target = "host"
		out = append(out, r)
	}
	return out
}

// Options select what Run looks at.
type Options struct {
	// LocalHost says the engine runs on this host, so its files can be read.
	LocalHost bool
	// Labels, when set, limit the container checks to containers that
	// carry all of them (berth's own).
	Labels map[string]string
	// CallTimeout bounds each engine call (default 10s).
	CallTimeout time.Duration
}

// Run gathers what the checks need from the engine and the host and runs
// them on the daemon and every running container.
func Run(ctx context.Context, cli *client.Client, opts Options) (Report, error) {
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 10 * time.Second
	}
	call := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, opts.CallTimeout) }
	cctx, cancel := call()
	info, err := cli.Info(cctx)
	cancel()
	if err != nil {
		return Report{}, fmt.Errorf("engine info: %w", err)
	}
	facts := HostFacts{Files: map[string]FileFacts{}}
	cctx, cancel = call()
	if br, err := cli.NetworkInspect(cctx, "bridge", network.InspectOptions{}); err == nil {
		facts.BridgeOptions = br.Options
	}
	cancel()
	if opts.LocalHost {
		if b, err := os.ReadFile("/etc/docker/daemon.json"); err == nil {
			_ = json.Unmarshal(b, &facts.DaemonJSON)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return Report{}, fmt.Errorf("read /etc/docker/daemon.json: %w", err)
		}
		for _, p := range []string{"/var/run/docker.sock", "/etc/docker/daemon.json"} {
			if fi, err := os.Stat(p); err == nil {
				ff := FileFacts{Mode: fi.Mode()}
				if st, ok := fi.Sys().(*syscall.Stat_t); ok {
					ff.UID = st.Uid
				}
				facts.Files[p] = ff
			}
		}
	}
	rep := Report{Engine: info.ServerVersion}
	rep.add(CheckDaemon(info, facts)...)

	cctx, cancel = call()
	lo := container.ListOptions{}
	if len(opts.Labels) > 0 {
		lo.Filters = labelFilters(opts.Labels)
	}
	cs, err := cli.ContainerList(cctx, lo)
	cancel()
	if err != nil {
		return Report{}, fmt.Errorf("list containers: %w", err)
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].Names[0] < cs[j].Names[0] })
	for _, c := range cs {
		cctx, cancel := call()
		full, err := cli.ContainerInspect(cctx, c.ID)
		cancel()
		if err != nil {
			continue // gone meanwhile
		}
		rep.add(CheckContainer(&full)...)
	}
	return rep, nil
}

func labelFilters(labels map[string]string) filters.Args {
	f := filters.NewArgs()
	for k, v := range labels {
		f.Add("label", k+"="+v)
	}
	return f
}
