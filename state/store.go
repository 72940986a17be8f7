package state

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"qnet.dev/qnet/ledger"
)

var (
	bucketMeta       = []byte("meta")
	bucketBlocks     = []byte("blocks")
	bucketTxs        = []byte("txs")
	bucketKeys       = []byte("keys")
	bucketOperators  = []byte("operators")
	bucketNodes      = []byte("nodes")
	bucketServices   = []byte("services")
	bucketRevisions  = []byte("revisions")
	bucketPlacements = []byte("placements")
	bucketTokens     = []byte("tokens")
	bucketRevoked    = []byte("revoked")

	allBuckets = [][]byte{bucketMeta, bucketBlocks, bucketTxs, bucketKeys, bucketOperators,
		bucketNodes, bucketServices, bucketRevisions, bucketPlacements, bucketTokens, bucketRevoked, bucketVIPs, bucketReceipts,
		bucketSecretKey, bucketSecrets, bucketConfigs}

	keyTip     = []byte("tip")
	keyApplied = []byte("applied")
)

// ErrCorrupt is returned (wrapped) when the state file cannot be read as a state store.
var ErrCorrupt = errors.New("state store is corrupt")

// Store is the state store. It is safe for concurrent use; ApplyBlock calls must come
// from one goroutine (the ordering layer's).
type Store struct {
	path string
	// mu guards db against Restore swapping it; everything else takes it for reading.
	mu sync.RWMutex
	db *bolt.DB

	sigs *ledger.VerifiedSet

	vmu  sync.Mutex
	keys map[string]*cachedKey

	watchMu sync.Mutex
	version uint64
	changed chan struct{}

	subMu  sync.Mutex
	subs   map[int]func([]Event)
	nextID int
}

// Open opens (or creates) the state store at path. A file that is not a valid store is
// reported with ErrCorrupt and left untouched.
func Open(path string) (*Store, error) {
	db, err := openDB(path)
	if err != nil {
		return nil, err
	}
	return &Store{
		path: path, db: db,
		sigs:    ledger.NewVerifiedSet(1 << 16),
		keys:    map[string]*cachedKey{},
		changed: make(chan struct{}),
		subs:    map[int]func([]Event){},
	}, nil
}

func openDB(path string) (db *bolt.DB, err error) {
	// bbolt panics on some kinds of damage; a damaged file must give an error instead.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("open %s: %w: %v (the file was left as it is; restore it from a backup or remove the data dir to rejoin)", path, ErrCorrupt, r)
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, NoFreelistSync: true})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("open %s: another qnet process holds it (stop it or use another --data-dir)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w: %v (the file was left as it is; restore it from a backup or remove the data dir to rejoin)", path, ErrCorrupt, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w: %v", path, ErrCorrupt, err)
	}
	return db, nil
}

// Close closes the store.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.db.Close()
}

// SigCache is the cache of verified transaction signatures shared by the door (API) and
// ApplyBlock.
func (s *Store) SigCache() ledger.SigCache { return s.sigs }

// Check walks every page of the file, as `qnet ledger verify` does before it re-checks
// the chain.
func (s *Store) Check() (err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("check %s: %w: %v", s.path, ErrCorrupt, r)
		}
	}()
	// Check reads the freelist, which a block written meanwhile changes: in a read-only
	// transaction it then reports pages as "reachable freed" in a sound file. A write
	// transaction holds writers off for the walk; it is rolled back.
	tx, err := s.db.Begin(true)
	if err != nil {
		return fmt.Errorf("check %s: %w", s.path, err)
	}
	defer tx.Rollback()
	for err := range tx.Check() {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return nil
}

func (s *Store) view(fn func(*bolt.Tx) error) (err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("read %s: %w: %v", s.path, ErrCorrupt, r)
		}
	}()
	return s.db.View(fn)
}

// Watch returns the current version of the state and a channel closed when it changes.
func (s *Store) Watch() (uint64, <-chan struct{}) {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	return s.version, s.changed
}

func (s *Store) bump() {
	s.watchMu.Lock()
	s.version++
	close(s.changed)
	s.changed = make(chan struct{})
	s.watchMu.Unlock()
}

// Subscribe calls fn with the events of every applied block until the returned cancel
// is called. fn must not block.
func (s *Store) Subscribe(fn func([]Event)) (cancel func()) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	id := s.nextID
	s.nextID++
	s.subs[id] = fn
	return func() {
		s.subMu.Lock()
		delete(s.subs, id)
		s.subMu.Unlock()
	}
}

func (s *Store) publish(evs []Event) {
	if len(evs) == 0 {
		return
	}
	s.subMu.Lock()
	defer s.subMu.Unlock()
	for _, fn := range s.subs {
		fn(evs)
	}
}

// LastApplied is the index of the last ordering-log entry applied (0 if none).
func (s *Store) LastApplied() uint64 {
	var n uint64
	s.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyApplied); len(v) == 8 {
			n = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	return n
}

// Snapshot writes a consistent copy of the whole store to w.
func (s *Store) Snapshot(w io.Writer) error {
	return s.view(func(tx *bolt.Tx) error {
		_, err := tx.WriteTo(w)
		return err
	})
}

// Restore replaces the store with a snapshot written by Snapshot. The new file is
// written and synced beside the old one and renamed over it, so a failure leaves the old
// state in place.
func (s *Store) Restore(r io.Reader) error {
	tmp := s.path + ".restore"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("restore state: %w", err)
	}
	defer os.Remove(tmp)
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("restore state: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("restore state: %w", err)
	}
	f.Close()
	check, err := openDB(tmp)
	if err != nil {
		return fmt.Errorf("restore state: snapshot is not a valid store: %w", err)
	}
	check.Close()

	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("restore state: close: %w", err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("restore state: %w", err)
	}
	db, err := openDB(s.path)
	if err != nil {
		return fmt.Errorf("restore state: reopen: %w", err)
	}
	s.db = db
	s.vmu.Lock()
	s.keys = map[string]*cachedKey{}
	s.vmu.Unlock()
	s.bump()
	return nil
}

func be64(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func getJSON(b *bolt.Bucket, key []byte, v any) (bool, error) {
	data := b.Get(key)
	if data == nil {
		return false, nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("%w: record %q: %v", ErrCorrupt, key, err)
	}
	return true, nil
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, data)
}

// BeginSnapshot captures the store as it is now, for the ordering layer's snapshot: the
// capture is taken at once (so it matches the log index the snapshot is for) and written
// later with writeTo; release must be called when done.
func (s *Store) BeginSnapshot() (writeTo func(io.Writer) error, release func(), err error) {
	s.mu.RLock()
	tx, err := s.db.Begin(false)
	if err != nil {
		s.mu.RUnlock()
		return nil, nil, fmt.Errorf("snapshot state: %w", err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			tx.Rollback()
			s.mu.RUnlock()
		})
	}
	writeTo = func(w io.Writer) error {
		_, err := tx.WriteTo(w)
		return err
	}
	return writeTo, release, nil
}
