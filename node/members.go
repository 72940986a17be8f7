package node

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"qnet.dev/qnet/controller"
	"qnet.dev/qnet/ctxtime"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/state"
)

// membership runs on the ordering leader: it keeps every node of the ledger in the
// ordering layer (as a follower of the chain), picks 1, 3 or 5 validators among the live
// nodes, and replaces a validator that stayed down longer than the stabilisation time.
type membership struct {
	n         *Node
	stabilize time.Duration
	kick      chan struct{}

	mu        sync.Mutex
	downSince map[string]time.Time
}

func (m *membership) wake() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func (m *membership) run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		_, changed := m.n.store.Watch()
		if m.n.ord.IsLeader() {
			if err := m.once(ctx); err != nil && ctx.Err() == nil {
				m.n.log.Warn("membership change failed", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-m.kick:
		case <-tick.C:
		}
	}
}

func (m *membership) once(ctx context.Context) error {
	r := m.n.ord.Raft()
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	servers := map[string]raft.Server{}
	for _, s := range f.Configuration().Servers {
		servers[string(s.ID)] = s
	}
	nodes, err := m.n.store.Nodes()
	if err != nil {
		return err
	}
	now := time.Now()
	in := controller.MembershipInput{Leader: m.n.id, Now: now, Stabilize: m.stabilize}
	onLedger := map[string]bool{}
	m.mu.Lock()
	for _, nd := range nodes {
		onLedger[nd.ID] = true
		s, inRaft := servers[nd.ID]
		alive := m.n.Alive(nd.ID)
		if alive {
			delete(m.downSince, nd.ID)
		} else if _, ok := m.downSince[nd.ID]; !ok {
			m.downSince[nd.ID] = now
		}
		in.Members = append(in.Members, controller.Member{
			ID: nd.ID, InRaft: inRaft, Voter: inRaft && s.Suffrage == raft.Voter, Validator: nd.Validator,
			Alive: alive, DownSince: m.downSince[nd.ID], Joined: nd.Joined,
		})
	}
	m.mu.Unlock()
	for id := range servers {
		if !onLedger[id] {
			in.Gone = append(in.Gone, id)
		}
	}
	slices.Sort(in.Gone)
	plan := controller.Membership(in)
	current := validatorSet(nodes)
	if plan.Empty() && slices.Equal(plan.Validators, current) {
		return nil
	}
	m.n.log.Info("membership", "add", plan.AddNonvoters, "promote", plan.Promote, "demote", plan.Demote, "remove", plan.Remove, "validators", plan.Validators)
	const timeout = 10 * time.Second
	for _, id := range plan.AddNonvoters {
		if err := r.AddNonvoter(raft.ServerID(id), raft.ServerAddress(id), 0, timeout).Error(); err != nil {
			return fmt.Errorf("add follower %s: %w", id, err)
		}
	}
	// New validators are recorded on the ledger before they get a vote, so any voter
	// that becomes leader proposes blocks the chain accepts.
	if len(plan.Promote) > 0 {
		grown := append(slices.Clone(current), plan.Promote...)
		slices.Sort(grown)
		if err := m.setValidators(ctx, grown); err != nil {
			return err
		}
		for _, id := range plan.Promote {
			if err := r.AddVoter(raft.ServerID(id), raft.ServerAddress(id), 0, timeout).Error(); err != nil {
				return fmt.Errorf("promote %s: %w", id, err)
			}
		}
	}
	for _, id := range plan.Remove {
		if err := r.RemoveServer(raft.ServerID(id), 0, timeout).Error(); err != nil {
			return fmt.Errorf("remove %s: %w", id, err)
		}
	}
	for _, id := range plan.Demote {
		if err := r.DemoteVoter(raft.ServerID(id), 0, timeout).Error(); err != nil {
			return fmt.Errorf("demote %s: %w", id, err)
		}
	}
	// Validators that lost their vote stop being validators last.
	if !slices.Equal(plan.Validators, current) && len(plan.Validators) > 0 {
		return m.setValidators(ctx, plan.Validators)
	}
	return nil
}

func (m *membership) setValidators(ctx context.Context, ids []string) error {
	if err := m.n.propose(ctx, ledger.TxValidators, ledger.ValidatorsSet{Validators: ids}); err != nil {
		return fmt.Errorf("record validators %v: %w", ids, err)
	}
	return nil
}

func validatorSet(nodes []state.Node) []string {
	var out []string
	for _, nd := range nodes {
		if nd.Validator {
			out = append(out, nd.ID)
		}
	}
	slices.Sort(out)
	return out
}

// rotationGrace is how long the tunnels made with a node's old key outlive its
// rotation: long enough for answers already on their way over them (the rotation's own
// commit, forwarded from the node) to arrive. New handshakes with the old key are refused
// at once.
const rotationGrace = 3 * time.Second

// watchRevocations closes the tunnels of nodes whose keys were revoked, the moment the
// block that did it is applied, and those made with a rotated-out key shortly after.
func (n *Node) watchRevocations(ctx context.Context) {
	evs := make(chan []state.Event, 64)
	cancel := n.store.Subscribe(func(e []state.Event) {
		select {
		case evs <- e:
		default:
		}
	})
	defer cancel()
	var grace sync.WaitGroup
	defer grace.Wait()
	for {
		// Events can be dropped when this loop falls behind (the subscriber must not
		// block the state machine), so every change of the state is also checked
		// against the tunnels: none may stay up to a node the ledger no longer has.
		// A tunnel whose handshake was under way when the node was removed comes up
		// after that change: a slow tick catches it too.
		_, changed := n.store.Watch()
		n.closeRemovedTunnels()
		tick := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
			tick.Stop()
			return
		case <-tick.C:
		case <-changed:
		case batch := <-evs:
			for _, e := range batch {
				switch e.Kind {
				case "node.removed":
					if e.Node == n.id {
						n.log.Error("this node was removed from the network; its keys are refused")
					}
					n.mesh.CloseNode(e.Node)
				case "node.rotated":
					if e.Node == n.id {
						continue
					}
					id := e.Node
					grace.Go(func() {
						if !ctxtime.Sleep(ctx, rotationGrace) {
							return
						}
						if nd, ok, _ := n.store.Node(id); ok {
							n.mesh.CloseStale(id, nd.Key)
						}
					})
				}
			}
		}
	}
}

// closeRemovedTunnels closes the tunnels to nodes the ledger no longer has.
func (n *Node) closeRemovedTunnels() {
	for _, id := range n.mesh.Connected() {
		if _, ok, err := n.store.Node(id); err == nil && !ok {
			n.mesh.CloseNode(id)
		}
	}
}
