package secret

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"db-password", true},
		{"a", true},
		{"tls2", true},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{"", false},
		{"2fa-seed", false},
		{"db_password", false},
		{"DB-PASSWORD", false},
		{"db-", false},
		{"-db", false},
		{"db.password", false},
		{"db password", false},
		{"../etc", false},
	} {
		err := ValidateName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && (!errors.Is(err, ErrBadName) || !strings.Contains(err.Error(), "DNS label (1-63 characters of a-z, 0-9 and '-'")) {
			t.Errorf("ValidateName(%q) = %v; want ErrBadName saying what is valid", tc.name, err)
		}
	}
	long := strings.Repeat("x", 10000)
	if err := ValidateName(long); len(err.Error()) > 400 {
		t.Errorf("error for a 10000-byte name is %d bytes long", len(err.Error()))
	}
}

func TestCheckSize(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		n        int
		sentinel error
		want     string
	}{
		{1, nil, ""},
		{MaxSize, nil, ""},
		{0, ErrEmpty, `secret "db-password": secret is empty; a secret needs at least 1 byte`},
		{MaxSize + 1, ErrTooLarge, `secret "db-password" is 65537 bytes: secret too large; at most 65536 bytes (64 KiB) are allowed`},
		{10 << 20, ErrTooLarge, "is 10485760 bytes"},
	} {
		err := CheckSize("db-password", tc.n)
		if tc.sentinel == nil {
			if err != nil {
				t.Errorf("CheckSize(%d) = %v", tc.n, err)
			}
			continue
		}
		if !errors.Is(err, tc.sentinel) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CheckSize(%d) = %v; want %v containing %q", tc.n, err, tc.sentinel, tc.want)
		}
	}
}

func TestCheckNext(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		current, next uint64
		want          string // "" for allowed
	}{
		{0, 1, ""},
		{1, 2, ""},
		{41, 42, ""},
		{0, 0, "the next version is 1"},
		{0, 2, "the next version is 1"},
		{5, 5, "version 5 does not follow the current version 5; the next version is 6"},
		{5, 4, "the next version is 6"},
		{5, 9, "the next version is 6"},
		{math.MaxUint64, 0, "is the last there can be"},
	} {
		err := CheckNext("api-key", tc.current, tc.next)
		if tc.want == "" {
			if err != nil {
				t.Errorf("CheckNext(%d, %d) = %v", tc.current, tc.next, err)
			}
			continue
		}
		if !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CheckNext(%d, %d) = %v; want ErrVersion containing %q", tc.current, tc.next, err, tc.want)
		}
	}
}
