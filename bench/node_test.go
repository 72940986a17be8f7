package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/manifest"
	"qnet.dev/qnet/qnettest"
)

func TestMain(m *testing.M) { qnettest.Main(m) }

func hello(b *testing.B, name string, replicas int, probes bool) []*manifest.Service {
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
  depot: {exec: {command: qnet, args: [example-hello]}}
  replicas: %d
  resources: {cpu: 20m, memory: 64Mi}
  ports: [{name: http, port: 8080}]%s
`, name, replicas, health))
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
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		name := fmt.Sprintf("s%d", i)
		svcs := hello(b, name, replicas, probes)
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
		measure(n, name, start)
		if _, err := n.Client.Delete(ctx, name); err != nil {
			b.Fatal(err)
		}
		waitGone(b, n)
		b.StartTimer()
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
// it (its timestamp, taken before the block is committed) to its process running: the
// agent seeing the placement, allocating ports, starting the shim, the shim starting the
// program in its cgroup. The depots have no probes, so their first reported state is
// the moment the driver's Start returned.
func BenchmarkPlacementToRunning(b *testing.B) {
	for _, batch := range []int{1, 10} {
		b.Run(fmt.Sprintf("depots=%d", batch), func(b *testing.B) {
			var times []time.Duration
			deployLoop(b, batch, false, func(n *qnettest.Node, name string, _ time.Time) {
				ps, err := n.Store().Placements(func(p *stateP) bool { return p.Service == name })
				if err != nil {
					b.Fatal(err)
				}
				for _, p := range ps {
					times = append(times, p.Status.Since.Sub(p.Created))
				}
			})
			report(b, times)
		})
	}
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
