package manifest

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// Rollout says how a new revision of a service replaces the running one: a rolling
// update bounded by MaxSurge and MaxUnavailable and gated on readiness, with an optional
// canary step, a progress deadline and an optional automatic revert.
//
// A spec without a rollout section (Spec.Rollout nil) rolls out with the defaults
// (DefaultRollout); Default leaves it nil, so that manifests written before rollouts
// existed keep the same JSON form and their revisions on the ledger stay the same.
type Rollout struct {
	// MaxSurge is how many replicas of the new revision may run above the desired count
	// during a rollout: a number, or a percentage of the replicas rounded up. Default 1.
	MaxSurge *IntOrPercent `json:"maxSurge,omitempty"`
	// MaxUnavailable is how many of the desired replicas may be not ready during a
	// rollout: a number, or a percentage of the replicas rounded down. Default 0. It
	// may not be 0 when MaxSurge is 0.
	MaxUnavailable *IntOrPercent `json:"maxUnavailable,omitempty"`
	// Canary, when more than 0, is how many replicas of the new revision are started
	// first and held, ready, for CanaryWindow before the rollout goes on.
	Canary int `json:"canary,omitempty"`
	// CanaryWindow is how long the canaries must stay ready, without a restart, before
	// the rollout goes on. Default 30s.
	CanaryWindow Duration `json:"canaryWindow,omitempty"`
	// ProgressDeadline fails the rollout when no new replica became ready for this long
	// (the canary hold does not count). Default 5m.
	ProgressDeadline Duration `json:"progressDeadline,omitempty"`
	// AutoRevert returns a failed rollout to the last revision that was fully rolled out.
	AutoRevert bool `json:"autoRevert,omitempty"`
}

// IntOrPercent is a count written as a number (1) or as a percentage of the replicas
// ("25%"), as Kubernetes writes maxSurge and maxUnavailable.
type IntOrPercent struct {
	Value   int
	Percent bool
}

// Defaults of a rollout.
const (
	DefaultCanaryWindow     = Duration(30 * time.Second)
	DefaultProgressDeadline = Duration(5 * time.Minute)
	maxRolloutDuration      = Duration(24 * time.Hour)
)

// DefaultRollout is the rollout of a spec that has no rollout section, and what Default
// fills into the unset fields of one that has: one replica above the count, none below.
func DefaultRollout() Rollout {
	return Rollout{
		MaxSurge:         &IntOrPercent{Value: 1},
		MaxUnavailable:   &IntOrPercent{Value: 0},
		CanaryWindow:     DefaultCanaryWindow,
		ProgressDeadline: DefaultProgressDeadline,
	}
}

// RolloutPolicy is the rollout the service's spec asks for, with every default filled
// in: DefaultRollout when the spec has no rollout section.
func (sp *Spec) RolloutPolicy() Rollout {
	r := sp.Rollout.clone()
	if r == nil {
		return DefaultRollout()
	}
	r.defaults()
	return *r
}

// defaults fills the unset fields of r.
func (r *Rollout) defaults() {
	d := DefaultRollout()
	if r.MaxSurge == nil {
		r.MaxSurge = d.MaxSurge
	}
	if r.MaxUnavailable == nil {
		r.MaxUnavailable = d.MaxUnavailable
	}
	if r.CanaryWindow == 0 {
		r.CanaryWindow = d.CanaryWindow
	}
	if r.ProgressDeadline == 0 {
		r.ProgressDeadline = d.ProgressDeadline
	}
}

// clone returns a deep copy of r (nil for nil).
func (r *Rollout) clone() *Rollout {
	if r == nil {
		return nil
	}
	c := *r
	if r.MaxSurge != nil {
		v := *r.MaxSurge
		c.MaxSurge = &v
	}
	if r.MaxUnavailable != nil {
		v := *r.MaxUnavailable
		c.MaxUnavailable = &v
	}
	return &c
}

// Bounds of replicas a rollout with policy r may use for a service of n replicas: surge
// new replicas above n, and unavailable of the n not ready. A percentage of surge rounds
// up and one of unavailable down, as in Kubernetes; when both come to 0 (a percentage
// of few replicas), unavailable is 1 so the rollout can go on.
func (r Rollout) Bounds(n int) (surge, unavailable int) {
	surge = r.MaxSurge.resolve(n, true)
	unavailable = r.MaxUnavailable.resolve(n, false)
	if surge == 0 && unavailable == 0 {
		unavailable = 1
	}
	return surge, unavailable
}

// resolve is the count v stands for with n replicas; nil is 0.
func (v *IntOrPercent) resolve(n int, roundUp bool) int {
	switch {
	case v == nil:
		return 0
	case !v.Percent:
		return v.Value
	case roundUp:
		return (v.Value*n + 99) / 100
	default:
		return v.Value * n / 100
	}
}

// String writes v as it is written in a manifest: "1" or "25%".
func (v IntOrPercent) String() string {
	if v.Percent {
		return strconv.Itoa(v.Value) + "%"
	}
	return strconv.Itoa(v.Value)
}

// MarshalJSON writes a number, or a percentage as a string ("25%").
func (v IntOrPercent) MarshalJSON() ([]byte, error) {
	if v.Percent {
		return json.Marshal(v.String())
	}
	return json.Marshal(v.Value)
}

// UnmarshalJSON reads a number or a percentage string.
func (v *IntOrPercent) UnmarshalJSON(b []byte) error {
	var n int
	if err := json.Unmarshal(b, &n); err == nil {
		*v = IntOrPercent{Value: n}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a number like 1 or a percentage like \"25%%\", got %s", b)
	}
	p, err := ParseIntOrPercent(s)
	if err != nil {
		return err
	}
	*v = p
	return nil
}

// ParseIntOrPercent reads "1" or "25%".
func ParseIntOrPercent(s string) (IntOrPercent, error) {
	num, pct := strings.CutSuffix(s, "%")
	if !isDigits(num) || len(num) > 9 {
		return IntOrPercent{}, fmt.Errorf("want a number like 1 or a percentage like 25%%, got %q", s)
	}
	n, _ := strconv.Atoi(num)
	return IntOrPercent{Value: n, Percent: pct}, nil
}

// rollout decodes spec.rollout.
func (d *docDecoder) rollout(n ast.Node, path string) *Rollout {
	r := &Rollout{}
	present := d.object(n, path, "a mapping with maxSurge, maxUnavailable, canary, canaryWindow, progressDeadline and autoRevert", []field{
		{name: "maxSurge", dec: func(n ast.Node, p string) { r.MaxSurge = d.intOrPercent(n, p) }},
		{name: "maxUnavailable", dec: func(n ast.Node, p string) { r.MaxUnavailable = d.intOrPercent(n, p) }},
		{name: "canary", dec: func(n ast.Node, p string) {
			d.integer(n, p, fmt.Sprintf("an integer between 0 and %d", maxReplicas), &r.Canary)
		}},
		{name: "canaryWindow", dec: func(n ast.Node, p string) { d.duration(n, p, DefaultCanaryWindow.String(), &r.CanaryWindow) }},
		{name: "progressDeadline", dec: func(n ast.Node, p string) {
			d.duration(n, p, DefaultProgressDeadline.String(), &r.ProgressDeadline)
		}},
		{name: "autoRevert", dec: func(n ast.Node, p string) { d.boolean(n, p, &r.AutoRevert) }},
	})
	if !present {
		return nil
	}
	return r
}

// intOrPercent decodes a count written as an integer or a percentage string.
func (d *docDecoder) intOrPercent(n ast.Node, path string) *IntOrPercent {
	const want = "an integer like 1 or a percentage like 25%"
	r, ok := d.resolve(n, path)
	if !ok || isNull(r) {
		return nil
	}
	if _, isInt := r.(*ast.IntegerNode); isInt {
		var v int
		if d.integer(r, path, want, &v) {
			return &IntOrPercent{Value: v}
		}
		return nil
	}
	s, isScalar := scalarText(r)
	if !isScalar || !isString(r) {
		d.typeErr(r, path, want)
		return nil
	}
	v, err := ParseIntOrPercent(s)
	if err != nil {
		d.errAt(r, path, "must be %s, got %q", want, s)
		return nil
	}
	return &v
}

// rollout checks spec.rollout (after Default); replicas is spec.replicas.
func (v *validator) rollout(r *Rollout, replicas int) {
	if r == nil {
		return
	}
	count := func(field string, x *IntOrPercent) {
		switch {
		case x == nil:
		case x.Percent && (x.Value < 0 || x.Value > 100):
			v.add(field, "must be a percentage between 0%% and 100%%, got %s", x)
		case !x.Percent && (x.Value < 0 || x.Value > maxReplicas):
			v.add(field, "must be between 0 and %d (or a percentage like 25%%), got %s", maxReplicas, x)
		}
	}
	count("spec.rollout.maxSurge", r.MaxSurge)
	count("spec.rollout.maxUnavailable", r.MaxUnavailable)
	if r.MaxSurge != nil && r.MaxUnavailable != nil && r.MaxSurge.Value == 0 && r.MaxUnavailable.Value == 0 {
		v.add("spec.rollout.maxUnavailable", "may not be 0 when maxSurge is 0: the rollout could neither add a new replica nor stop an old one; raise maxSurge (like 1) or maxUnavailable")
	}
	switch {
	case r.Canary < 0 || r.Canary > maxReplicas:
		v.add("spec.rollout.canary", "must be between 0 and %d, got %d", maxReplicas, r.Canary)
	case r.Canary > 0 && replicas > 0 && r.Canary >= replicas:
		v.add("spec.rollout.canary", "must be fewer than spec.replicas (%d) so the canaries are a part of the replicas, got %d", replicas, r.Canary)
	}
	for _, d := range []struct {
		field string
		val   Duration
	}{{"spec.rollout.canaryWindow", r.CanaryWindow}, {"spec.rollout.progressDeadline", r.ProgressDeadline}} {
		if d.val <= 0 || d.val > maxRolloutDuration {
			v.add(d.field, "must be more than 0 and at most 24h, got %s", d.val)
		}
	}
}
