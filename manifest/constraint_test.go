package manifest

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestParseConstraint(t *testing.T) {
	t.Parallel()
	tests := []struct {
		text, canonical string
		want            Constraint
	}{
		{"arch == arm64", "arch == arm64", Constraint{Attr: AttrArch, Op: OpEqual, Values: []string{"arm64"}}},
		{"  os==linux ", "os == linux", Constraint{Attr: AttrOS, Op: OpEqual, Values: []string{"linux"}}},
		{"name!=gw-1", "name != gw-1", Constraint{Attr: AttrName, Op: OpNotEqual, Values: []string{"gw-1"}}},
		{"id == 0123456789abcdef", "id == 0123456789abcdef", Constraint{Attr: AttrID, Op: OpEqual, Values: []string{"0123456789abcdef"}}},
		{"label.zone != eu-west-1", "label.zone != eu-west-1", Constraint{Attr: "label.zone", Op: OpNotEqual, Values: []string{"eu-west-1"}}},
		{"label.tier in (edge, core)", "label.tier in (edge, core)", Constraint{Attr: "label.tier", Op: OpIn, Values: []string{"edge", "core"}}},
		{"label.tier in(edge,core)", "label.tier in (edge, core)", Constraint{Attr: "label.tier", Op: OpIn, Values: []string{"edge", "core"}}},
		{"arch not  in ( arm , 386 )", "arch not in (arm, 386)", Constraint{Attr: AttrArch, Op: OpNotIn, Values: []string{"arm", "386"}}},
		{"label.gpu exists", "label.gpu exists", Constraint{Attr: "label.gpu", Op: OpExists}},
		{"label.qnet.dev/spot not exists", "label.qnet.dev/spot not exists", Constraint{Attr: "label.qnet.dev/spot", Op: OpNotExists}},
		{"label.rack == r:12/b", "label.rack == r:12/b", Constraint{Attr: "label.rack", Op: OpEqual, Values: []string{"r:12/b"}}},
	}
	for _, tt := range tests {
		c, err := ParseConstraint(tt.text)
		if err != nil {
			t.Errorf("ParseConstraint(%q): %v", tt.text, err)
			continue
		}
		if !reflect.DeepEqual(c, tt.want) {
			t.Errorf("ParseConstraint(%q) = %#v, want %#v", tt.text, c, tt.want)
		}
		if c.String() != tt.canonical {
			t.Errorf("String() = %q, want %q", c.String(), tt.canonical)
		}
		back, err := ParseConstraint(c.String())
		if err != nil || !reflect.DeepEqual(back, c) {
			t.Errorf("canonical form %q does not read back: %#v, %v", c.String(), back, err)
		}
		js, _ := json.Marshal(c)
		var fromJSON Constraint
		if err := json.Unmarshal(js, &fromJSON); err != nil || !reflect.DeepEqual(fromJSON, c) {
			t.Errorf("JSON %s does not read back: %#v, %v", js, fromJSON, err)
		}
		if err := c.check(); err != nil {
			t.Errorf("check(%q) = %v", tt.text, err)
		}
	}
	var c Constraint
	if err := json.Unmarshal([]byte(`"arch = arm64"`), &c); err == nil || !strings.Contains(err.Error(), `did you mean ==?`) {
		t.Errorf("UnmarshalJSON of a bad constraint = %v, want the parser's error", err)
	}
	if err := json.Unmarshal([]byte(`5`), &c); err == nil {
		t.Errorf("UnmarshalJSON of a number succeeded")
	}
}

// Constraints built in Go are checked by Validate with the parser's rules.
func TestValidateConstraints(t *testing.T) {
	t.Parallel()
	s := &Service{
		APIVersion: APIVersion, Kind: KindService, Metadata: Metadata{Name: "web"},
		Spec: Spec{Depot: Depot{Exec: &ExecDepot{Command: "web"}}, Replicas: 1, Placement: Placement{
			Strategy: StrategyBinpack,
			Constraints: []Constraint{
				{Attr: AttrArch, Op: OpEqual, Values: []string{"arm64"}},
				{},
				{Attr: "label.zone", Op: OpEqual, Values: []string{"a", "b"}},
				{Attr: "label.zone", Op: OpIn, Values: []string{"a b"}},
				{Attr: AttrOS, Op: "~=", Values: []string{"linux"}},
				{Attr: "zone", Op: OpExists},
			},
		}},
	}
	want := strings.Join([]string{
		`spec.placement.constraints[1]: must be a constraint <attribute> <operator> [value], like "arch == arm64", got ""`,
		`spec.placement.constraints[2]: "label.zone == a b" must have exactly one value after ==, got 2`,
		`spec.placement.constraints[3]: value "a b" in "label.zone in (a b)" must be non-empty and hold no spaces or any of = ! ( ) ,`,
		`spec.placement.constraints[4]: unknown operator "~=" in "os ~= linux"; want ==, !=, in (a, b), not in (a, b), exists or not exists`,
		`spec.placement.constraints[5]: unknown attribute "zone" in "zone exists" (did you mean label.zone?); want arch, os, name, id or label.<key>`,
	}, "\n")
	if got := s.Validate().Error(); got != want {
		t.Errorf("Validate:\n%s\nwant:\n%s", got, want)
	}
	// Default fills the strategy and spreadBy; an explicit spreadBy with binpack is refused.
	d := &Service{}
	d.Default()
	if d.Spec.Placement.Strategy != StrategySpread || d.Spec.Placement.SpreadBy != SpreadByNode {
		t.Errorf("Default placement = %+v, want spread by node", d.Spec.Placement)
	}
}

func TestConstraintMatch(t *testing.T) {
	t.Parallel()
	parse := func(s string) Constraint {
		c, err := ParseConstraint(s)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tests := []struct {
		text    string
		value   string
		present bool
		want    bool
	}{
		{"label.zone == a", "a", true, true},
		{"label.zone == a", "b", true, false},
		{"label.zone == a", "", false, false},
		{"label.zone != a", "a", true, false},
		{"label.zone != a", "b", true, true},
		{"label.zone != a", "", false, true}, // a node without the label is not in zone a
		{"label.zone in (a, b)", "b", true, true},
		{"label.zone in (a, b)", "c", true, false},
		{"label.zone in (a, b)", "", false, false},
		{"label.zone not in (a, b)", "b", true, false},
		{"label.zone not in (a, b)", "c", true, true},
		{"label.zone not in (a, b)", "", false, true},
		{"label.gpu exists", "", true, true},
		{"label.gpu exists", "", false, false},
		{"label.gpu not exists", "", true, false},
		{"label.gpu not exists", "", false, true},
		{"arch == arm64", "arm64", true, true},
		{"arch == arm64", "amd64", true, false},
	}
	for _, tt := range tests {
		if got := parse(tt.text).Match(tt.value, tt.present); got != tt.want {
			t.Errorf("%q.Match(%q, %v) = %v, want %v", tt.text, tt.value, tt.present, got, tt.want)
		}
	}
	if (Constraint{Attr: "label.x", Op: "?"}).Match("x", true) {
		t.Errorf("a constraint with an unknown operator matched")
	}
}

func FuzzParseConstraint(f *testing.F) {
	for _, s := range []string{
		"arch == arm64", "os==linux", "label.zone != eu-west-1", "label.gpu exists", "label.tier in (edge, core)",
		"label.x not in (a,b)", "label.y not exists", "name in ()", "id in (a,,b)", "arch = x", "not exists",
		"label. exists", "(((", "in (a", "arch == (", "label.a in (b) c", "\x00 == \xff", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseConstraint(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("empty error for %q", s)
			}
			return
		}
		if err := c.check(); err != nil {
			t.Fatalf("ParseConstraint(%q) = %#v, which check refuses: %v", s, c, err)
		}
		back, err := ParseConstraint(c.String())
		if err != nil || !reflect.DeepEqual(back, c) {
			t.Fatalf("canonical form %q of %q does not read back: %#v, %v", c.String(), s, back, err)
		}
	})
}
