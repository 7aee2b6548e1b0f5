package compose

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"

	"github.com/berth-dev/berth/api"
)

// finding is one key a rule does not simply honour.
type finding struct {
	pos     Pos
	path    string
	verdict verdict
	msg     string
	// preempt: compose-go would refuse this too, less helpfully (an
	// unknown key, a bad service name), so stop before calling it.
	preempt bool
}

func (f finding) String() string {
	if f.pos.File == "" {
		return f.msg // Convert: no files, no positions
	}
	return f.pos.String() + ": " + f.msg
}

// checkBudget bounds the nodes one file's check visits: YAML merge keys
// can make a small file expand to an exponential tree.
const checkBudget = maxExpandedNodes

// checkKeys walks the keys written in every file against the rules. It
// runs before compose-go, so unknown keys get a did-you-mean and a
// position rather than a schema error.
func checkKeys(ps *positions) []finding {
	var out []finding
	for _, f := range ps.files {
		c := checker{file: f.name, out: &out, budget: checkBudget}
		c.mapping(f.root, "", topRules)
	}
	return out
}

type checker struct {
	file   string
	out    *[]finding
	budget int
}

func (c *checker) add(k *yaml.Node, path string, v verdict, msg string) {
	*c.out = append(*c.out, finding{pos: Pos{File: c.file, Line: k.Line, Col: k.Column}, path: path, verdict: v, msg: msg})
}

func (c *checker) preempt(k *yaml.Node, path, msg string) {
	c.add(k, path, rejected, msg)
	(*c.out)[len(*c.out)-1].preempt = true
}

// mapping checks the keys of a mapping node against rules.
func (c *checker) mapping(n *yaml.Node, path string, rules map[string]rule) {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode || c.budget <= 0 {
		return
	}
	c.budget--
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Tag == "!!merge" {
			c.merge(v, path, rules)
			continue
		}
		key, p := k.Value, join(path, k.Value)
		r, known := rules[key]
		switch {
		case !known && strings.HasPrefix(key, "x-"):
			// Other extensions are allowed and ignored, as Compose does.
		case !known:
			c.preempt(k, p, unknownKey(path, key, rules))
		case r.legacy:
			c.preempt(k, p, p+": "+r.why)
		case r.verdict == rejected:
			if !isDefault(v) {
				c.add(k, p, rejected, p+": "+r.why)
			}
		case r.verdict == warned:
			c.add(k, p, warned, p+": "+r.why)
		case r.sub != nil && r.each:
			c.entries(v, p, r.sub)
		case r.sub != nil:
			c.mapping(v, p, r.sub)
		}
	}
}

// merge checks the mappings a YAML merge key (<<: *base) brings in.
func (c *checker) merge(v *yaml.Node, path string, rules map[string]rule) {
	v = deref(v)
	if v != nil && v.Kind == yaml.SequenceNode {
		for _, item := range v.Content {
			c.mapping(item, path, rules)
		}
		return
	}
	c.mapping(v, path, rules)
}

// entries checks every entry of a list or of a mapping of named entries.
func (c *checker) entries(n *yaml.Node, path string, rules map[string]rule) {
	n = deref(n)
	if n == nil {
		return
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Tag == "!!merge" {
				continue // merged entries are checked where they are written
			}
			if what, named := namedEntries[path]; named {
				if err := api.ValidateName(what, k.Value); err != nil {
					c.preempt(k, join(path, k.Value), path+": "+trimKind(err)+"; rename it")
					continue
				}
			}
			c.mapping(n.Content[i+1], join(path, k.Value), rules)
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			c.mapping(item, join(path, strconv.Itoa(i)), rules)
		}
	}
}

// namedEntries are the top-level collections whose keys become names of
// berth objects (engine objects, etcd keys, file names).
var namedEntries = map[string]string{
	"services": "service name", "networks": "network name", "volumes": "volume name",
	"secrets": "secret name", "configs": "config name",
}

func unknownKey(path, key string, rules map[string]rule) string {
	where := path
	if where == "" {
		where = "top level"
	}
	msg := fmt.Sprintf("%s: unknown key %q", where, key)
	if s := suggest(key, rules); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	// berth's own extension is small and new to everyone: list it.
	if strings.HasSuffix(path, "x-berth") || strings.Contains(path, "x-berth.") {
		msg += "; valid keys: " + strings.Join(sortedKeys(rules), ", ")
	}
	return msg
}

// active drops the findings about services that a profile disabled:
// berth does not run them, so what they say does not matter. A file with
// a privileged debug service can still be deployed without that profile.
func active(found []finding, disabled types.Services) []finding {
	var out []finding
	for _, f := range found {
		name, _, _ := strings.Cut(strings.TrimPrefix(f.path, "services."), ".")
		if _, off := disabled[name]; off && strings.HasPrefix(f.path, "services.") && !f.preempt {
			continue
		}
		out = append(out, f)
	}
	return out
}

func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.AliasNode {
		return nil
	}
	return n
}

// isDefault says whether a value is the default a rejected key may keep.
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

// judgeProject applies the rules to the model compose-go loaded, which
// also holds what extends: and include: brought in from files the key
// check did not read. report receives every set key that is warned about
// or rejected.
func judgeProject(p *types.Project, report func(path string, r rule)) {
	for _, name := range sortedKeys(p.Services) {
		judge(reflect.ValueOf(p.Services[name]), serviceRules, "services."+name, report)
	}
	top := []struct {
		key   string
		value any
	}{{"networks", p.Networks}, {"volumes", p.Volumes}, {"secrets", p.Secrets}, {"configs", p.Configs}}
	for _, t := range top {
		r := topRules[t.key]
		elements(reflect.ValueOf(t.value), func(k string, e reflect.Value) {
			judge(e, r.sub, t.key+"."+k, report)
		})
	}
}

// judge walks a loaded struct by its yaml keys.
func judge(v reflect.Value, rules map[string]rule, path string, report func(path string, r rule)) {
	v = indirect(v)
	if !v.IsValid() || v.Kind() != reflect.Struct {
		return
	}
	for _, f := range yamlFields(v.Type()) {
		r, known := rules[f.key]
		fv := v.FieldByIndex(f.index)
		if !known || empty(fv) {
			// Unknown keys cannot come out of compose-go's schema;
			// TestRulesCoverComposeGo keeps the rules complete.
			continue
		}
		p := join(path, f.key)
		switch {
		case r.verdict != honoured:
			if !r.filled {
				report(p, r)
			}
		case r.sub != nil && r.each:
			elements(fv, func(k string, e reflect.Value) { judge(e, r.sub, join(p, k), report) })
		case r.sub != nil:
			judge(fv, r.sub, p, report)
		}
	}
}

type yamlField struct {
	key   string
	index []int
}

// yamlFields lists a struct's yaml keys, with inlined structs flattened.
// Fields without a key (yaml:"-", #extensions) are not user-written keys.
func yamlFields(t reflect.Type) []yamlField {
	var out []yamlField
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if f.Anonymous && f.Type.Kind() == reflect.Struct && name == "" && strings.Contains(opts, "inline") {
			for _, sub := range yamlFields(f.Type) {
				out = append(out, yamlField{key: sub.key, index: append([]int{i}, sub.index...)})
			}
			continue
		}
		if name == "" || name == "-" || strings.HasPrefix(name, "#") {
			continue
		}
		out = append(out, yamlField{key: name, index: []int{i}})
	}
	return out
}

// elements calls f for every element of a slice or map, maps in key order.
func elements(v reflect.Value, f func(key string, e reflect.Value)) {
	v = indirect(v)
	if !v.IsValid() {
		return
	}
	switch v.Kind() {
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			f(strconv.Itoa(i), v.Index(i))
		}
	case reflect.Map:
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
		for _, k := range keys {
			f(fmt.Sprint(k), v.MapIndex(k))
		}
	}
}

func indirect(v reflect.Value) reflect.Value {
	for v.IsValid() && (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface) {
		if v.IsNil() {
			return reflect.Value{}
		}
		v = v.Elem()
	}
	return v
}

// empty says whether a loaded value is unset: zero, or a pointer or
// struct holding nothing but zeros.
func empty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		return v.IsNil() || empty(v.Elem())
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if !empty(v.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Slice, reflect.Map:
		return v.Len() == 0
	}
	return v.IsZero()
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// suggest returns the known key closest to key, if close enough.
func suggest(key string, rules map[string]rule) string {
	best, bestD := "", 3
	for _, k := range sortedKeys(rules) {
		if abs(len(key)-len(k)) >= bestD {
			continue // cannot be closer; keeps long fuzzed keys cheap
		}
		if d := distance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
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
