package scheduler

import (
	"strings"

	"github.com/berth-dev/berth/api"
)

// Attributes of a node a constraint can test.
const (
	AttrID    = "node.id"
	AttrName  = "node.name"
	AttrLabel = "node.labels"
)

// Constraint is one parsed placement constraint, as in Compose's
// deploy.placement.constraints.
type Constraint struct {
	// Attribute is AttrID, AttrName or AttrLabel.
	Attribute string
	// Label is the KEY of node.labels.KEY; empty for the other attributes.
	Label string
	// Equal is true for ==, false for !=.
	Equal bool
	Value string
}

const constraintHelp = "write node.labels.KEY==VALUE, node.name==NAME or node.id==ID (or != for any of them)"

// constraintError is of kind api.ErrInvalid without the kind's prefix in its
// text, so that it reads well both as an API error and as a task's
// Unplaced reason.
type constraintError struct{ msg string }

func (e *constraintError) Error() string { return e.msg }
func (e *constraintError) Unwrap() error { return api.ErrInvalid }

func badConstraint(s, why string) error {
	return &constraintError{msg: "placement constraint " + quote(s) + ": " + why + "; " + constraintHelp}
}

func quote(s string) string { return `"` + s + `"` }

// ParseConstraint parses "node.labels.KEY==VALUE", "node.labels.KEY!=VALUE",
// "node.name==NAME" (node.hostname is a synonym, as in Swarm),
// "node.name!=NAME", "node.id==ID" and "node.id!=ID". Space around the
// operator is allowed. The error, of kind api.ErrInvalid, says what to write
// instead; the Compose converter and the API validate specs with it so that
// a spec the scheduler cannot read is refused before it is stored.
func ParseConstraint(s string) (Constraint, error) {
	at, eq := operator(s)
	if at < 0 {
		return Constraint{}, badConstraint(s, "no == or != operator")
	}
	lhs, rhs := strings.TrimSpace(s[:at]), strings.TrimSpace(s[at+2:])
	if rhs == "" {
		return Constraint{}, badConstraint(s, "no value after the operator")
	}
	// A second operator makes the intent unclear ("a==b==c"), so refuse it
	// rather than guess which side it belongs to.
	if i, _ := operator(rhs); i >= 0 {
		return Constraint{}, badConstraint(s, "more than one operator")
	}
	c := Constraint{Equal: eq, Value: rhs}
	switch {
	case lhs == AttrName, lhs == "node.hostname":
		c.Attribute = AttrName
	case lhs == AttrID:
		c.Attribute = AttrID
	case strings.HasPrefix(lhs, AttrLabel+"."):
		c.Attribute, c.Label = AttrLabel, lhs[len(AttrLabel)+1:]
		if c.Label == "" || strings.ContainsAny(c.Label, " \t\r\n=!") {
			return Constraint{}, badConstraint(s, "label key "+quote(c.Label)+" is empty or contains space, = or !")
		}
	default:
		return Constraint{}, badConstraint(s, "unknown attribute "+quote(lhs))
	}
	return c, nil
}

// operator returns the position of the first "==" or "!=" in s (-1 if none)
// and whether it is "==".
func operator(s string) (int, bool) {
	for i := 0; i+1 < len(s); i++ {
		if s[i+1] == '=' && (s[i] == '=' || s[i] == '!') {
			return i, s[i] == '='
		}
	}
	return -1, false
}

// String returns the constraint in the canonical form ParseConstraint reads.
func (c Constraint) String() string {
	op := "=="
	if !c.Equal {
		op = "!="
	}
	attr := c.Attribute
	if attr == AttrLabel {
		attr += "." + c.Label
	}
	return attr + op + c.Value
}

// Matches reports whether node n satisfies the constraint. A node without
// the label does not equal any value, so it matches every != on that label
// (as in Swarm).
func (c Constraint) Matches(n *api.Node) bool {
	var have string
	var ok bool
	switch c.Attribute {
	case AttrID:
		have, ok = n.ID, true
	case AttrName:
		have, ok = n.Name, true
	default:
		have, ok = n.Labels[c.Label]
	}
	return (ok && have == c.Value) == c.Equal
}

func parseConstraints(ss []string) ([]Constraint, error) {
	if len(ss) == 0 {
		return nil, nil
	}
	out := make([]Constraint, 0, len(ss))
	for _, s := range ss {
		c, err := ParseConstraint(s)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func matchAll(cs []Constraint, n *api.Node) bool {
	for i := range cs {
		if !cs[i].Matches(n) {
			return false
		}
	}
	return true
}
