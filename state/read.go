package state

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"sort"

	bolt "go.etcd.io/bbolt"

	"qnet.dev/qnet/ledger"
)

// Tip returns the last applied block; ok is false before genesis.
func (s *Store) Tip() (t Tip, ok bool, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		ok, err = getJSON(tx.Bucket(bucketMeta), keyTip, &t)
		return err
	})
	return t, ok, err
}

// Block returns the encoded block at height.
func (s *Store) Block(height uint64) ([]byte, error) {
	var out []byte
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketBlocks).Get(be64(height))
		if v == nil {
			return fmt.Errorf("%w: block %d", ErrNotFound, height)
		}
		out = bytes.Clone(v)
		return nil
	})
	return out, err
}

// Blocks returns a BlockSource over the stored chain from genesis, read in one
// consistent view, for ledger.Verify. Call the returned close when done.
func (s *Store) Blocks() (next ledger.BlockSource, closeFn func(), err error) {
	s.mu.RLock()
	tx, err := s.db.Begin(false)
	if err != nil {
		s.mu.RUnlock()
		return nil, nil, err
	}
	c := tx.Bucket(bucketBlocks).Cursor()
	k, v := c.First()
	next = func() (h uint64, data []byte, err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("%w: %v", ErrCorrupt, r)
			}
		}()
		if k == nil {
			return 0, nil, io.EOF
		}
		if len(k) != 8 {
			return 0, nil, fmt.Errorf("%w: block key %x", ErrCorrupt, k)
		}
		h, data = binary.BigEndian.Uint64(k), v
		k, v = c.Next()
		return h, data, nil
	}
	return next, func() { tx.Rollback(); s.mu.RUnlock() }, nil
}

// Tx returns where a transaction was committed.
func (s *Store) Tx(id ledger.Hash) (r TxRecord, ok bool, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		ok, err = getJSON(tx.Bucket(bucketTxs), id[:], &r)
		return err
	})
	return r, ok, err
}

func list[T any](s *Store, bucket []byte, keep func(*T) bool) ([]T, error) {
	var out []T
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			var x T
			if err := json.Unmarshal(v, &x); err != nil {
				return fmt.Errorf("%w: %s record %q: %v", ErrCorrupt, bucket, k, err)
			}
			if keep == nil || keep(&x) {
				out = append(out, x)
			}
			return nil
		})
	})
	return out, err
}

func get[T any](s *Store, bucket []byte, key string) (x T, ok bool, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		ok, err = getJSON(tx.Bucket(bucket), []byte(key), &x)
		return err
	})
	return x, ok, err
}

// Services returns all services, by name.
func (s *Store) Services() ([]Service, error) { return list[Service](s, bucketServices, nil) }

// Service returns one service.
func (s *Store) Service(name string) (Service, bool, error) {
	return get[Service](s, bucketServices, name)
}

// Revisions returns the revisions of a service, oldest first.
func (s *Store) Revisions(name string) ([]Revision, error) {
	var out []Revision
	prefix := append([]byte(name), 0)
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRevisions).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var r Revision
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("%w: revision %q: %v", ErrCorrupt, k, err)
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// Revision returns one revision of a service.
func (s *Store) Revision(name string, rev uint64) (Revision, bool, error) {
	return get[Revision](s, bucketRevisions, string(revisionKey(name, rev)))
}

// Placements returns placements, all of them or those keep selects, ordered by service
// then slot.
func (s *Store) Placements(keep func(*Placement) bool) ([]Placement, error) {
	out, err := list(s, bucketPlacements, keep)
	sort.Slice(out, func(i, j int) bool {
		if out[i].Service != out[j].Service {
			return out[i].Service < out[j].Service
		}
		if out[i].Slot != out[j].Slot {
			return out[i].Slot < out[j].Slot
		}
		return out[i].ID < out[j].ID
	})
	return out, err
}

// Placement returns one placement.
func (s *Store) Placement(id string) (Placement, bool, error) {
	return get[Placement](s, bucketPlacements, id)
}

// Nodes returns all nodes.
func (s *Store) Nodes() ([]Node, error) { return list[Node](s, bucketNodes, nil) }

// Node returns one node.
func (s *Store) Node(id string) (Node, bool, error) { return get[Node](s, bucketNodes, id) }

// Operators returns all operators.
func (s *Store) Operators() ([]Operator, error) { return list[Operator](s, bucketOperators, nil) }

// Keys returns every registered key.
func (s *Store) Keys() ([]ledger.KeyInfo, error) {
	var out []ledger.KeyInfo
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		out, err = chainView{s, tx}.Keys()
		return err
	})
	return out, err
}

// Token returns a join token.
func (s *Store) Token(id string) (ledger.Token, bool, error) {
	return get[ledger.Token](s, bucketTokens, id)
}

// Tokens returns every join token.
func (s *Store) Tokens() ([]ledger.Token, error) { return list[ledger.Token](s, bucketTokens, nil) }

// Key returns a registered key.
func (s *Store) Key(id string) (info ledger.KeyInfo, ok bool, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		info, _, ok = chainView{s, tx}.Key(id)
		return nil
	})
	return info, ok, err
}

// Revoked reports whether a node's Ed25519 key was revoked (its node removed, or its
// keys rotated).
func (s *Store) Revoked(ed25519 []byte) bool {
	found := false
	s.view(func(tx *bolt.Tx) error {
		found = tx.Bucket(bucketRevoked).Get(ed25519) != nil
		return nil
	})
	return found
}
