package wasm

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"qnet.dev/qnet/driver"
	"qnet.dev/qnet/driver/internal/drivertest"
)

// BenchmarkStart measures placement-to-running as the agent sees it: from Start to the
// module's _start entered, including writing the spec, handing the launch to the warm
// supervisor, loading the module, opening the logs, instantiating it and the
// supervisor's report. The compilation cache is warm (each module is started once
// before timing). It reports the median and 90th percentile besides the mean.
//
//   - tiny: a 250-byte WASI command, the size class of a TinyGo, Rust or C module.
//   - go: a 2.8 MB module built by the Go toolchain (Go's runtime alone is megabytes).
//   - primed: the warm supervisor compiled the module in advance, because the last
//     depot started had the same module (a restart, another replica).
//   - primed-cpu: primed, with a CPU limit: the supervisor moves into the depot's
//     cgroup before the module starts, which costs a cgroup migration of a
//     multi-threaded process (several milliseconds on cgroup v1).
//   - cache: the warm supervisor was primed with another module, so this one comes
//     from the compilation cache on disk (decoded and validated again, then the native
//     code is loaded).
//
// The supervisor is the test binary, as the qnet binary will be.
func BenchmarkStart(b *testing.B) {
	tiny := writeModule(b, "tiny.wasm", tinyWASI())
	app := guest(b, "app")
	for _, tc := range []struct {
		name  string
		spec  driver.Spec
		other string // started between timed starts, so the prime is another module
	}{
		{"tiny/primed", driver.Spec{Command: tiny}, ""},
		{"go/primed", driver.Spec{Command: app, Args: []string{"sleep"}}, ""},
		{"go/primed-cpu", driver.Spec{Command: app, Args: []string{"sleep"}, CPU: 20}, ""},
		{"go/cache", driver.Spec{Command: app, Args: []string{"sleep"}}, tiny},
		{"go-http/primed", driver.Spec{Command: guest(b, "web"), Env: []string{"PORT=" + strconv.Itoa(freePort(b))}}, ""},
	} {
		b.Run(tc.name, func(b *testing.B) {
			d := newDriver(b)
			ctx := context.Background()
			if _, err := d.Recover(ctx); err != nil { // as the agent does
				b.Fatal(err)
			}
			d.Prime(tc.spec.Command) // the first start below primes the next
			run := func(id string, s driver.Spec) time.Duration {
				d.waitWarm(b)
				s.ID, s.Memory = id, 256<<20
				t0 := time.Now()
				h, err := d.Start(ctx, s)
				took := time.Since(t0)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := h.Stop(ctx, time.Second); err != nil {
					b.Fatal(err)
				}
				if err := d.Remove(id); err != nil {
					b.Fatal(err)
				}
				return took
			}
			run("warmup", tc.spec) // fills the compilation cache
			var took []time.Duration
			b.ResetTimer()
			b.StopTimer()
			for i := 0; i < b.N; i++ {
				if tc.other != "" {
					run(fmt.Sprintf("other-%d", i), driver.Spec{Command: tc.other})
				}
				took = append(took, run(fmt.Sprintf("bench-%d", i), tc.spec))
			}
			var total time.Duration
			for _, d := range took {
				total += d
			}
			b.ReportMetric(float64(total.Nanoseconds())/float64(len(took)), "ns/op")
			drivertest.ReportPercentiles(b, took)
		})
	}
}
