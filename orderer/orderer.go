// Package orderer orders transactions into blocks with hashicorp/raft. The raft leader
// is the proposer: it collects submitted transactions, checks them, cuts them into a
// block on the current tip, signs it and appends it to the raft log; every voter and
// follower applies committed blocks to its state store through the FSM. One voter or
// five, the code is the same.
//
// The rest of QNet sees only the Orderer's Submit, so a BFT engine can take raft's place.
package orderer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"qnet.dev/qnet/identity"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/state"
)

// ErrNotLeader is returned when a transaction reaches a node that cannot order it and
// no leader is known to forward it to.
var ErrNotLeader = errors.New("this node is not the ordering leader and no leader is known")

// ErrClosed is returned after Close.
var ErrClosed = errors.New("orderer closed")

// Config configures an Orderer.
type Config struct {
	// NodeID is this node's ID, its raft server ID.
	NodeID string
	// Dir holds the raft log and snapshots.
	Dir string
	// Key signs the blocks this node proposes (read at each block: node keys rotate).
	Key *identity.Current
	// Store is the state store blocks are applied to.
	Store *state.Store
	// Transport carries raft's messages between validators.
	Transport raft.Transport
	// Bootstrap makes this node the first voter of a new network.
	Bootstrap bool
	// MaxBlockTxs bounds a block.
	MaxBlockTxs int
	// HeartbeatTimeout, ElectionTimeout and LeaderLeaseTimeout are raft's timings.
	HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout time.Duration
	// Now is the clock blocks are stamped with.
	Now func() time.Time
	// Logger receives the orderer's and raft's logs.
	Logger *slog.Logger
}

// DefaultConfig returns timings suited to a LAN.
func DefaultConfig() Config {
	return Config{
		MaxBlockTxs:        2000,
		HeartbeatTimeout:   500 * time.Millisecond,
		ElectionTimeout:    500 * time.Millisecond,
		LeaderLeaseTimeout: 250 * time.Millisecond,
		Now:                time.Now,
		Logger:             slog.Default(),
	}
}

// Validate refuses a configuration that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.NodeID == "":
		return errors.New("orderer: NodeID is required")
	case c.Dir == "":
		return errors.New("orderer: Dir is required")
	case c.Key == nil:
		return errors.New("orderer: Key is required")
	case c.Store == nil:
		return errors.New("orderer: Store is required")
	case c.Transport == nil:
		return errors.New("orderer: Transport is required")
	case c.MaxBlockTxs < 1 || c.MaxBlockTxs > ledger.MaxBlockTxs:
		return fmt.Errorf("orderer: MaxBlockTxs must be between 1 and %d", ledger.MaxBlockTxs)
	case c.LeaderLeaseTimeout > c.HeartbeatTimeout:
		return errors.New("orderer: LeaderLeaseTimeout must not exceed HeartbeatTimeout")
	case c.Now == nil || c.Logger == nil:
		return errors.New("orderer: Now and Logger are required")
	}
	return nil
}

// Result is what became of one submitted transaction.
type Result struct {
	ID     ledger.Hash
	Height uint64
	// Err is set when the transaction was refused or, once committed, could not take
	// effect.
	Err error
}

type pending struct {
	tx   *ledger.Tx
	done chan Result
}

// Orderer orders transactions into blocks.
type Orderer struct {
	cfg   Config
	raft  *raft.Raft
	store *raftboltdb.BoltStore
	log   *slog.Logger

	queue  chan *pending
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed chan struct{}
	once   sync.Once
}

// New starts raft and the block cutter.
func New(cfg Config) (*Orderer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("orderer: %w", err)
	}
	logStore, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.Dir, "raft.db")})
	if err != nil {
		return nil, fmt.Errorf("orderer: open raft log %s: %w", filepath.Join(cfg.Dir, "raft.db"), err)
	}
	hlog := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: slogWriter{cfg.Logger}})
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hlog)
	if err != nil {
		logStore.Close()
		return nil, fmt.Errorf("orderer: snapshot store: %w", err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = 5 * time.Millisecond
	// The state store is durable and remembers the last applied index, so raft need not
	// rebuild it from a snapshot at every start.
	rc.NoSnapshotRestoreOnStart = true
	rc.Logger = hlog
	if err := raft.ValidateConfig(rc); err != nil {
		logStore.Close()
		return nil, fmt.Errorf("orderer: %w", err)
	}
	if cfg.Bootstrap {
		has, err := raft.HasExistingState(logStore, logStore, snaps)
		if err != nil {
			logStore.Close()
			return nil, fmt.Errorf("orderer: %w", err)
		}
		if !has {
			conf := raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: cfg.Transport.LocalAddr()}}}
			if err := raft.BootstrapCluster(rc, logStore, logStore, snaps, cfg.Transport, conf); err != nil {
				logStore.Close()
				return nil, fmt.Errorf("orderer: bootstrap: %w", err)
			}
		}
	}
	r, err := raft.NewRaft(rc, &fsm{store: cfg.Store, log: cfg.Logger}, logStore, logStore, snaps, cfg.Transport)
	if err != nil {
		logStore.Close()
		return nil, fmt.Errorf("orderer: start raft: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	o := &Orderer{
		cfg: cfg, raft: r, store: logStore, log: cfg.Logger,
		queue: make(chan *pending, 4*cfg.MaxBlockTxs), cancel: cancel, closed: make(chan struct{}),
	}
	o.wg.Go(func() { o.cut(ctx) })
	return o, nil
}

// Raft exposes the raft instance to the parts that manage membership.
func (o *Orderer) Raft() *raft.Raft { return o.raft }

// IsLeader reports whether this node is the ordering leader now.
func (o *Orderer) IsLeader() bool { return o.raft.State() == raft.Leader }

// WaitLeader blocks until some node is leader (this one or another), or ctx ends.
func (o *Orderer) WaitLeader(ctx context.Context) error {
	obs := make(chan raft.Observation, 4)
	ob := raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	o.raft.RegisterObserver(ob)
	defer o.raft.DeregisterObserver(ob)
	for {
		if addr, _ := o.raft.LeaderWithID(); addr != "" {
			return nil
		}
		select {
		case <-obs:
		case <-ctx.Done():
			return fmt.Errorf("waiting for an ordering leader: %w", ctx.Err())
		case <-o.closed:
			return ErrClosed
		}
	}
}

// Submit hands transactions to the leader and waits until each is committed or refused.
// The transactions should have been checked at the door (state.Store.CheckTx); they are
// checked again when the block is cut and when it is applied.
func (o *Orderer) Submit(ctx context.Context, txs []*ledger.Tx) ([]Result, error) {
	if !o.IsLeader() {
		return nil, ErrNotLeader
	}
	ps := make([]*pending, len(txs))
	for i, t := range txs {
		ps[i] = &pending{tx: t, done: make(chan Result, 1)}
		select {
		case o.queue <- ps[i]:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-o.closed:
			return nil, ErrClosed
		}
	}
	out := make([]Result, len(txs))
	for i, p := range ps {
		select {
		case out[i] = <-p.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for commit: %w", ctx.Err())
		case <-o.closed:
			return nil, ErrClosed
		}
	}
	return out, nil
}

// maxInFlight bounds the blocks proposed but not yet applied. Proposing the next block
// while the last one commits keeps the CPUs busy while raft waits on the disk.
const maxInFlight = 4

// flight is a proposed block on its way through raft.
type flight struct {
	block  *ledger.Block
	kept   []*pending
	future raft.ApplyFuture
}

// cutter is the state of the block cutter, owned by its goroutine.
type cutter struct {
	o *Orderer
	// next is where the next block goes: on the last proposed block, or, when nothing is
	// in flight or a block was refused, on the store's tip.
	next struct {
		valid  bool
		height uint64
		hash   ledger.Hash
		at     time.Time
	}
	network ledger.Hash
	flights chan *flight
	done    sync.WaitGroup

	mu       sync.Mutex
	inFlight map[ledger.Hash]bool // IDs of transactions in proposed blocks
	count    int                  // blocks in flight
	refused  bool                 // a block was refused: re-read the tip once all landed
	drained  *sync.Cond
}

// cut is the block cutter: it runs for the life of the orderer and, on the leader,
// turns queued transactions into blocks, up to maxInFlight at a time; a second goroutine
// waits for each block in order and answers its submitters.
func (o *Orderer) cut(ctx context.Context) {
	c := &cutter{o: o, flights: make(chan *flight, maxInFlight), inFlight: map[ledger.Hash]bool{}}
	c.drained = sync.NewCond(&c.mu)
	c.done.Go(c.land)
	defer func() {
		close(c.flights)
		c.done.Wait()
	}()
	for {
		var batch []*pending
		select {
		case <-ctx.Done():
			return
		case p := <-o.queue:
			batch = append(batch, p)
		}
	drain:
		for len(batch) < o.cfg.MaxBlockTxs {
			select {
			case p := <-o.queue:
				batch = append(batch, p)
			default:
				break drain
			}
		}
		c.propose(batch)
	}
}

func fail(ps []*pending, err error) {
	for _, p := range ps {
		p.done <- Result{ID: p.tx.ID(), Err: err}
	}
}

func (c *cutter) propose(batch []*pending) {
	o := c.o
	if !o.IsLeader() {
		fail(batch, ErrNotLeader)
		return
	}
	c.mu.Lock()
	if c.refused || !c.next.valid {
		// Start again from what is applied, once nothing is in flight.
		for c.count > 0 {
			c.drained.Wait()
		}
		c.refused = false
		c.mu.Unlock()
		tip, ok, err := o.cfg.Store.Tip()
		if err != nil || !ok {
			fail(batch, fmt.Errorf("read chain tip: %v", err))
			return
		}
		c.mu.Lock()
		c.network = tip.Network
		c.next.valid, c.next.height, c.next.hash, c.next.at = true, tip.Height+1, tip.Hash, tip.Time
	}
	next := c.next
	c.mu.Unlock()

	at := o.cfg.Now()
	if at.Before(next.at) {
		at = next.at
	}
	var (
		txs  []*ledger.Tx
		kept []*pending
		seen = map[ledger.Hash]bool{}
	)
	for _, p := range batch {
		id := p.tx.ID()
		c.mu.Lock()
		pending := c.inFlight[id]
		c.mu.Unlock()
		if seen[id] || pending {
			p.done <- Result{ID: id, Err: fmt.Errorf("%w: %s is already on its way into a block", ledger.ErrReplay, id.Short())}
			continue
		}
		if err := o.cfg.Store.CheckTxChain(p.tx, at); err != nil {
			p.done <- Result{ID: id, Err: err}
			continue
		}
		seen[id] = true
		txs = append(txs, p.tx)
		kept = append(kept, p)
	}
	if len(txs) == 0 {
		return
	}
	b, err := ledger.NewBlock(c.network, next.height, next.hash, at, txs, o.cfg.Key.Get())
	if err != nil {
		fail(kept, err)
		return
	}
	data, err := b.Encode()
	if err != nil {
		fail(kept, err)
		return
	}
	c.mu.Lock()
	for id := range seen {
		c.inFlight[id] = true
	}
	c.count++
	c.next.height, c.next.hash, c.next.at = b.Height+1, b.Hash, b.Time
	c.mu.Unlock()
	// Blocks here once maxInFlight blocks are on their way: the cutter waits for raft.
	c.flights <- &flight{block: b, kept: kept, future: o.raft.Apply(data, 30*time.Second)}
}

// land waits for proposed blocks in order and answers their submitters.
func (c *cutter) land() {
	for f := range c.flights {
		var refusal error
		if err := f.future.Error(); err != nil {
			refusal = fmt.Errorf("commit block %d: %w", f.block.Height, err)
			fail(f.kept, refusal)
		} else {
			switch r := f.future.Response().(type) {
			case error:
				refusal = fmt.Errorf("block %d refused: %w", f.block.Height, r)
				fail(f.kept, refusal)
			case *state.Applied:
				for i, p := range f.kept {
					res := Result{ID: p.tx.ID(), Height: r.Height}
					if msg := r.Results[i]; msg != "" {
						res.Err = errors.New(msg)
					}
					p.done <- res
				}
			default:
				// Applied before (a replayed log entry): cannot happen for a new entry, but
				// never leave a submitter waiting.
				refusal = fmt.Errorf("block %d: no result", f.block.Height)
				fail(f.kept, refusal)
			}
		}
		if refusal != nil {
			c.o.log.Warn("block not applied", "height", f.block.Height, "err", refusal)
		}
		c.mu.Lock()
		for _, p := range f.kept {
			delete(c.inFlight, p.tx.ID())
		}
		c.count--
		if refusal != nil {
			c.refused = true
		}
		if c.count == 0 {
			c.drained.Broadcast()
		}
		c.mu.Unlock()
	}
}

// Close stops the block cutter and raft.
func (o *Orderer) Close() error {
	var err error
	o.once.Do(func() {
		close(o.closed)
		o.cancel()
		o.wg.Wait()
		err = o.raft.Shutdown().Error()
		if cerr := o.store.Close(); err == nil {
			err = cerr
		}
	})
	return err
}

// fsm applies committed blocks to the state store.
type fsm struct {
	store *state.Store
	log   *slog.Logger
}

func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	res, err := f.store.ApplyBlock(l.Data, l.Index)
	if err != nil {
		f.log.Warn("block refused", "index", l.Index, "err", err)
		return err
	}
	return res
}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	writeTo, release, err := f.store.BeginSnapshot()
	if err != nil {
		return nil, err
	}
	return &snapshot{writeTo: writeTo, release: release}, nil
}

func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	return f.store.Restore(rc)
}

type snapshot struct {
	writeTo func(io.Writer) error
	release func()
}

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.writeTo(sink); err != nil {
		sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *snapshot) Release() { s.release() }

// slogWriter forwards hclog's lines to slog.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Info(string(trimNewline(p)), "part", "raft")
	return len(p), nil
}

func trimNewline(p []byte) []byte {
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	return p
}
