//go:build !linux

package qnettest

import "testing"

// Capture records the TCP traffic of the loopback interface; only Linux has it here.
type Capture struct{}

// StartCapture skips the test: packet capture is implemented with Linux's AF_PACKET
// sockets only.
func StartCapture(t testing.TB) *Capture {
	t.Helper()
	t.Skip("packet capture needs Linux (AF_PACKET sockets)")
	return nil
}

// Stop does nothing.
func (c *Capture) Stop() (CaptureStats, error) { return CaptureStats{}, nil }

// Flows returns nothing.
func (c *Capture) Flows(ports ...int) []Flow { return nil }
