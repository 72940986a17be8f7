package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// buildQnet builds the qnet binary once for benchmarks that run it as a process.
func buildQnet(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "qnet")
	gobin := "go"
	if _, err := exec.LookPath(gobin); err != nil {
		gobin = "/usr/local/go/bin/go"
	}
	cmd := exec.Command(gobin, "build", "-o", bin, "./cmd/qnet")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build qnet: %v\n%s", err, out)
	}
	return bin
}

// rssKiB reads a process's resident set size.
func rssKiB(pid int) (int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// BenchmarkIdleAgentMemory starts a real `qnet agent` (a one-node network, no depots)
// and reports its resident memory once it has been idle for a while, and that of the
// warm shim it keeps for its next depot. Target: the agent under 40 MB.
func BenchmarkIdleAgentMemory(b *testing.B) {
	bin := buildQnet(b)
	for b.Loop() {
		dir := b.TempDir()
		env := append(os.Environ(), "QNET_CONFIG="+filepath.Join(dir, "config.yaml"))
		init := exec.Command(bin, "init", "--data-dir", filepath.Join(dir, "node"), "--network", "mem", "--api-addr", "127.0.0.1:0", "--mesh-addr", "127.0.0.1:0")
		init.Env = env
		if out, err := init.CombinedOutput(); err != nil {
			b.Fatalf("qnet init: %v\n%s", err, out)
		}
		agent := exec.Command(bin, "agent", "--data-dir", filepath.Join(dir, "node"), "--api-addr", "127.0.0.1:0")
		agent.Env = env
		out, err := agent.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := agent.Start(); err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		for sc.Scan() && !strings.Contains(sc.Text(), "is running") {
		}
		// Idle: let start-up garbage be collected and the runtime settle.
		time.Sleep(10 * time.Second)
		rss, err := rssKiB(agent.Process.Pid)
		if err != nil {
			b.Fatal(err)
		}
		shim := 0
		if pids, err := exec.CommandContext(context.Background(), "pgrep", "-P", strconv.Itoa(agent.Process.Pid)).Output(); err == nil {
			for _, p := range strings.Fields(string(pids)) {
				pid, _ := strconv.Atoi(p)
				if k, err := rssKiB(pid); err == nil {
					shim += k
				}
			}
		}
		agent.Process.Signal(os.Interrupt)
		agent.Wait()
		b.ReportMetric(float64(rss)/1024, "agent-MiB")
		b.ReportMetric(float64(shim)/1024, "warm-shim-MiB")
	}
}
