package compose

import (
	"fmt"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/robfig/cron/v3"

	"github.com/berth-dev/berth/api"
)

// cronParser accepts five fields or a descriptor (@hourly, @every 5m).
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// extension reads the service's x-berth. The file check has already
// rejected unknown keys written in the named files.
func (c *converter) extension(spec *api.ServiceSpec, s *types.ServiceConfig, path string) {
	raw, ok := s.Extensions["x-berth"]
	if !ok || raw == nil {
		return
	}
	p := path + ".x-berth"
	rules := serviceRules["x-berth"].sub
	m, ok := raw.(map[string]any)
	if !ok {
		c.problem(p, "x-berth must be a mapping; valid keys: %s", strings.Join(sortedKeys(rules), ", "))
		return
	}
	c.unknownExtensionKeys(p, m, rules)
	if v, ok := m["schedule"]; ok {
		c.schedule(spec, v, p+".schedule")
	}
	if v, ok := m["routes"]; ok {
		c.routes(spec, v, p+".routes")
	}
	if v, ok := m["deploy"]; ok {
		c.berthDeploy(spec, v, p+".deploy")
	}
	if v, ok := m["security"]; ok {
		c.berthSecurity(spec, v, p+".security")
	}
	if v, ok := m["secrets_as_env"]; ok {
		b, isBool := v.(bool)
		switch {
		case !isBool:
			c.problem(p+".secrets_as_env", "secrets_as_env must be true or false")
		case b:
			spec.SecretsAsEnv = true
			c.warn(p+".secrets_as_env", "secrets_as_env puts the service's secrets in its environment, where docker inspect and child processes see them; read /run/secrets/NAME instead if the program can")
		}
	}
	if v, ok := m["update"]; ok {
		c.berthUpdate(spec, v, p+".update")
	}
}

func (c *converter) schedule(spec *api.ServiceSpec, v any, path string) {
	sched, isStr := v.(string)
	switch {
	case !isStr || strings.TrimSpace(sched) == "":
		c.problem(path, "schedule must be a cron expression string, e.g. \"0 3 * * *\" or \"@every 10m\"")
	default:
		if _, err := parseCron(sched); err != nil {
			c.problem(path, "schedule %q: %v; use five cron fields (minute hour day month weekday) or @hourly, @daily, @every 10m", sched, err)
			return
		}
		spec.Schedule = sched
	}
}

// parseCron parses a schedule; the cron library panics on some inputs
// (@every with a huge duration), which must not reach a caller.
func parseCron(s string) (sched cron.Schedule, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("not a valid schedule")
		}
	}()
	sched, err = cronParser.Parse(s)
	if err == nil && strings.HasPrefix(s, "@every") {
		// @every below a second would run the job continuously.
		d, perr := time.ParseDuration(strings.TrimSpace(strings.TrimPrefix(s, "@every")))
		if perr == nil && d < time.Second {
			err = fmt.Errorf("the interval %s is below one second", d)
		}
	}
	return sched, err
}

// berthDeploy reads x-berth.deploy: the rollout strategy and its gates.
func (c *converter) berthDeploy(spec *api.ServiceSpec, v any, path string) {
	rules := serviceRules["x-berth"].sub["deploy"].sub
	m, ok := v.(map[string]any)
	if !ok {
		c.problem(path, "deploy must be a mapping; valid keys: %s", strings.Join(sortedKeys(rules), ", "))
		return
	}
	c.unknownExtensionKeys(path, m, rules)
	up := &spec.Update
	if v, ok := m["strategy"]; ok {
		switch s, _ := v.(string); s {
		case api.Rolling, api.BlueGreen, api.Canary:
			up.Strategy = s
		default:
			c.problem(path+".strategy", "strategy %v: use rolling, blue-green or canary", v)
		}
	}
	durations := map[string]*api.Duration{"interval": &up.Interval, "max_p99": &up.MaxP99,
		"rollback_window": &up.RollbackWindow, "deadline": &up.Deadline, "stability": &up.Stability}
	for _, key := range sortedKeys(durations) {
		v, ok := m[key]
		if !ok {
			continue
		}
		s, _ := v.(string)
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			c.problem(path+"."+key, "%s %v: use a duration like 30s or 2m", key, v)
			continue
		}
		*durations[key] = api.Duration(d)
	}
	if v, ok := m["steps"]; ok {
		c.canarySteps(up, v, path+".steps")
	}
	if v, ok := m["max_error_rate"]; ok {
		f, isNum := number(v)
		if !isNum || f < 0 || f >= 1 {
			c.problem(path+".max_error_rate", "max_error_rate %v: use a share between 0 and 1, like 0.01 for 1%%", v)
		} else {
			up.MaxErrorRate = f
		}
	}
	// max_surge and max_unavailable are the rolling strategy's words for
	// Compose's update_config: a surge replaces start-first, unavailable
	// slots stop-first.
	surge, hasSurge := m["max_surge"]
	unavail, hasUnavail := m["max_unavailable"]
	if hasSurge || hasUnavail {
		s, sok := count(surge, hasSurge)
		u, uok := count(unavail, hasUnavail)
		switch {
		case !sok:
			c.problem(path+".max_surge", "max_surge %v: use a whole number of tasks", surge)
		case !uok:
			c.problem(path+".max_unavailable", "max_unavailable %v: use a whole number of tasks", unavail)
		case s == 0 && u == 0:
			c.problem(path, "max_surge and max_unavailable cannot both be 0: the rollout could never replace a task")
		case s > 0:
			up.Parallelism, up.Order = s, api.StartFirst
		default:
			up.Parallelism, up.Order = u, api.StopFirst
		}
	}
	if up.Strategy != api.Canary && len(up.Steps) > 0 {
		c.problem(path+".steps", "steps apply to the canary strategy only; set strategy: canary or remove steps")
	}
}

// canarySteps reads ascending traffic shares in percent; 100 is added
// when the list does not end with it.
func (c *converter) canarySteps(up *api.UpdatePolicy, v any, path string) {
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		c.problem(path, "steps must be a list of traffic shares in percent, like [5, 25, 100]")
		return
	}
	prev := 0
	for i, item := range list {
		f, isNum := number(item)
		n := int(f)
		if !isNum || float64(n) != f || n <= prev || n > 100 {
			c.problem(fmt.Sprintf("%s.%d", path, i), "step %v: steps are whole percentages, rising, between 1 and 100", item)
			return
		}
		up.Steps = append(up.Steps, n)
		prev = n
	}
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

// count reads a whole, non-negative number of tasks (absent: 0).
func count(v any, present bool) (int, bool) {
	if !present {
		return 0, true
	}
	f, ok := number(v)
	if !ok || f < 0 || float64(int(f)) != f {
		return 0, false
	}
	return int(f), true
}

func (c *converter) berthSecurity(spec *api.ServiceSpec, v any, path string) {
	rules := serviceRules["x-berth"].sub["security"].sub
	m, ok := v.(map[string]any)
	if !ok {
		c.problem(path, "security must be a mapping; valid keys: %s", strings.Join(sortedKeys(rules), ", "))
		return
	}
	c.unknownExtensionKeys(path, m, rules)
	fields := map[string]*bool{
		"keep_default_capabilities": &spec.Security.KeepDefaultCaps,
		"allow_new_privileges":      &spec.Security.AllowNewPrivileges,
	}
	for _, key := range sortedKeys(fields) {
		val, ok := m[key]
		if !ok {
			continue
		}
		b, isBool := val.(bool)
		if !isBool {
			c.problem(path+"."+key, "%s must be true or false", key)
			continue
		}
		*fields[key] = b
		if b {
			c.warn(path+"."+key, "%s widens the container's privileges; keep it only if the program needs it", key)
		}
	}
}

var routeKeys = map[string]rule{"host": ok(), "path": ok(), "port": ok(), "timeout": ok()}

// routes reads x-berth.routes: [{host, path, port, timeout}].
func (c *converter) routes(spec *api.ServiceSpec, v any, path string) {
	list, ok := v.([]any)
	if !ok {
		c.problem(path, "routes must be a list of {host, path, port, timeout}")
		return
	}
	for i, item := range list {
		p := fmt.Sprintf("%s.%d", path, i)
		m, ok := item.(map[string]any)
		if !ok {
			c.problem(p, "a route must be a mapping with host, path, port and timeout")
			continue
		}
		c.unknownExtensionKeys(p, m, routeKeys)
		r := c.route(m, p)
		if r.Port == 0 {
			c.problem(p, "a route needs port: the container port to send requests to")
		}
		if spec.NetworkMode == "host" {
			c.problem(p, "routes need the stack network; remove network_mode: host")
		}
		spec.Routes = append(spec.Routes, r)
	}
}

func (c *converter) route(m map[string]any, p string) api.HTTPRoute {
	var r api.HTTPRoute
	if val, ok := m["host"]; ok {
		h, _ := val.(string)
		if h == "" || strings.ContainsAny(h, "/: ") {
			c.problem(p+".host", "host %v: give a host name like shop.example.com (no scheme, port or path)", val)
		}
		r.Host = strings.ToLower(h)
	}
	if val, ok := m["path"]; ok {
		pp, _ := val.(string)
		if !strings.HasPrefix(pp, "/") {
			c.problem(p+".path", "path %v must start with /", val)
		}
		r.PathPrefix = pp
	}
	if val, ok := m["port"]; ok {
		n, ok := asInt(val)
		if !ok || n < 1 || n > 65535 {
			c.problem(p+".port", "port %v: give the container port the service listens on (1-65535)", val)
			n = 0
		}
		r.Port = uint16(n)
	}
	if val, ok := m["timeout"]; ok {
		ds, _ := val.(string)
		d, err := time.ParseDuration(ds)
		if err != nil || d <= 0 {
			c.problem(p+".timeout", "timeout %v: use a duration like 30s", val)
		}
		r.Timeout = api.Duration(d)
	}
	return r
}

func asInt(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case int64:
		return int(n), true
	case uint64:
		return int(min(n, 1<<31)), true
	case float64:
		return int(n), n == float64(int(n))
	}
	return 0, false
}
