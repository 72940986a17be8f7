//go:build linux

package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"qnet.dev/qnet/driver/oci/network"
)

// HelperCommand is the subcommand of the agent's binary that runs HelperMain:
// "qnet oci-run ...". The driver runs it, under the depot's shim, for depots that
// publish ports.
const HelperCommand = "oci-run"

// helperExitFailed is the helper's exit code when it could not start runc (as docker
// run's 125: the failure is the runtime's, not the container's).
const helperExitFailed = 125

// HelperMain runs the port helper with the arguments that follow HelperCommand and
// returns the process exit code:
//
//	oci-run [-p HOSTPORT[/udp]=ADDR:PORT]... [-e ERRORFILE] -- RUNC ARGS...
//
// It listens on each HOSTPORT (all addresses of the node), starts RUNC ARGS (runc run
// in the foreground) with its own stdin, stdout and stderr, forwards each connection
// to the container's ADDR:PORT, passes signals on to runc, and ends as runc ended:
// with its exit code, or killed by the same signal. The ports are open for exactly as
// long as the container runs, and they do not depend on the agent.
func HelperMain(args []string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("helper", HelperCommand)
	var (
		ports   []portArg
		errFile string
	)
	fail := func(format string, a ...any) int {
		msg := fmt.Sprintf(format, a...)
		fmt.Fprintln(os.Stderr, "qnet "+HelperCommand+": "+msg)
		if errFile != "" {
			os.WriteFile(errFile, []byte(msg), 0o600)
		}
		return helperExitFailed
	}
	i := 0
	for ; i < len(args) && args[i] != "--"; i++ {
		switch {
		case args[i] == "-p" && i+1 < len(args):
			p, err := parsePortArg(args[i+1])
			if err != nil {
				return fail("%v", err)
			}
			ports = append(ports, p)
			i++
		case args[i] == "-e" && i+1 < len(args):
			errFile = args[i+1]
			i++
		default:
			return fail("unknown argument %q; usage: qnet %s [-p HOSTPORT[/udp]=ADDR:PORT]... [-e ERRORFILE] -- RUNC ARGS...", args[i], HelperCommand)
		}
	}
	if i+1 >= len(args) {
		return fail("no runc command after --")
	}
	cmdline := args[i+1:]

	// Bind every port before the container starts: a port taken by someone else fails
	// the depot's start, clearly, rather than leaving it unreachable.
	var closers []io.Closer
	serve := make([]func(context.Context) error, len(ports))
	for j, p := range ports {
		target := net.JoinHostPort(p.addr, strconv.Itoa(p.container))
		var err error
		if p.udp {
			var pc net.PacketConn
			if pc, err = net.ListenPacket("udp", ":"+strconv.Itoa(p.host)); err == nil {
				closers = append(closers, pc)
				serve[j] = func(ctx context.Context) error { return network.ForwardUDP(ctx, pc, target, log) }
			}
		} else {
			var ln net.Listener
			if ln, err = net.Listen("tcp", ":"+strconv.Itoa(p.host)); err == nil {
				closers = append(closers, ln)
				serve[j] = func(ctx context.Context) error { return network.Forward(ctx, ln, target, log) }
			}
		}
		if err != nil {
			for _, c := range closers {
				c.Close()
			}
			return fail("host port %d/%s: %v", p.host, p.proto(), err)
		}
	}

	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	cmd := exec.Command(cmdline[0], cmdline[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// runc dies with the helper: the agent then finds the container without its
	// supervisor and removes it, rather than a container running with no one to see
	// its end.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fail("start %s: %v", cmdline[0], err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for j, f := range serve {
		wg.Go(func() {
			if err := f(ctx); err != nil {
				log.Error("port forward ended", "port", ports[j].host, "protocol", ports[j].proto(), "err", err)
			}
		})
	}
	forwarding := make(chan struct{})
	go func() {
		defer close(forwarding)
		for s := range sigs {
			cmd.Process.Signal(s)
		}
	}()
	cmd.Wait()
	signal.Stop(sigs)
	close(sigs)
	<-forwarding
	cancel()
	wg.Wait()

	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		// End the same way, so the shim tells a killed runc from a container that
		// exited with 128+n.
		signal.Reset(ws.Signal())
		syscall.Kill(os.Getpid(), ws.Signal())
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// portArg is one "-p HOSTPORT[/udp]=ADDR:PORT".
type portArg struct {
	host      int
	udp       bool
	addr      string
	container int
}

func (p portArg) proto() string {
	if p.udp {
		return "udp"
	}
	return "tcp"
}

func parsePortArg(s string) (portArg, error) {
	h, target, ok := strings.Cut(s, "=")
	if !ok {
		return portArg{}, fmt.Errorf("port %q: want HOSTPORT[/udp]=ADDR:PORT", s)
	}
	var udp bool
	if hp, proto, ok := strings.Cut(h, "/"); ok {
		if proto != "udp" && proto != "tcp" {
			return portArg{}, fmt.Errorf("port %q: protocol %q: want tcp or udp", s, proto)
		}
		h, udp = hp, proto == "udp"
	}
	addr, cport, err := net.SplitHostPort(target)
	if err != nil {
		return portArg{}, fmt.Errorf("port %q: %w", s, err)
	}
	p := portArg{addr: addr, udp: udp}
	if p.host, err = parsePort(h); err != nil {
		return portArg{}, fmt.Errorf("port %q: host port: %w", s, err)
	}
	if p.container, err = parsePort(cport); err != nil {
		return portArg{}, fmt.Errorf("port %q: container port: %w", s, err)
	}
	if net.ParseIP(addr) == nil {
		return portArg{}, fmt.Errorf("port %q: %q is not an IP address", s, addr)
	}
	return p, nil
}

func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, errors.New("want 1 to 65535")
	}
	return n, nil
}
