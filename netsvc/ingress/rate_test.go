package ingress

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestParseRate(t *testing.T) {
	good := []struct {
		in   string
		want Rate
	}{
		{"200/s", Rate{200, time.Second, 200}},
		{"10/m", Rate{10, time.Minute, 10}},
		{"3600/h", Rate{3600, time.Hour, 3600}},
		{"5/s burst 20", Rate{5, time.Second, 20}},
		{"  5/S   BURST  1 ", Rate{5, time.Second, 1}},
		{"1000000000/s", Rate{maxRateCount, time.Second, maxRateCount}},
	}
	for _, c := range good {
		got, err := ParseRate(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseRate(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
			continue
		}
		if back, err := ParseRate(got.String()); err != nil || back != got {
			t.Errorf("ParseRate(%q.String() = %q) = %+v, %v; want it back", c.in, got.String(), back, err)
		}
	}
	bad := []struct{ in, want string }{
		{"", "rate is empty"},
		{"200", "no '/'"},
		{"200/d", `unit "d" is not valid`},
		{"/s", "count is missing"},
		{"0/s", `count "0" is out of range`},
		{"-1/s", `count "-1" is not a whole number`},
		{"1e3/s", "not a whole number"},
		{"1000000001/s", "out of range"},
		{"99999999999999999999999/s", "out of range"},
		{"5/s burst", "is not valid"},
		{"5/s burst 0", `burst "0" is out of range`},
		{"5/s bursts 3", `"bursts" is not valid after the rate`},
		{"5/s burst 3 extra", "is not valid"},
	}
	for _, c := range bad {
		_, err := ParseRate(c.in)
		if err == nil {
			t.Errorf("ParseRate(%q) = nil error; want one saying %q", c.in, c.want)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), `"200/s"`) {
			t.Errorf("ParseRate(%q) error %q: want it to say %q and show valid forms", c.in, err, c.want)
		}
	}
}

func TestRateLimit(t *testing.T) {
	if got := (Rate{}).Limit(); got != rate.Inf {
		t.Errorf("zero Rate limit = %v, want Inf", got)
	}
	if got := (Rate{Count: 10, Per: time.Minute, Burst: 10}).Limit(); got != rate.Limit(10.0/60) {
		t.Errorf("10/m limit = %v, want 1/6", got)
	}
	if err := (Rate{Count: 1, Per: 2 * time.Second, Burst: 1}).Validate(); err == nil {
		t.Error("a 2s period validated; want an error naming 1s, 1m or 1h")
	}
}

func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"200/s", "10/m", "5/s burst 20", "3600/h", "", "/", "0/s", "1/x", "5/s burst", "1/s burst 1 1", "１/s", "9999999999/s", "5/s\tburst\t3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRate(s)
		if err != nil {
			if r != (Rate{}) {
				t.Fatalf("ParseRate(%q) returned %+v with its error", s, r)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("ParseRate(%q) = %+v, which does not validate: %v", s, r, err)
		}
		if float64(r.Limit()) <= 0 {
			t.Fatalf("ParseRate(%q) = %+v with a limit of %v", s, r, r.Limit())
		}
		back, err := ParseRate(r.String())
		if err != nil || back != r {
			t.Fatalf("ParseRate(%q) = %+v, but its String %q parses to %+v, %v", s, r, r.String(), back, err)
		}
	})
}
