package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"qnet.dev/qnet/manifest"
	"qnet.dev/qnet/qnettest"
)

// The load every target gets: wrk with the same threads and connections, in rounds that
// take turns between the targets (so a drift of the VM's speed hits all alike), after
// one unmeasured warm-up run per target.
const (
	wrkThreads     = 2
	wrkConns       = 32
	wrkRound       = 3 * time.Second
	wrkWarmup      = 1 * time.Second
	wrkRoundsPerOp = 3
)

// proxyTarget is one address wrk loads, under a name for the metrics.
type proxyTarget struct {
	name string
	addr string
	host string // Host header, when the target routes by it
}

// BenchmarkProxyVsNginx loads the same backend (one replica of the example HTTP service,
// an exec depot) four ways with wrk and reports requests per second and p99 latency of
// each: through nginx as a reverse proxy (L7, upstream keepalive, worker_processes
// auto), through the node's proxy for the service (L4: each client connection spliced
// to a backend connection), through the node's HTTP ingress (L7, routed by Host), and
// straight to the backend as the reference. Needs nginx and wrk.
//
//	go test -run '^$' -bench BenchmarkProxyVsNginx -benchtime 1x ./bench
func BenchmarkProxyVsNginx(b *testing.B) {
	nginx, wrk := loadTools(b, true)
	n := qnettest.StartNode(b, qnettest.Options{})
	backend := startHello(b, n, "px", "")
	proxyAddr := proxyAddrOf(b, n, "px")
	ngx := startNginx(b, nginx, backend)
	targets := []proxyTarget{
		{name: "nginx", addr: ngx},
		{name: "qnet", addr: proxyAddr},
		{name: "ingress", addr: n.IngressAddr(), host: "px.test.qnet"},
		{name: "direct", addr: backend},
	}
	for _, t := range targets {
		waitAnswers(b, t)
	}
	res := loadRounds(b, wrk, targets)
	for _, t := range targets {
		reportWrk(b, t.name, res[t.name])
	}
	ratios(b, res, "qnet", "nginx")
	ratios(b, res, "ingress", "nginx")
	ratios(b, res, "qnet", "direct")
}

// BenchmarkProxyCrossNode loads one replica of the example HTTP service on node 2 of a
// 2-node network through the proxy of node 1 (a post-quantum tunnel stream to node 2,
// which dials the replica) and through the proxy of node 2 (local), and reports requests
// per second and p99 latency of each and their ratio cross/local. Needs wrk.
//
//	go test -run '^$' -bench BenchmarkProxyCrossNode -benchtime 1x ./bench
func BenchmarkProxyCrossNode(b *testing.B) {
	_, wrk := loadTools(b, false)
	nodes := qnettest.StartNetwork(b, 2, qnettest.Options{})
	startHello(b, nodes[0], "px", nodes[1].ID())
	targets := []proxyTarget{
		{name: "cross", addr: proxyAddrOf(b, nodes[0], "px")},
		{name: "local", addr: proxyAddrOf(b, nodes[1], "px")},
	}
	for _, t := range targets {
		waitAnswers(b, t)
	}
	if st := nodes[0].Proxy().Stats(); len(st.Endpoints) != 1 {
		b.Fatalf("node 1's proxy balanced over %d endpoints, want the one replica on node 2: %+v", len(st.Endpoints), st)
	}
	res := loadRounds(b, wrk, targets)
	for _, t := range targets {
		reportWrk(b, t.name, res[t.name])
	}
	ratios(b, res, "cross", "local")
}

// loadTools returns the paths of nginx and wrk; the benchmark is skipped when wrk is
// absent, or nginx when needNginx is set.
func loadTools(b *testing.B, needNginx bool) (nginx, wrk string) {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		b.Skip("wrk is not installed (apt-get install wrk): it generates the load")
	}
	nginx, err = exec.LookPath("nginx")
	if err != nil {
		for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx"} {
			if _, serr := os.Stat(p); serr == nil {
				nginx, err = p, nil
				break
			}
		}
	}
	if err != nil && needNginx {
		b.Skip("nginx is not installed (apt-get install nginx-light): it is the proxy compared with")
	}
	return nginx, wrk
}

// startHello applies one replica of the example HTTP service (on node onNode when it is
// not ""), waits until it is ready and returns the replica's own address. The replica
// may use both cores, so its CPU quota is not what limits the figures.
func startHello(b *testing.B, n *qnettest.Node, name, onNode string) string {
	b.Helper()
	placement := ""
	if onNode != "" {
		placement = fmt.Sprintf("\n  placement: {constraints: [\"id == %s\"]}", onNode)
	}
	svcs, err := manifest.Decode("bench.yaml", fmt.Appendf(nil, `apiVersion: qnet/v1
kind: Service
metadata: {name: %s}
spec:
  depot: {exec: {command: qnet, args: [example-hello]}}
  replicas: 1
  resources: {cpu: 2000m, memory: 128Mi}
  ports: [{name: http, port: 8080, expose: true}]
  health:
    readiness: {http: /ready, interval: 1s}%s
`, name, placement))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := n.Client.Apply(ctx, svcs); err != nil {
		b.Fatal(err)
	}
	if err := n.Client.WaitReady(ctx, name, nil); err != nil {
		b.Fatal(err)
	}
	d, err := n.Client.Service(ctx, name)
	if err != nil {
		b.Fatal(err)
	}
	if len(d.Depots) != 1 || d.Depots[0].Addrs["http"] == "" {
		b.Fatalf("%s: want one replica with an http address, got %+v", name, d.Depots)
	}
	if onNode != "" && d.Depots[0].Node != onNode {
		b.Fatalf("%s: replica on node %s, want %s", name, d.Depots[0].Node, onNode)
	}
	return d.Depots[0].Addrs["http"]
}

// proxyAddrOf waits until the node's proxy listens for the service's http port.
func proxyAddrOf(b *testing.B, n *qnettest.Node, service string) string {
	var addr string
	qnettest.WaitFor(b, 10*time.Second, "the proxy to listen for "+service, func() bool {
		a, ok := n.Proxy().Addr(service, "http")
		addr = a
		return ok && a != ""
	})
	return addr
}

// waitAnswers waits until GET / through the target answers 200.
func waitAnswers(b *testing.B, t proxyTarget) {
	c := &http.Client{Timeout: 2 * time.Second}
	var last string
	qnettest.WaitFor(b, 15*time.Second, t.name+" at "+t.addr+" to answer 200", func() bool {
		req, _ := http.NewRequest(http.MethodGet, "http://"+t.addr+"/", nil)
		if t.host != "" {
			req.Host = t.host
		}
		resp, err := c.Do(req)
		if err != nil {
			last = err.Error()
			return false
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		last = fmt.Sprintf("%d %q", resp.StatusCode, body)
		return resp.StatusCode == http.StatusOK && strings.HasPrefix(string(body), "hello from ")
	})
	b.Logf("%s (%s): %s", t.name, t.addr, last)
}

// startNginx runs nginx as a reverse proxy to backend on a free loopback port until
// the benchmark ends, and returns that address. The configuration is the usual one
// for a keepalive upstream; worker_processes auto gives it a worker per core, as the
// QNet proxy may use every core (GOMAXPROCS); access logging is off, as the QNet proxy
// logs nothing per connection.
func startNginx(b *testing.B, bin, backend string) string {
	dir := b.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	conf := fmt.Sprintf(`daemon off;
master_process on;
worker_processes auto;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  upstream backend {
    server %[2]s;
    keepalive 64;
  }
  server {
    listen %[3]s;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`, dir, backend, addr)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", confPath)
	// The master ends its workers on SIGTERM (a fast shutdown).
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		cancel()
		b.Fatalf("start nginx: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	b.Cleanup(func() {
		cancel()
		<-exited
	})
	qnettest.WaitFor(b, 10*time.Second, "nginx to listen on "+addr, func() bool {
		select {
		case err := <-exited:
			exited <- err
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			b.Fatalf("nginx exited: %v\n%s\n%s", err, out, log)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr
}

// loadRounds warms each target up, then, for each iteration of the benchmark, runs
// wrkRoundsPerOp rounds in which every target takes a turn, and returns each target's
// results.
func loadRounds(b *testing.B, wrk string, targets []proxyTarget) map[string][]wrkStats {
	for _, t := range targets {
		runWrk(b, wrk, t, wrkWarmup)
	}
	res := map[string][]wrkStats{}
	for b.Loop() {
		for r := range wrkRoundsPerOp {
			for _, t := range targets {
				s := runWrk(b, wrk, t, wrkRound)
				b.Logf("round %d %-8s %9.0f req/s  p50 %-9s p99 %s", r, t.name, s.rps, s.p50, s.p99)
				res[t.name] = append(res[t.name], s)
			}
		}
	}
	return res
}

// runWrk loads a target with wrk for d and returns what it measured; any socket error
// or answer other than 2xx/3xx fails the benchmark.
func runWrk(b *testing.B, wrk string, t proxyTarget, d time.Duration) wrkStats {
	b.Helper()
	args := []string{"-t", strconv.Itoa(wrkThreads), "-c", strconv.Itoa(wrkConns),
		"-d", fmt.Sprintf("%ds", int(d.Seconds())), "--latency"}
	if t.host != "" {
		args = append(args, "-H", "Host: "+t.host)
	}
	args = append(args, "http://"+t.addr+"/")
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, wrk, args...).CombinedOutput()
	if err != nil {
		b.Fatalf("wrk %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	s, err := parseWrk(string(out))
	if err != nil {
		b.Fatalf("wrk against %s: %v\n%s", t.name, err, out)
	}
	if s.errors > 0 || s.requests == 0 {
		b.Fatalf("wrk against %s: %d requests, %d errors\n%s", t.name, s.requests, s.errors, out)
	}
	return s
}

// reportWrk reports a target's mean requests per second and median p50 and p99 over
// its runs.
func reportWrk(b *testing.B, name string, runs []wrkStats) {
	if len(runs) == 0 {
		return
	}
	b.ReportMetric(meanRPS(runs), name+"-rps")
	b.ReportMetric(float64(medianOf(runs, func(s wrkStats) time.Duration { return s.p50 }).Microseconds())/1000, name+"-p50-ms")
	b.ReportMetric(float64(medianP99(runs).Microseconds())/1000, name+"-p99-ms")
	b.ReportMetric(0, "ns/op")
}

// ratios reports a/b of the mean requests per second and of the median p99.
func ratios(b *testing.B, res map[string][]wrkStats, a, over string) {
	ra, rb := res[a], res[over]
	if len(ra) == 0 || len(rb) == 0 {
		return
	}
	b.ReportMetric(meanRPS(ra)/meanRPS(rb), a+"/"+over+"-rps")
	b.ReportMetric(float64(medianP99(ra))/float64(medianP99(rb)), a+"/"+over+"-p99")
}

func meanRPS(runs []wrkStats) float64 {
	var sum float64
	for _, r := range runs {
		sum += r.rps
	}
	return sum / float64(len(runs))
}

func medianP99(runs []wrkStats) time.Duration {
	return medianOf(runs, func(s wrkStats) time.Duration { return s.p99 })
}

// medianOf is the median of a latency of the runs.
func medianOf(runs []wrkStats, of func(wrkStats) time.Duration) time.Duration {
	p := make([]time.Duration, len(runs))
	for i, r := range runs {
		p[i] = of(r)
	}
	slices.Sort(p)
	return p[len(p)/2]
}

// wrkStats is what one wrk run measured.
type wrkStats struct {
	rps      float64
	p50, p99 time.Duration
	requests int64
	// errors counts socket errors and answers other than 2xx/3xx.
	errors int64
}

// parseWrk reads the output of `wrk --latency`: the requests and their rate, the 50th
// and 99th percentile of latency, and the errors.
func parseWrk(out string) (wrkStats, error) {
	var s wrkStats
	var haveRPS, haveP99 bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "Requests/sec:":
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil || !(v >= 0) || math.IsInf(v, 1) {
				return s, fmt.Errorf("wrk output: Requests/sec %q is not a rate", f[1])
			}
			s.rps, haveRPS = v, true
		case len(f) == 2 && (f[0] == "50%" || f[0] == "99%"):
			d, err := time.ParseDuration(f[1])
			if err != nil || d < 0 {
				return s, fmt.Errorf("wrk output: %s latency %q is not a duration", f[0], f[1])
			}
			if f[0] == "50%" {
				s.p50 = d
			} else {
				s.p99, haveP99 = d, true
			}
		case len(f) > 2 && f[1] == "requests" && f[2] == "in":
			v, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil || v < 0 {
				return s, fmt.Errorf("wrk output: request count %q is not a number", f[0])
			}
			s.requests = v
		case strings.HasPrefix(sc.Text(), "  Socket errors:"):
			// Socket errors: connect 0, read 0, write 0, timeout 0
			for i := 2; i+1 < len(f); i += 2 {
				v, err := strconv.ParseInt(strings.TrimSuffix(f[i+1], ","), 10, 64)
				if err != nil || v < 0 {
					return s, fmt.Errorf("wrk output: socket errors %q: not a count", sc.Text())
				}
				s.errors += v
			}
		case strings.HasPrefix(strings.TrimSpace(sc.Text()), "Non-2xx or 3xx responses:") && len(f) == 5:
			v, err := strconv.ParseInt(f[4], 10, 64)
			if err != nil || v < 0 {
				return s, fmt.Errorf("wrk output: non-2xx count %q is not a number", f[4])
			}
			s.errors += v
		}
	}
	if !haveRPS || !haveP99 {
		return s, errors.New("wrk output has no Requests/sec or no 99% latency (was it run with --latency?)")
	}
	return s, nil
}

// wrkSample is the output of wrk 4.1.0 with --latency against a server answering 404.
const wrkSample = `Running 1s test @ http://127.0.0.1:18777/nonexistent
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.86ms    2.12ms  14.90ms   80.39%
    Req/Sec     1.54k   258.61     1.88k    63.64%
  Latency Distribution
     50%    3.18ms
     75%    4.87ms
     90%    6.76ms
     99%   11.52ms
  1683 requests in 1.10s, 854.83KB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 1683
Requests/sec:   1529.10
Transfer/sec:    776.66KB
`

func TestParseWrk(t *testing.T) {
	tests := []struct {
		name, out string
		want      wrkStats
		wantErr   string
	}{
		{name: "errors", out: wrkSample, want: wrkStats{rps: 1529.10, p50: 3180 * time.Microsecond,
			p99: 11520 * time.Microsecond, requests: 1683, errors: 1683 + 3}},
		{name: "clean", out: "  Latency Distribution\n     50%  635.91us\n     99%    1.00m\n  20 requests in 1.00s, 1KB read\nRequests/sec:     20.00\n",
			want: wrkStats{rps: 20, p50: 635910 * time.Nanosecond, p99: time.Minute, requests: 20}},
		{name: "no --latency", out: "  20 requests in 1.00s, 1KB read\nRequests/sec:     20.00\n", wantErr: "99% latency"},
		{name: "bad rate", out: "Requests/sec:  fast\n", wantErr: "Requests/sec"},
		{name: "bad latency", out: "     99%   11.52parsecs\n", wantErr: "99% latency"},
		{name: "bad socket errors", out: "  Socket errors: connect x, read 0, write 0, timeout 0\n", wantErr: "socket errors"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseWrk(tt.out)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseWrk = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// FuzzParseWrk checks that any output gives figures that are not negative, or an error.
func FuzzParseWrk(f *testing.F) {
	f.Add(wrkSample)
	f.Add("     99%   -1ms\nRequests/sec: 1\n")
	f.Add("  Socket errors: connect 1, read\nNon-2xx or 3xx responses: -5\n")
	f.Fuzz(func(t *testing.T, out string) {
		s, err := parseWrk(out)
		if err != nil {
			return
		}
		if !(s.rps >= 0) || math.IsInf(s.rps, 1) || s.p50 < 0 || s.p99 < 0 || s.requests < 0 || s.errors < 0 {
			t.Fatalf("parseWrk(%q) = %+v", out, s)
		}
	})
}
