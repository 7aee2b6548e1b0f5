package alerts

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/berth-dev/berth/api"
)

// Severities.
const (
	Critical = "critical"
	Warning  = "warning"
)

// Grouping of events into one alert.
const (
	byService = "service" // stack/service (members: tasks)
	byNode    = "node"
	bySubject = "subject" // stack/service/subject (a route, a certificate's host)
)

// Rule turns events into an alert: an event of a Fire type fires (or
// adds to) the alert of its group; an event of a Resolve type of the same
// group resolves it (or, with members, removes its task and resolves it
// once no task is left).
type Rule struct {
	Name     string
	Severity string
	Fire     []string
	Resolve  []string
	By       string
	Members  bool // tasks are members
	What     string
}

// Rules are berth's built-in alert rules.
var Rules = []Rule{
	{Name: "rollout_failed", Severity: Critical, By: byService, What: "rollout rolled back",
		Fire: []string{"rollout.rolled_back", "rollout.failed"}, Resolve: []string{"rollout.done"}},
	{Name: "crash_loop", Severity: Critical, By: byService, Members: true, What: "crash loop",
		Fire: []string{"task.crashloop"}, Resolve: []string{"task.recovered"}},
	{Name: "oom_kill", Severity: Warning, By: byService, Members: true, What: "OOM kill",
		Fire: []string{"task.oom"}, Resolve: []string{"task.recovered"}},
	{Name: "outside_in_check", Severity: Critical, By: bySubject, What: "outside-in check failing",
		Fire: []string{"monitor.down"}, Resolve: []string{"monitor.up"}},
	{Name: "engine_wedged", Severity: Critical, By: byNode, What: "container engine wedged",
		Fire: []string{"engine.wedged"}, Resolve: []string{"engine.healthy", "engine.slow"}},
	{Name: "engine_slow", Severity: Warning, By: byNode, What: "container engine slow",
		Fire: []string{"engine.slow"}, Resolve: []string{"engine.healthy", "engine.wedged"}},
	{Name: "disk_over_budget", Severity: Warning, By: byNode, What: "disk over budget",
		Fire: []string{"disk.over_budget"}, Resolve: []string{"disk.ok"}},
	{Name: "cert_expiring", Severity: Warning, By: bySubject, What: "certificate expiring",
		Fire: []string{"cert.expiring"}, Resolve: []string{"cert.renewed"}},
}

// RuleNames lists the built-in rules' names.
func RuleNames() []string {
	out := make([]string, 0, len(Rules))
	for _, r := range Rules {
		out = append(out, r.Name)
	}
	return out
}

func (r Rule) fires(typ string) bool    { return slices.Contains(r.Fire, typ) }
func (r Rule) resolves(typ string) bool { return slices.Contains(r.Resolve, typ) }

// group names what an event is about for this rule ("" when the event
// lacks it and cannot be grouped).
func (r Rule) group(e api.Event) string {
	switch r.By {
	case byService:
		if e.Stack == "" {
			return ""
		}
		return e.Stack + "/" + e.Service
	case byNode:
		return e.Node
	default:
		if e.Subject == "" && e.Stack == "" {
			return ""
		}
		return e.Stack + "/" + e.Service + "/" + e.Subject
	}
}

// alertID is the stable ID of a rule's alert for a group: the same
// condition always has the same ID (receivers deduplicate on it).
func alertID(rule, group string) string {
	h := sha256.Sum256([]byte(rule + "\x00" + group))
	return hex.EncodeToString(h[:8])
}

// summary says in one line what fired.
func (r Rule) summary(a api.Alert) string {
	where := a.Subject
	switch r.By {
	case byService:
		where = a.Stack + "/" + a.Service
	case byNode:
		where = "node " + a.Subject
		if a.Subject == "" {
			where = "node " + a.Node
		}
	case bySubject:
		if a.Stack != "" {
			where = a.Stack + "/" + a.Service
			if a.Subject != "" {
				where += " " + a.Subject
			}
		}
	}
	s := fmt.Sprintf("%s: %s", r.What, where)
	if r.Members && len(a.Members) > 1 {
		s += fmt.Sprintf(" (%d tasks)", len(a.Members))
	}
	return s
}
