package manifest

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestRolloutDecode(t *testing.T) {
	t.Parallel()
	svcs, err := Decode("web.yaml", []byte(withSpec(
		"  replicas: 4",
		"  rollout: {maxSurge: 25%, maxUnavailable: 1, canary: 1, canaryWindow: 10s, progressDeadline: 2m, autoRevert: true}")))
	if err != nil {
		t.Fatal(err)
	}
	got := svcs[0].Spec.Rollout
	want := &Rollout{MaxSurge: &IntOrPercent{Value: 25, Percent: true}, MaxUnavailable: &IntOrPercent{Value: 1},
		Canary: 1, CanaryWindow: Duration(10 * time.Second), ProgressDeadline: Duration(2 * time.Minute), AutoRevert: true}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("rollout = %+v, want %+v", got, want)
	}
	if s, u := got.Bounds(4); s != 1 || u != 1 {
		t.Errorf("Bounds(4) = %d, %d; want 1, 1", s, u)
	}
	// The JSON form (the ledger's) keeps the percentage and reads back the same.
	data, err := json.Marshal(svcs[0])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"rollout":{"maxSurge":"25%","maxUnavailable":1,"canary":1,"canaryWindow":"10s","progressDeadline":"2m0s","autoRevert":true}`) {
		t.Errorf("JSON form: %s", data)
	}
	back, err := DecodeJSON(data)
	if err != nil {
		t.Fatalf("DecodeJSON of the JSON form: %v", err)
	}
	if !reflect.DeepEqual(back.Spec.Rollout, want) {
		t.Errorf("JSON round trip: %+v", back.Spec.Rollout)
	}
	var again Service
	if err := json.Unmarshal(data, &again); err != nil || !reflect.DeepEqual(again.Spec.Rollout, want) {
		t.Errorf("json.Unmarshal round trip: %+v, %v", again.Spec.Rollout, err)
	}
}

func TestRolloutDefaults(t *testing.T) {
	t.Parallel()
	// No rollout section: nothing in the JSON form, the defaults as the policy.
	svcs, err := Decode("web.yaml", []byte(head))
	if err != nil {
		t.Fatal(err)
	}
	if svcs[0].Spec.Rollout != nil {
		t.Errorf("Rollout = %+v, want nil without a rollout section", svcs[0].Spec.Rollout)
	}
	if got := svcs[0].Spec.RolloutPolicy(); !reflect.DeepEqual(got, DefaultRollout()) {
		t.Errorf("RolloutPolicy = %+v, want the defaults", got)
	}
	// A partial section gets the rest of the defaults from Default, and Validate does
	// not change the service it checks.
	svcs, err = Decode("web.yaml", []byte(withSpec("  rollout: {canary: 1}", "  replicas: 3")))
	if err != nil {
		t.Fatal(err)
	}
	r := svcs[0].Spec.Rollout
	if r.MaxSurge == nil || r.MaxSurge.Value != 1 || r.MaxUnavailable == nil || r.MaxUnavailable.Value != 0 ||
		r.CanaryWindow != DefaultCanaryWindow || r.ProgressDeadline != DefaultProgressDeadline {
		t.Errorf("defaults not filled: %+v", r)
	}
	c := &Service{APIVersion: APIVersion, Kind: KindService, Metadata: Metadata{Name: "x"}, Spec: replicas3()}
	c.Spec.Rollout = &Rollout{Canary: 1}
	if errs := c.Validate(); len(errs) != 0 {
		t.Fatal(errs)
	}
	if c.Spec.Rollout.MaxSurge != nil {
		t.Errorf("Validate changed the service: %+v", c.Spec.Rollout)
	}
}

// replicas3 is a spec of three replicas of an exec depot.
func replicas3() Spec {
	return Spec{Depot: Depot{Exec: &ExecDepot{Command: "web"}}, Replicas: 3}
}

func TestRolloutBounds(t *testing.T) {
	t.Parallel()
	pct := func(v int) *IntOrPercent { return &IntOrPercent{Value: v, Percent: true} }
	num := func(v int) *IntOrPercent { return &IntOrPercent{Value: v} }
	for _, tt := range []struct {
		surge, unavail *IntOrPercent
		n              int
		s, u           int
	}{
		{num(1), num(0), 3, 1, 0},
		{pct(25), pct(25), 4, 1, 1},
		{pct(25), pct(25), 10, 3, 2}, // surge rounds up, unavailable down
		{pct(0), pct(10), 3, 0, 1},   // both come to 0: one may be unavailable
		{num(0), num(2), 5, 0, 2},
		{pct(100), num(0), 3, 3, 0},
	} {
		r := Rollout{MaxSurge: tt.surge, MaxUnavailable: tt.unavail}
		if s, u := r.Bounds(tt.n); s != tt.s || u != tt.u {
			t.Errorf("Bounds(%d) of surge %s unavailable %s = %d, %d; want %d, %d", tt.n, tt.surge, tt.unavail, s, u, tt.s, tt.u)
		}
	}
}

func TestRolloutBad(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		yaml string
		want []string
	}{
		{"not a mapping", withSpec("  rollout: fast"),
			[]string{`web.yaml:8:12: spec.rollout: must be a mapping with maxSurge, maxUnavailable, canary, canaryWindow, progressDeadline and autoRevert, got string "fast"`}},
		{"unknown field", withSpec("  rollout: {maxSurges: 1}"),
			[]string{"web.yaml:8:13: spec.rollout.maxSurges: unknown field (did you mean maxSurge?); valid fields are maxSurge, maxUnavailable, canary, canaryWindow, progressDeadline and autoRevert"}},
		{"bad percentage", withSpec("  rollout: {maxSurge: 25 percent}"),
			[]string{`web.yaml:8:23: spec.rollout.maxSurge: must be an integer like 1 or a percentage like 25%, got "25 percent"`}},
		{"boolean count", withSpec("  rollout: {maxUnavailable: true}"),
			[]string{"web.yaml:8:29: spec.rollout.maxUnavailable: must be an integer like 1 or a percentage like 25%, got boolean true"}},
		{"percentage over 100", withSpec("  rollout: {maxUnavailable: 150%}"),
			[]string{"web.yaml:8:29: spec.rollout.maxUnavailable: must be a percentage between 0% and 100%, got 150%"}},
		{"negative surge", withSpec("  rollout: {maxSurge: -1}"),
			[]string{"web.yaml:8:23: spec.rollout.maxSurge: must be between 0 and 10000 (or a percentage like 25%), got -1"}},
		{"both zero", withSpec("  rollout: {maxSurge: 0, maxUnavailable: 0%}"),
			[]string{"web.yaml:8:42: spec.rollout.maxUnavailable: may not be 0 when maxSurge is 0: the rollout could neither add a new replica nor stop an old one; raise maxSurge (like 1) or maxUnavailable"}},
		{"canary not fewer than replicas", withSpec("  replicas: 2", "  rollout: {canary: 2}"),
			[]string{"web.yaml:9:21: spec.rollout.canary: must be fewer than spec.replicas (2) so the canaries are a part of the replicas, got 2"}},
		{"zero window", withSpec("  rollout: {canary: 1, canaryWindow: 0s}", "  replicas: 3"),
			[]string{"web.yaml:8:38: spec.rollout.canaryWindow: must be more than 0 (leave it out for the default 30s), got 0s"}},
		{"deadline not a duration", withSpec("  rollout: {progressDeadline: soon}"),
			[]string{`web.yaml:8:31: spec.rollout.progressDeadline: must be a duration like 5s, 250ms or 1m30s, got string "soon"`}},
		{"deadline too long", withSpec("  rollout: {progressDeadline: 48h}"),
			[]string{"web.yaml:8:31: spec.rollout.progressDeadline: must be more than 0 and at most 24h, got 48h0m0s"}},
		{"autoRevert not a boolean", withSpec("  rollout: {autoRevert: yes please}"),
			[]string{`web.yaml:8:25: spec.rollout.autoRevert: must be true or false, got string "yes please"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Decode("web.yaml", []byte(tt.yaml))
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error is %T, want ErrorList: %v", err, err)
			}
			var got []string
			for _, e := range list {
				got = append(got, e.Error())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestIntOrPercentJSON(t *testing.T) {
	t.Parallel()
	for _, in := range []string{`"x%"`, `true`, `"1.5"`, `"-3%"`} {
		var v IntOrPercent
		if err := json.Unmarshal([]byte(in), &v); err == nil {
			t.Errorf("Unmarshal(%s) = %+v, want an error", in, v)
		}
	}
}

func FuzzIntOrPercent(f *testing.F) {
	for _, s := range []string{"1", "25%", "100%", "", "%", "-1", "999999999999%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseIntOrPercent(s)
		if err != nil {
			return
		}
		back, err := ParseIntOrPercent(v.String())
		if err != nil || back != v {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", s, v, v.String(), back, err)
		}
		v.resolve(10000, true)
	})
}
