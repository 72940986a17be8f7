// Package settings checks and resolves the settings every driver's Config has alike: the
// runtime directory, the cgroups, the start timeout and the logger. The drivers refuse
// the same mistakes in them with the same words and fill in the same defaults.
package settings

import (
	"cmp"
	"fmt"
	"log/slog"
	"time"

	"qnet.dev/qnet/cgroup"
)

// Common is the settings every driver's Config has alike.
type Common struct {
	// Driver is the driver's name ("exec"): errors and logs say which driver they are of.
	Driver string
	// Dir is the driver's runtime directory, and DirExample a good one, for the error
	// when Dir is empty.
	Dir, DirExample string
	// Cgroup, when set, is the hierarchy to use instead of the node's (Version
	// cgroup.None: no cgroups), and CgroupParent the group depot groups are made under.
	Cgroup       *cgroup.Hierarchy
	CgroupParent string
	// RequireLimits makes a start fail when a depot asks for a limit the node cannot
	// enforce.
	RequireLimits bool
	// StartTimeout bounds a start; DefaultStartTimeout is what 0 means.
	StartTimeout, DefaultStartTimeout time.Duration
	// Logger receives the driver's own logs (nil: slog.Default()).
	Logger *slog.Logger
}

// Validate reports the first bad setting, naming the field and what would be valid.
func (c Common) Validate() error {
	if c.Dir == "" {
		return fmt.Errorf("%s driver: Dir is empty: want a runtime directory that survives agent restarts, e.g. %s", c.Driver, c.DirExample)
	}
	if c.CgroupParent != "" {
		if err := cgroup.ValidateParent(c.CgroupParent); err != nil {
			return fmt.Errorf("%s driver: CgroupParent: %w", c.Driver, err)
		}
	}
	if c.StartTimeout < 0 {
		return fmt.Errorf("%s driver: StartTimeout is %v: want >= 0 (0 = %v)", c.Driver, c.StartTimeout, c.DefaultStartTimeout)
	}
	return nil
}

// Resolved is the common settings checked and with their defaults filled in, as a
// driver keeps them (embedded in its Driver).
type Resolved struct {
	// Hier is the cgroup hierarchy the driver works with.
	Hier    cgroup.Hierarchy
	Require bool
	Timeout time.Duration
	// Log says which driver logs.
	Log *slog.Logger
}

// Resolve checks c and returns it resolved: the configured hierarchy or else the one
// the node offers under CgroupParent, and the defaults of StartTimeout and Logger.
func (c Common) Resolve() (Resolved, error) {
	if err := c.Validate(); err != nil {
		return Resolved{}, err
	}
	r := Resolved{
		Require: c.RequireLimits,
		Timeout: cmp.Or(c.StartTimeout, c.DefaultStartTimeout),
		Log:     cmp.Or(c.Logger, slog.Default()).With("driver", c.Driver),
	}
	if c.Cgroup != nil {
		r.Hier = *c.Cgroup
	} else {
		r.Hier = cgroup.Detect(c.CgroupParent)
	}
	return r, nil
}
