package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// MaxRateCount is the largest N of a rate N/s, N/m or N/h: far above what one node's
// ingress can pass, so it only catches typos, and small enough for any arithmetic.
const MaxRateCount = 1_000_000_000

// rateRule says how a rate is written, for messages.
const rateRule = "N/s, N/m or N/h with N a whole number from 1 to 1000000000, like 200/s or 30/m"

// rateUnits maps the unit of a rate to its period.
var rateUnits = map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}

// errZeroRate is wrapped by ParseRate for a rate of 0, which the decoder words apart.
var errZeroRate = errors.New("a rate must be more than 0")

// ParseRate parses a rate N/s, N/m or N/h: N (1 to MaxRateCount, digits only, without
// leading zeros) events per second, minute or hour. The decoder and Rate's JSON form read
// rates through it, so the ingress, reading a Rate, sees exactly what Validate accepted.
func ParseRate(s string) (Rate, error) {
	num, unit, ok := strings.Cut(s, "/")
	per, known := rateUnits[unit]
	if !ok || !known || !isDigits(num) || len(num) > 10 || (num[0] == '0' && len(num) > 1) {
		return Rate{}, fmt.Errorf("invalid rate %q: want %s", s, rateRule)
	}
	n, err := strconv.Atoi(num) // out of range on a 32-bit int is an error too
	if err != nil || n > MaxRateCount {
		return Rate{}, fmt.Errorf("invalid rate %q: want %s", s, rateRule)
	}
	if n == 0 {
		return Rate{}, fmt.Errorf("invalid rate %q: %w; want %s", s, errZeroRate, rateRule)
	}
	return Rate{Count: n, Per: per}, nil
}

// IsZero reports whether no rate is set.
func (r Rate) IsZero() bool { return r == Rate{} }

// PerSecond is the rate in events per second (200/s is 200, 30/m is 0.5).
func (r Rate) PerSecond() float64 {
	if r.Per <= 0 {
		return 0
	}
	return float64(r.Count) / r.Per.Seconds()
}

// DefaultBurst is the burst that goes with r when none is given: the rate per second
// rounded up, at least 1, so a second's worth of requests may arrive at once.
func (r Rate) DefaultBurst() int {
	return int(max(1, math.Ceil(r.PerSecond())))
}

// String formats r as it is written: "200/s", "30/m", "5/h"; "" for the zero Rate.
func (r Rate) String() string {
	if r.IsZero() {
		return ""
	}
	if u := rateUnit(r.Per); u != "" {
		return strconv.Itoa(r.Count) + "/" + u
	}
	return strconv.Itoa(r.Count) + "/" + r.Per.String() // not valid; Validate says so
}

// valid reports whether r is a rate ParseRate could return.
func (r Rate) valid() bool {
	return r.Count >= 1 && r.Count <= MaxRateCount && rateUnit(r.Per) != ""
}

// rateUnit is the unit letter of period per, or "" when per is not a rate unit.
func rateUnit(per time.Duration) string {
	switch per {
	case time.Second:
		return "s"
	case time.Minute:
		return "m"
	case time.Hour:
		return "h"
	}
	return ""
}

// MarshalJSON writes the rate as it is written in a manifest ("200/s").
func (r Rate) MarshalJSON() ([]byte, error) { return json.Marshal(r.String()) }

// UnmarshalJSON reads a rate string such as "200/s".
func (r *Rate) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("rate must be a string like \"200/s\": %w", err)
	}
	v, err := ParseRate(s)
	if err != nil {
		return err
	}
	*r = v
	return nil
}
