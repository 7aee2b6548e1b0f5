package compose

import (
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/template"
)

// unsetVars records the variables interpolation found unset. compose-go
// would log them to the process's stderr, where a server drops them;
// berth returns them as warnings with the place they are used.
type unsetVars struct {
	mu    sync.Mutex
	names map[string]bool
}

var plainVarRE = regexp.MustCompile(`^\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?$`)

// option makes compose-go interpolate as it does by default, silently,
// recording unset variables. Only plain $NAME and ${NAME} count: forms
// with a default (${NAME:-x}) or a required mark (${NAME:?}) say what
// happens when the variable is unset.
func (u *unsetVars) option(o *loader.Options) {
	if o.Interpolate == nil {
		return
	}
	replace := func(sub string, m template.Mapping, cfg *template.Config) (string, error) {
		if g := plainVarRE.FindStringSubmatch(sub); g != nil {
			if _, set := m(g[1]); !set {
				u.mu.Lock()
				u.names[g[1]] = true
				u.mu.Unlock()
			}
		}
		return template.DefaultReplacementFunc(sub, m, cfg)
	}
	o.Interpolate.Substitute = func(s string, m template.Mapping) (string, error) {
		return template.SubstituteWithOptions(s, m, template.WithoutLogging, template.WithReplacementFunction(replace))
	}
}

// warnings says where each unset variable is first used.
func (u *unsetVars) warnings(ps *positions) []finding {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []finding
	for _, name := range sortedKeys(u.names) {
		f := finding{verdict: warned, path: "$" + name,
			msg: fmt.Sprintf("variable %s is not set and is replaced by an empty string; set it in the environment or .env, or write ${%s:-default}", name, name)}
		f.pos = ps.firstUse(name)
		out = append(out, f)
	}
	return out
}

// firstUse finds the first $NAME or ${NAME in the files, for a position.
func (ps *positions) firstUse(name string) Pos {
	re := regexp.MustCompile(`\$(\{` + name + `\}|` + name + `\b)`)
	for _, f := range ps.files {
		for i, line := range strings.Split(string(f.raw), "\n") {
			if loc := re.FindStringIndex(line); loc != nil {
				return Pos{File: f.name, Line: i + 1, Col: loc[0] + 1}
			}
		}
	}
	if len(ps.files) > 0 {
		return Pos{File: ps.files[0].name, Line: 1, Col: 1}
	}
	return Pos{}
}
