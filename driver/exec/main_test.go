package exec

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"qnet.dev/qnet/cgroup"
	"qnet.dev/qnet/driver/exec/shim"
	"qnet.dev/qnet/driver/internal/depotgroup"
)

// testParent is the cgroup parent of this test process, removed when the tests end.
var testParent = fmt.Sprintf("qnet-test-%d", os.Getpid())

// TestMain makes the test binary play three parts: the shim (QNET_TEST_SHIM=1, as the
// lead's "qnet shim" command will), a workload (QNET_TEST_WORKLOAD=mode), and the tests.
func TestMain(m *testing.M) {
	if os.Getenv("QNET_TEST_SHIM") == "1" {
		os.Exit(shim.Main(os.Args[2:])) // os.Args: [binary, "shim", ...]
	}
	if mode := os.Getenv("QNET_TEST_WORKLOAD"); mode != "" {
		os.Exit(workload(mode))
	}
	code := m.Run()
	depotgroup.RemoveParent(cgroup.Detect(testParent), testParent)
	os.Exit(code)
}

// block parks the workload until it is killed.
func block() {
	for {
		time.Sleep(time.Hour)
	}
}

// workload runs one of the test workloads and returns its exit code.
func workload(mode string) int {
	name, arg, _ := strings.Cut(mode, ":")
	switch name {
	case "sleep":
		fmt.Printf("ready %d\n", os.Getpid())
		fmt.Fprintln(os.Stderr, "to stderr")
		block()
	case "exit":
		n, _ := strconv.Atoi(arg)
		return n
	case "env":
		for _, e := range os.Environ() {
			fmt.Println(e)
		}
		wd, _ := os.Getwd()
		fmt.Println("wd=" + wd)
	case "print":
		n, _ := strconv.Atoi(arg)
		for i := 0; i < n; i++ {
			fmt.Printf("line %06d %s\n", i, strings.Repeat("x", 87)) // 100 bytes
		}
	case "ignoreterm":
		signal.Ignore(syscall.SIGTERM)
		fmt.Printf("ready %d\n", os.Getpid())
		block()
	case "fork", "forkexit", "daemon":
		child := exec.Command(os.Args[0])
		child.Env = []string{"QNET_TEST_WORKLOAD=sleep", noRaceExitSleep}
		if name == "daemon" { // leaves the process group: only the shim's subreaper catches it
			child.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		}
		if err := child.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("child %d\n", child.Process.Pid)
		if name != "fork" {
			return 0
		}
		block()
	case "alloc":
		var keep [][]byte
		for i := 0; i < 200; i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				b[j] = 1
			}
			keep = append(keep, b)
		}
		fmt.Println("allocated", len(keep), "MiB")
	default:
		fmt.Fprintln(os.Stderr, "unknown test workload", mode)
		return 2
	}
	return 0
}
