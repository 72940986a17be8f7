package exec

import (
	"context"
	"fmt"
	"os"
	"sort"
	"testing"
	"time"

	"qnet.dev/qnet/cgroup"
	"qnet.dev/qnet/driver"
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
			ctx := context.Background()
			var took []time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s := driver.Spec{ID: fmt.Sprintf("bench-%d", i), Command: cmd, Args: []string{"1000"}, CPU: 500, Memory: 64 << 20}
				t0 := time.Now()
				h, err := d.Start(ctx, s)
				took = append(took, time.Since(t0))
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if _, err := h.Stop(ctx, 0); err != nil {
					b.Fatal(err)
				}
				if err := d.Remove(s.ID); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.StopTimer()
			sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "ms-p50")
			b.ReportMetric(float64(took[len(took)*9/10].Microseconds())/1000, "ms-p90")
		})
	}
}
