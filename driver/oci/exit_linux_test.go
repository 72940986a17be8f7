//go:build linux

package oci

import (
	"testing"

	"qnet.dev/qnet/driver"
)

func TestContainerExit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		in      driver.ExitStatus
		oom     bool
		limit   int64
		stopped bool
		want    driver.ExitStatus
	}{
		{"exit 0", driver.ExitStatus{Code: 0}, false, 0, false, driver.ExitStatus{Code: 0, Reason: "exited with code 0"}},
		{"exit 3 stopped", driver.ExitStatus{Code: 3}, false, 0, true, driver.ExitStatus{Code: 3, Reason: "stopped (exited with code 3)"}},
		{"killed", driver.ExitStatus{Code: 137}, false, 0, false, driver.ExitStatus{Code: 137, Signal: "SIGKILL", Reason: "killed by SIGKILL"}},
		{"term", driver.ExitStatus{Code: 143}, false, 0, true, driver.ExitStatus{Code: 143, Signal: "SIGTERM", Reason: "stopped (killed by SIGTERM)"}},
		{"oom", driver.ExitStatus{Code: 137}, true, 1024, true, driver.ExitStatus{Code: 137, Signal: "SIGKILL", OOMKilled: true, Reason: "oom killed: memory limit of 1024 bytes reached (killed by SIGKILL)"}},
		{"node oom", driver.ExitStatus{Code: 137}, true, 0, false, driver.ExitStatus{Code: 137, Signal: "SIGKILL", OOMKilled: true, Reason: "oom killed: the node ran out of memory (killed by SIGKILL)"}},
		{"runc killed", driver.ExitStatus{Code: 137, Signal: "SIGKILL", Reason: "killed by SIGKILL"}, true, 1024, true,
			driver.ExitStatus{Code: -1, Reason: "lost: the container's runtime was killed by SIGKILL; the container was killed"}},
		{"shim lost", driver.ExitStatus{Code: -1, Reason: "lost: supervisor died"}, false, 0, false, driver.ExitStatus{Code: -1, Reason: "lost: supervisor died"}},
		{"255", driver.ExitStatus{Code: 255}, false, 0, false, driver.ExitStatus{Code: 255, Reason: "exited with code 255"}},
	} {
		if got := containerExit(tc.in, tc.oom, tc.limit, tc.stopped); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
	for in, want := range map[string]string{"": "terminated", "SIGQUIT": "quit", "INT": "interrupt", "9": "killed", "bogus": "terminated"} {
		if got := signalNumber(in).String(); got != want {
			t.Errorf("signalNumber(%q) = %s, want %s", in, got, want)
		}
	}
}
