package compose

import (
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/berth-dev/berth/api"
)

// maxExpandedNodes bounds the size of a file once its aliases are
// expanded. compose-go expands them; a small file whose anchors refer to
// themselves, or nest (a billion laughs), would keep it busy for minutes.
// Real Compose files expand to a few thousand nodes.
const maxExpandedNodes = 50_000

// checkAliases rejects alias cycles and exponential expansion before
// compose-go sees the file.
func checkAliases(file string, root *yaml.Node) error {
	a := aliasCheck{file: file, size: map[*yaml.Node]int{}, open: map[*yaml.Node]bool{}}
	n, err := a.expanded(root)
	if err != nil {
		return err
	}
	if n > maxExpandedNodes {
		return fmt.Errorf("%w: %s: the file expands to more than %d YAML nodes through its aliases (*name); use fewer nested aliases", api.ErrInvalid, file, maxExpandedNodes)
	}
	return nil
}

type aliasCheck struct {
	file string
	size map[*yaml.Node]int  // expanded size, memoised: linear in the file
	open map[*yaml.Node]bool // nodes being expanded: reaching one again is a cycle
}

func (a *aliasCheck) expanded(n *yaml.Node) (int, error) {
	if s, ok := a.size[n]; ok {
		return s, nil
	}
	if a.open[n] {
		return 0, fmt.Errorf("%w: %s:%d:%d: this node refers to itself through an alias; YAML cannot include a node in itself", api.ErrInvalid, a.file, n.Line, n.Column)
	}
	a.open[n] = true
	defer delete(a.open, n)
	total := 1
	kids := n.Content
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		kids = []*yaml.Node{n.Alias}
	}
	for _, k := range kids {
		s, err := a.expanded(k)
		if err != nil {
			if n.Kind == yaml.AliasNode {
				// Name the alias, where the cycle is written.
				return 0, fmt.Errorf("%w: %s:%d:%d: alias *%s refers to a node that contains it; YAML cannot include a node in itself", api.ErrInvalid, a.file, n.Line, n.Column, n.Value)
			}
			return 0, err
		}
		total += s
		if total > maxExpandedNodes {
			break // enough to refuse; do not walk the rest
		}
	}
	a.size[n] = total
	return total, nil
}
