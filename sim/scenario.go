package sim

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"qnet.dev/qnet/manifest"
)

// Scenario is one simulated network and what happens to it: Services services of
// Replicas replicas each are placed on Nodes nodes; then, when Kill is set, that many
// nodes die and their replicas are placed again on the live ones.
type Scenario struct {
	// Nodes is how many nodes the network has (besides the validator, which runs the
	// controller and takes no depots).
	Nodes int
	// Services and Replicas: how many services, and replicas of each.
	Services, Replicas int
	// Kill is how many nodes die once every replica is placed; 0 skips the failover.
	Kill int

	// NodeCPU (millicores) and NodeMemory (bytes) each node offers; zero means
	// DefaultNodeCPU and DefaultNodeMemory.
	NodeCPU, NodeMemory int64
	// ReplicaCPU and ReplicaMemory each replica reserves; zero means manifest's
	// defaults (100m, 64Mi).
	ReplicaCPU    manifest.MilliCPU
	ReplicaMemory manifest.Bytes
	// Zones labels the nodes zone=z0 ... z<Zones-1>, round robin; 0 leaves them without.
	Zones int
	// Placement is every service's placement spec (zero: spread by node).
	Placement manifest.Placement

	// Seed chooses which nodes die.
	Seed uint64
	// Dir holds the state store; empty means a temporary directory, removed after.
	Dir string
	// MaxRounds bounds the reconcile passes of one phase; a phase that has not settled
	// by then is an error. Zero means 100.
	MaxRounds int
	// Log receives progress; nil means none.
	Log *slog.Logger
}

// Defaults of a simulated node: a large server, so that with the default replica size
// (100m, 64Mi) 1,000,000 replicas fit on 10,000 nodes with room to fail over.
const (
	DefaultNodeCPU    = 64000
	DefaultNodeMemory = 64 << 30
)

// maxNodes and maxDepots bound a scenario to what this machine can hold in memory.
const (
	maxNodes  = 100_000
	maxDepots = 10_000_000
)

// withDefaults returns s with zero fields defaulted.
func (s Scenario) withDefaults() Scenario {
	if s.NodeCPU == 0 {
		s.NodeCPU = DefaultNodeCPU
	}
	if s.NodeMemory == 0 {
		s.NodeMemory = DefaultNodeMemory
	}
	if s.ReplicaCPU == 0 {
		s.ReplicaCPU = manifest.DefaultCPU
	}
	if s.ReplicaMemory == 0 {
		s.ReplicaMemory = manifest.DefaultMemory
	}
	if s.MaxRounds == 0 {
		s.MaxRounds = 100
	}
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	return s
}

// Validate refuses a scenario that cannot run, saying which field is wrong.
func (s Scenario) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("sim: Scenario.%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if s.Nodes < 1 || s.Nodes > maxNodes {
		bad("Nodes", "must be between 1 and %d, got %d", maxNodes, s.Nodes)
	}
	if s.Services < 0 || s.Replicas < 0 || s.Replicas > 10000 {
		bad("Services/Replicas", "must be at least 0, and Replicas at most 10000 (a manifest's limit), got %d and %d", s.Services, s.Replicas)
	} else if s.Services*s.Replicas > maxDepots {
		bad("Services", "%d services of %d replicas make %d depots; at most %d", s.Services, s.Replicas, s.Services*s.Replicas, maxDepots)
	}
	if s.Kill < 0 || s.Kill >= max(s.Nodes, 1) {
		bad("Kill", "must be between 0 and Nodes-1 (%d), got %d", s.Nodes-1, s.Kill)
	}
	if s.NodeCPU < 0 || s.NodeMemory < 0 {
		bad("NodeCPU/NodeMemory", "must not be negative")
	}
	if s.Zones < 0 {
		bad("Zones", "must not be negative, got %d", s.Zones)
	}
	if s.MaxRounds < 0 {
		bad("MaxRounds", "must not be negative, got %d", s.MaxRounds)
	}
	d := s.withDefaults()
	probe := manifest.Service{
		APIVersion: manifest.APIVersion, Kind: manifest.KindService, Metadata: manifest.Metadata{Name: "probe"},
		Spec: manifest.Spec{Depot: manifest.Depot{Exec: &manifest.ExecDepot{Command: "sim"}}, Replicas: 1,
			Resources: manifest.Resources{CPU: d.ReplicaCPU, Memory: d.ReplicaMemory}, Placement: s.Placement},
	}
	for _, e := range probe.Validate() {
		bad("Placement/ReplicaCPU/ReplicaMemory", "the services' manifest would be invalid: %v", e)
	}
	return errors.Join(errs...)
}

// Report is what a run measured.
type Report struct {
	Nodes, Services, Depots int
	// Setup is the time to build the network: keys, the genesis block, joins and the
	// services' manifests, all committed.
	Setup time.Duration
	// Place is the initial placement of every replica; Failover, after Kill nodes died
	// (nil when none did).
	Place    Phase
	Failover *Phase
	// Killed are the IDs of the nodes that died.
	Killed []string
}

// Phase measures the controller bringing the network to its desired state.
type Phase struct {
	// Converged is the wall-clock time from the start of the phase (the nodes' death,
	// for a failover) until the last placement.set that changed anything was committed:
	// reading the state, deciding, and committing every set as signed transactions in
	// signed blocks applied to the state store. From then on every replica is on a live
	// node.
	Converged time.Duration
	// Duration adds the final reconcile pass that found nothing more to change.
	Duration time.Duration
	// Decide is the part of Duration spent reading the state and deciding
	// (controller.Runner.Once without its proposals); Commit the part spent building,
	// signing and applying blocks.
	Decide, Commit time.Duration
	// Rounds counts reconcile passes, the last of which changed nothing.
	Rounds int
	// Placed and Removed count depots added and removed; Blocks the blocks committed.
	Placed, Removed, Blocks int
	// BlockBytes is the size of those blocks.
	BlockBytes int64
	// Unschedulable is how many services still had replicas that fit nowhere.
	Unschedulable int
}

// PerSecond is the placements committed per second until the phase converged.
func (p Phase) PerSecond() float64 {
	if p.Converged <= 0 {
		return 0
	}
	return float64(p.Placed) / p.Converged.Seconds()
}

// String formats the report as a short table.
func (r Report) String() string {
	s := fmt.Sprintf("%d nodes, %d services, %d depots; setup %s\n", r.Nodes, r.Services, r.Depots, r.Setup.Round(time.Millisecond))
	row := func(name string, p Phase) string {
		return fmt.Sprintf("%-9s converged in %s (%s with the final pass: decide %s, commit %s)  %d rounds  +%d -%d depots  %d blocks %.1f MB  %.0f placements/s  %d unschedulable\n",
			name, p.Converged.Round(time.Millisecond), p.Duration.Round(time.Millisecond), p.Decide.Round(time.Millisecond), p.Commit.Round(time.Millisecond),
			p.Rounds, p.Placed, p.Removed, p.Blocks, float64(p.BlockBytes)/1e6, p.PerSecond(), p.Unschedulable)
	}
	s += row("place", r.Place)
	if r.Failover != nil {
		s += row("failover", *r.Failover)
	}
	return s
}
