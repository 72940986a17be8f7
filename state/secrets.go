package state

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/manifest"
	"qnet.dev/qnet/secret"
)

var (
	bucketSecretKey = []byte("secretkey")
	bucketSecrets   = []byte("secrets")
	bucketConfigs   = []byte("configs")

	keyNetworkKey = []byte("current")
)

// NetworkKey is the network's secret key as the ledger records it: the public half
// operators seal to, and the private half sealed to each validator.
type NetworkKey struct {
	Key    secret.NetworkPublicKey `json:"key"`
	Shares []secret.KeyShare       `json:"shares"`
	// Created is when this key replaced the one before (or was the first).
	Created time.Time `json:"created"`
	Height  uint64    `json:"height"`
}

// Share returns the share of node, if it has one.
func (k NetworkKey) Share(node string) (secret.KeyShare, bool) {
	for _, sh := range k.Shares {
		if sh.Node == node {
			return sh, true
		}
	}
	return secret.KeyShare{}, false
}

// Secret is a secret as the ledger has it: only sealed.
type Secret struct {
	Name    string        `json:"name"`
	Version uint64        `json:"version"`
	Sealed  secret.Sealed `json:"sealed"`
	// UpdatedBy is the operator that put the current version.
	UpdatedBy string    `json:"updatedBy"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	Height    uint64    `json:"height"`
}

// Info is what may be shown of a secret: everything but its ciphertext.
func (s Secret) Info() SecretInfo {
	return SecretInfo{Name: s.Name, Version: s.Version, KeyID: s.Sealed.KeyID, Size: s.Sealed.Size(),
		UpdatedBy: s.UpdatedBy, Created: s.Created, Updated: s.Updated, Height: s.Height}
}

// SecretInfo describes a secret without its value, sealed or not: what qnet secret
// list shows.
type SecretInfo struct {
	Name    string `json:"name"`
	Version uint64 `json:"version"`
	// KeyID is the network key the current version is sealed to.
	KeyID     string    `json:"keyId"`
	Size      int       `json:"size"`
	UpdatedBy string    `json:"updatedBy"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	Height    uint64    `json:"height"`
	// UsedBy are the services whose current revision names the secret.
	UsedBy []string `json:"usedBy,omitempty"`
}

// Config is a configuration file as the ledger has it (plain: configuration is not
// secret; put what is in a secret).
type Config struct {
	Name    string `json:"name"`
	Version uint64 `json:"version"`
	Data    []byte `json:"data"`
	// SHA256 is the hex SHA-256 of Data.
	SHA256    string    `json:"sha256"`
	UpdatedBy string    `json:"updatedBy"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	Height    uint64    `json:"height"`
	// UsedBy are the services whose current revision names the config (filled by
	// Configs and Config, not stored).
	UsedBy []string `json:"usedBy,omitempty"`
}

// Inputs are the versions of the secrets and configs a revision was made with. A new
// version of either makes a new revision of every service that names it, so the
// depots that use it are replaced as for any change of the manifest.
type Inputs struct {
	Secrets map[string]uint64 `json:"secrets,omitempty"`
	Configs map[string]uint64 `json:"configs,omitempty"`
}

// ErrInUse is returned (wrapped) when an object cannot be removed because a service
// names it.
var ErrInUse = errors.New("in use")

func (v chainView) networkKey() (NetworkKey, bool, error) {
	var k NetworkKey
	ok, err := getJSON(v.tx.Bucket(bucketSecretKey), keyNetworkKey, &k)
	return k, ok, err
}

// inputsOf returns the current versions of what spec names.
func inputsOf(v chainView, spec *manifest.Spec) *Inputs {
	if len(spec.Secrets) == 0 && len(spec.Configs) == 0 {
		return nil
	}
	in := &Inputs{}
	for _, s := range spec.Secrets {
		var rec Secret
		if ok, _ := getJSON(v.tx.Bucket(bucketSecrets), []byte(s.Name), &rec); ok {
			if in.Secrets == nil {
				in.Secrets = map[string]uint64{}
			}
			in.Secrets[s.Name] = rec.Version
		}
	}
	for _, c := range spec.Configs {
		var rec Config
		if ok, _ := getJSON(v.tx.Bucket(bucketConfigs), []byte(c.Name), &rec); ok {
			if in.Configs == nil {
				in.Configs = map[string]uint64{}
			}
			in.Configs[c.Name] = rec.Version
		}
	}
	return in
}

// checkInputsExist refuses a manifest that names a secret or config the ledger does not
// have, naming every missing one.
func checkInputsExist(v chainView, svc *manifest.Service) error {
	var missing []string
	for _, s := range svc.Spec.Secrets {
		if v.tx.Bucket(bucketSecrets).Get([]byte(s.Name)) == nil {
			missing = append(missing, "secret "+s.Name)
		}
	}
	for _, c := range svc.Spec.Configs {
		if v.tx.Bucket(bucketConfigs).Get([]byte(c.Name)) == nil {
			missing = append(missing, "config "+c.Name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: service %s names %s, which the network does not have (create with qnet secret put / qnet config put)", ErrNotFound, svc.Metadata.Name, strings.Join(missing, ", "))
	}
	return nil
}

// usersOf returns the services whose current revision names secret (kind "secret") or
// config (kind "config") name.
func usersOf(v chainView, kind, name string) ([]string, error) {
	var out []string
	err := v.tx.Bucket(bucketServices).ForEach(func(k, raw []byte) error {
		var svc Service
		if err := json.Unmarshal(raw, &svc); err != nil {
			return fmt.Errorf("%w: service %q: %v", ErrCorrupt, k, err)
		}
		if svc.Spec == nil {
			return nil
		}
		names := svc.Spec.Spec.SecretNames()
		if kind == "config" {
			names = svc.Spec.Spec.ConfigNames()
		}
		if slices.Contains(names, name) {
			out = append(out, svc.Name)
		}
		return nil
	})
	return out, err
}

// checkSecretKey checks a secret.key transaction: a validator records a key, adds
// shares of the current key, or rotates to a new key with every secret sealed again.
func checkSecretKey(v chainView, signer ledger.KeyInfo, p *ledger.SecretKey) error {
	if !signer.Validator {
		return fmt.Errorf("the network key is kept by validators; node %s is not one", signer.Owner)
	}
	if err := p.Key.Check(); err != nil {
		return fmt.Errorf("secret.key: %w", err)
	}
	if len(p.Shares) == 0 {
		return errors.New("secret.key carries no key shares")
	}
	seen := map[string]bool{}
	for i, sh := range p.Shares {
		if err := sh.Check(); err != nil {
			return fmt.Errorf("secret.key share %d: %w", i, err)
		}
		if sh.KeyID != p.Key.ID {
			return fmt.Errorf("secret.key share %d holds key %s, not %s", i, sh.KeyID, p.Key.ID)
		}
		if seen[sh.Node] {
			return fmt.Errorf("secret.key: node %s has two shares", sh.Node)
		}
		seen[sh.Node] = true
		var n Node
		if ok, err := getJSON(v.tx.Bucket(bucketNodes), []byte(sh.Node), &n); err != nil {
			return err
		} else if !ok || !n.Validator {
			return fmt.Errorf("secret.key share %d is for node %s, which is not a validator", i, sh.Node)
		}
		if want := secret.KeyID(n.Key.HPKE); sh.NodeKey != want {
			return fmt.Errorf("secret.key share for node %s is sealed to node key %s, the node's key is %s", sh.Node, sh.NodeKey, want)
		}
	}
	cur, exists, err := v.networkKey()
	if err != nil {
		return err
	}
	if !exists || cur.Key.ID == p.Key.ID {
		if len(p.Resealed) > 0 {
			return errors.New("secret.key carries resealed secrets but does not rotate the key")
		}
		return nil
	}
	// A rotation: every secret, at its current version, sealed to the new key.
	got := map[string]secret.Sealed{}
	for _, s := range p.Resealed {
		if s.KeyID != p.Key.ID {
			return fmt.Errorf("secret.key rotation: secret %s is sealed to key %s, not the new key %s", s.Name, s.KeyID, p.Key.ID)
		}
		got[s.Name] = s
	}
	var bad []string
	err = v.tx.Bucket(bucketSecrets).ForEach(func(k, raw []byte) error {
		var rec Secret
		if err := json.Unmarshal(raw, &rec); err != nil {
			return fmt.Errorf("%w: secret %q: %v", ErrCorrupt, k, err)
		}
		if s, ok := got[rec.Name]; !ok || s.Version != rec.Version {
			bad = append(bad, fmt.Sprintf("%s v%d", rec.Name, rec.Version))
		}
		delete(got, rec.Name)
		return nil
	})
	if err != nil {
		return err
	}
	for name := range got {
		bad = append(bad, name+" (no such secret)")
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return fmt.Errorf("secret.key rotation to %s must reseal every secret at its current version; wrong or missing: %s (a secret changed meanwhile: rotate again)", p.Key.ID, strings.Join(bad, ", "))
	}
	return nil
}

func checkSecretPut(v chainView, p *ledger.SecretPut) error {
	s := p.Secret
	if err := s.Check(); err != nil {
		return err
	}
	k, ok, err := v.networkKey()
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("the network has no secret key yet (its leader makes one within seconds of starting): try again")
	}
	if s.KeyID != k.Key.ID {
		return fmt.Errorf("secret %s is sealed to network key %s, but the network's key is %s (it was rotated): seal it again", s.Name, s.KeyID, k.Key.ID)
	}
	var cur Secret
	if _, err := getJSON(v.tx.Bucket(bucketSecrets), []byte(s.Name), &cur); err != nil {
		return err
	}
	return secret.CheckNext(s.Name, cur.Version, s.Version)
}

func checkConfigPut(v chainView, p *ledger.ConfigPut) error {
	if secret.ValidateName(p.Name) != nil {
		return fmt.Errorf("config name %q must be a DNS label (1-63 characters of a-z, 0-9 and '-', starting with a letter and not ending with '-'), like nginx-conf", p.Name)
	}
	switch n := len(p.Data); {
	case n == 0:
		return fmt.Errorf("config %s is empty; a config needs at least 1 byte", p.Name)
	case n > ledger.MaxConfigSize:
		return fmt.Errorf("config %s is %d bytes; at most %d (256 KiB) are allowed: bigger data belongs in a depot", p.Name, n, ledger.MaxConfigSize)
	}
	var cur Config
	if _, err := getJSON(v.tx.Bucket(bucketConfigs), []byte(p.Name), &cur); err != nil {
		return err
	}
	if p.Version != cur.Version+1 {
		return fmt.Errorf("config %s: version %d does not follow the current version %d; the next version is %d", p.Name, p.Version, cur.Version, cur.Version+1)
	}
	return nil
}

func checkRemove(v chainView, kind, name string) error {
	b := bucketSecrets
	if kind == "config" {
		b = bucketConfigs
	}
	if v.tx.Bucket(b).Get([]byte(name)) == nil {
		return fmt.Errorf("%w: %s %q", ErrNotFound, kind, name)
	}
	users, err := usersOf(v, kind, name)
	if err != nil {
		return err
	}
	if len(users) > 0 {
		return fmt.Errorf("%s %s is %w by service %s: remove it from their manifests (or delete them) first", kind, name, ErrInUse, strings.Join(users, ", "))
	}
	return nil
}

// precheckInputs is precheck for the transactions of secrets and configs.
func precheckInputs(v chainView, t *ledger.Tx) error {
	switch t.Type {
	case ledger.TxSecretKey:
		var p ledger.SecretKey
		if err := t.Decode(&p); err != nil {
			return err
		}
		info, _, _ := v.Key(t.Signer)
		return checkSecretKey(v, info, &p)
	case ledger.TxSecretPut:
		var p ledger.SecretPut
		if err := t.Decode(&p); err != nil {
			return err
		}
		return checkSecretPut(v, &p)
	case ledger.TxConfigPut:
		var p ledger.ConfigPut
		if err := t.Decode(&p); err != nil {
			return err
		}
		return checkConfigPut(v, &p)
	case ledger.TxSecretRemove, ledger.TxConfigRemove:
		var p ledger.SecretRemove // ConfigRemove has the same form
		if err := t.Decode(&p); err != nil {
			return err
		}
		kind := "secret"
		if t.Type == ledger.TxConfigRemove {
			kind = "config"
		}
		return checkRemove(v, kind, p.Name)
	}
	return nil
}

// applyInputs applies the transactions of secrets and configs; ok is false for other
// types.
func (a *applier) applyInputs(t *ledger.Tx) (ok bool, err error) {
	switch t.Type {
	case ledger.TxSecretKey:
		return true, a.secretKey(t)
	case ledger.TxSecretPut:
		return true, a.secretPut(t)
	case ledger.TxConfigPut:
		return true, a.configPut(t)
	case ledger.TxSecretRemove, ledger.TxConfigRemove:
		return true, a.inputRemove(t)
	}
	return false, nil
}

func (a *applier) secretKey(t *ledger.Tx) error {
	var p ledger.SecretKey
	if err := t.Decode(&p); err != nil {
		return err
	}
	if err := checkSecretKey(a.view, a.signerInfo, &p); err != nil {
		return err
	}
	cur, exists, err := a.view.networkKey()
	if err != nil {
		return err
	}
	kb := a.bucket(bucketSecretKey)
	if exists && cur.Key.ID == p.Key.ID {
		for _, sh := range p.Shares {
			cur.Shares = slices.DeleteFunc(cur.Shares, func(x secret.KeyShare) bool { return x.Node == sh.Node })
			cur.Shares = append(cur.Shares, sh)
		}
		sort.Slice(cur.Shares, func(i, j int) bool { return cur.Shares[i].Node < cur.Shares[j].Node })
		a.event("secret.key.shared", "", "", "", fmt.Sprintf("network key %s shared with %d validator(s)", cur.Key.ID, len(cur.Shares)))
		return putJSON(kb, keyNetworkKey, cur)
	}
	next := NetworkKey{Key: p.Key, Shares: p.Shares, Created: a.block.Time, Height: a.block.Height}
	sort.Slice(next.Shares, func(i, j int) bool { return next.Shares[i].Node < next.Shares[j].Node })
	sb := a.bucket(bucketSecrets)
	for _, s := range p.Resealed {
		var rec Secret
		if ok, err := getJSON(sb, []byte(s.Name), &rec); err != nil || !ok {
			return fmt.Errorf("secret %s vanished during rotation", s.Name)
		}
		rec.Sealed = s // same version, same plaintext: no depot needs to change
		if err := putJSON(sb, []byte(s.Name), rec); err != nil {
			return err
		}
	}
	if exists {
		a.event("secret.key.rotated", "", "", "", fmt.Sprintf("network key %s replaces %s; %d secret(s) sealed again", p.Key.ID, cur.Key.ID, len(p.Resealed)))
	} else {
		a.event("secret.key.created", "", "", "", fmt.Sprintf("network key %s created by node %s", p.Key.ID, a.signerInfo.Owner))
	}
	return putJSON(kb, keyNetworkKey, next)
}

func (a *applier) secretPut(t *ledger.Tx) error {
	var p ledger.SecretPut
	if err := t.Decode(&p); err != nil {
		return err
	}
	if err := checkSecretPut(a.view, &p); err != nil {
		return err
	}
	sb := a.bucket(bucketSecrets)
	var rec Secret
	if _, err := getJSON(sb, []byte(p.Secret.Name), &rec); err != nil {
		return err
	}
	if rec.Version == 0 {
		rec.Created = a.block.Time
	}
	op := a.signerInfo.Owner
	rec.Name, rec.Version, rec.Sealed = p.Secret.Name, p.Secret.Version, p.Secret
	rec.UpdatedBy, rec.Updated, rec.Height = op, a.block.Time, a.block.Height
	if err := putJSON(sb, []byte(rec.Name), rec); err != nil {
		return err
	}
	a.event("secret.put", "", "", "", fmt.Sprintf("secret %s version %d put by %s", rec.Name, rec.Version, op))
	return a.rollInputs(t, "secret", rec.Name, rec.Version)
}

func (a *applier) configPut(t *ledger.Tx) error {
	var p ledger.ConfigPut
	if err := t.Decode(&p); err != nil {
		return err
	}
	if err := checkConfigPut(a.view, &p); err != nil {
		return err
	}
	cb := a.bucket(bucketConfigs)
	var rec Config
	if _, err := getJSON(cb, []byte(p.Name), &rec); err != nil {
		return err
	}
	if rec.Version == 0 {
		rec.Created = a.block.Time
	}
	sum := sha256.Sum256(p.Data)
	op := a.signerInfo.Owner
	rec.Name, rec.Version, rec.Data, rec.SHA256 = p.Name, p.Version, p.Data, hex.EncodeToString(sum[:])
	rec.UpdatedBy, rec.Updated, rec.Height = op, a.block.Time, a.block.Height
	if err := putJSON(cb, []byte(rec.Name), rec); err != nil {
		return err
	}
	a.event("config.put", "", "", "", fmt.Sprintf("config %s version %d (%d bytes) put by %s", rec.Name, rec.Version, len(p.Data), op))
	return a.rollInputs(t, "config", rec.Name, rec.Version)
}

func (a *applier) inputRemove(t *ledger.Tx) error {
	var p ledger.SecretRemove
	if err := t.Decode(&p); err != nil {
		return err
	}
	kind, b := "secret", bucketSecrets
	if t.Type == ledger.TxConfigRemove {
		kind, b = "config", bucketConfigs
	}
	if err := checkRemove(a.view, kind, p.Name); err != nil {
		return err
	}
	if err := a.bucket(b).Delete([]byte(p.Name)); err != nil {
		return err
	}
	a.event(kind+".removed", "", "", "", fmt.Sprintf("%s %s removed by %s", kind, p.Name, a.signerInfo.Owner))
	return nil
}

// rollInputs makes a new revision, with the same spec, of every service that names
// the secret or config that just got a new version: the controllers replace its depots
// as for any new revision, and the new depots get the new version.
func (a *applier) rollInputs(t *ledger.Tx, kind, name string, version uint64) error {
	users, err := usersOf(a.view, kind, name)
	if err != nil {
		return err
	}
	sb := a.bucket(bucketServices)
	for _, svcName := range users {
		var cur Service
		if ok, err := getJSON(sb, []byte(svcName), &cur); err != nil || !ok {
			return fmt.Errorf("service %s: %v", svcName, err)
		}
		op := a.signerInfo.Owner
		cur.Revision++
		cur.AppliedBy, cur.TxID, cur.Height, cur.Updated = op, t.ID(), a.block.Height, a.block.Time
		if err := putJSON(sb, []byte(cur.Name), cur); err != nil {
			return err
		}
		rev := Revision{Service: cur.Name, Revision: cur.Revision, Spec: cur.Spec, AppliedBy: op, TxID: t.ID(), Height: a.block.Height, At: a.block.Time}
		rev.Inputs = inputsOf(a.view, &cur.Spec.Spec)
		if err := putJSON(a.bucket(bucketRevisions), revisionKey(cur.Name, cur.Revision), rev); err != nil {
			return err
		}
		a.event("service.applied", cur.Name, "", "", fmt.Sprintf("revision %d of %s: %s %s is now version %d", cur.Revision, cur.Name, kind, name, version))
	}
	return nil
}

// NetworkKey returns the network's secret key record; ok is false before the leader
// made one.
func (s *Store) NetworkKey() (k NetworkKey, ok bool, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		k, ok, err = chainView{s, tx}.networkKey()
		return err
	})
	return k, ok, err
}

// Secret returns a secret's record, sealed.
func (s *Store) Secret(name string) (Secret, bool, error) { return get[Secret](s, bucketSecrets, name) }

// Secrets returns every secret's record, sealed, by name.
func (s *Store) Secrets() ([]Secret, error) { return list[Secret](s, bucketSecrets, nil) }

// SecretInfos returns what may be shown of every secret, by name, with the services
// that use it.
func (s *Store) SecretInfos() ([]SecretInfo, error) {
	var out []SecretInfo
	err := s.view(func(tx *bolt.Tx) error {
		v := chainView{s, tx}
		return tx.Bucket(bucketSecrets).ForEach(func(k, raw []byte) error {
			var rec Secret
			if err := json.Unmarshal(raw, &rec); err != nil {
				return fmt.Errorf("%w: secret %q: %v", ErrCorrupt, k, err)
			}
			info := rec.Info()
			var err error
			info.UsedBy, err = usersOf(v, "secret", rec.Name)
			out = append(out, info)
			return err
		})
	})
	return out, err
}

// Config returns a configuration, with the services that use it.
func (s *Store) Config(name string) (Config, bool, error) {
	var (
		c  Config
		ok bool
	)
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		if ok, err = getJSON(tx.Bucket(bucketConfigs), []byte(name), &c); err != nil || !ok {
			return err
		}
		c.UsedBy, err = usersOf(chainView{s, tx}, "config", name)
		return err
	})
	return c, ok, err
}

// Configs returns every configuration, by name, with the services that use it.
func (s *Store) Configs() ([]Config, error) {
	var out []Config
	err := s.view(func(tx *bolt.Tx) error {
		v := chainView{s, tx}
		return tx.Bucket(bucketConfigs).ForEach(func(k, raw []byte) error {
			var c Config
			if err := json.Unmarshal(raw, &c); err != nil {
				return fmt.Errorf("%w: config %q: %v", ErrCorrupt, k, err)
			}
			var err error
			c.UsedBy, err = usersOf(v, "config", c.Name)
			out = append(out, c)
			return err
		})
	})
	return out, err
}
