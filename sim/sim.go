// Package sim simulates large QNet networks to measure the scheduler and the replica
// controller at scale. Nodes are records on a real ledger, not processes: the sim
// builds a genesis block, admits the nodes the genesis cannot hold through join tokens,
// applies the services' manifests, then runs the real controller.Runner, whose
// placement sets it signs as transactions in signed blocks and applies to a real
// state.Store, exactly as a validator's ordering layer would. Node liveness is the
// sim's to decide: killing nodes is flipping what the runner's Alive reports.
//
// Blocks are applied with state.Store.ApplyBlock directly rather than through raft: with
// one validator, raft adds a log write and a round trip per block and no decision, and
// what is measured here is deciding and committing placements.
package sim

import (
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	"qnet.dev/qnet/controller"
	"qnet.dev/qnet/identity"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/manifest"
	"qnet.dev/qnet/state"
)

// network is a simulated network: its ledger, state store and nodes.
type network struct {
	sc        Scenario
	st        *state.Store
	op, val   *identity.Key
	hash      ledger.Hash // the network: its genesis block's hash
	nodes     []ledger.NodeInfo
	alive     map[string]bool
	aliveMu   sync.RWMutex
	nextDepot uint64

	// Counters of the current phase.
	blocks     int
	blockBytes int64
	commitTime time.Duration
	placed     int
	removed    int
}

// Run builds the network of sc, places every replica and, when sc.Kill is set, kills
// that many nodes and lets the controller place their replicas again. It returns what it
// measured; an error when the scenario is invalid, ctx ends, or a phase does not reach
// its desired state (every replica on a live node, no node over-committed).
func Run(ctx context.Context, sc Scenario) (Report, error) {
	if err := sc.Validate(); err != nil {
		return Report{}, err
	}
	sc = sc.withDefaults()
	dir := sc.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "qnet-sim-*")
		if err != nil {
			return Report{}, fmt.Errorf("sim: %w", err)
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	st, err := state.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		return Report{}, fmt.Errorf("sim: %w", err)
	}
	defer st.Close()

	n := &network{sc: sc, st: st, alive: map[string]bool{}}
	rep := Report{Nodes: sc.Nodes, Services: sc.Services, Depots: sc.Services * sc.Replicas}
	start := time.Now()
	if err := n.build(ctx); err != nil {
		return rep, err
	}
	rep.Setup = time.Since(start)
	sc.Log.Info("network built", "nodes", sc.Nodes, "services", sc.Services, "took", rep.Setup)

	rep.Place, err = n.converge(ctx, "place")
	if err != nil {
		return rep, err
	}
	if sc.Kill > 0 {
		r := rand.New(rand.NewPCG(sc.Seed, 0x51ed))
		n.aliveMu.Lock()
		for _, i := range r.Perm(len(n.nodes))[:sc.Kill] {
			n.alive[n.nodes[i].ID] = false
			rep.Killed = append(rep.Killed, n.nodes[i].ID)
		}
		n.aliveMu.Unlock()
		fo, err := n.converge(ctx, "failover")
		if err != nil {
			return rep, err
		}
		rep.Failover = &fo
	}
	return rep, nil
}

// build creates the keys, the genesis block, the nodes that do not fit in it (admitted
// with join tokens) and the services.
func (n *network) build(ctx context.Context) error {
	var err error
	if n.op, err = identity.Generate(false); err != nil {
		return fmt.Errorf("sim: operator key: %w", err)
	}
	if n.val, err = identity.Generate(true); err != nil {
		return fmt.Errorf("sim: validator key: %w", err)
	}
	keys, err := generateKeys(ctx, n.sc.Nodes)
	if err != nil {
		return err
	}
	n.nodes = make([]ledger.NodeInfo, len(keys))
	for i, k := range keys {
		info := ledger.NodeInfo{
			ID: k.ID(), Name: fmt.Sprintf("node-%05d", i), Key: k.Public(), Addr: fmt.Sprintf("10.%d.%d.%d:7700", i>>16&255, i>>8&255, i&255),
			OS: "linux", Arch: "amd64", CPU: n.sc.NodeCPU, Memory: n.sc.NodeMemory,
		}
		if n.sc.Zones > 0 {
			info.Labels = map[string]string{"zone": "z" + strconv.Itoa(i%n.sc.Zones)}
		}
		n.nodes[i] = info
		n.alive[info.ID] = true
	}

	// The genesis block registers the operator, the validator and as many nodes as its
	// one transaction can carry (ledger.MaxPayloadSize); the rest join.
	now := time.Now().UTC()
	g := &ledger.Genesis{
		Network: "sim", Created: now,
		Operators:  []ledger.Operator{{Name: "sim", Key: n.op.Public()}},
		Nodes:      []ledger.NodeInfo{{ID: n.val.ID(), Name: "validator", Key: n.val.Public(), OS: "linux", Arch: "amd64"}},
		Validators: []string{n.val.ID()},
	}
	head, err := json.Marshal(g)
	if err != nil {
		return fmt.Errorf("sim: genesis: %w", err)
	}
	size := len(head)
	inGenesis := 0
	for _, info := range n.nodes {
		b, err := json.Marshal(info)
		if err != nil {
			return fmt.Errorf("sim: genesis: %w", err)
		}
		if size += len(b) + 1; size > ledger.MaxPayloadSize {
			break
		}
		g.Nodes = append(g.Nodes, info)
		inGenesis++
	}
	gb, err := ledger.NewGenesis(g, n.op, n.val)
	if err != nil {
		return fmt.Errorf("sim: genesis: %w", err)
	}
	data, err := gb.Encode()
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	if _, err := n.st.ApplyBlock(data, 0); err != nil {
		return fmt.Errorf("sim: apply genesis: %w", err)
	}
	n.hash = gb.Hash
	n.alive[n.val.ID()] = true // it offers nothing, so it takes no depots
	n.sc.Log.Info("genesis", "nodes", inGenesis)

	if err := n.join(ctx, n.nodes[inGenesis:]); err != nil {
		return err
	}
	return n.applyServices(ctx)
}

// generateKeys makes count node keys on every CPU.
func generateKeys(ctx context.Context, count int) ([]*identity.Key, error) {
	keys := make([]*identity.Key, count)
	workers := min(runtime.GOMAXPROCS(0), max(count, 1))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < count; i += workers {
				if ctx.Err() != nil {
					errs[w] = ctx.Err()
					return
				}
				k, err := identity.Generate(true)
				if err != nil {
					errs[w] = fmt.Errorf("sim: node key: %w", err)
					return
				}
				keys[i] = k
			}
		})
	}
	wg.Wait()
	return keys, errors.Join(errs...)
}

// joinBlockTxs bounds the join transactions of one block (each carries a node's keys,
// about 10 KB with its signature).
const joinBlockTxs = 500

// join admits nodes as a joining node is admitted: the operator creates join tokens,
// and the validator, having checked each newcomer's token, signs its node.join.
func (n *network) join(ctx context.Context, nodes []ledger.NodeInfo) error {
	if len(nodes) == 0 {
		return nil
	}
	expires := time.Now().Add(ledger.MaxTxLifetime)
	var tokens []*ledger.Tx
	var ids []string
	for left := len(nodes); left > 0; left -= 10000 {
		var secret [32]byte
		crand.Read(secret[:])
		sum := sha256.Sum256(secret[:])
		p := ledger.TokenCreate{ID: ledger.TokenID(sum), SecretHash: hex.EncodeToString(sum[:]), Expires: expires, Uses: min(left, 10000)}
		tx, err := n.signed(ledger.TxTokenCreate, p, n.op)
		if err != nil {
			return err
		}
		tokens = append(tokens, tx)
		ids = append(ids, p.ID)
	}
	if err := n.commit(tokens); err != nil {
		return err
	}
	var batch []*ledger.Tx
	for i, info := range nodes {
		if err := ctx.Err(); err != nil {
			return err
		}
		tx, err := n.signed(ledger.TxNodeJoin, ledger.NodeJoin{Node: info, Token: ids[i/10000]}, n.val)
		if err != nil {
			return err
		}
		if batch = append(batch, tx); len(batch) == joinBlockTxs || i == len(nodes)-1 {
			if err := n.commit(batch); err != nil {
				return err
			}
			batch = batch[:0]
			n.sc.Log.Info("nodes joined", "count", i+1, "of", len(nodes))
		}
	}
	return nil
}

// applyServices applies the services' manifests, signed by the operator.
func (n *network) applyServices(ctx context.Context) error {
	var batch []*ledger.Tx
	for i := range n.sc.Services {
		if err := ctx.Err(); err != nil {
			return err
		}
		svc := &manifest.Service{
			APIVersion: manifest.APIVersion, Kind: manifest.KindService,
			Metadata: manifest.Metadata{Name: serviceName(i)},
			Spec: manifest.Spec{
				Depot:     manifest.Depot{Exec: &manifest.ExecDepot{Command: "sim"}},
				Replicas:  n.sc.Replicas,
				Resources: manifest.Resources{CPU: n.sc.ReplicaCPU, Memory: n.sc.ReplicaMemory},
				Placement: n.sc.Placement,
			},
		}
		svc.Default()
		tx, err := n.signed(ledger.TxServiceApply, ledger.ServiceApply{Service: svc}, n.op)
		if err != nil {
			return err
		}
		if batch = append(batch, tx); len(batch) == 1000 || i == n.sc.Services-1 {
			if err := n.commit(batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	return nil
}

func serviceName(i int) string { return fmt.Sprintf("svc%05d", i) }

// signed builds a transaction of this network signed by k.
func (n *network) signed(typ ledger.TxType, payload any, k *identity.Key) (*ledger.Tx, error) {
	tx, err := ledger.NewTx(typ, n.hash, payload, time.Now().Add(ledger.MaxTxLifetime/2))
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	if err := tx.Sign(k); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	return tx, nil
}

// commit puts txs in a block on the tip, signed by the validator, and applies it; any
// transaction that did not take effect is an error.
func (n *network) commit(txs []*ledger.Tx) error {
	start := time.Now()
	defer func() { n.commitTime += time.Since(start) }()
	tip, ok, err := n.st.Tip()
	if err != nil || !ok {
		return fmt.Errorf("sim: read tip: %v", err)
	}
	at := time.Now().UTC()
	if at.Before(tip.Time) {
		at = tip.Time
	}
	b, err := ledger.NewBlock(n.hash, tip.Height+1, tip.Hash, at, txs, n.val)
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	data, err := b.Encode()
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	res, err := n.st.ApplyBlock(data, 0)
	if err != nil {
		return fmt.Errorf("sim: block %d refused: %w", b.Height, err)
	}
	for i, msg := range res.Results {
		if msg != "" {
			return fmt.Errorf("sim: block %d: %s transaction %d failed: %s", b.Height, txs[i].Type, i, msg)
		}
	}
	n.blocks++
	n.blockBytes += int64(len(data))
	return nil
}

// propose is the runner's Propose: one placement.set transaction in one block.
func (n *network) propose(_ context.Context, set ledger.PlacementSet) error {
	tx, err := n.signed(ledger.TxPlacement, set, n.val)
	if err != nil {
		return err
	}
	if err := n.commit([]*ledger.Tx{tx}); err != nil {
		return err
	}
	n.placed += len(set.Add)
	n.removed += len(set.Remove)
	return nil
}

func (n *network) isAlive(id string) bool {
	n.aliveMu.RLock()
	defer n.aliveMu.RUnlock()
	return n.alive[id]
}

// newID names depots by a counter: short, unique, and the same from run to run.
func (n *network) newID(service string) string {
	n.nextDepot++
	return service + "-" + strconv.FormatUint(n.nextDepot, 36)
}

// converge runs the real replica controller until a pass changes nothing, then checks
// that the state is what was asked for.
func (n *network) converge(ctx context.Context, name string) (Phase, error) {
	n.blocks, n.blockBytes, n.commitTime, n.placed, n.removed = 0, 0, 0, 0, 0
	runner := &controller.Runner{
		Store: n.st, IsLeader: func() bool { return true }, Alive: n.isAlive,
		Propose: n.propose, NewID: n.newID, Log: n.sc.Log,
	}
	var p Phase
	start := time.Now()
	for {
		if err := ctx.Err(); err != nil {
			return p, fmt.Errorf("sim: %s: %w", name, err)
		}
		if p.Rounds == n.sc.MaxRounds {
			return p, fmt.Errorf("sim: %s: still changing after %d reconcile passes", name, p.Rounds)
		}
		p.Rounds++
		blocks := n.blocks
		if err := runner.Once(ctx); err != nil {
			return p, fmt.Errorf("sim: %s: %w", name, err)
		}
		n.sc.Log.Info("reconcile pass", "phase", name, "round", p.Rounds, "placed", n.placed, "removed", n.removed, "elapsed", time.Since(start))
		if n.blocks == blocks {
			break
		}
		p.Converged = time.Since(start)
	}
	p.Duration = time.Since(start)
	p.Commit, p.Blocks, p.BlockBytes, p.Placed, p.Removed = n.commitTime, n.blocks, n.blockBytes, n.placed, n.removed
	p.Decide = p.Duration - p.Commit
	unsched, err := n.check()
	p.Unschedulable = unsched
	if err != nil {
		return p, fmt.Errorf("sim: %s: %w", name, err)
	}
	return p, nil
}

// check verifies the state after a phase: every service that is not unschedulable has
// its replicas, all on live nodes, and no node is over-committed.
func (n *network) check() (unschedulable int, err error) {
	services, err := n.st.Services()
	if err != nil {
		return 0, err
	}
	placements, err := n.st.Placements(nil)
	if err != nil {
		return 0, err
	}
	count := map[string]int{}
	used := map[string][2]int64{}
	for _, p := range placements {
		if !n.isAlive(p.Node) {
			return 0, fmt.Errorf("depot %s is on node %s, which is dead", p.ID, p.Node)
		}
		count[p.Service]++
		u := used[p.Node]
		u[0] += int64(n.sc.ReplicaCPU)
		u[1] += int64(n.sc.ReplicaMemory)
		used[p.Node] = u
	}
	for id, u := range used {
		if u[0] > n.sc.NodeCPU || u[1] > n.sc.NodeMemory {
			return 0, fmt.Errorf("node %s is over-committed: %d mCPU and %d bytes reserved", id, u[0], u[1])
		}
	}
	for _, s := range services {
		if s.Unschedulable != "" {
			unschedulable++
			continue
		}
		if count[s.Name] != s.Spec.Spec.Replicas {
			return unschedulable, fmt.Errorf("service %s has %d replicas placed, wants %d", s.Name, count[s.Name], s.Spec.Spec.Replicas)
		}
	}
	return unschedulable, nil
}
