//go:build linux

package oci

import (
	"context"
	"fmt"
	"testing"

	"qnet.dev/qnet/driver"
	"qnet.dev/qnet/driver/internal/drivertest"
)

// BenchmarkStart measures placement-to-running as the agent sees it, with the image
// already unpacked on the node: Start, from the spec to the container's first process
// running, including the overlay mount, the network namespace, veth and address, the
// runtime spec, the shim (a warm one when ready), the port helper for a depot with a
// port, and runc's create and start. It reports the median and 90th percentile.
func BenchmarkStart(b *testing.B) {
	store := newFakeStore()
	img := appImage(b, store)
	for _, tc := range []struct {
		name  string
		ports bool
	}{{"port", true}, {"noport", false}} {
		b.Run(tc.name, func(b *testing.B) {
			d := newDriver(b, store)
			ctx := context.Background()
			// Unpack the image once, as an earlier depot would have.
			h, err := d.Start(ctx, imageSpec("warmup", img, "exit", "0"))
			if err != nil {
				b.Fatal(err)
			}
			wait(b, h)
			d.Remove("warmup")
			drivertest.BenchStarts(b, d, func(i int) driver.Spec {
				s := imageSpec(fmt.Sprintf("bench-%d", i), img, "sleep")
				s.CPU, s.Memory = 500, 64<<20
				if tc.ports {
					s.Ports = map[string]driver.PortMapping{"http": {Host: freePort(b), Container: 8080}}
				}
				return s
			})
		})
	}
}
