package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecretPutBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 64<<10+1), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(dir, "huge")
	if err := os.WriteFile(huge, make([]byte, 300<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"secret", "put", "db"}, "give the value in exactly one way"},
		{[]string{"secret", "put", "db", "-", "--from-file", big}, "give the value in exactly one way"},
		{[]string{"secret", "put", "db", "x"}, `the second argument may only be - (read standard input), got "x"`},
		{[]string{"secret", "put", "db", "--from-literal", "other=v"}, "--from-literal must be db=VALUE"},
		{[]string{"secret", "put", "DB", "--from-literal", "DB=v"}, "must be a DNS label"},
		{[]string{"secret", "put", "db", "--from-file", big}, "secret \"db\" is 65537 bytes: secret too large; at most 65536 bytes (64 KiB) are allowed"},
		{[]string{"secret", "put", "db", "--from-file", huge}, "is larger than 262144 bytes"},
		{[]string{"secret", "put", "db", "--from-file", empty}, "secret is empty"},
		{[]string{"secret", "put", "db", "--from-file", filepath.Join(dir, "nope")}, "no such file"},
		{[]string{"secret", "rm"}, "wants NAME"},
		{[]string{"config", "put", "c"}, "--from-file FILE is required"},
		{[]string{"config", "put", "c", "--from-file", huge}, "is larger than 262144 bytes"},
	} {
		code, out, errOut := run(t, tc.args...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("qnet %s: exit %d, stdout %q, stderr %q; want an error containing %q", strings.Join(tc.args, " "), code, out, errOut, tc.want)
		}
	}
}
