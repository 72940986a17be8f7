// Package leakcheck fails a package's tests when goroutines of the package outlive
// them: every goroutine must have an owner that stops it.
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Main runs the tests and then, if they passed, waits up to 5 seconds for every
// goroutine whose stack mentions one of patterns (such as "qnet/tunnel.") to end;
// those still running are printed and the run fails. It is a package's TestMain.
func Main(m *testing.M, patterns ...string) {
	code := m.Run()
	if code == 0 {
		if leaked := wait(5*time.Second, patterns); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines leaked:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// wait returns the stacks of the goroutines matching patterns that are still there
// after d, or "" once there are none.
func wait(d time.Duration, patterns []string) string {
	deadline := time.Now().Add(d)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			if strings.Contains(g, "leakcheck.") {
				continue
			}
			for _, p := range patterns {
				if strings.Contains(g, p) {
					leaked = append(leaked, g)
					break
				}
			}
		}
		if len(leaked) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(10 * time.Millisecond) // polling interval of the check, not a wait for an event
	}
}
