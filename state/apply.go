package state

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"qnet.dev/qnet/identity"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/manifest"
)

// Event is something that changed in the state, for people and watchers.
type Event struct {
	Time    time.Time `json:"time"`
	Height  uint64    `json:"height"`
	Kind    string    `json:"kind"`
	Service string    `json:"service,omitempty"`
	Depot   string    `json:"depot,omitempty"`
	Node    string    `json:"node,omitempty"`
	Message string    `json:"message"`
}

// Applied is the outcome of applying one block.
type Applied struct {
	Height uint64
	Hash   ledger.Hash
	// Results holds, per transaction of the block in order, the error that kept it from
	// taking effect ("" when it took effect).
	Results []string
}

// chainView is the ledger's view of the store inside one bbolt transaction.
type chainView struct {
	s  *Store
	tx *bolt.Tx
}

func (v chainView) tip() (Tip, bool) {
	var t Tip
	ok, err := getJSON(v.tx.Bucket(bucketMeta), keyTip, &t)
	return t, ok && err == nil
}

func (v chainView) Network() ledger.Hash {
	t, _ := v.tip()
	return t.Network
}

func (v chainView) Tip() (uint64, ledger.Hash, time.Time, bool) {
	t, ok := v.tip()
	return t.Height, t.Hash, t.Time, ok
}

func (v chainView) Key(id string) (ledger.KeyInfo, *identity.Verifier, bool) {
	raw := v.tx.Bucket(bucketKeys).Get([]byte(id))
	if raw == nil {
		return ledger.KeyInfo{}, nil, false
	}
	k, err := v.s.key(id, raw)
	if err != nil {
		return ledger.KeyInfo{}, nil, false
	}
	return k.info, k.v, true
}

func (v chainView) TxHeight(id ledger.Hash) (uint64, bool) {
	var r TxRecord
	if ok, err := getJSON(v.tx.Bucket(bucketTxs), id[:], &r); !ok || err != nil {
		return 0, false
	}
	return r.Height, true
}

// Keys implements ledger.Registry.
func (v chainView) Keys() ([]ledger.KeyInfo, error) {
	var out []ledger.KeyInfo
	err := v.tx.Bucket(bucketKeys).ForEach(func(k, raw []byte) error {
		ck, err := v.s.key(string(k), raw)
		if err != nil {
			return err
		}
		out = append(out, ck.info)
		return nil
	})
	return out, err
}

// PutKey implements ledger.Registry.
func (v chainView) PutKey(k ledger.KeyInfo) error {
	return putJSON(v.tx.Bucket(bucketKeys), []byte(k.ID), k)
}

// DeleteKey implements ledger.Registry. The key is remembered as revoked, so a node
// can refuse it outright (not only as unknown).
func (v chainView) DeleteKey(id string) error {
	if info, _, ok := v.Key(id); ok {
		if err := putJSON(v.tx.Bucket(bucketRevoked), info.Public.Ed25519, info); err != nil {
			return err
		}
	}
	return v.tx.Bucket(bucketKeys).Delete([]byte(id))
}

// Token implements ledger.Registry.
func (v chainView) Token(id string) (ledger.Token, bool, error) {
	var t ledger.Token
	ok, err := getJSON(v.tx.Bucket(bucketTokens), []byte(id), &t)
	return t, ok, err
}

// PutToken implements ledger.Registry.
func (v chainView) PutToken(t ledger.Token) error {
	return putJSON(v.tx.Bucket(bucketTokens), []byte(t.ID), t)
}

// cachedKey is a decoded key record and its parsed verifier.
type cachedKey struct {
	raw  []byte
	info ledger.KeyInfo
	v    *identity.Verifier
}

// key decodes a key record, from the cache when the stored bytes are the ones cached
// (a key's record changes only when it is revoked or its role changes, and then its
// bytes do).
func (s *Store) key(id string, raw []byte) (*cachedKey, error) {
	s.vmu.Lock()
	defer s.vmu.Unlock()
	if k, ok := s.keys[id]; ok && bytes.Equal(k.raw, raw) {
		return k, nil
	}
	var info ledger.KeyInfo
	if err := json.Unmarshal(raw, &info); err != nil {
		return nil, fmt.Errorf("%w: key record %s: %v", ErrCorrupt, id, err)
	}
	if info.Public.ID() != info.ID || info.ID != id {
		return nil, fmt.Errorf("%w: key record %s holds key %s", ErrCorrupt, id, info.Public.ID())
	}
	v, err := info.Public.Verifier()
	if err != nil {
		return nil, err
	}
	k := &cachedKey{raw: bytes.Clone(raw), info: info, v: v}
	s.keys[id] = k
	return k, nil
}

// CheckTx checks a transaction against the current state as the door does before it is
// ordered: everything CheckBlock would check of it, plus whether it can take effect.
func (s *Store) CheckTx(t *ledger.Tx, now time.Time) error { return s.checkTx(t, now, true) }

// CheckTxChain checks only what CheckBlock would check of a transaction: what the block
// cutter must know so a block is not refused whole for one bad transaction.
func (s *Store) CheckTxChain(t *ledger.Tx, now time.Time) error { return s.checkTx(t, now, false) }

func (s *Store) checkTx(t *ledger.Tx, now time.Time, effect bool) error {
	return s.view(func(tx *bolt.Tx) error {
		v := chainView{s, tx}
		if _, _, _, ok := v.Tip(); !ok {
			return errors.New("the network has no genesis block yet")
		}
		if err := ledger.CheckTx(v, t, now, s.sigs); err != nil {
			return err
		}
		if !effect {
			return nil
		}
		return precheck(v, t)
	})
}

// ApplyBlock checks the encoded block against the chain and applies it. index is the
// position of the block in the ordering log: a block at or below the last applied index
// was applied before (the log is being replayed after a restart) and is skipped.
// A block that does not check out changes nothing and returns the reason.
func (s *Store) ApplyBlock(data []byte, index uint64) (*Applied, error) {
	b, err := ledger.DecodeBlock(data)
	if err != nil {
		return nil, err
	}
	var (
		res    *Applied
		events []Event
	)
	s.mu.RLock()
	err = s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keyApplied); index != 0 && len(v) == 8 && index <= binary.BigEndian.Uint64(v) {
			return nil
		}
		view := chainView{s, tx}
		tipHeight, _, _, started := view.Tip()
		if started && b.Height <= tipHeight {
			// A block this store has already (a node that caught up from a peer before
			// raft sent it the same block): nothing to do if it is the same block.
			stored := tx.Bucket(bucketBlocks).Get(be64(b.Height))
			if stored == nil {
				return fmt.Errorf("%w: block %d is missing from the store", ErrCorrupt, b.Height)
			}
			have, err := ledger.DecodeBlock(stored)
			if err != nil {
				return err
			}
			if have.Hash != b.Hash {
				return fmt.Errorf("%w: block %d is %s here but %s was ordered", ledger.ErrBadChain, b.Height, have.Hash.Short(), b.Hash.Short())
			}
			res = &Applied{Height: b.Height, Hash: b.Hash, Results: make([]string, len(b.Txs))}
			for i, t := range b.Txs {
				var r TxRecord
				getJSON(tx.Bucket(bucketTxs), idKey(t.ID()), &r)
				res.Results[i] = r.Error
			}
			if index != 0 {
				return meta.Put(keyApplied, be64(index))
			}
			return nil
		}
		network := b.Network
		if !started {
			if _, err := ledger.CheckGenesis(b); err != nil {
				return err
			}
			network = b.Hash
		} else if err := ledger.CheckBlock(view, b, s.sigs); err != nil {
			return err
		}
		a := &applier{view: view, block: b}
		res = &Applied{Height: b.Height, Hash: b.Hash, Results: make([]string, len(b.Txs))}
		for i, t := range b.Txs {
			if err := a.apply(t); err != nil {
				res.Results[i] = err.Error()
				a.event("tx.failed", "", "", "", fmt.Sprintf("%s %s: %v", t.Type, t.ID().Short(), err))
			}
			if err := putJSON(tx.Bucket(bucketTxs), idKey(t.ID()), TxRecord{ID: t.ID(), Type: t.Type, Height: b.Height, Index: i, Error: res.Results[i]}); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketBlocks).Put(be64(b.Height), data); err != nil {
			return err
		}
		name := meta.Get([]byte("name"))
		if !started {
			var g ledger.Genesis
			b.Txs[0].Decode(&g)
			name = []byte(g.Network)
			if err := meta.Put([]byte("name"), name); err != nil {
				return err
			}
		}
		if err := putJSON(meta, keyTip, Tip{Network: network, Name: string(name), Height: b.Height, Hash: b.Hash, Time: b.Time}); err != nil {
			return err
		}
		if index != 0 {
			if err := meta.Put(keyApplied, be64(index)); err != nil {
				return err
			}
		}
		events = a.events
		return nil
	})
	s.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	if res != nil {
		s.bump()
		s.publish(events)
	}
	return res, nil
}

func idKey(h ledger.Hash) []byte { return append([]byte(nil), h[:]...) }

// applier applies the transactions of one block inside its bbolt transaction.
type applier struct {
	view       chainView
	block      *ledger.Block
	events     []Event
	signerInfo ledger.KeyInfo
}

func (a *applier) bucket(name []byte) *bolt.Bucket { return a.view.tx.Bucket(name) }

func (a *applier) event(kind, service, depot, node, msg string) {
	a.events = append(a.events, Event{Time: a.block.Time, Height: a.block.Height, Kind: kind, Service: service, Depot: depot, Node: node, Message: msg})
}

func (a *applier) signer(t *ledger.Tx) ledger.KeyInfo {
	info, _, _ := a.view.Key(t.Signer)
	return info
}

func (a *applier) apply(t *ledger.Tx) error {
	// The signer as it was before this transaction (a rotation replaces its key).
	a.signerInfo = a.signer(t)
	if err := ledger.ApplyRegistry(a.view, t, a.block.Time); err != nil {
		return err
	}
	if ok, err := a.applyInputs(t); ok {
		return err
	}
	if ok, err := a.applyRollout(t); ok {
		return err
	}
	switch t.Type {
	case ledger.TxGenesis:
		return a.genesis(t)
	case ledger.TxServiceApply:
		return a.serviceApply(t)
	case ledger.TxServiceDelete:
		return a.serviceDelete(t)
	case ledger.TxPlacement:
		return a.placement(t)
	case ledger.TxDepotStatus:
		return a.depotStatus(t)
	case ledger.TxNodeUpdate:
		return a.nodeUpdate(t)
	case ledger.TxTokenCreate:
		a.event("token.created", "", "", "", fmt.Sprintf("join token created by %s", a.signerInfo.Owner))
		return nil
	case ledger.TxNodeJoin:
		return a.nodeJoin(t)
	case ledger.TxNodeRemove:
		return a.nodeRemove(t)
	case ledger.TxNodeRotate:
		return a.nodeRotate(t)
	case ledger.TxValidators:
		return a.validators(t)
	case ledger.TxReceipts:
		return a.receiptBatch(t)
	}
	return fmt.Errorf("no state change is defined for %s", t.Type)
}

func (a *applier) nodeJoin(t *ledger.Tx) error {
	var p ledger.NodeJoin
	if err := t.Decode(&p); err != nil {
		return err
	}
	rec := Node{NodeInfo: p.Node, Joined: a.block.Time, Height: a.block.Height}
	if err := putJSON(a.bucket(bucketNodes), []byte(p.Node.ID), rec); err != nil {
		return err
	}
	a.event("node.joined", "", "", p.Node.ID, fmt.Sprintf("node %s (%s) joined, admitted by %s", p.Node.Name, p.Node.ID, a.signerInfo.Owner))
	return nil
}

func (a *applier) nodeRemove(t *ledger.Tx) error {
	var p ledger.NodeRemove
	if err := t.Decode(&p); err != nil {
		return err
	}
	if err := a.bucket(bucketNodes).Delete([]byte(p.Node)); err != nil {
		return err
	}
	a.event("node.removed", "", "", p.Node, fmt.Sprintf("node %s removed by %s; its keys are revoked", p.Node, a.signerInfo.Owner))
	return nil
}

func (a *applier) nodeRotate(t *ledger.Tx) error {
	var p ledger.NodeRotate
	if err := t.Decode(&p); err != nil {
		return err
	}
	nb := a.bucket(bucketNodes)
	var n Node
	if ok, err := getJSON(nb, []byte(p.Node), &n); err != nil || !ok {
		return fmt.Errorf("node %s not found", p.Node)
	}
	n.Key = p.Key
	if err := putJSON(nb, []byte(p.Node), n); err != nil {
		return err
	}
	a.event("node.rotated", "", "", p.Node, fmt.Sprintf("node %s rotated its keys: %s replaces %s", p.Node, p.Key.ID(), t.Signer))
	return nil
}

func (a *applier) validators(t *ledger.Tx) error {
	var p ledger.ValidatorsSet
	if err := t.Decode(&p); err != nil {
		return err
	}
	nb := a.bucket(bucketNodes)
	err := nb.ForEach(func(k, v []byte) error {
		var n Node
		if err := json.Unmarshal(v, &n); err != nil {
			return err
		}
		if want := slices.Contains(p.Validators, n.ID); n.Validator != want {
			n.Validator = want
			return putJSON(nb, k, n)
		}
		return nil
	})
	if err != nil {
		return err
	}
	a.event("validators.set", "", "", "", fmt.Sprintf("validators are now %v", p.Validators))
	return nil
}

func (a *applier) genesis(t *ledger.Tx) error {
	var g ledger.Genesis
	if err := t.Decode(&g); err != nil {
		return err
	}
	for _, op := range g.Operators {
		if err := putJSON(a.bucket(bucketOperators), []byte(op.Name), Operator{op}); err != nil {
			return err
		}
	}
	validators := map[string]bool{}
	for _, v := range g.Validators {
		validators[v] = true
	}
	for _, n := range g.Nodes {
		rec := Node{NodeInfo: n, Validator: validators[n.ID], Joined: a.block.Time, Height: a.block.Height}
		if err := putJSON(a.bucket(bucketNodes), []byte(n.ID), rec); err != nil {
			return err
		}
	}
	a.event("network.created", "", "", "", fmt.Sprintf("network %s created with %d node(s)", g.Network, len(g.Nodes)))
	return nil
}

// specError turns a manifest's validation errors into one error.
func specError(errs manifest.ErrorList) error {
	if len(errs) == 0 {
		return nil
	}
	return errs
}

func (a *applier) serviceApply(t *ledger.Tx) error {
	var p ledger.ServiceApply
	if err := t.Decode(&p); err != nil {
		return err
	}
	if err := checkServiceApply(a.view, &p); err != nil {
		return err
	}
	svc := p.Service
	b := a.bucket(bucketServices)
	var cur Service
	exists, err := getJSON(b, []byte(svc.Metadata.Name), &cur)
	if err != nil {
		return err
	}
	op := a.signer(t).Owner
	if exists {
		same, err := sameSpec(cur.Spec, svc)
		if err != nil {
			return err
		}
		if same {
			return nil // unchanged: no new revision
		}
	}
	next := Service{
		Name: svc.Metadata.Name, Revision: cur.Revision + 1, Spec: svc, AppliedBy: op,
		TxID: t.ID(), Height: a.block.Height, Created: cur.Created, Updated: a.block.Time,
		Unschedulable: cur.Unschedulable, VIP: cur.VIP,
	}
	var prev *Rollout
	if exists {
		r := cur.CurrentRollout()
		prev = &r
	}
	ro := nextRollout(prev, next.Revision, a.block.Time)
	next.Rollout = &ro
	if !exists {
		next.Created = a.block.Time
	}
	if next.VIP == "" {
		vip, err := allocVIP(a.bucket(bucketVIPs), next.Name)
		if err != nil {
			return err
		}
		next.VIP = vip.String()
	}
	if err := putJSON(b, []byte(next.Name), next); err != nil {
		return err
	}
	rev := Revision{Service: next.Name, Revision: next.Revision, Spec: svc, AppliedBy: op, TxID: t.ID(), Height: a.block.Height, At: a.block.Time}
	rev.Cause = p.Cause
	rev.Inputs = inputsOf(a.view, &svc.Spec)
	if err := putJSON(a.bucket(bucketRevisions), revisionKey(next.Name, next.Revision), rev); err != nil {
		return err
	}
	a.event("service.applied", next.Name, "", "", fmt.Sprintf("revision %d of %s applied by %s", next.Revision, next.Name, op))
	a.rolloutStarted(next.Name, prev, ro)
	return nil
}

func revisionKey(name string, rev uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(name), 0), rev)
}

func sameSpec(a, b *manifest.Service) (bool, error) {
	x, err := json.Marshal(a)
	if err != nil {
		return false, err
	}
	y, err := json.Marshal(b)
	if err != nil {
		return false, err
	}
	return bytes.Equal(x, y), nil
}

func checkServiceApply(v chainView, p *ledger.ServiceApply) error {
	if p.Service == nil {
		return errors.New("service.apply carries no service")
	}
	if err := specError(p.Service.ValidateResolved()); err != nil {
		return fmt.Errorf("invalid manifest: %w", err)
	}
	t, _ := v.tip()
	if n := p.Service.Metadata.Network; n != "" && n != t.Name {
		return fmt.Errorf("manifest is for network %q, this network is %q", n, t.Name)
	}
	if err := checkInputsExist(v, p.Service); err != nil {
		return err
	}
	return nil
}

func (a *applier) serviceDelete(t *ledger.Tx) error {
	var p ledger.ServiceDelete
	if err := t.Decode(&p); err != nil {
		return err
	}
	b := a.bucket(bucketServices)
	var cur Service
	if ok, err := getJSON(b, []byte(p.Name), &cur); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("service %q not found", p.Name)
	}
	if err := freeVIP(a.bucket(bucketVIPs), cur.VIP); err != nil {
		return err
	}
	if err := b.Delete([]byte(p.Name)); err != nil {
		return err
	}
	// Its depots go with it: their placements are removed in the same step.
	pb := a.bucket(bucketPlacements)
	var gone [][]byte
	err := pb.ForEach(func(k, v []byte) error {
		var pl Placement
		if err := json.Unmarshal(v, &pl); err != nil {
			return err
		}
		if pl.Service == p.Name {
			gone = append(gone, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range gone {
		if err := pb.Delete(k); err != nil {
			return err
		}
	}
	a.event("service.deleted", p.Name, "", "", fmt.Sprintf("service %s deleted by %s (%d depot(s) removed)", p.Name, a.signer(t).Owner, len(gone)))
	return nil
}

func (a *applier) placement(t *ledger.Tx) error {
	var p ledger.PlacementSet
	if err := t.Decode(&p); err != nil {
		return err
	}
	if err := checkPlacement(a.view, a.signer(t), &p); err != nil {
		return err
	}
	pb := a.bucket(bucketPlacements)
	for _, id := range p.Remove {
		var pl Placement
		if ok, _ := getJSON(pb, []byte(id), &pl); !ok {
			continue
		}
		if err := pb.Delete([]byte(id)); err != nil {
			return err
		}
		a.event("placement.removed", pl.Service, id, pl.Node, fmt.Sprintf("depot %s removed from node %s: %s", id, pl.Node, p.Reason))
	}
	names := make([]string, 0, len(p.Unschedulable))
	for name := range p.Unschedulable {
		names = append(names, name)
	}
	sort.Strings(names)
	sb := a.bucket(bucketServices)
	for _, name := range names {
		var svc Service
		if ok, err := getJSON(sb, []byte(name), &svc); err != nil {
			return err
		} else if !ok || svc.Unschedulable == p.Unschedulable[name] {
			continue
		}
		svc.Unschedulable = p.Unschedulable[name]
		if err := putJSON(sb, []byte(name), svc); err != nil {
			return err
		}
		if svc.Unschedulable != "" {
			a.event("service.unschedulable", name, "", "", svc.Unschedulable)
		}
	}
	for _, pl := range p.Add {
		rec := Placement{Placement: pl, Height: a.block.Height, Created: a.block.Time}
		if err := putJSON(pb, []byte(pl.ID), rec); err != nil {
			return err
		}
		a.event("placement.added", pl.Service, pl.ID, pl.Node, fmt.Sprintf("depot %s (revision %d) placed on node %s", pl.ID, pl.Revision, pl.Node))
	}
	return nil
}

func checkPlacement(v chainView, signer ledger.KeyInfo, p *ledger.PlacementSet) error {
	if !signer.Validator {
		return fmt.Errorf("placements are decided by validators; node %s is not one", signer.Owner)
	}
	ids := make(map[string]bool, len(p.Add))
	// A set places many depots of few services: decode each service's record once.
	revisions := map[string]uint64{}
	for _, pl := range p.Add {
		if pl.ID == "" || ids[pl.ID] {
			return fmt.Errorf("placement ID %q is empty or repeated", pl.ID)
		}
		ids[pl.ID] = true
		if v.tx.Bucket(bucketPlacements).Get([]byte(pl.ID)) != nil {
			return fmt.Errorf("depot %s is already placed", pl.ID)
		}
		rev, known := revisions[pl.Service]
		if !known {
			var svc Service
			if ok, err := getJSON(v.tx.Bucket(bucketServices), []byte(pl.Service), &svc); !ok || err != nil {
				return fmt.Errorf("depot %s: service %q not found", pl.ID, pl.Service)
			}
			rev = svc.Revision
			revisions[pl.Service] = rev
		}
		if pl.Revision == 0 || pl.Revision > rev {
			return fmt.Errorf("depot %s: service %s has no revision %d", pl.ID, pl.Service, pl.Revision)
		}
		if v.tx.Bucket(bucketNodes).Get([]byte(pl.Node)) == nil {
			return fmt.Errorf("depot %s: node %s not found", pl.ID, pl.Node)
		}
	}
	return nil
}

func (a *applier) depotStatus(t *ledger.Tx) error {
	var r ledger.DepotStatusReport
	if err := t.Decode(&r); err != nil {
		return err
	}
	if owner := a.signer(t).Owner; owner != r.Node {
		return fmt.Errorf("node %s may not report for node %s", owner, r.Node)
	}
	pb := a.bucket(bucketPlacements)
	sort.SliceStable(r.Depots, func(i, j int) bool { return r.Depots[i].ID < r.Depots[j].ID })
	for _, st := range r.Depots {
		var pl Placement
		if ok, err := getJSON(pb, []byte(st.ID), &pl); err != nil {
			return err
		} else if !ok || pl.Node != r.Node {
			continue // removed since the node saw it; nothing to record
		}
		prev := pl.Status
		pl.Status = &st
		if err := putJSON(pb, []byte(st.ID), pl); err != nil {
			return err
		}
		if prev == nil || prev.State != st.State || prev.Ready != st.Ready || prev.Restarts != st.Restarts {
			msg := fmt.Sprintf("depot %s is %s", st.ID, st.State)
			if st.Reason != "" {
				msg += ": " + st.Reason
			}
			a.event("depot."+string(st.State), pl.Service, st.ID, r.Node, msg)
		}
	}
	return nil
}

func (a *applier) nodeUpdate(t *ledger.Tx) error {
	var u ledger.NodeUpdate
	if err := t.Decode(&u); err != nil {
		return err
	}
	signer := a.signer(t)
	if signer.Role == ledger.RoleNode && signer.Owner != u.Node.ID {
		return fmt.Errorf("node %s may not update node %s", signer.Owner, u.Node.ID)
	}
	nb := a.bucket(bucketNodes)
	var cur Node
	if ok, err := getJSON(nb, []byte(u.Node.ID), &cur); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("node %s not found", u.Node.ID)
	}
	if !u.Node.Key.Equal(cur.Key) {
		return errors.New("node.update cannot change keys")
	}
	cur.NodeInfo = u.Node
	if err := putJSON(nb, []byte(cur.ID), cur); err != nil {
		return err
	}
	a.event("node.updated", "", "", cur.ID, fmt.Sprintf("node %s (%s) updated: %d mCPU, %d MiB, %s/%s", cur.Name, cur.ID, cur.CPU, cur.Memory>>20, cur.OS, cur.Arch))
	return nil
}

// precheck tells at the door whether a transaction can take effect, so the sender
// learns of a mistake at once instead of from a failed transaction record.
func precheck(v chainView, t *ledger.Tx) error {
	switch t.Type {
	case ledger.TxServiceApply:
		var p ledger.ServiceApply
		if err := t.Decode(&p); err != nil {
			return err
		}
		return checkServiceApply(v, &p)
	case ledger.TxServiceDelete:
		var p ledger.ServiceDelete
		if err := t.Decode(&p); err != nil {
			return err
		}
		if v.tx.Bucket(bucketServices).Get([]byte(p.Name)) == nil {
			return fmt.Errorf("%w: service %q", ErrNotFound, p.Name)
		}
	case ledger.TxPlacement:
		var p ledger.PlacementSet
		if err := t.Decode(&p); err != nil {
			return err
		}
		info, _, _ := v.Key(t.Signer)
		return checkPlacement(v, info, &p)
	case ledger.TxSecretKey, ledger.TxSecretPut, ledger.TxSecretRemove, ledger.TxConfigPut, ledger.TxConfigRemove:
		return precheckInputs(v, t)
	}
	if ok, err := precheckRollout(v, t); ok {
		return err
	}
	return nil
}

// ErrNotFound is returned (wrapped) when a named object does not exist.
var ErrNotFound = errors.New("not found")
