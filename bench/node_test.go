package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"qnet.dev/qnet/depot"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/manifest"
	"qnet.dev/qnet/qnettest"
)

func TestMain(m *testing.M) { qnettest.Main(m) }

func hello(b *testing.B, name string, replicas int, probes bool) []*manifest.Service {
	b.Helper()
	return service(b, name, replicas, probes, "{exec: {command: qnet, args: [example-hello]}}", "{cpu: 20m, memory: 64Mi}")
}

// service is a service of the given depot (YAML flow mapping) with one port.
func service(b *testing.B, name string, replicas int, probes bool, depotYAML, resources string) []*manifest.Service {
	b.Helper()
	health := ""
	if probes {
		health = `
  health:
    liveness: {http: /healthz, interval: 1s}
    readiness: {http: /ready, interval: 100ms}`
	}
	svcs, err := manifest.Decode("bench.yaml", fmt.Appendf(nil, `apiVersion: qnet/v1
kind: Service
metadata: {name: %s}
spec:
  depot: %s
  replicas: %d
  resources: %s
  ports: [{name: http, port: 8080}]%s
`, name, depotYAML, replicas, resources, health))
	if err != nil {
		b.Fatal(err)
	}
	return svcs
}

// deployLoop applies a service of the given replicas per iteration, waits until all are
// ready, calls measure (timer stopped) with the service's name and when the apply began,
// then deletes it and waits for its depots to be gone.
func deployLoop(b *testing.B, replicas int, probes bool, measure func(n *qnettest.Node, name string, start time.Time)) {
	n := qnettest.StartNode(b, qnettest.Options{})
	deployLoopOn(b, n, false, func(name string) []*manifest.Service { return hello(b, name, replicas, probes) }, measure)
}

// wasmDepots reports whether the services run WebAssembly modules.
func wasmDepots(svcs []*manifest.Service) bool {
	for _, s := range svcs {
		if s.Spec.Depot.Wasm != nil {
			return true
		}
	}
	return false
}

// deployLoopOn is deployLoop on node n with the services svc makes. When warmup is set,
// one service is deployed before the timed loop, unmeasured (the first start of an image
// unpacks it, of a module compiles it).
func deployLoopOn(b *testing.B, n *qnettest.Node, warmup bool, svc func(name string) []*manifest.Service, measure func(n *qnettest.Node, name string, start time.Time)) {
	ctx := context.Background()
	deploy := func(name string, measure func(n *qnettest.Node, name string, start time.Time)) {
		svcs := svc(name)
		start := time.Now()
		if _, err := n.Client.Apply(ctx, svcs); err != nil {
			b.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		err := n.Client.WaitReady(wctx, name, nil)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if measure != nil {
			measure(n, name, start)
		}
		if _, err := n.Client.Delete(ctx, name); err != nil {
			b.Fatal(err)
		}
		waitGone(b, n)
		// The steady state of a node that runs wasm depots: a supervisor ready for the
		// next start.
		if w := n.WasmDriver(); w != nil && wasmDepots(svcs) {
			if err := w.Warm(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
	if warmup {
		deploy("warmup", nil)
	}
	for i := 0; b.Loop(); i++ {
		deploy(fmt.Sprintf("s%d", i), measure)
	}
}

// BenchmarkApplyToReady measures the time from `qnet apply` (signing, submitting,
// committing) to every replica reported ready on the ledger, for 1, 10 and 100 replicas
// of the example HTTP service with liveness and readiness probes.
func BenchmarkApplyToReady(b *testing.B) {
	for _, replicas := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("replicas=%d", replicas), func(b *testing.B) {
			var times []time.Duration
			deployLoop(b, replicas, true, func(_ *qnettest.Node, _ string, start time.Time) {
				times = append(times, time.Since(start))
			})
			report(b, times)
		})
	}
}

// BenchmarkPlacementToRunning measures, per depot, the time from the block that placed
// it (its timestamp, taken before the block is committed) to its workload running: the
// agent seeing the placement, allocating ports, and the driver starting it: for exec the
// shim starting the program in its cgroup, for oci runc starting the container (image
// unpacked once per node, so every start but the first reuses it), for wasm a
// supervisor instantiating the module (compiled once per node and cached). The depots
// have no probes, so their first reported state is the moment the driver's Start
// returned.
func BenchmarkPlacementToRunning(b *testing.B) {
	for _, batch := range []int{1, 10} {
		b.Run(fmt.Sprintf("driver=exec/depots=%d", batch), func(b *testing.B) {
			n := qnettest.StartNode(b, qnettest.Options{})
			placementToRunning(b, n, func(name string) []*manifest.Service { return hello(b, name, batch, false) })
		})
	}
	b.Run("driver=oci/depots=1", func(b *testing.B) {
		if os.Geteuid() != 0 {
			b.Skip("containers need root")
		}
		if _, err := exec.LookPath("runc"); err != nil {
			b.Skip("runc is not installed (apt-get install runc)")
		}
		n := qnettest.StartNode(b, qnettest.Options{})
		img, err := n.Client.BuildImage(context.Background(), buildGo(b, helloSource, nil), "hello:1", depot.BuildOptions{})
		if err != nil {
			b.Fatal(err)
		}
		placementToRunning(b, n, func(name string) []*manifest.Service {
			return service(b, name, 1, false, fmt.Sprintf("{image: %s}", img.Digest), "{cpu: 20m, memory: 64Mi}")
		})
	})
	// A wasm depot's supervisor waits in a cgroup of its own, renamed after the depot
	// when it starts, with the depot's CPU quota set once the start is reported: the
	// manifest's default (100m) and a small quota (20m), which could hold the report
	// back if it were set before.
	for _, res := range []struct{ name, yaml string }{
		{"cpu=default", "{memory: 64Mi}"},
		{"cpu=20m", "{cpu: 20m, memory: 64Mi}"},
	} {
		b.Run("driver=wasm/depots=1/"+res.name, func(b *testing.B) {
			n := qnettest.StartNode(b, qnettest.Options{})
			mod := buildGo(b, wasmSource, []string{"GOOS=wasip1", "GOARCH=wasm"})
			img, err := n.Client.ImportImage(context.Background(), mod, "hello-wasm:1")
			if err != nil {
				b.Fatal(err)
			}
			placementToRunning(b, n, func(name string) []*manifest.Service {
				return service(b, name, 1, false, fmt.Sprintf("{wasm: %s}", img.Digest), res.yaml)
			})
		})
	}
}

func placementToRunning(b *testing.B, n *qnettest.Node, svc func(name string) []*manifest.Service) {
	var times []time.Duration
	deployLoopOn(b, n, true, svc, func(n *qnettest.Node, name string, _ time.Time) {
		ps, err := n.Store().Placements(func(p *stateP) bool { return p.Service == name })
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range ps {
			times = append(times, p.Status.Since.Sub(p.Created))
		}
	})
	report(b, times)
}

// helloSource is a static HTTP server on $PORT, for image depots.
const helloSource = `package main

import (
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello\n")) })
	http.ListenAndServe(":"+os.Getenv("PORT"), nil)
}
`

// wasmSource is the same server as a WASI module, on the listener the wasm driver
// preopens as file descriptor 4.
const wasmSource = `package main

import (
	"net"
	"net/http"
	"os"
	"syscall"
)

func main() {
	syscall.SetNonblock(4, true)
	ln, err := net.FileListener(os.NewFile(4, "http"))
	if err != nil {
		panic(err)
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello\n")) })
	http.Serve(ln, nil)
}
`

// buildGo builds a one-file Go program, statically, with the extra environment (GOOS,
// GOARCH), and returns the binary's path.
func buildGo(b *testing.B, src string, env []string) string {
	b.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	dir := b.TempDir()
	os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644)
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module prog\ngo 1.22\n"), 0o644)
	out := filepath.Join(dir, "prog")
	cmd := exec.Command(gobin, "build", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod"), env...)
	if o, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, o)
	}
	return out
}

// BenchmarkSignedTxApplied measures signed transactions checked at the door, ordered by
// raft into blocks, re-checked and applied to the state store, per second, on one
// validator. Transactions are signed beforehand (signing is the sender's cost) and
// submitted by 64 concurrent senders in batches of 16, as many API clients would.
func BenchmarkSignedTxApplied(b *testing.B) {
	n := qnettest.StartNode(b, qnettest.Options{})
	ctx := context.Background()
	st, err := n.Client.Status(ctx)
	if err != nil {
		b.Fatal(err)
	}
	network, _ := ledger.ParseHash(st.NetworkID)
	key := operatorKey(b, n)
	const perOp = 1000
	for b.Loop() {
		b.StopTimer()
		txs := make([]*ledger.Tx, perOp)
		for i := range txs {
			svcs := hello(b, fmt.Sprintf("t%d", i), 0, false)
			t, err := ledger.NewTx(ledger.TxServiceApply, network, ledger.ServiceApply{Service: svcs[0]}, time.Now().Add(10*time.Minute))
			if err != nil {
				b.Fatal(err)
			}
			if err := t.Sign(key); err != nil {
				b.Fatal(err)
			}
			txs[i] = t
		}
		b.StartTimer()
		var wg sync.WaitGroup
		const senders = 64
		errs := make(chan error, senders)
		for s := range senders {
			wg.Go(func() {
				var mine []*ledger.Tx
				for i := s; i < len(txs); i += senders {
					mine = append(mine, txs[i])
				}
				// Each sender submits in small batches, as an API client would.
				for len(mine) > 0 {
					k := min(len(mine), 16)
					res, err := n.Submit(ctx, mine[:k])
					if err != nil {
						errs <- err
						return
					}
					for _, r := range res {
						if r.Err != nil && !isUnchanged(r.Err) {
							errs <- r.Err
							return
						}
					}
					mine = mine[k:]
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*perOp)/b.Elapsed().Seconds(), "tx/s")
}

func isUnchanged(error) bool { return false }

func report(b *testing.B, times []time.Duration) {
	if len(times) == 0 {
		return
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(times[len(times)*9/10].Microseconds())/1000, "p90-ms")
	b.ReportMetric(0, "ns/op")
}
