package node

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestHostResolvers checks which of the node's resolvers its DNS server forwards to:
// all but itself.
func TestHostResolvers(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "resolv.conf")
	os.WriteFile(conf, []byte("# the node's\nnameserver 10.0.0.2\nnameserver 127.0.0.1\nnameserver ::1\nsearch example.com\noptions ndots:2\n"), 0o644)
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		self string
		want []string
	}{
		{"127.0.0.1:7753", []string{"10.0.0.2:53", "127.0.0.1:53", "[::1]:53"}},
		{"127.0.0.1:53", []string{"10.0.0.2:53", "[::1]:53"}},
		{"[::1]:53", []string{"10.0.0.2:53", "127.0.0.1:53"}},
		{":53", nil},
		{"0.0.0.0:53", nil},
	} {
		if got := hostResolvers(conf, tc.self, log); !slices.Equal(got, tc.want) {
			t.Errorf("self %s: %v, want %v", tc.self, got, tc.want)
		}
	}
	if got := hostResolvers(filepath.Join(dir, "missing"), "127.0.0.1:7753", log); got != nil {
		t.Errorf("no resolv.conf: %v, want none", got)
	}
}
