package testnet

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the processes the tests need, chosen by this variable:
// "sleep" (blocks until its stdin closes), "spawn" (starts a "sleep" child in its
// session, then blocks) and "node" (a loopback peer, see runNode).
const helperEnv = "QNET_TESTNET_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "sleep":
		io.Copy(io.Discard, os.Stdin)
	case "spawn":
		child := exec.Command(os.Args[0])
		child.Env = append(os.Environ(), helperEnv+"=sleep")
		r, w, _ := os.Pipe()
		child.Stdin = r
		if err := child.Start(); err != nil {
			fmt.Println("err", err)
			os.Exit(1)
		}
		fmt.Println(child.Process.Pid)
		io.Copy(io.Discard, os.Stdin)
		w.Close()
	case "node":
		runNode()
	}
	os.Exit(0)
}

// runNode is a peer that listens on a port of its own (of 127.0.0.1, or at the address
// in QNET_TESTNET_HELPER_ADDR) and takes
// commands on stdin, answering each with one line: "dial PORT" (answers "ok ID"),
// "send ID" (a ping on dialled connection ID that wants a pong), "push" (a line to every
// connection it accepted) and "recv ID" (wants a pushed line on connection ID). Reads
// and dials give up after 600ms, so a dropped packet shows as "err".
func runNode() {
	addr := os.Getenv(helperEnv + "_ADDR")
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Println("err", err)
		return
	}
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
			go func() {
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					if sc.Text() == "ping" {
						c.Write([]byte("pong\n"))
					}
				}
			}()
		}
	}()
	var (
		dialled []net.Conn
		readers []*bufio.Reader
		inbound []net.Conn
	)
	const wait = 600 * time.Millisecond
	readLine := func(i int) string {
		dialled[i].SetReadDeadline(time.Now().Add(wait))
		line, err := readers[i].ReadString('\n')
		if err != nil {
			return "err " + err.Error()
		}
		return strings.TrimSpace(line)
	}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		for len(accepted) > 0 {
			inbound = append(inbound, <-accepted)
		}
		id := -1
		if len(f) == 2 {
			id, _ = strconv.Atoi(f[1])
		}
		switch {
		case f[0] == "dial":
			to := f[1]
			if !strings.Contains(to, ":") {
				to = "127.0.0.1:" + to
			}
			c, err := net.DialTimeout("tcp", to, wait)
			if err != nil {
				fmt.Println("err", err)
				continue
			}
			dialled, readers = append(dialled, c), append(readers, bufio.NewReader(c))
			fmt.Println("ok", len(dialled)-1)
		case f[0] == "send" && id >= 0 && id < len(dialled):
			dialled[id].Write([]byte("ping\n"))
			if got := readLine(id); got != "pong" {
				fmt.Println("err", got)
				continue
			}
			fmt.Println("ok")
		case f[0] == "push":
			for _, c := range inbound {
				c.Write([]byte("push\n"))
			}
			fmt.Println("ok", len(inbound))
		case f[0] == "recv" && id >= 0 && id < len(dialled):
			if got := readLine(id); got != "push" {
				fmt.Println("err", got)
				continue
			}
			fmt.Println("ok")
		default:
			fmt.Println("err unknown command", f)
		}
	}
}

// helper is a helper process the test started.
type helper struct {
	t     *testing.T
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Scanner
	first string // the first line it printed
}

// startHelper starts the test binary in mode, with group ID gid when not zero and in a
// session of its own when setsid, and reads its first line.
func startHelper(t *testing.T, mode string, gid uint32, setsid bool) *helper {
	t.Helper()
	return startHelperIn(t, "", "", mode, gid, setsid)
}

// startHelperIn is startHelper in network namespace ns (none when empty), with the
// node helper listening at addr (127.0.0.1:0 when empty).
func startHelperIn(t *testing.T, ns, addr, mode string, gid uint32, setsid bool) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperEnv+"_ADDR="+addr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: setsid}
	if gid != 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(os.Getuid()), Gid: gid, Groups: []uint32{}}
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := startIn(ns, cmd); err != nil {
		t.Fatal(err)
	}
	h := &helper{t: t, cmd: cmd, in: in, out: bufio.NewScanner(out)}
	t.Cleanup(func() {
		in.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	if mode != "sleep" {
		if !h.out.Scan() {
			t.Fatalf("helper %s printed nothing", mode)
		}
		h.first = h.out.Text()
	}
	return h
}

// do sends a command to a node helper and returns its answer.
func (h *helper) do(format string, args ...any) string {
	h.t.Helper()
	fmt.Fprintf(h.in, format+"\n", args...)
	if !h.out.Scan() {
		h.t.Fatalf("helper gave no answer to %q", fmt.Sprintf(format, args...))
	}
	return h.out.Text()
}

// want sends a command and checks that the answer begins with prefix.
func (h *helper) want(prefix, format string, args ...any) string {
	h.t.Helper()
	got := h.do(format, args...)
	if !strings.HasPrefix(got, prefix) {
		h.t.Fatalf("%s: got %q, want %q", fmt.Sprintf(format, args...), got, prefix)
	}
	return got
}

func mustSubnet(t *testing.T) *net.IPNet {
	t.Helper()
	_, n, err := net.ParseCIDR("10.77.9.0/24")
	if err != nil {
		t.Fatal(err)
	}
	return n
}
