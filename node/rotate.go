package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"qnet.dev/qnet/api"
	"qnet.dev/qnet/identity"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/orderer"
)

// nextKeyFile holds a rotation's new key until the ledger has it.
const nextKeyFile = "node.key.next"

// RotateKeys replaces the node's keys: a new identity is made, the ledger records it in
// a node.rotate transaction signed by the old key and agreed to by the new one, and from
// that block on the old keys are refused everywhere. Tunnels are re-established with the
// new keys.
func (n *Node) RotateKeys(ctx context.Context) (api.RotateResult, error) {
	n.rotateMu.Lock()
	defer n.rotateMu.Unlock()
	old := n.key.Get()
	next, err := identity.Generate(true)
	if err != nil {
		return api.RotateResult{}, err
	}
	// The new key is on disk before the ledger hears of it, so a crash in between
	// cannot lock the node out (see adoptRotation).
	nextPath := filepath.Join(n.cfg.DataDir, nextKeyFile)
	if err := next.Save(nextPath); err != nil {
		return api.RotateResult{}, err
	}
	tip, _, err := n.store.Tip()
	if err != nil {
		return api.RotateResult{}, err
	}
	proof, err := next.Sign(identity.DomainTx, ledger.RotationMessage(tip.Network, n.id, next.Public()))
	if err != nil {
		return api.RotateResult{}, err
	}
	t, err := ledger.NewTx(ledger.TxNodeRotate, tip.Network, ledger.NodeRotate{Node: n.id, Key: next.Public(), Proof: proof}, time.Now().Add(10*time.Minute))
	if err == nil {
		err = t.Sign(old)
	}
	if err == nil {
		err = n.store.CheckTx(t, time.Now())
	}
	var res []orderer.Result
	if err == nil {
		res, err = n.order(ctx, []*ledger.Tx{t})
	}
	if err == nil {
		err = res[0].Err
	}
	if err != nil {
		os.Remove(nextPath)
		return api.RotateResult{}, err
	}
	// From the rotation's block on, peers refuse the old key: switch at once, before
	// waiting for this node's replica, which needs tunnels made with the new key.
	if err := n.adoptKey(next); err != nil {
		return api.RotateResult{}, err
	}
	if err := n.waitHeight(ctx, res[0].Height); err != nil {
		return api.RotateResult{}, err
	}
	after, _, _ := n.store.Tip()
	pin, _ := APIKeyPin(next)
	n.log.Info("node keys rotated", "old", old.ID(), "new", next.ID())
	return api.RotateResult{Node: n.id, OldKey: old.ID(), NewKey: next.ID(), APIPin: pin, Height: after.Height}, nil
}

// adoptKey makes k the node's key, on disk and in every part that signs or handshakes,
// and re-establishes the tunnels with it.
func (n *Node) adoptKey(k *identity.Key) error {
	if err := os.Rename(filepath.Join(n.cfg.DataDir, nextKeyFile), filepath.Join(n.cfg.DataDir, NodeKeyFile)); err != nil {
		return fmt.Errorf("keep the new key: %w", err)
	}
	n.key.Set(k)
	return n.mesh.SetKey(k)
}

// adoptRotation finishes a rotation a crash interrupted: when the ledger already knows
// the key waiting in node.key.next, it becomes the node's key; otherwise it is dropped.
func adoptRotation(dataDir string, known func(keyID string) bool) error {
	nextPath := filepath.Join(dataDir, nextKeyFile)
	next, err := identity.Load(nextPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if known(next.ID()) {
		return os.Rename(nextPath, filepath.Join(dataDir, NodeKeyFile))
	}
	return os.Remove(nextPath)
}
