package exec

import (
	"fmt"
	"os"
	"testing"

	"qnet.dev/qnet/cgroup"
	"qnet.dev/qnet/driver"
	"qnet.dev/qnet/driver/internal/drivertest"
)

// BenchmarkStart measures placement-to-running as the agent sees it: from Start to the
// workload's program executed, including writing the spec, starting the shim, creating
// the cgroup and setting limits, and the shim's report. It reports the median and 90th
// percentile besides the mean. The shim is the test binary, as the qnet binary will be.
func BenchmarkStart(b *testing.B) {
	cmd := "/bin/sleep"
	if _, err := os.Stat(cmd); err != nil {
		b.Skip("no /bin/sleep")
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
	}{
		{"cgroup", func(*Config) {}},
		{"nocgroup", func(c *Config) {
			c.Cgroup = &cgroup.Hierarchy{Version: cgroup.None, Parent: testParent, Reason: "off for this benchmark"}
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			d := newDriver(b, tc.edit)
			if tc.name == "cgroup" && d.Cgroups().Version == cgroup.None {
				b.Skipf("cgroups unavailable: %s", d.Cgroups().Reason)
			}
			drivertest.BenchStarts(b, d, func(i int) driver.Spec {
				return driver.Spec{ID: fmt.Sprintf("bench-%d", i), Command: cmd, Args: []string{"1000"}, CPU: 500, Memory: 64 << 20}
			})
		})
	}
}
