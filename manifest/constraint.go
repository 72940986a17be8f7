package manifest

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Op is the operator of a placement constraint.
type Op string

// Constraint operators.
const (
	OpEqual     Op = "=="
	OpNotEqual  Op = "!="
	OpIn        Op = "in"
	OpNotIn     Op = "not in"
	OpExists    Op = "exists"
	OpNotExists Op = "not exists"
)

// Attributes of a node that constraints test. A label is named LabelPrefix + key.
const (
	AttrArch    = "arch"
	AttrOS      = "os"
	AttrName    = "name"
	AttrID      = "id"
	LabelPrefix = "label."
)

// Bounds of placement constraints: they keep a manifest's demands on the scheduler
// small (every constraint is tested against every node once per service).
const (
	maxConstraints      = 32
	maxConstraintValues = 64
)

// Constraint limits the nodes a replica may run on: Attr Op Values, written in a
// manifest as text such as "arch == arm64", "label.tier in (edge, core)" or
// "label.gpu exists". Its JSON form is that text, in the canonical spelling of String.
type Constraint struct {
	// Attr is arch, os, name, id, or label.<key>.
	Attr string
	Op   Op
	// Values holds one value for == and !=, one or more for in and not in, and none
	// for exists and not exists.
	Values []string
}

// Messages shared by the parser and the checks.
const (
	constraintForm = `<attribute> <operator> [value], like "arch == arm64"`
	attrList       = "arch, os, name, id or label.<key>"
	opList         = "==, !=, in (a, b), not in (a, b), exists or not exists"
	labelKeyRule   = "1-63 characters of letters, digits, '.', '_', '-' and '/', starting and ending with a letter or digit"
)

// Go's names for architectures and operating systems: what nodes report (runtime.GOARCH
// and runtime.GOOS), with the names people often write instead.
var (
	knownArch = []string{"386", "amd64", "arm", "arm64", "loong64", "mips", "mips64", "mips64le", "mipsle",
		"ppc64", "ppc64le", "riscv64", "s390x", "wasm"}
	knownOS = []string{"aix", "android", "darwin", "dragonfly", "freebsd", "illumos", "ios", "js", "linux",
		"netbsd", "openbsd", "plan9", "solaris", "wasip1", "windows"}
	archList    = joinOr(knownArch)
	osList      = joinOr(knownOS)
	archAliases = map[string]string{"x86_64": "amd64", "x86-64": "amd64", "x64": "amd64", "aarch64": "arm64",
		"armv8": "arm64", "arm64v8": "arm64", "armv7": "arm", "armv7l": "arm", "armv6": "arm", "armhf": "arm",
		"i386": "386", "i686": "386", "x86": "386", "riscv": "riscv64", "ppc64el": "ppc64le", "loongarch64": "loong64"}
	osAliases = map[string]string{"macos": "darwin", "osx": "darwin", "mac": "darwin", "win": "windows",
		"win32": "windows", "win64": "windows", "gnu/linux": "linux", "sunos": "solaris", "wasi": "wasip1"}
)

// ParseConstraint parses the text of a placement constraint: <attribute> <operator>
// [value], where the attribute is arch, os, name, id or label.<key> and the operator is
// ==, !=, in (a, b), not in (a, b), exists or not exists (exists and not exists only for
// labels). Spaces around operators, parentheses and commas are optional. The error says
// what is wrong and what would be valid, quoting s.
func ParseConstraint(s string) (Constraint, error) {
	toks := lexConstraint(s)
	q := quote(s)
	if len(toks) == 0 {
		return Constraint{}, fmt.Errorf("must be a constraint %s, got %s", constraintForm, q)
	}
	if isSymbol(toks[0]) || toks[0] == "in" || toks[0] == "not" || toks[0] == "exists" {
		form := constraintForm
		if toks[0] == "not" || toks[0] == "exists" {
			form = `<attribute> <operator> [value], like "label.gpu exists"`
		}
		return Constraint{}, fmt.Errorf("%s has no attribute before %s; want %s", q, toks[0], form)
	}
	c := Constraint{Attr: toks[0]}
	if err := checkAttr(c.Attr, q); err != nil {
		return Constraint{}, err
	}
	if len(toks) == 1 {
		return Constraint{}, fmt.Errorf("%s has no operator; want %s after the attribute, like \"%s == %s\"", q, opList, c.Attr, example(c.Attr))
	}
	rest := toks[2:]
	switch op := toks[1]; op {
	case "==", "!=":
		c.Op = Op(op)
		switch {
		case len(rest) == 0:
			return Constraint{}, fmt.Errorf("%s needs one value after %s, like \"%s %s %s\"", q, op, c.Attr, op, example(c.Attr))
		case isSymbol(rest[0]):
			return Constraint{}, fmt.Errorf("unexpected %q after %s in %s; want one value, like \"%s %s %s\", or in (a, b) for a list", rest[0], op, q, c.Attr, op, example(c.Attr))
		case len(rest) > 1 && !slices.ContainsFunc(rest, isSymbol):
			in := "in"
			if op == "!=" {
				in = "not in"
			}
			return Constraint{}, fmt.Errorf("%s has more than one value after %s; write \"%s %s (%s)\" to name several", q, op, c.Attr, in, strings.Join(rest, ", "))
		case len(rest) > 1:
			return Constraint{}, fmt.Errorf("unexpected %q at the end of %s; want one value after %s", rest[1], q, op)
		}
		c.Values = []string{rest[0]}
	case "in":
		c.Op = OpIn
		vals, err := parseList(rest, q, c.Attr, "in")
		if err != nil {
			return Constraint{}, err
		}
		c.Values = vals
	case "exists":
		c.Op = OpExists
		if len(rest) > 0 {
			return Constraint{}, fmt.Errorf("unexpected %q after exists in %s; exists takes no value", rest[0], q)
		}
	case "not":
		if len(rest) == 0 {
			return Constraint{}, fmt.Errorf("%s ends after not; want not in (a, b) or not exists", q)
		}
		switch rest[0] {
		case "in":
			c.Op = OpNotIn
			vals, err := parseList(rest[1:], q, c.Attr, "not in")
			if err != nil {
				return Constraint{}, err
			}
			c.Values = vals
		case "exists":
			c.Op = OpNotExists
			if len(rest) > 1 {
				return Constraint{}, fmt.Errorf("unexpected %q after not exists in %s; not exists takes no value", rest[1], q)
			}
		default:
			return Constraint{}, fmt.Errorf("unknown operator \"not %s\" in %s; want %s", rest[0], q, opList)
		}
	default:
		hint := ""
		switch op {
		case "=", "is", "eq":
			hint = " (did you mean ==?)"
		case "!", "ne", "<>", "isnt":
			hint = " (did you mean !=?)"
		case "notin", "!in", "not_in":
			hint = " (did you mean not in?)"
		case "exist", "has":
			hint = " (did you mean exists?)"
		}
		return Constraint{}, fmt.Errorf("unknown operator %q in %s%s; want %s", op, q, hint, opList)
	}
	if err := c.checkValues(q); err != nil {
		return Constraint{}, err
	}
	return c, nil
}

// parseList parses "( a , b )" after in or not in.
func parseList(toks []string, q, attr, op string) ([]string, error) {
	if len(toks) == 0 || toks[0] != "(" {
		return nil, fmt.Errorf("%s needs a list in parentheses after %s, like \"%s %s (%s)\"", q, op, attr, op, example2(attr))
	}
	var vals []string
	want := true // a value is expected next
	for i := 1; i < len(toks); i++ {
		switch t := toks[i]; {
		case t == ")":
			if len(vals) == 0 {
				return nil, fmt.Errorf("%s has an empty list; want at least one value, like (%s)", q, example2(attr))
			}
			if want {
				return nil, fmt.Errorf("%s has an empty value in its list; want values separated by commas, like (%s)", q, example2(attr))
			}
			if i+1 < len(toks) {
				return nil, fmt.Errorf("unexpected %q after the list in %s", toks[i+1], q)
			}
			return vals, nil
		case t == ",":
			if want {
				return nil, fmt.Errorf("%s has an empty value in its list; want values separated by commas, like (%s)", q, example2(attr))
			}
			want = true
		case isSymbol(t):
			return nil, fmt.Errorf("unexpected %q in the list of %s; want values separated by commas, like (%s)", t, q, example2(attr))
		default:
			if !want {
				return nil, fmt.Errorf("%s has a list entry with a space in it, %q; separate values with commas, like (%s)", q, vals[len(vals)-1]+" "+t, example2(attr))
			}
			vals = append(vals, t)
			want = false
		}
	}
	return nil, fmt.Errorf("%s has no closing \")\"; in a flow list [...] quote the constraint, since commas there separate the list's entries", q)
}

// lexConstraint splits constraint text into words and the symbols == != = ! ( ) ,.
func lexConstraint(s string) []string {
	var toks []string
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case (c == '=' || c == '!') && i+1 < len(s) && s[i+1] == '=':
			toks = append(toks, s[i:i+2])
			i += 2
		case strings.IndexByte("=!(),", c) >= 0:
			toks = append(toks, s[i:i+1])
			i++
		default:
			j := i
			for j < len(s) && strings.IndexByte(" \t\n\r=!(),", s[j]) < 0 {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		}
	}
	return toks
}

// isSymbol reports whether a token is an operator or punctuation rather than a word.
func isSymbol(t string) bool {
	switch t {
	case "==", "!=", "=", "!", "(", ")", ",":
		return true
	}
	return false
}

// example is a value that reads well after attr in a message.
func example(attr string) string {
	switch attr {
	case AttrArch:
		return "arm64"
	case AttrOS:
		return "linux"
	case AttrName:
		return "gateway-1"
	case AttrID:
		return "0123456789abcdef"
	}
	return "value"
}

// example2 is a list of two values that reads well after attr in a message.
func example2(attr string) string {
	switch attr {
	case AttrArch:
		return "arm64, amd64"
	case AttrOS:
		return "linux, darwin"
	case AttrName:
		return "gateway-1, gateway-2"
	}
	return "a, b"
}

// checkAttr checks the attribute of a constraint; q is the constraint's quoted text.
func checkAttr(attr, q string) error {
	switch attr {
	case AttrArch, AttrOS, AttrName, AttrID:
		return nil
	}
	key, isLabel := strings.CutPrefix(attr, LabelPrefix)
	switch {
	case !isLabel:
		hint := ""
		switch lower := strings.ToLower(attr); {
		case lower == AttrArch || lower == AttrOS || lower == AttrName || lower == AttrID:
			hint = didYouMean(lower)
		case lower == "architecture" || lower == "goarch":
			hint = didYouMean(AttrArch)
		case lower == "goos" || lower == "platform":
			hint = didYouMean(AttrOS)
		case len(attr) <= maxLabelKeyLen && labelKey.MatchString(attr):
			hint = didYouMean(LabelPrefix + attr)
		}
		return fmt.Errorf("unknown attribute %q in %s%s; want %s", attr, q, hint, attrList)
	case key == "":
		return fmt.Errorf("%s names no label key; want label.<key>, like label.zone", q)
	case len(key) > maxLabelKeyLen || !labelKey.MatchString(key):
		return fmt.Errorf("label key %q in %s must be %s", key, q, labelKeyRule)
	}
	return nil
}

// checkValues checks the operator and values of c against its attribute; q is the
// constraint's quoted text.
func (c *Constraint) checkValues(q string) error {
	_, isLabel := c.LabelKey()
	switch c.Op {
	case OpEqual, OpNotEqual:
		if len(c.Values) != 1 {
			return fmt.Errorf("%s must have exactly one value after %s, got %d", q, c.Op, len(c.Values))
		}
	case OpIn, OpNotIn:
		if len(c.Values) == 0 {
			return fmt.Errorf("%s has an empty list; want at least one value, like (%s)", q, example2(c.Attr))
		}
		if len(c.Values) > maxConstraintValues {
			return fmt.Errorf("%s lists %d values; at most %d are allowed", q, len(c.Values), maxConstraintValues)
		}
	case OpExists, OpNotExists:
		if !isLabel {
			return fmt.Errorf("%s tests an attribute every node has; %s applies to labels, like \"label.gpu %s\"", q, c.Op, c.Op)
		}
		if len(c.Values) != 0 {
			return fmt.Errorf("%s must have no value after %s, got %d", q, c.Op, len(c.Values))
		}
		return nil
	default:
		return fmt.Errorf("unknown operator %q in %s; want %s", c.Op, q, opList)
	}
	for _, v := range c.Values {
		switch {
		case v == "" || strings.ContainsAny(v, " \t\n\r=!(),"):
			return fmt.Errorf("value %q in %s must be non-empty and hold no spaces or any of = ! ( ) ,", v, q)
		case len(v) > maxLabelValueLen:
			return fmt.Errorf("a value in %s is %d characters; at most %d are allowed", q, len(v), maxLabelValueLen)
		case c.Attr == AttrArch && !slices.Contains(knownArch, v):
			return fmt.Errorf("unknown architecture %q in %s%s; want a Go architecture name: %s", v, q, didYouMean(archAliases[strings.ToLower(v)]), archList)
		case c.Attr == AttrOS && !slices.Contains(knownOS, v):
			return fmt.Errorf("unknown operating system %q in %s%s; want a Go operating system name: %s", v, q, didYouMean(osAliases[strings.ToLower(v)]), osList)
		}
	}
	return nil
}

// quote quotes constraint text for a message, shortened when it is long.
func quote(s string) string {
	const max = 60
	if len(s) > max {
		return strconv.Quote(s[:max-3] + "...")
	}
	return strconv.Quote(s)
}

// joinOr lists words as "a, b or c".
func joinOr(words []string) string {
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

func didYouMean(s string) string {
	if s == "" {
		return ""
	}
	return " (did you mean " + s + "?)"
}

// check reports what is wrong with a constraint built in Go (Validate's check); the
// parser makes the same checks as it reads the text.
func (c *Constraint) check() error {
	if c.Attr == "" && c.Op == "" && len(c.Values) == 0 {
		return fmt.Errorf("must be a constraint %s, got \"\"", constraintForm)
	}
	q := quote(c.String())
	if err := checkAttr(c.Attr, q); err != nil {
		return err
	}
	return c.checkValues(q)
}

// LabelKey returns the label key a constraint tests, if it tests a label.
func (c Constraint) LabelKey() (string, bool) {
	return strings.CutPrefix(c.Attr, LabelPrefix)
}

// Match reports whether a node whose attribute has value passes the constraint; present
// is false when the node has no such label. As in Kubernetes' label selectors, != and
// not in pass nodes without the label.
func (c Constraint) Match(value string, present bool) bool {
	switch c.Op {
	case OpEqual:
		return present && len(c.Values) == 1 && value == c.Values[0]
	case OpNotEqual:
		return !present || len(c.Values) != 1 || value != c.Values[0]
	case OpIn:
		return present && slices.Contains(c.Values, value)
	case OpNotIn:
		return !present || !slices.Contains(c.Values, value)
	case OpExists:
		return present
	case OpNotExists:
		return !present
	}
	return false
}

// String is the canonical text of the constraint: "arch == arm64",
// "label.tier in (edge, core)", "label.gpu exists". ParseConstraint reads it back.
func (c Constraint) String() string {
	switch c.Op {
	case OpIn, OpNotIn:
		return c.Attr + " " + string(c.Op) + " (" + strings.Join(c.Values, ", ") + ")"
	case OpExists, OpNotExists:
		return c.Attr + " " + string(c.Op)
	}
	return strings.TrimSpace(c.Attr + " " + string(c.Op) + " " + strings.Join(c.Values, " "))
}

// MarshalJSON writes the canonical text.
func (c Constraint) MarshalJSON() ([]byte, error) { return json.Marshal(c.String()) }

// UnmarshalJSON reads constraint text such as "arch == arm64".
func (c *Constraint) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("placement constraint must be a string like \"arch == arm64\": %w", err)
	}
	v, err := ParseConstraint(s)
	if err != nil {
		return err
	}
	*c = v
	return nil
}
