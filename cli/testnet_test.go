package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestTestnetRefusals: the testnet commands refuse bad command lines and a directory
// without a testnet with errors that say what is wrong and what to do, before they
// start or touch anything.
func TestTestnetRefusals(t *testing.T) {
	empty := t.TempDir()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"testnet", "up"}, `required flag(s) "nodes" not set`},
		{[]string{"testnet", "up", "--nodes", "0", "--dir", empty}, "--nodes 0: want 1 to 200"},
		{[]string{"testnet", "up", "--nodes", "3", "--name", "Lab_1"}, `--name: testnet name "Lab_1"`},
		{[]string{"testnet", "up", "--nodes", "3", "extra"}, "takes no arguments"},
		{[]string{"testnet", "status", "--dir", empty}, "no testnet in " + empty},
		{[]string{"testnet", "kill", "--dir", empty}, "wants NODE"},
		{[]string{"testnet", "kill", "2", "--dir", empty}, "no testnet in " + empty},
		{[]string{"testnet", "restart", "2", "--dir", empty}, "no testnet in " + empty},
		{[]string{"testnet", "partition", "--dir", empty}, "wants the nodes of one group"},
		{[]string{"testnet", "partition", "1/2/3", "--dir", empty}, "separated by one '/'"},
		{[]string{"testnet", "partition", "1", "/", "--dir", empty}, "second group names no node"},
		{[]string{"testnet", "heal", "--dir", empty}, "no testnet in " + empty},
		{[]string{"testnet", "down", "--dir", filepath.Join(empty, "none")}, "no testnet in"},
		{[]string{"testnet", "status", "--name", "-x"}, "--name"},
		{[]string{"testnet", "destroy"}, `unknown command "destroy" for "qnet testnet": want one of down, heal, kill, partition, restart, status, up`},
	}
	for _, c := range cases {
		code, _, stderr := run(t, c.args...)
		if code != 1 || !strings.Contains(stderr, c.want) {
			t.Errorf("qnet %s: exit %d, stderr:\n%s\nwant exit 1 and %q", strings.Join(c.args, " "), code, stderr, c.want)
		}
	}
}
