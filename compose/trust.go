package compose

import (
	"fmt"
	"path/filepath"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/berth-dev/berth/api"
)

// maxKeySize bounds a public key file.
const maxKeySize = 16 << 10

// trust reads the top-level x-berth.trust: {keys: [FILE, …]}: public
// keys (PEM) of which one must have signed every image before it runs.
// The files are read now, so the policy travels with the stack.
func (c *converter) trust(st *api.Stack, p *types.Project) {
	m, _ := p.Extensions["x-berth"].(map[string]any)
	raw, ok := m["trust"]
	if !ok {
		return
	}
	path := "x-berth.trust"
	tm, ok := raw.(map[string]any)
	if !ok {
		c.problem(path, "trust must be a mapping: {keys: [cosign.pub, …]}")
		return
	}
	for k := range tm {
		if k != "keys" {
			c.problem(path, "unknown key %q; valid keys: keys", k)
		}
	}
	list, ok := tm["keys"].([]any)
	if !ok || len(list) == 0 {
		c.problem(path+".keys", "keys must list at least one public key file (PEM), e.g. [./cosign.pub]")
		return
	}
	pol := &api.TrustPolicy{}
	for i, v := range list {
		kp := fmt.Sprintf("%s.keys.%d", path, i)
		file, isStr := v.(string)
		if !isStr || file == "" {
			c.problem(kp, "a key is a path to a PEM public key file")
			continue
		}
		if !filepath.IsAbs(file) {
			file = filepath.Join(p.WorkingDir, file)
		}
		b, err := readLimited(file, maxKeySize)
		if err != nil {
			c.problem(kp, "%v", err)
			continue
		}
		pol.Keys = append(pol.Keys, string(b))
	}
	st.Trust = pol
}
