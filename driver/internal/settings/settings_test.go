package settings

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"qnet.dev/qnet/cgroup"
)

func valid() Common {
	return Common{Driver: "exec", Dir: "/var/lib/qnet/depots", DirExample: "<data-dir>/depots", DefaultStartTimeout: 30 * time.Second}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		edit func(*Common)
		want string // "" for valid
	}{
		{func(*Common) {}, ""},
		{func(c *Common) { c.CgroupParent = "qnet/agent-1" }, ""},
		{func(c *Common) { c.Dir = "" }, "exec driver: Dir is empty: want a runtime directory that survives agent restarts, e.g. <data-dir>/depots"},
		{func(c *Common) { c.CgroupParent = "../up" }, "exec driver: CgroupParent: "},
		{func(c *Common) { c.CgroupParent = "/abs" }, "exec driver: CgroupParent: "},
		{func(c *Common) { c.StartTimeout = -time.Second }, "exec driver: StartTimeout is -1s: want >= 0 (0 = 30s)"},
	} {
		c := valid()
		tc.edit(&c)
		err := c.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.HasPrefix(err.Error(), tc.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", c, err, tc.want)
		}
		if _, rerr := c.Resolve(); (rerr == nil) != (err == nil) {
			t.Errorf("Resolve(%+v) = %v, Validate %v: want them to agree", c, rerr, err)
		}
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	off := &cgroup.Hierarchy{Version: cgroup.None, Reason: "off for this test"}
	var logs bytes.Buffer
	c := valid()
	c.Cgroup, c.RequireLimits, c.Logger = off, true, slog.New(slog.NewTextHandler(&logs, nil))
	r, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if r.Hier != *off || !r.Require || r.Timeout != 30*time.Second {
		t.Errorf("Resolve = %+v", r)
	}
	r.Log.Info("hello")
	if !strings.Contains(logs.String(), "driver=exec") {
		t.Errorf("the driver's logs do not say which driver: %q", logs.String())
	}
	c.StartTimeout, c.Logger = time.Minute, nil
	if r, _ := c.Resolve(); r.Timeout != time.Minute || r.Log == nil {
		t.Errorf("Resolve with a timeout and no logger = %+v", r)
	}
	// No hierarchy configured: the node's, which says why when it has none.
	c.Cgroup = nil
	if r, _ := c.Resolve(); r.Hier.Version == cgroup.None && r.Hier.Reason == "" {
		t.Errorf("detected hierarchy %+v: no cgroups, and no reason", r.Hier)
	}
}
