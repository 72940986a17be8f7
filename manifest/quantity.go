package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// maxQuantityLen bounds the text of a quantity so that a hostile manifest cannot make the
// exact (big number) arithmetic below expensive.
const maxQuantityLen = 40

// errQuantityRange is returned when a quantity does not fit in an int64.
var errQuantityRange = errors.New("out of range")

// ParseMilliCPU parses a CPU quantity: millicores ("250m") or cores with at most three
// decimals ("0.5", "2").
func ParseMilliCPU(s string) (MilliCPU, error) {
	if len(s) == 0 || len(s) > maxQuantityLen {
		return 0, fmt.Errorf("invalid CPU quantity %q: want millicores like 250m or cores like 0.5 or 2", s)
	}
	if m, ok := strings.CutSuffix(s, "m"); ok {
		if !isDigits(strings.TrimPrefix(m, "-")) {
			return 0, fmt.Errorf("invalid CPU quantity %q: millicores must be a whole number like 250m", s)
		}
		v, err := strconv.ParseInt(m, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("invalid CPU quantity %q: %w", s, errQuantityRange)
		}
		return MilliCPU(v), nil
	}
	v, err := exactDecimal(s, big.NewInt(1000))
	if err != nil {
		return 0, fmt.Errorf("invalid CPU quantity %q: want millicores like 250m or cores with at most 3 decimals like 0.5 or 2: %w", s, err)
	}
	return MilliCPU(v), nil
}

// String formats c canonically: whole cores as "2", anything else in millicores as "250m".
func (c MilliCPU) String() string {
	if c%1000 == 0 {
		return strconv.FormatInt(int64(c/1000), 10)
	}
	return strconv.FormatInt(int64(c), 10) + "m"
}

// MarshalJSON writes the canonical string form.
func (c MilliCPU) MarshalJSON() ([]byte, error) { return json.Marshal(c.String()) }

// UnmarshalJSON reads a CPU quantity string such as "250m" or "2".
func (c *MilliCPU) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("CPU quantity must be a string like \"250m\": %w", err)
	}
	v, err := ParseMilliCPU(s)
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// memoryUnits are the accepted suffixes of a memory quantity and their sizes.
var memoryUnits = map[string]int64{
	"":   1,
	"K":  1e3,
	"M":  1e6,
	"G":  1e9,
	"T":  1e12,
	"Ki": 1 << 10,
	"Mi": 1 << 20,
	"Gi": 1 << 30,
	"Ti": 1 << 40,
}

// ParseBytes parses a memory quantity: a number of bytes ("128974848"), or a number
// (decimals allowed) with a decimal (K, M, G, T) or binary (Ki, Mi, Gi, Ti) suffix
// ("500M", "64Mi", "1.5Gi"). The result must be a whole number of bytes.
func ParseBytes(s string) (Bytes, error) {
	if len(s) == 0 || len(s) > maxQuantityLen {
		return 0, fmt.Errorf("invalid memory quantity %q: want bytes or a number with K, M, G, T, Ki, Mi, Gi or Ti, like 64Mi", s)
	}
	i := len(s)
	for i > 0 && (s[i-1] < '0' || s[i-1] > '9') && s[i-1] != '.' {
		i--
	}
	num, unit := s[:i], s[i:]
	mult, ok := memoryUnits[unit]
	if !ok {
		return 0, fmt.Errorf("invalid memory quantity %q: unit %q is not one of K, M, G, T, Ki, Mi, Gi, Ti", s, unit)
	}
	v, err := exactDecimal(num, big.NewInt(mult))
	if err != nil {
		return 0, fmt.Errorf("invalid memory quantity %q: want a whole number of bytes, like 64Mi or 1.5Gi: %w", s, err)
	}
	return Bytes(v), nil
}

// String formats b canonically: the largest binary unit that divides it exactly ("64Mi"),
// else the plain number of bytes.
func (b Bytes) String() string {
	if b != 0 {
		for _, u := range []struct {
			suffix string
			size   Bytes
		}{{"Ti", 1 << 40}, {"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}} {
			if b%u.size == 0 {
				return strconv.FormatInt(int64(b/u.size), 10) + u.suffix
			}
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// MarshalJSON writes the canonical string form.
func (b Bytes) MarshalJSON() ([]byte, error) { return json.Marshal(b.String()) }

// UnmarshalJSON reads a memory quantity string such as "64Mi" or "128974848".
func (b *Bytes) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("memory quantity must be a string like \"64Mi\": %w", err)
	}
	v, err := ParseBytes(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// String formats d as a Go duration ("5s", "1m30s").
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a Go duration string such as "5s" or "250ms".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"5s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: want a Go duration like 5s or 250ms: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// exactDecimal returns s (an optionally signed decimal "12" or "1.25") times mult, which
// must be a whole number that fits in an int64. Exact arithmetic: "1.5Gi" is exactly
// 1610612736 bytes, and "0.0001" cores is refused rather than rounded.
func exactDecimal(s string, mult *big.Int) (int64, error) {
	digits := strings.TrimPrefix(s, "-")
	whole, frac, hasDot := strings.Cut(digits, ".")
	if !isDigits(whole) || (hasDot && !isDigits(frac)) {
		return 0, errors.New("not a decimal number")
	}
	n, ok := new(big.Int).SetString(whole+frac, 10)
	if !ok {
		return 0, errors.New("not a decimal number")
	}
	n.Mul(n, mult)
	den := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(frac))), nil)
	q, r := new(big.Int).QuoRem(n, den, new(big.Int))
	if r.Sign() != 0 {
		return 0, errors.New("too many decimals")
	}
	if len(digits) != len(s) {
		q.Neg(q)
	}
	if !q.IsInt64() {
		return 0, errQuantityRange
	}
	return q.Int64(), nil
}

// isDigits reports whether s is one or more ASCII digits.
func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// maxInt is the largest int, for range checks of decoded integers.
const maxInt = math.MaxInt
