package network

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// DialTimeout bounds how long Forward waits to reach the container for one
// connection.
const DialTimeout = 5 * time.Second

// Forward accepts TCP connections on ln and joins each to a new connection to target
// (the container's address and port), copying both ways, until ctx ends; then it
// closes ln and every connection it holds and returns once all its goroutines have
// ended.
//
// A forwarder in user space, rather than DNAT rules, because it needs nothing from the
// node: no iptables or nftables, no net.ipv4.ip_forward, no route_localnet for
// connections to 127.0.0.1, and no rules to clean up after a crash. It lives in the
// depot's helper process under the depot's shim, so the ports keep answering while the
// agent restarts. The cost is a copy through user space per byte and the client's
// address, which the container sees as the bridge's.
func Forward(ctx context.Context, ln net.Listener, target string, log *slog.Logger) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
	)
	track := func(c net.Conn, add bool) bool {
		mu.Lock()
		defer mu.Unlock()
		if !add {
			delete(conns, c)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		conns[c] = struct{}{}
		return true
	}
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	defer stop()
	defer wg.Wait()
	dialer := net.Dialer{Timeout: DialTimeout}
	for {
		in, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		if !track(in, true) {
			in.Close()
			return nil
		}
		wg.Go(func() {
			defer track(in, false)
			defer in.Close()
			out, err := dialer.DialContext(ctx, "tcp", target)
			if err != nil {
				log.Debug("port forward: container not reachable", "target", target, "err", err)
				return
			}
			if !track(out, true) {
				out.Close()
				return
			}
			defer track(out, false)
			defer out.Close()
			join(in, out)
		})
	}
}

// join copies a to b and b to a; when one side has finished sending, the other is
// told (a half close), and join returns once both directions are done.
func join(a, b net.Conn) {
	var wg sync.WaitGroup
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
	}
	wg.Add(2)
	go pipe(a, b)
	go pipe(b, a)
	wg.Wait()
}

// UDPIdle is how long a UDP flow (one client address) is kept without a datagram
// either way before its socket to the container is closed.
const UDPIdle = 2 * time.Minute

// ForwardUDP relays datagrams that arrive on pc to target and the answers back, one
// socket to the container per client address (so the container can tell its clients
// apart and answer each), until ctx ends; then it closes pc and every flow and
// returns once all its goroutines have ended.
func ForwardUDP(ctx context.Context, pc net.PacketConn, target string, log *slog.Logger) error {
	raddr, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		return err
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		flows = map[string]*net.UDPConn{}
	)
	stop := context.AfterFunc(ctx, func() {
		pc.Close()
		mu.Lock()
		for _, c := range flows {
			c.Close()
		}
		mu.Unlock()
	})
	defer stop()
	defer wg.Wait()
	buf := make([]byte, 64<<10)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		key := from.String()
		mu.Lock()
		out, ok := flows[key]
		if !ok && ctx.Err() == nil {
			out, err = net.DialUDP("udp", nil, raddr)
			if err != nil {
				mu.Unlock()
				log.Debug("udp forward: container not reachable", "target", target, "err", err)
				continue
			}
			flows[key] = out
			wg.Go(func() {
				defer func() {
					mu.Lock()
					delete(flows, key)
					mu.Unlock()
					out.Close()
				}()
				b := make([]byte, 64<<10)
				for {
					out.SetReadDeadline(time.Now().Add(UDPIdle))
					n, err := out.Read(b)
					if err != nil {
						return // idle, closed, or the container refused (ICMP)
					}
					pc.WriteTo(b[:n], from)
				}
			})
		}
		mu.Unlock()
		if out != nil {
			out.Write(buf[:n])
		}
	}
}
