// Package swarm distributes depots between nodes. A node that needs a blob (an image
// layer, a module) fetches it from the peers that hold it, in chunks, from several
// peers at once, and serves the chunks it already has to the others while it fetches:
// four nodes that need one image at the same moment take it from its origin about once,
// not four times. Every chunk is checked against the chunk hashes of a peer that holds
// the whole blob, and the whole blob against its digest; a peer that serves a bad chunk
// or bad hashes is avoided from then on. All of it travels through the mesh's tunnels.
package swarm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"qnet.dev/qnet/ctxtime"
	"qnet.dev/qnet/depot"
	"qnet.dev/qnet/mesh"
)

// ChunkSize is the unit of transfer and of checking.
const ChunkSize = 4 << 20

// Services on the mesh.
const (
	haveMethod   = "blob.have"
	chunksMethod = "blob.chunks"
	getService   = "blob.get"
)

// Config configures a Swarm.
type Config struct {
	Mesh  *mesh.Mesh
	Store *depot.Store
	// Peers lists the live nodes other than this one.
	Peers func() []string
	// Workers is how many chunks are fetched at once.
	Workers int
	Logger  *slog.Logger
}

// Swarm is this node's part in depot distribution.
type Swarm struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	partial map[depot.Digest]*download
	bad     map[string]string // peers that served bad data, and why
	hashes  map[depot.Digest]chunkList

	served atomic.Int64
}

// New registers the swarm's services on the mesh.
func New(cfg Config) *Swarm {
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Swarm{
		cfg: cfg, log: cfg.Logger.With("part", "swarm"),
		partial: map[depot.Digest]*download{}, bad: map[string]string{}, hashes: map[depot.Digest]chunkList{},
	}
	cfg.Mesh.HandleRPC(haveMethod, false, s.handleHave)
	cfg.Mesh.HandleRPC(chunksMethod, false, s.handleChunks)
	cfg.Mesh.Handle(getService, false, s.serveGet)
	return s
}

// Served is how many blob bytes this node has served to others.
func (s *Swarm) Served() int64 { return s.served.Load() }

// Bad lists the peers found serving bad data, with why.
func (s *Swarm) Bad() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.bad))
	for k, v := range s.bad {
		out[k] = v
	}
	return out
}

func (s *Swarm) blame(peer, why string) {
	s.mu.Lock()
	s.bad[peer] = why
	s.mu.Unlock()
	s.log.Warn("peer served bad depot data; avoiding it", "peer", peer, "why", why)
}

func (s *Swarm) isBad(peer string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, bad := s.bad[peer]
	return bad
}

// haveRequest asks which of some blobs a peer holds.
type haveRequest struct {
	Digests []depot.Digest `json:"digests"`
}

// holding is what a peer holds of one blob.
type holding struct {
	Size     int64 `json:"size"`
	Complete bool  `json:"complete"`
	// Fetching says the peer is fetching the blob itself; Chunks marks the chunks it
	// has so far, one bit each.
	Fetching bool   `json:"fetching,omitempty"`
	Chunks   []byte `json:"chunks,omitempty"`
}

func (s *Swarm) handleHave(_ context.Context, _ mesh.Peer, raw json.RawMessage) (any, error) {
	var req haveRequest
	if err := json.Unmarshal(raw, &req); err != nil || len(req.Digests) > 1024 {
		return nil, fmt.Errorf("bad blob.have request")
	}
	out := map[depot.Digest]holding{}
	for _, d := range req.Digests {
		if _, err := depot.ParseDigest(string(d)); err != nil {
			continue
		}
		if s.cfg.Store.Has(d) {
			size, err := s.cfg.Store.Size(d)
			if err == nil {
				out[d] = holding{Size: size, Complete: true}
			}
			continue
		}
		s.mu.Lock()
		if dl, ok := s.partial[d]; ok {
			out[d] = holding{Size: dl.size(), Fetching: true, Chunks: dl.bitmap()}
		}
		s.mu.Unlock()
	}
	return out, nil
}

// chunkList is the hashes of a blob's chunks.
type chunkList struct {
	Size   int64    `json:"size"`
	Chunk  int64    `json:"chunk"`
	Hashes [][]byte `json:"hashes"`
}

func (c chunkList) count() int { return int((c.Size + c.Chunk - 1) / c.Chunk) }

func (c chunkList) span(i int) (off, n int64) {
	off = int64(i) * c.Chunk
	return off, min(c.Chunk, c.Size-off)
}

func (s *Swarm) handleChunks(ctx context.Context, _ mesh.Peer, raw json.RawMessage) (any, error) {
	var d depot.Digest
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("bad blob.chunks request")
	}
	if _, err := depot.ParseDigest(string(d)); err != nil {
		return nil, err
	}
	return s.chunkHashes(ctx, d)
}

// chunkHashes hashes a blob this node holds whole, chunk by chunk (cached).
func (s *Swarm) chunkHashes(ctx context.Context, d depot.Digest) (chunkList, error) {
	s.mu.Lock()
	if c, ok := s.hashes[d]; ok {
		s.mu.Unlock()
		return c, nil
	}
	s.mu.Unlock()
	f, err := s.cfg.Store.Open(d)
	if err != nil {
		return chunkList{}, err
	}
	defer f.Close()
	size, err := s.cfg.Store.Size(d)
	if err != nil {
		return chunkList{}, err
	}
	c := chunkList{Size: size, Chunk: ChunkSize}
	buf := make([]byte, ChunkSize)
	for off := int64(0); off < size; off += ChunkSize {
		if ctx.Err() != nil {
			return chunkList{}, ctx.Err()
		}
		n, err := io.ReadFull(f, buf[:min(ChunkSize, size-off)])
		if err != nil {
			return chunkList{}, fmt.Errorf("read blob %s: %w", d.Short(), err)
		}
		sum := sha256.Sum256(buf[:n])
		c.Hashes = append(c.Hashes, sum[:])
	}
	s.mu.Lock()
	if len(s.hashes) > 256 {
		s.hashes = map[depot.Digest]chunkList{}
	}
	s.hashes[d] = c
	s.mu.Unlock()
	return c, nil
}

// getRequest asks for a range of a blob.
type getRequest struct {
	Digest depot.Digest `json:"digest"`
	Offset int64        `json:"offset"`
	Length int64        `json:"length"`
}

func (s *Swarm) serveGet(ctx context.Context, conn net.Conn, peer mesh.Peer) {
	var req getRequest
	if err := json.NewDecoder(io.LimitReader(conn, 4096)).Decode(&req); err != nil {
		return
	}
	if _, err := depot.ParseDigest(string(req.Digest)); err != nil || req.Offset < 0 || req.Length <= 0 || req.Length > ChunkSize {
		return
	}
	var r io.ReaderAt
	var closer io.Closer
	if s.cfg.Store.Has(req.Digest) {
		path, err := s.cfg.Store.Path(req.Digest)
		if err != nil {
			return
		}
		f, err := os.Open(path)
		if err != nil {
			return
		}
		r, closer = f, f
	} else {
		s.mu.Lock()
		dl, ok := s.partial[req.Digest]
		s.mu.Unlock()
		if !ok || !dl.covers(req.Offset, req.Length) {
			return
		}
		r = dl.file
	}
	if closer != nil {
		defer closer.Close()
	}
	n, _ := io.Copy(conn, io.NewSectionReader(r, req.Offset, req.Length))
	s.served.Add(n)
}

// OpenBlob implements depot.BlobSource: the blob, from this node's store or fetched
// from the peers that hold it.
func (s *Swarm) OpenBlob(ctx context.Context, d depot.Digest) (io.ReadCloser, error) {
	if s.cfg.Store.Has(d) {
		return s.cfg.Store.Open(d)
	}
	s.mu.Lock()
	if dl, ok := s.partial[d]; ok {
		// Another depot of this node fetches it already: wait for that.
		s.mu.Unlock()
		select {
		case <-dl.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if dl.err != nil {
			return nil, dl.err
		}
		return dl.reader()
	}
	dl := &download{digest: d, done: make(chan struct{})}
	s.partial[d] = dl
	s.mu.Unlock()
	dl.err = s.fetch(ctx, dl)
	close(dl.done)
	s.mu.Lock()
	delete(s.partial, d)
	s.mu.Unlock()
	if dl.err != nil {
		dl.discard()
		return nil, dl.err
	}
	return dl.reader()
}

// holders asks the live peers what they hold of d.
func (s *Swarm) holders(ctx context.Context, d depot.Digest) map[string]holding {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var mu sync.Mutex
	out := map[string]holding{}
	var wg sync.WaitGroup
	for _, p := range s.cfg.Peers() {
		if s.isBad(p) {
			continue
		}
		wg.Go(func() {
			var res map[depot.Digest]holding
			if err := s.cfg.Mesh.Call(ctx, p, haveMethod, haveRequest{Digests: []depot.Digest{d}}, &res); err != nil {
				return
			}
			if h, ok := res[d]; ok {
				mu.Lock()
				out[p] = h
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return out
}

// fetch downloads d into a temporary file, chunk by chunk, from the peers.
func (s *Swarm) fetch(ctx context.Context, dl *download) error {
	d := dl.digest
	have := s.holders(ctx, d)
	var whole []string
	for p, h := range have {
		if h.Complete {
			whole = append(whole, p)
		}
	}
	if len(whole) == 0 {
		return fmt.Errorf("no live peer holds depot blob %s whole", d.Short())
	}
	rand.Shuffle(len(whole), func(i, j int) { whole[i], whole[j] = whole[j], whole[i] })
	var list chunkList
	var listFrom string
	for _, p := range whole {
		if err := s.cfg.Mesh.Call(ctx, p, chunksMethod, d, &list); err == nil && list.valid(have[p].Size) {
			listFrom = p
			break
		}
	}
	if listFrom == "" {
		return fmt.Errorf("no peer gave the chunk hashes of depot blob %s", d.Short())
	}
	f, err := os.CreateTemp(s.tempDir(), "swarm-*")
	if err != nil {
		return fmt.Errorf("fetch %s: %w", d.Short(), err)
	}
	os.Remove(f.Name()) // the open file outlives its name; nothing is left after a crash
	if err := f.Truncate(list.Size); err != nil {
		f.Close()
		return fmt.Errorf("fetch %s: %w", d.Short(), err)
	}
	s.mu.Lock()
	dl.file, dl.list, dl.listFrom = f, list, listFrom
	dl.got = make([]bool, list.count())
	dl.inFlight = make([]bool, list.count())
	s.mu.Unlock()

	// Peers' holdings are refreshed while the download runs, so chunks others fetched
	// meanwhile come from them rather than from the blob's origin.
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	var view sync.Mutex
	refresh := make(chan struct{})
	go func() {
		defer close(refresh)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case <-t.C:
			}
			h := s.holders(rctx, d)
			view.Lock()
			have = h
			view.Unlock()
		}
	}()
	defer func() { stop(); <-refresh }()

	load := map[string]int{}
	var loadMu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, s.cfg.Workers)
	for range min(s.cfg.Workers, list.count()) {
		wg.Go(func() {
			for {
				i, ok := dl.next()
				if !ok {
					if dl.finished() {
						return
					}
					// Every missing chunk is fetched by another worker or waits for a
					// co-fetcher: look again shortly.
					if !ctxtime.Sleep(ctx, 20*time.Millisecond) {
						errs <- ctx.Err()
						return
					}
					continue
				}
				view.Lock()
				peer, wait := s.pick(have, dl, i, load, &loadMu)
				view.Unlock()
				if wait {
					dl.defer_(i)
					continue
				}
				if peer == "" {
					dl.release(i)
					errs <- fmt.Errorf("no live, honest peer holds chunk %d of depot blob %s", i, d.Short())
					return
				}
				err := s.getChunk(ctx, dl, i, peer)
				loadMu.Lock()
				load[peer]--
				loadMu.Unlock()
				if err != nil {
					dl.release(i)
					if ctx.Err() != nil {
						errs <- ctx.Err()
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	// The chunks matched the hashes; the whole must match the digest, or the hashes lied.
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := depot.Digest("sha256:" + fmt.Sprintf("%x", h.Sum(nil))); got != d {
		s.blame(listFrom, fmt.Sprintf("chunk hashes of %s add up to %s", d.Short(), got.Short()))
		return fmt.Errorf("depot blob %s: assembled blob hashes to %s: peer %s gave false chunk hashes", d.Short(), got.Short(), listFrom)
	}
	// The hashes were true, so the peers whose chunks contradicted them lied.
	for p, why := range dl.suspects() {
		s.blame(p, why)
	}
	return nil
}

func (c chunkList) valid(size int64) bool {
	if c.Size != size || c.Chunk != ChunkSize || c.Size < 0 || len(c.Hashes) != c.count() {
		return false
	}
	for _, h := range c.Hashes {
		if len(h) != sha256.Size {
			return false
		}
	}
	return true
}

// coWait bounds how long a chunk waits for the co-fetcher responsible for it before it
// is taken from a whole copy instead.
const coWait = 2 * time.Second

// pick chooses where chunk i comes from. Nodes fetching the same blob at the same time
// share the work: each takes from a whole copy (the blob's origin) only the chunks it
// is responsible for — chunk i falls to co-fetcher i mod k, in ID order — and the rest
// from the co-fetcher responsible, once that one has it. So the origin serves each
// chunk about once, however many nodes fetch. A chunk whose co-fetcher is slow (coWait)
// comes from a whole copy after all. wait says to try the chunk again later.
func (s *Swarm) pick(have map[string]holding, dl *download, i int, load map[string]int, mu *sync.Mutex) (peer string, wait bool) {
	self := s.cfg.Mesh.ID()
	co := []string{self}
	var whole []string
	for p, h := range have {
		if s.isBad(p) || dl.isSuspect(p) {
			continue
		}
		switch {
		case h.Complete:
			whole = append(whole, p)
		case h.Fetching:
			co = append(co, p)
		}
	}
	sort.Strings(co)
	mu.Lock()
	defer mu.Unlock()
	if resp := co[i%len(co)]; resp != self && dl.waited(i) < coWait {
		if h := have[resp]; i/8 < len(h.Chunks) && h.Chunks[i/8]&(1<<(i%8)) != 0 {
			load[resp]++
			return resp, false
		}
		return "", true
	}
	if len(whole) == 0 {
		return "", false
	}
	sort.Slice(whole, func(a, b int) bool {
		if load[whole[a]] != load[whole[b]] {
			return load[whole[a]] < load[whole[b]]
		}
		return whole[a] < whole[b]
	})
	// Among equally loaded whole copies, spread at random.
	n := 1
	for n < len(whole) && load[whole[n]] == load[whole[0]] {
		n++
	}
	p := whole[rand.IntN(n)]
	load[p]++
	return p, false
}

// getChunk fetches chunk i from peer and checks it against its hash.
func (s *Swarm) getChunk(ctx context.Context, dl *download, i int, peer string) error {
	off, n := dl.list.span(i)
	conn, err := s.cfg.Mesh.Open(ctx, peer, getService)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if err := json.NewEncoder(conn).Encode(getRequest{Digest: dl.digest, Offset: off, Length: n}); err != nil {
		return err
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(conn, buf); err != nil {
		return fmt.Errorf("chunk %d of %s from %s: %w", i, dl.digest.Short(), peer, err)
	}
	if sum := sha256.Sum256(buf); !bytes.Equal(sum[:], dl.list.Hashes[i]) {
		why := fmt.Sprintf("chunk %d of %s does not match its hash", i, dl.digest.Short())
		if peer == dl.listFrom {
			// The peer contradicts its own chunk hashes: nothing honest does that.
			s.blame(peer, why)
		} else {
			// Either this peer or the one that gave the hashes lies; the whole blob's
			// digest will tell which. Until then this download avoids the peer.
			dl.suspect(peer, why)
		}
		return errors.New("bad chunk")
	}
	if _, err := dl.file.WriteAt(buf, off); err != nil {
		return err
	}
	dl.complete(i)
	return nil
}

func (s *Swarm) tempDir() string {
	dir := os.TempDir()
	if d := s.cfg.Store.Dir(); d != "" {
		dir = d
	}
	return dir
}

// download is a blob being fetched; its finished chunks are served to other peers.
type download struct {
	digest depot.Digest
	done   chan struct{}
	err    error

	mu       sync.Mutex
	file     *os.File
	list     chunkList
	got      []bool
	inFlight []bool
	listFrom string
	// suspected are peers whose chunks contradicted the hashes, with why.
	suspected map[string]string
	// waitingSince is when each chunk first waited for a co-fetcher.
	waitingSince map[int]time.Time
	// notBefore keeps a deferred chunk from being claimed again at once.
	notBefore map[int]time.Time
}

func (dl *download) suspect(peer, why string) {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	if dl.suspected == nil {
		dl.suspected = map[string]string{}
	}
	dl.suspected[peer] = why
}

func (dl *download) suspects() map[string]string {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	return dl.suspected
}

func (dl *download) isSuspect(peer string) bool {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	_, ok := dl.suspected[peer]
	return ok
}

func (dl *download) size() int64 {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	return dl.list.Size
}

// finished reports whether every chunk is here.
func (dl *download) finished() bool {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	for _, ok := range dl.got {
		if !ok {
			return false
		}
	}
	return true
}

// defer_ puts chunk i back to wait for its co-fetcher, and notes since when it waits.
func (dl *download) defer_(i int) {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	dl.inFlight[i] = false
	now := time.Now()
	if dl.waitingSince == nil {
		dl.waitingSince, dl.notBefore = map[int]time.Time{}, map[int]time.Time{}
	}
	if _, ok := dl.waitingSince[i]; !ok {
		dl.waitingSince[i] = now
	}
	dl.notBefore[i] = now.Add(20 * time.Millisecond)
}

func (dl *download) waited(i int) time.Duration {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	if t, ok := dl.waitingSince[i]; ok {
		return time.Since(t)
	}
	return 0
}

// next claims a chunk to fetch: the first missing one that nobody fetches yet, from a
// random starting point so nodes fetching together spread over the blob.
func (dl *download) next() (int, bool) {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	n := len(dl.got)
	start := rand.IntN(max(n, 1))
	now := time.Now()
	for k := range n {
		i := (start + k) % n
		if !dl.got[i] && !dl.inFlight[i] && !now.Before(dl.notBefore[i]) {
			dl.inFlight[i] = true
			return i, true
		}
	}
	return 0, false
}

func (dl *download) release(i int) {
	dl.mu.Lock()
	dl.inFlight[i] = false
	dl.mu.Unlock()
}

func (dl *download) complete(i int) {
	dl.mu.Lock()
	dl.got[i], dl.inFlight[i] = true, false
	dl.mu.Unlock()
}

func (dl *download) bitmap() []byte {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	b := make([]byte, (len(dl.got)+7)/8)
	for i, ok := range dl.got {
		if ok {
			b[i/8] |= 1 << (i % 8)
		}
	}
	return b
}

// covers reports whether the chunks holding [off, off+n) are all here.
func (dl *download) covers(off, n int64) bool {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	if dl.file == nil || dl.list.Chunk == 0 || off+n > dl.list.Size {
		return false
	}
	for i := off / dl.list.Chunk; i <= (off+n-1)/dl.list.Chunk; i++ {
		if !dl.got[i] {
			return false
		}
	}
	return true
}

// reader reads the finished download from its start; closing it ends the download.
func (dl *download) reader() (io.ReadCloser, error) {
	return io.NopCloser(io.NewSectionReader(dl.file, 0, dl.list.Size)), nil
}

func (dl *download) discard() {
	if dl.file != nil {
		dl.file.Close()
	}
}
