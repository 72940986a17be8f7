package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"qnet.dev/qnet/agent"
	"qnet.dev/qnet/api"
	"qnet.dev/qnet/driver"
	"qnet.dev/qnet/identity"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/manifest"
	"qnet.dev/qnet/mesh"
	"qnet.dev/qnet/secret"
	"qnet.dev/qnet/state"
)

// Directories of a node's data dir that hold what depots are given.
const (
	// SecretsDir holds one tmpfs per depot that has secret files: plaintext in memory,
	// never on a disk.
	SecretsDir = "secrets"
	// ConfigsDir holds the config files of each depot.
	ConfigsDir = "configs"
)

// secrets is a node's part in keeping secrets: the network key, opened from this
// node's share when it is a validator, and the tmpfs mounts of its depots.
type secrets struct {
	mu  sync.Mutex
	key *secret.NetworkKey
	// rotateMu serialises rotations and share updates on the leader.
	rotateMu sync.Mutex
	// mounted are the depots with a secrets tmpfs.
	mounted map[string]bool
}

// releaseRequest asks a validator for one secret of a depot on the asking node.
type releaseRequest struct {
	Name      string `json:"name"`
	Placement string `json:"placement"`
	// Height is the asking node's tip: the validator waits until it has it, so it knows
	// the placement the asker sees.
	Height uint64 `json:"height"`
}

// initSecrets registers the node's secret services and hooks the agent to them.
func (n *Node) initSecrets(ac *agent.Config) {
	n.secrets = &secrets{mounted: map[string]bool{}}
	n.mesh.HandleRPC("secret.release", false, n.handleRelease)
	n.mesh.HandleRPC("secret.rotate", false, n.handleRotate)
	ac.Inputs = n.giveInputs
	ac.Removed = n.dropInputs
}

// networkKey returns the network key, opened from this node's share.
func (n *Node) networkKey() (*secret.NetworkKey, error) {
	rec, ok, err := n.store.NetworkKey()
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errors.New("the network has no secret key yet")
	}
	n.secrets.mu.Lock()
	defer n.secrets.mu.Unlock()
	if k := n.secrets.key; k != nil && k.ID() == rec.Key.ID {
		return k, nil
	}
	sh, ok := rec.Share(n.id)
	if !ok {
		return nil, fmt.Errorf("node %s holds no share of network key %s (only validators do)", n.id, rec.Key.ID)
	}
	k, err := secret.OpenShare(sh, n.key.Get().HPKE())
	if err != nil {
		return nil, err
	}
	n.secrets.key = k
	return k, nil
}

func (n *Node) remember(k *secret.NetworkKey) {
	n.secrets.mu.Lock()
	n.secrets.key = k
	n.secrets.mu.Unlock()
}

// keepNetworkKey runs on every node; while the node leads, it makes the network key if
// there is none and gives a share of it to every validator that lacks one (a new
// validator, or one whose keys rotated).
func (n *Node) keepNetworkKey(ctx context.Context) {
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		_, changed := n.store.Watch()
		// A validator opens its share at once and keeps the key in memory, so that a
		// rotation of its own node keys (which its share is sealed to) does not lose
		// the key: the leader shares it again to the new node key.
		if rec, ok, _ := n.store.NetworkKey(); ok {
			if _, has := rec.Share(n.id); has {
				if _, err := n.networkKey(); err != nil && ctx.Err() == nil {
					n.log.Debug("network secret key share", "err", err)
				}
			}
		}
		if n.ord.IsLeader() {
			if err := n.shareNetworkKey(ctx); err != nil && ctx.Err() == nil {
				n.log.Warn("network secret key", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-tick.C:
		}
	}
}

// validators returns the validator nodes, by ID.
func (n *Node) validatorNodes() ([]state.Node, error) {
	nodes, err := n.store.Nodes()
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(nodes, func(nd state.Node) bool { return !nd.Validator || len(nd.Key.HPKE) == 0 }), nil
}

func sharesFor(k *secret.NetworkKey, nodes []state.Node) ([]secret.KeyShare, error) {
	var out []secret.KeyShare
	for _, v := range nodes {
		sh, err := k.ShareFor(v.ID, v.Key.HPKE)
		if err != nil {
			return nil, err
		}
		out = append(out, sh)
	}
	return out, nil
}

func (n *Node) shareNetworkKey(ctx context.Context) error {
	n.secrets.rotateMu.Lock()
	defer n.secrets.rotateMu.Unlock()
	vals, err := n.validatorNodes()
	if err != nil || len(vals) == 0 {
		return err
	}
	rec, ok, err := n.store.NetworkKey()
	if err != nil {
		return err
	}
	if !ok {
		k, err := secret.NewNetworkKey()
		if err != nil {
			return err
		}
		shares, err := sharesFor(k, vals)
		if err != nil {
			return err
		}
		if err := n.propose(ctx, ledger.TxSecretKey, ledger.SecretKey{Key: k.Public(), Shares: shares}); err != nil {
			return fmt.Errorf("record %s: %w", k, err)
		}
		n.remember(k)
		n.log.Info("network secret key created", "key", k.ID(), "validators", len(vals))
		return nil
	}
	var missing []state.Node
	for _, v := range vals {
		if sh, has := rec.Share(v.ID); !has || sh.NodeKey != secret.KeyID(v.Key.HPKE) {
			missing = append(missing, v)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	k, err := n.networkKey()
	if err != nil {
		return fmt.Errorf("share with %d validator(s): %w", len(missing), err)
	}
	shares, err := sharesFor(k, missing)
	if err != nil {
		return err
	}
	if err := n.propose(ctx, ledger.TxSecretKey, ledger.SecretKey{Key: k.Public(), Shares: shares}); err != nil {
		return fmt.Errorf("share %s: %w", k, err)
	}
	n.log.Info("network secret key shared", "key", k.ID(), "validators", len(missing))
	return nil
}

// RotateSecretKey replaces the network's secret key: the ordering leader makes a new
// one, shares it with every validator and seals every secret again to it, all in one
// transaction. Another node asks the leader to.
func (n *Node) RotateSecretKey(ctx context.Context) (api.SecretKeyRotation, error) {
	if !n.ord.IsLeader() {
		leader := n.Leader()
		if leader == "" {
			return api.SecretKeyRotation{}, errors.New("rotate the network secret key: no ordering leader now; try again")
		}
		var res api.SecretKeyRotation
		err := n.mesh.Call(ctx, leader, "secret.rotate", struct{}{}, &res)
		return res, err
	}
	n.secrets.rotateMu.Lock()
	defer n.secrets.rotateMu.Unlock()
	old, err := n.networkKey()
	if err != nil {
		return api.SecretKeyRotation{}, fmt.Errorf("rotate the network secret key: %w", err)
	}
	r, err := secret.Rotate(old)
	if err != nil {
		return api.SecretKeyRotation{}, err
	}
	recs, err := n.store.Secrets()
	if err != nil {
		return api.SecretKeyRotation{}, err
	}
	sealed := make([]secret.Sealed, len(recs))
	for i, s := range recs {
		sealed[i] = s.Sealed
	}
	resealed, err := r.Reseal(sealed)
	if err != nil {
		return api.SecretKeyRotation{}, err
	}
	vals, err := n.validatorNodes()
	if err != nil {
		return api.SecretKeyRotation{}, err
	}
	shares, err := sharesFor(r.New, vals)
	if err != nil {
		return api.SecretKeyRotation{}, err
	}
	if err := n.propose(ctx, ledger.TxSecretKey, ledger.SecretKey{Key: r.New.Public(), Shares: shares, Resealed: resealed}); err != nil {
		return api.SecretKeyRotation{}, fmt.Errorf("rotate %s: %w", old, err)
	}
	n.remember(r.New)
	n.log.Info("network secret key rotated", "old", old.ID(), "new", r.New.ID(), "secrets", len(resealed))
	return api.SecretKeyRotation{Old: old.ID(), New: r.New.ID(), Secrets: len(resealed)}, nil
}

func (n *Node) handleRotate(ctx context.Context, peer mesh.Peer, _ json.RawMessage) (any, error) {
	if !n.ord.IsLeader() {
		return nil, fmt.Errorf("node %s does not lead ordering now; ask the leader", n.id)
	}
	n.log.Info("network secret key rotation asked", "by", peer.NodeID)
	return n.RotateSecretKey(ctx)
}

// handleRelease answers a node's request for a secret of one of its depots.
func (n *Node) handleRelease(ctx context.Context, peer mesh.Peer, raw json.RawMessage) (any, error) {
	var req releaseRequest
	if err := strictJSON(raw, &req); err != nil {
		return nil, fmt.Errorf("secret.release request: %w", err)
	}
	// The asker is who the tunnel authenticated, never what the request says.
	return n.release(ctx, peer.NodeID, req)
}

// release checks against the ledger that node from runs the depot and that the depot's
// revision names the secret, then seals the secret to that node and depot alone.
func (n *Node) release(ctx context.Context, from string, req releaseRequest) (secret.Released, error) {
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := n.waitHeight(wctx, req.Height)
	cancel()
	if err != nil {
		return secret.Released{}, fmt.Errorf("release secret %q: %w", req.Name, err)
	}
	to := secret.Target{Node: from, Placement: req.Placement}
	refuse := func(err error) (secret.Released, error) {
		n.log.Warn("secret release refused", "secret", req.Name, "node", from, "depot", req.Placement, "err", err)
		return secret.Released{}, err
	}
	pl, ok, err := n.store.Placement(req.Placement)
	if err != nil {
		return secret.Released{}, err
	}
	if !ok {
		return refuse(fmt.Errorf("release secret %q: %w: depot %q is not placed on any node", req.Name, secret.ErrNotAuthorized, req.Placement))
	}
	d := secret.Depot{Placement: pl.ID, Node: pl.Node}
	if rev, ok, err := n.store.Revision(pl.Service, pl.Revision); err != nil {
		return secret.Released{}, err
	} else if ok && rev.Spec != nil {
		d.Secrets = rev.Spec.Spec.SecretNames()
	}
	if err := secret.Authorize(req.Name, to, d); err != nil {
		return refuse(err)
	}
	rec, ok, err := n.store.Secret(req.Name)
	if err != nil {
		return secret.Released{}, err
	}
	if !ok {
		return secret.Released{}, fmt.Errorf("release secret %q: %w: no such secret", req.Name, state.ErrNotFound)
	}
	node, ok, err := n.store.Node(from)
	if err != nil || !ok {
		return refuse(fmt.Errorf("release secret %q: %w: node %s is not a member", req.Name, secret.ErrNotAuthorized, from))
	}
	key, err := n.networkKey()
	if err != nil {
		return secret.Released{}, fmt.Errorf("release secret %q: %w", req.Name, err)
	}
	rel, err := secret.Reseal(rec.Sealed, key, node.Key.HPKE, to)
	if err != nil {
		return secret.Released{}, err
	}
	n.log.Info("secret released", "secret", req.Name, "version", rel.Version, "node", from, "depot", req.Placement)
	return rel, nil
}

// fetchSecret asks the validators, this node first if it is one, for a secret of
// depot placement, and opens what one of them releases.
func (n *Node) fetchSecret(ctx context.Context, name, placement string) (secret.Value, error) {
	tip, _, err := n.store.Tip()
	if err != nil {
		return secret.Value{}, err
	}
	req := releaseRequest{Name: name, Placement: placement, Height: tip.Height}
	vals, err := n.validatorNodes()
	if err != nil {
		return secret.Value{}, err
	}
	slices.SortStableFunc(vals, func(a, b state.Node) int {
		rank := func(x state.Node) int {
			switch {
			case x.ID == n.id:
				return 0
			case n.Alive(x.ID):
				return 1
			}
			return 2
		}
		return rank(a) - rank(b)
	})
	var errs []error
	for _, v := range vals {
		var rel secret.Released
		if v.ID == n.id {
			rel, err = n.release(ctx, n.id, req)
		} else {
			cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			err = n.mesh.Call(cctx, v.ID, "secret.release", req, &rel)
			cancel()
		}
		if err == nil {
			return secret.OpenReleased(rel, n.key.Get().HPKE(), secret.Target{Node: n.id, Placement: placement})
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 0 {
		return secret.Value{}, fmt.Errorf("secret %q: the network has no validators to release it", name)
	}
	return secret.Value{}, fmt.Errorf("secret %q for depot %s: %w", name, placement, errors.Join(errs...))
}

// envSuffix turns a secret's or config's name into the tail of an environment variable.
func envSuffix(name string) string {
	return strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

func setEnv(env []string, key, value string) []string {
	env = slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, key+"=") })
	return append(env, key+"="+value)
}

// giveInputs gives a depot the secrets and configs its revision names, before each
// start. Secret files go on a tmpfs of the depot's own (data dir/secrets/<depot>),
// config files in data dir/configs/<depot>; each becomes a read-only Spec.Mounts entry,
// which every driver shows its own way:
//
//   - exec: secrets as environment variables; the files where they are (the depot sees
//     the node's filesystem), their paths in QNET_SECRET_FILE_<NAME> and
//     QNET_CONFIG_<NAME> (a mount's target is its source).
//   - image (oci): secrets as environment variables (runc reads them from a tmpfs, never
//     a disk); files bind-mounted read-only at the manifest's file: and path:.
//   - wasm: secrets as environment variables; files at file: and path: through
//     preopened read-only directories (see package driver/wasm).
//
// Plaintext goes to the driver only: never to a disk, a log, the ledger or the API.
func (n *Node) giveInputs(ctx context.Context, p state.Placement, rev state.Revision, s *driver.Spec) error {
	spec := &rev.Spec.Spec
	exec := spec.Depot.Kind() == manifest.DepotExec
	var dir string
	for _, ref := range spec.Secrets {
		v, err := n.fetchSecret(ctx, ref.Name, p.ID)
		if err != nil {
			return err
		}
		if ref.Env != "" {
			s.Env = setEnv(s.Env, ref.Env, string(v.Reveal()))
		}
		if ref.File != "" {
			if dir == "" {
				dir = filepath.Join(n.cfg.DataDir, SecretsDir, p.ID)
				if err := secret.MountTmpfs(dir); err != nil {
					v.Wipe()
					return err
				}
				n.secrets.mu.Lock()
				n.secrets.mounted[p.ID] = true
				n.secrets.mu.Unlock()
			}
			if err := secret.WriteFile(dir, ref.Name, v); err != nil {
				v.Wipe()
				return err
			}
			path := filepath.Join(dir, ref.Name)
			if exec {
				s.Env = setEnv(s.Env, "QNET_SECRET_FILE_"+envSuffix(ref.Name), path)
				s.Mounts = setMount(s.Mounts, driver.Mount{Source: path, Target: path, ReadOnly: true})
			} else {
				s.Mounts = setMount(s.Mounts, driver.Mount{Source: path, Target: ref.File, ReadOnly: true, Private: true})
			}
		}
		v.Wipe()
	}
	if len(spec.Configs) > 0 {
		cdir := filepath.Join(n.cfg.DataDir, ConfigsDir, p.ID)
		if err := os.MkdirAll(cdir, 0o755); err != nil {
			return fmt.Errorf("config files: %w", err)
		}
		for _, ref := range spec.Configs {
			c, ok, err := n.store.Config(ref.Name)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("config %s is not on the ledger (it was removed)", ref.Name)
			}
			path := filepath.Join(cdir, ref.Name)
			tmp := path + ".tmp"
			if err := os.WriteFile(tmp, c.Data, 0o444); err != nil {
				return fmt.Errorf("config %s: %w", ref.Name, err)
			}
			if err := os.Rename(tmp, path); err != nil {
				return fmt.Errorf("config %s: %w", ref.Name, err)
			}
			if exec {
				s.Env = setEnv(s.Env, "QNET_CONFIG_"+envSuffix(ref.Name), path)
				s.Mounts = setMount(s.Mounts, driver.Mount{Source: path, Target: path, ReadOnly: true})
			} else {
				s.Mounts = setMount(s.Mounts, driver.Mount{Source: path, Target: ref.Path, ReadOnly: true})
			}
		}
	}
	return nil
}

// setMount adds m to mounts, replacing any mount at the same target.
func setMount(mounts []driver.Mount, m driver.Mount) []driver.Mount {
	mounts = slices.DeleteFunc(mounts, func(o driver.Mount) bool { return o.Target == m.Target })
	return append(mounts, m)
}

// dropInputs frees what giveInputs made for a depot that was removed: its tmpfs, whose
// memory goes with it, and its config files.
func (n *Node) dropInputs(id string) {
	n.secrets.mu.Lock()
	mounted := n.secrets.mounted[id]
	delete(n.secrets.mounted, id)
	n.secrets.mu.Unlock()
	dir := filepath.Join(n.cfg.DataDir, SecretsDir, id)
	if mounted || dirExists(dir) {
		if err := secret.UnmountTmpfs(dir); err != nil && mounted {
			n.log.Warn("secret tmpfs", "depot", id, "err", err)
		}
		os.Remove(dir)
	}
	os.RemoveAll(filepath.Join(n.cfg.DataDir, ConfigsDir, id))
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// initSecretKey makes the network's secret key with the network: block 1, proposed by
// the first validator, records it with that validator's share. A new network so has its
// key before anyone can want it, and a one-node network writes no block of its own once
// it runs.
func initSecretKey(st *state.Store, network ledger.Hash, validator *identity.Key, at time.Time) error {
	k, err := secret.NewNetworkKey()
	if err != nil {
		return err
	}
	sh, err := k.ShareFor(validator.ID(), validator.Public().HPKE)
	if err != nil {
		return err
	}
	t, err := ledger.NewTx(ledger.TxSecretKey, network, ledger.SecretKey{Key: k.Public(), Shares: []secret.KeyShare{sh}}, at.Add(time.Minute))
	if err != nil {
		return err
	}
	if err := t.Sign(validator); err != nil {
		return err
	}
	b, err := ledger.NewBlock(network, 1, network, at, []*ledger.Tx{t}, validator)
	if err != nil {
		return err
	}
	data, err := b.Encode()
	if err != nil {
		return err
	}
	res, err := st.ApplyBlock(data, 0)
	if err != nil {
		return fmt.Errorf("network secret key: %w", err)
	}
	if res.Results[0] != "" {
		return fmt.Errorf("network secret key: %s", res.Results[0])
	}
	return nil
}
