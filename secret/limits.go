package secret

import (
	"errors"
	"fmt"
	"math"
	"regexp"
)

// MaxSize is the largest plaintext a secret may have: 64 KiB. Secrets are passwords,
// keys and certificates; a bigger one is probably data, which belongs in a depot.
const MaxSize = 64 << 10

// Errors that callers tell apart with errors.Is. The messages that wrap them say what
// was wrong and what would be valid.
var (
	// ErrBadName is returned for a secret name that is not a DNS label.
	ErrBadName = errors.New("bad secret name")
	// ErrTooLarge is returned for a plaintext over MaxSize.
	ErrTooLarge = errors.New("secret too large")
	// ErrEmpty is returned for an empty plaintext.
	ErrEmpty = errors.New("secret is empty")
	// ErrVersion is returned for a version that does not follow the current one.
	ErrVersion = errors.New("bad secret version")
)

var (
	// nameRE is the manifest's DNS label rule: a secret's name must be one the manifest
	// can refer to.
	nameRE   = regexp.MustCompile(`^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`)
	nameRule = "1-63 characters of a-z, 0-9 and '-', starting with a letter and not ending with '-'"

	// idRE is what node and placement IDs look like; the rule only keeps IDs short and
	// printable, since they are matched against the ledger anyway.
	idRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)
	idRule = "1-128 characters of letters, digits, '.', '_', ':' and '-', starting with a letter or digit"
)

// ValidateName reports whether name can name a secret. The error says what is valid.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%w: %s must be a DNS label (%s), like db-password", ErrBadName, quote(name), nameRule)
	}
	return nil
}

// CheckSize reports whether a plaintext of n bytes may be the value of secret name.
func CheckSize(name string, n int) error {
	switch {
	case n == 0:
		return fmt.Errorf("secret %s: %w; a secret needs at least 1 byte", quote(name), ErrEmpty)
	case n > MaxSize:
		return fmt.Errorf("secret %s is %d bytes: %w; at most %d bytes (64 KiB) are allowed", quote(name), n, ErrTooLarge, MaxSize)
	}
	return nil
}

// CheckNext reports whether next may be the new version of secret name whose current
// version is current (0 when the secret does not exist yet). Versions start at 1 and go
// up by exactly one, so two writers racing on the same version cannot both win.
func CheckNext(name string, current, next uint64) error {
	if current == math.MaxUint64 {
		return fmt.Errorf("secret %s: %w: version %d is the last there can be; delete the secret and create it again", quote(name), ErrVersion, current)
	}
	if next != current+1 {
		return fmt.Errorf("secret %s: %w: version %d does not follow the current version %d; the next version is %d", quote(name), ErrVersion, next, current, current+1)
	}
	return nil
}

func validateID(field, id string) error {
	if !idRE.MatchString(id) {
		return fmt.Errorf("%s %s must be %s", field, quote(id), idRule)
	}
	return nil
}

// quote quotes s for an error message, cut short so that garbage input cannot make a
// huge message.
func quote(s string) string {
	const max = 80
	if len(s) > max {
		return fmt.Sprintf("%q...", s[:max])
	}
	return fmt.Sprintf("%q", s)
}
