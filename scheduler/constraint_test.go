package scheduler

import (
	"errors"
	"strings"
	"testing"

	"github.com/berth-dev/berth/api"
)

func TestParseConstraint(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc  string
		in    string
		want  Constraint
		canon string
		err   string // substring of the error; "" when valid
	}{
		{desc: "label ==", in: "node.labels.zone==eu", want: Constraint{Attribute: AttrLabel, Label: "zone", Equal: true, Value: "eu"}, canon: "node.labels.zone==eu"},
		{desc: "label != with spaces", in: " node.labels.zone != eu ", want: Constraint{Attribute: AttrLabel, Label: "zone", Value: "eu"}, canon: "node.labels.zone!=eu"},
		{desc: "dotted label key", in: "node.labels.io.berth.tier==db", want: Constraint{Attribute: AttrLabel, Label: "io.berth.tier", Equal: true, Value: "db"}, canon: "node.labels.io.berth.tier==db"},
		{desc: "name", in: "node.name==web1", want: Constraint{Attribute: AttrName, Equal: true, Value: "web1"}, canon: "node.name==web1"},
		{desc: "hostname is name", in: "node.hostname!=web1", want: Constraint{Attribute: AttrName, Value: "web1"}, canon: "node.name!=web1"},
		{desc: "id", in: "node.id==abc123", want: Constraint{Attribute: AttrID, Equal: true, Value: "abc123"}, canon: "node.id==abc123"},
		{desc: "id !=", in: "node.id!=abc123", want: Constraint{Attribute: AttrID, Value: "abc123"}, canon: "node.id!=abc123"},
		{desc: "value with spaces", in: "node.labels.rack==row 3", want: Constraint{Attribute: AttrLabel, Label: "rack", Equal: true, Value: "row 3"}, canon: "node.labels.rack==row 3"},
		{desc: "no operator", in: "zone=eu", err: `placement constraint "zone=eu": no == or != operator`},
		{desc: "empty", in: "", err: "no == or != operator"},
		{desc: "no value", in: "node.labels.zone==", err: "no value after the operator"},
		{desc: "two operators", in: "node.labels.zone==eu!=us", err: "more than one operator"},
		{desc: "operator in the value", in: "node.labels.a==b==c", err: "more than one operator"},
		{desc: "unknown attribute", in: "node.role==manager", err: `unknown attribute "node.role"`},
		{desc: "engine labels are not supported", in: "engine.labels.os==linux", err: "unknown attribute"},
		{desc: "empty label key", in: "node.labels.==x", err: "label key"},
		{desc: "label key with a space", in: "node.labels.my zone==x", err: "label key"},
		{desc: "labels without key", in: "node.labels==x", err: "unknown attribute"},
		{desc: "no attribute", in: "==x", err: `unknown attribute ""`},
		{desc: "single = is not an operator", in: "node.name=x", err: "no == or != operator"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			got, err := ParseConstraint(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				if !errors.Is(err, api.ErrInvalid) {
					t.Errorf("error %v is not of kind invalid", err)
				}
				if !strings.Contains(err.Error(), "node.labels.KEY==VALUE") {
					t.Errorf("error %q does not say what to write", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if got.String() != tt.canon {
				t.Errorf("String() = %q, want %q", got.String(), tt.canon)
			}
		})
	}
}

func TestConstraintMatches(t *testing.T) {
	t.Parallel()
	n := node("id1", "zone=eu", "empty=")
	tests := []struct {
		desc string
		c    string
		want bool
	}{
		{desc: "label equal", c: "node.labels.zone==eu", want: true},
		{desc: "label other value", c: "node.labels.zone==us", want: false},
		{desc: "label not equal", c: "node.labels.zone!=us", want: true},
		{desc: "label not equal to its value", c: "node.labels.zone!=eu", want: false},
		{desc: "missing label never equals", c: "node.labels.gpu==yes", want: false},
		{desc: "missing label is not equal", c: "node.labels.gpu!=yes", want: true},
		{desc: "name", c: "node.name==host-id1", want: true},
		{desc: "name is not the id", c: "node.name==id1", want: false},
		{desc: "id", c: "node.id==id1", want: true},
		{desc: "id not equal", c: "node.id!=id1", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			c, err := ParseConstraint(tt.c)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Matches(&n); got != tt.want {
				t.Errorf("%s on %+v = %v, want %v", tt.c, n, got, tt.want)
			}
		})
	}
}

// FuzzParseConstraint checks that the parser never panics, that its errors
// are of kind invalid, and that what it accepts prints in a form it reads
// back the same.
func FuzzParseConstraint(f *testing.F) {
	for _, s := range []string{"node.labels.zone==eu", "node.name != a", "node.id==x", "node.hostname==h", "zone=eu", "node.labels.a==b==c", "node.labels.==", "!=="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseConstraint(s)
		if err != nil {
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("error not of kind invalid: %v", err)
			}
			return
		}
		again, err := ParseConstraint(c.String())
		if err != nil || again != c {
			t.Fatalf("%q parsed as %+v, printed as %q, read back as %+v (%v)", s, c, c.String(), again, err)
		}
	})
}
