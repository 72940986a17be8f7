package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"qnet.dev/qnet/api"
	"qnet.dev/qnet/client"
	"qnet.dev/qnet/manifest"
	"qnet.dev/qnet/qnettest"
	"qnet.dev/qnet/testnet"
)

// BenchmarkFailover measures, on a 5-node testnet of real agent processes (LAN gossip
// settings, the default), the time from a node killed with kill -9, its depots and all,
// to every replica of a 10-replica service ready again on the other nodes: gossip
// declaring the node dead, the validators placing its replicas elsewhere, the agents
// there starting them and their readiness probes passing. Between kills the node is
// restarted and the network settles (10 ready replicas). victim=follower kills a node
// that is not the ordering leader; victim=leader kills the leader, so a new one must be
// elected before anything can be placed.
//
//	go test -run '^$' -bench BenchmarkFailover -benchtime 10x ./bench
func BenchmarkFailover(b *testing.B) {
	bin := buildQnet(b)
	for _, victim := range []string{"follower", "leader"} {
		b.Run("victim="+victim, func(b *testing.B) {
			ctx := context.Background()
			tn, err := testnet.Up(ctx, testnet.Options{
				Name: "bench", Dir: filepath.Join(b.TempDir(), "tn"), Nodes: 5, Binary: bin,
				UserConfig: filepath.Join(b.TempDir(), "config.yaml"), Timeout: 2 * time.Minute,
			})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() {
				if err := tn.Down(context.Background(), false); err != nil {
					b.Error(err)
				}
				tn.Close()
			})
			clients := testnetClients(b, tn)
			const replicas = 10
			svcs, err := manifest.Decode("failover.yaml", fmt.Appendf(nil, `apiVersion: qnet/v1
kind: Service
metadata: {name: fo}
spec:
  depot: {exec: {command: %s, args: [example-hello]}}
  replicas: %d
  resources: {cpu: 20m, memory: 32Mi}
  ports: [{name: http, port: 8080}]
  health:
    readiness: {http: /ready, interval: 100ms}
`, bin, replicas))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := clients[0].Apply(ctx, svcs); err != nil {
				b.Fatal(err)
			}
			var times []time.Duration
			for b.Loop() {
				b.StopTimer()
				waitSettled(b, clients, "fo", replicas, "")
				st := tn.Status(ctx)
				leader := map[string]int{}
				for _, s := range st {
					leader[s.Leader]++
				}
				var leaderID string
				for id, votes := range leader {
					if id != "" && votes > len(st)/2 {
						leaderID = id
					}
				}
				ds, err := clients[0].Depots(ctx, "fo")
				if err != nil {
					b.Fatal(err)
				}
				holds := map[string]bool{}
				for _, d := range ds {
					holds[d.Node] = true
				}
				// The victim runs replicas (else there is nothing to replace).
				pick := -1
				for i, s := range st {
					if s.Running && holds[s.ID] && (s.ID == leaderID) == (victim == "leader") {
						pick = i
						break
					}
				}
				if pick < 0 {
					b.Fatalf("no %s with replicas to kill (leader %q): %+v", victim, leaderID, st)
				}
				dead := st[pick]
				b.StartTimer()
				start := time.Now()
				if _, _, err := tn.Kill(ctx, dead.Name); err != nil {
					b.Fatal(err)
				}
				b.Logf("kill took %s; %s held %d", time.Since(start), dead.ID, countOn(ds, dead.ID))
				live := clients[(pick+1)%len(clients)]
				waitSettled(b, []*client.Client{live}, "fo", replicas, dead.ID)
				times = append(times, time.Since(start))
				b.StopTimer()
				if _, err := tn.Restart(ctx, dead.Name); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			report(b, times)
		})
	}
}

// waitSettled waits until, as one of the clients sees it, the service has exactly want
// depots, all ready, none on node notOn.
func waitSettled(b *testing.B, clients []*client.Client, service string, want int, notOn string) {
	b.Helper()
	qnettest.WaitFor(b, 2*time.Minute, fmt.Sprintf("%d ready replicas of %s (none on %q)", want, service, notOn), func() bool {
		for _, c := range clients {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			ds, err := c.Depots(ctx, service)
			cancel()
			if err == nil && settled(ds, want, notOn) {
				return true
			}
		}
		return false
	})
}

func countOn(ds []api.Depot, node string) int {
	n := 0
	for _, d := range ds {
		if d.Node == node {
			n++
		}
	}
	return n
}

func settled(ds []api.Depot, want int, notOn string) bool {
	if len(ds) != want {
		return false
	}
	for _, d := range ds {
		if !d.Status.Ready || d.Node == notOn {
			return false
		}
	}
	return true
}

// testnetClients returns a client for each node of the testnet, in index order.
func testnetClients(b *testing.B, tn *testnet.Testnet) []*client.Client {
	cfg, err := client.LoadConfig(filepath.Join(tn.Dir, testnet.ConfigFile))
	if err != nil {
		b.Fatal(err)
	}
	var cs []*client.Client
	for i := 1; i <= len(tn.State.Nodes); i++ {
		ctx, ok := cfg.Contexts["node"+strconv.Itoa(i)]
		if !ok {
			b.Fatalf("no context for node%d", i)
		}
		c, err := client.New(ctx)
		if err != nil {
			b.Fatal(err)
		}
		cs = append(cs, c)
	}
	return cs
}
