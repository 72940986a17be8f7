package ingress

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// maxRateCount bounds the numbers of a Rate so that its arithmetic can never overflow
// and a typo like 10000000000/s is caught instead of meaning "no limit".
const maxRateCount = 1_000_000_000

// rateSyntax is what ParseRate takes, for its error messages.
const rateSyntax = `COUNT/UNIT with an optional " burst N", like "200/s", "10/m" or "5/s burst 20" ` +
	`(UNIT s, m or h; COUNT and N whole numbers from 1 to 1000000000)`

// Rate is a rate limit: Count events per Per, with bursts of up to Burst events. A
// client's bucket holds Burst tokens and refills at Count/Per; each request (or TCP
// connection) takes one. The zero Rate means no limit.
type Rate struct {
	Count int
	Per   time.Duration
	Burst int
}

// IsZero reports whether r is the zero Rate, which means no limit.
func (r Rate) IsZero() bool { return r == Rate{} }

// Limit is r as a token refill rate; rate.Inf for the zero Rate.
func (r Rate) Limit() rate.Limit {
	if r.IsZero() || r.Per <= 0 {
		return rate.Inf
	}
	return rate.Limit(float64(r.Count) / r.Per.Seconds())
}

// Validate reports whether r is a usable limit: zero, or a positive count per second,
// minute or hour with a positive burst.
func (r Rate) Validate() error {
	if r.IsZero() {
		return nil
	}
	if r.Count < 1 || r.Count > maxRateCount {
		return fmt.Errorf("rate count %d is out of range: want 1 to %d", r.Count, maxRateCount)
	}
	if r.Per != time.Second && r.Per != time.Minute && r.Per != time.Hour {
		return fmt.Errorf("rate period %s is not valid: want 1s, 1m or 1h", r.Per)
	}
	if r.Burst < 1 || r.Burst > maxRateCount {
		return fmt.Errorf("rate burst %d is out of range: want 1 to %d", r.Burst, maxRateCount)
	}
	return nil
}

// String formats r the way ParseRate reads it; the burst is left out when it equals
// the count, its default.
func (r Rate) String() string {
	if r.IsZero() {
		return "unlimited"
	}
	unit := map[time.Duration]string{time.Second: "s", time.Minute: "m", time.Hour: "h"}[r.Per]
	if unit == "" {
		unit = r.Per.String()
	}
	s := strconv.Itoa(r.Count) + "/" + unit
	if r.Burst != r.Count {
		s += " burst " + strconv.Itoa(r.Burst)
	}
	return s
}

// ParseRate reads a rate limit as a manifest writes it: "200/s", "10/m", "3600/h", or
// any of them followed by " burst N". Without a burst, the burst is the count: a client
// may spend a whole period's allowance at once, which is what "10 per minute" means to
// a person, and refills steadily after.
func ParseRate(s string) (Rate, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return Rate{}, fmt.Errorf("rate is empty: want %s", rateSyntax)
	}
	if len(fields) != 1 && len(fields) != 3 {
		return Rate{}, fmt.Errorf("rate %q is not valid: want %s", s, rateSyntax)
	}
	countText, unitText, ok := strings.Cut(fields[0], "/")
	if !ok {
		return Rate{}, fmt.Errorf("rate %q has no '/' between count and unit: want %s", s, rateSyntax)
	}
	count, err := parseCount(countText)
	if err != nil {
		return Rate{}, fmt.Errorf("rate %q: count %w: want %s", s, err, rateSyntax)
	}
	var per time.Duration
	switch strings.ToLower(unitText) {
	case "s":
		per = time.Second
	case "m":
		per = time.Minute
	case "h":
		per = time.Hour
	default:
		return Rate{}, fmt.Errorf("rate %q: unit %q is not valid: want %s", s, unitText, rateSyntax)
	}
	r := Rate{Count: count, Per: per, Burst: count}
	if len(fields) == 3 {
		if !strings.EqualFold(fields[1], "burst") {
			return Rate{}, fmt.Errorf("rate %q: %q is not valid after the rate: want %s", s, fields[1], rateSyntax)
		}
		if r.Burst, err = parseCount(fields[2]); err != nil {
			return Rate{}, fmt.Errorf("rate %q: burst %w: want %s", s, err, rateSyntax)
		}
	}
	return r, nil
}

// parseCount reads a whole number from 1 to maxRateCount, in plain decimal digits only
// (no sign, no underscores), so that what a person wrote is what they get.
func parseCount(s string) (int, error) {
	if s == "" {
		return 0, errors.New("is missing")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a whole number", s)
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n < 1 || n > maxRateCount {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	return int(n), nil
}
