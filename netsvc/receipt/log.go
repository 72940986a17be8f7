package receipt

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"qnet.dev/qnet/ledger"
)

// SyncPolicy says when the log forces its writes to disk.
type SyncPolicy int

const (
	// SyncCommit (the default) fsyncs when a batch is sealed (Commit), before the
	// batch is handed to the ledger, so a committed root's receipts are always on
	// disk. A crash loses at most the receipts since the last commit; an audit then
	// finds those flows missing on this node alone, so a node that skips commits only
	// hurts its own standing.
	SyncCommit SyncPolicy = iota
	// SyncAlways fsyncs after every record: no receipt is lost, at the cost of a disk
	// flush per flow.
	SyncAlways
)

// LogOptions bound a receipt log.
type LogOptions struct {
	// MaxFileBytes is the size past which the log starts a new file at the next
	// commit. Files are cut only at batch boundaries, so a batch is never split; a
	// file grows past the bound only while receipts wait for a commit.
	MaxFileBytes int64
	// MaxFiles is how many files are kept; the oldest go first. Disk use is about
	// MaxFiles x MaxFileBytes.
	MaxFiles int
	// Sync is when writes are forced to disk.
	Sync SyncPolicy
}

// DefaultLogOptions keeps up to 8 files of 64 MiB and fsyncs at each commit.
func DefaultLogOptions() LogOptions {
	return LogOptions{MaxFileBytes: 64 << 20, MaxFiles: 8, Sync: SyncCommit}
}

// Validate reports bounds that cannot work.
func (o LogOptions) Validate() error {
	if o.MaxFileBytes < 4096 {
		return fmt.Errorf("receipt log: MaxFileBytes %d is below the minimum 4096", o.MaxFileBytes)
	}
	if o.MaxFiles < 2 {
		return fmt.Errorf("receipt log: MaxFiles %d is below the minimum 2 (the current file and one before it)", o.MaxFiles)
	}
	if o.Sync != SyncCommit && o.Sync != SyncAlways {
		return fmt.Errorf("receipt log: Sync %d is not a policy (want SyncCommit or SyncAlways)", o.Sync)
	}
	return nil
}

// maxLine bounds one record of the log; Append refuses a bigger one, so everything
// written can be read back.
const maxLine = 128 << 10

// ErrNothingToCommit is returned by Commit when no receipt came since the last batch.
var ErrNothingToCommit = errors.New("no receipts since the last batch")

// entry is one line of the log: exactly one of its fields is set.
type entry struct {
	Receipt *Receipt `json:"receipt,omitempty"`
	Batch   *Batch   `json:"batch,omitempty"`
	Refusal *Refusal `json:"refusal,omitempty"`
}

func decodeEntry(line []byte) (entry, error) {
	var e entry
	if err := json.Unmarshal(line, &e); err != nil {
		return e, err
	}
	n := 0
	for _, set := range []bool{e.Receipt != nil, e.Batch != nil, e.Refusal != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return e, fmt.Errorf("a record holds one of receipt, batch or refusal; this one holds %d", n)
	}
	return e, nil
}

// Log is a node's receipts kept for audit: an append-only file of JSON lines (one
// receipt, batch or refusal each) in a directory, cut into numbered files at batch
// boundaries. Receipts accumulate until Commit seals them into a Batch, whose record
// follows them in the file. It is safe for concurrent use.
//
// After a failed write the log refuses more writes (a half-written line may be on
// disk); opening it again cuts such a torn last line off.
type Log struct {
	dir  string
	node string
	opts LogOptions

	mu      sync.Mutex
	f       *os.File
	num     int   // number of the current file
	size    int64 // its size
	leaves  []ledger.Hash
	first   time.Time
	last    time.Time
	seq     uint64 // the last batch's seq
	err     error  // sticky write error
	closed  bool
	rotated bool // the next write starts file num+1
}

func logFileName(n int) string { return fmt.Sprintf("receipts-%08d.jsonl", n) }

// logFiles lists the numbers of the log's files, oldest first.
func logFiles(dir string) ([]int, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("receipt log %s: %w", dir, err)
	}
	var nums []int
	for _, de := range des {
		name := de.Name()
		if !strings.HasPrefix(name, "receipts-") || !strings.HasSuffix(name, ".jsonl") || de.IsDir() {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, "receipts-"), ".jsonl"))
		if err != nil || n <= 0 {
			continue
		}
		nums = append(nums, n)
	}
	slices.Sort(nums)
	return nums, nil
}

// scanFile calls fn for each complete line of a log file. A last line without its
// newline (a write cut short by a crash) is not passed; its offset is returned, or -1.
func scanFile(path string, fn func(lineNo int, e entry) error) (torn int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return -1, fmt.Errorf("receipt log: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, maxLine+1)
	var off int64
	for lineNo := 1; ; lineNo++ {
		line, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			return -1, fmt.Errorf("receipt log %s:%d: line longer than %d bytes", path, lineNo, maxLine)
		case err == io.EOF:
			if len(line) > 0 {
				return off, nil
			}
			return -1, nil
		case err != nil:
			return -1, fmt.Errorf("receipt log %s:%d: %w", path, lineNo, err)
		}
		e, derr := decodeEntry(bytes.TrimSuffix(line, []byte{'\n'}))
		if derr != nil {
			return -1, fmt.Errorf("receipt log %s:%d: %w", path, lineNo, derr)
		}
		if err := fn(lineNo, e); err != nil {
			return -1, fmt.Errorf("receipt log %s:%d: %w", path, lineNo, err)
		}
		off += int64(len(line))
	}
}

// OpenLog opens (or starts) the receipt log of node in dir. It finds the receipts
// not yet in a batch, so Commit after a restart seals them too.
func OpenLog(dir, node string, opts LogOptions) (*Log, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := checkName("receipt log: node", node, false); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("receipt log: %w", err)
	}
	nums, err := logFiles(dir)
	if err != nil {
		return nil, err
	}
	l := &Log{dir: dir, node: node, opts: opts, num: 1}
	if len(nums) == 0 {
		return l, nil
	}
	l.num = nums[len(nums)-1]
	cur := filepath.Join(dir, logFileName(l.num))
	torn, err := scanFile(cur, func(int, entry) error { return nil })
	if err != nil {
		return nil, err
	}
	if torn >= 0 {
		if err := os.Truncate(cur, torn); err != nil {
			return nil, fmt.Errorf("receipt log: cut the torn last line of %s: %w", cur, err)
		}
	}
	// Walk back from the newest file to the last batch record: what follows it is
	// pending. Files are cut at batch boundaries, so this is the newest file or two.
	var pending [][]Receipt
	found := false
	for i := len(nums) - 1; i >= 0 && !found; i-- {
		var rs []Receipt
		_, err := scanFile(filepath.Join(dir, logFileName(nums[i])), func(_ int, e entry) error {
			switch {
			case e.Batch != nil:
				l.seq, rs, found = e.Batch.Seq, nil, true
			case e.Receipt != nil:
				rs = append(rs, *e.Receipt)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		pending = append(pending, rs)
	}
	slices.Reverse(pending)
	for _, rs := range pending {
		for i := range rs {
			l.addPending(&rs[i])
		}
	}
	f, err := os.OpenFile(cur, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("receipt log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("receipt log: %w", err)
	}
	l.f, l.size = f, st.Size()
	l.rotated = len(l.leaves) == 0 && l.size >= opts.MaxFileBytes
	return l, nil
}

func (l *Log) addPending(r *Receipt) {
	if len(l.leaves) == 0 || r.Opened.Before(l.first) {
		l.first = r.Opened
	}
	if len(l.leaves) == 0 || r.Closed.After(l.last) {
		l.last = r.Closed
	}
	l.leaves = append(l.leaves, r.Leaf())
}

// write appends one record, starting a new file first if the last commit asked for it.
func (l *Log) write(e entry, sync bool) error {
	if l.closed {
		return fmt.Errorf("receipt log %s: closed", l.dir)
	}
	if l.err != nil {
		return l.err
	}
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("receipt log: encode record: %w", err)
	}
	if len(line) > maxLine {
		return fmt.Errorf("receipt log: record of %d bytes, at most %d allowed", len(line), maxLine)
	}
	if l.f == nil || l.rotated {
		if err := l.startFile(); err != nil {
			l.err = err
			return err
		}
	}
	n, err := l.f.Write(append(line, '\n'))
	l.size += int64(n)
	if err == nil && sync {
		err = l.f.Sync()
	}
	if err != nil {
		l.err = fmt.Errorf("receipt log %s: write: %w (reopen the log to go on)", l.f.Name(), err)
		return l.err
	}
	return nil
}

// startFile opens the next file and drops the oldest beyond MaxFiles.
func (l *Log) startFile() error {
	if l.f != nil {
		if err := l.f.Close(); err != nil {
			return fmt.Errorf("receipt log: close %s: %w", l.f.Name(), err)
		}
		l.f = nil
		l.num++
	}
	f, err := os.OpenFile(filepath.Join(l.dir, logFileName(l.num)), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("receipt log: %w", err)
	}
	l.f, l.size, l.rotated = f, 0, false
	if err := syncDir(l.dir); err != nil {
		return err
	}
	nums, err := logFiles(l.dir)
	if err != nil {
		return err
	}
	for len(nums) > l.opts.MaxFiles {
		if err := os.Remove(filepath.Join(l.dir, logFileName(nums[0]))); err != nil {
			return fmt.Errorf("receipt log: drop the oldest file: %w", err)
		}
		nums = nums[1:]
	}
	return nil
}

// syncDir makes a file's creation in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("receipt log: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("receipt log: sync %s: %w", dir, err)
	}
	return nil
}

// Append keeps a receipt of a flow this node was an end of. The receipt must be well
// formed and carry this node's signature.
func (l *Log) Append(r Receipt) error {
	if err := r.Check(); err != nil {
		return fmt.Errorf("receipt log: %w", err)
	}
	side := Dialer
	if r.To == l.node {
		side = Acceptor
	} else if r.From != l.node {
		return fmt.Errorf("receipt log of node %s: flow %s is between %s and %s", l.node, r.Flow, r.From, r.To)
	}
	if sig, _ := r.sig(side); sig == nil {
		return fmt.Errorf("receipt log of node %s: flow %s lacks this node's signature", l.node, r.Flow)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.write(entry{Receipt: &r}, l.opts.Sync == SyncAlways); err != nil {
		return err
	}
	l.addPending(&r)
	return nil
}

// AppendRefusal keeps a record of a flow this node refused.
func (l *Log) AppendRefusal(rf Refusal) error {
	if rf.Node != l.node {
		return fmt.Errorf("receipt log of node %s: refusal is by node %q", l.node, rf.Node)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.write(entry{Refusal: &rf}, l.opts.Sync == SyncAlways)
}

// Pending returns how many receipts wait for the next batch.
func (l *Log) Pending() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.leaves)
}

// Commit seals the receipts since the last batch into the next Batch, writes its
// record and fsyncs, and returns it for the ledger. If putting it on the ledger fails,
// submit the same Batch again: the log has moved on. It returns ErrNothingToCommit
// when there is nothing to seal.
func (l *Log) Commit() (Batch, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.leaves) == 0 {
		return Batch{}, ErrNothingToCommit
	}
	b := Batch{Node: l.node, Seq: l.seq + 1, Root: ledger.MerkleRoot(l.leaves), Count: len(l.leaves), First: l.first, Last: l.last}
	if err := l.write(entry{Batch: &b}, true); err != nil {
		return Batch{}, err
	}
	l.seq, l.leaves = b.Seq, nil
	l.rotated = l.size >= l.opts.MaxFileBytes
	return b, nil
}

// Records reads the whole log back.
func (l *Log) Records() (Records, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return ReadLog(l.dir)
}

// Close closes the log's file. Receipts not yet committed stay pending for the next
// OpenLog.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if l.f == nil {
		return nil
	}
	var err error
	if l.opts.Sync == SyncAlways || len(l.leaves) > 0 {
		err = l.f.Sync()
	}
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("receipt log: close: %w", err)
	}
	return nil
}

// Records is what a node's log holds: the batches it sealed with their receipts, the
// receipts since, and the flows it refused.
type Records struct {
	Batches  []Logged  `json:"batches,omitempty"`
	Pending  []Receipt `json:"pending,omitempty"`
	Refusals []Refusal `json:"refusals,omitempty"`
}

// Logged is a batch as the log holds it: its record and the receipts before it.
type Logged struct {
	Batch    Batch     `json:"batch"`
	Receipts []Receipt `json:"receipts"`
}

// ReadLog reads a receipt log's files, oldest first. It checks the records' syntax
// only: whether the batches hold (VerifyBatch) is for the audit to judge. A torn last
// line (a crash mid-write) is left out.
func ReadLog(dir string) (Records, error) {
	nums, err := logFiles(dir)
	if err != nil {
		return Records{}, err
	}
	var out Records
	var cur []Receipt
	for _, n := range nums {
		_, err := scanFile(filepath.Join(dir, logFileName(n)), func(_ int, e entry) error {
			switch {
			case e.Receipt != nil:
				cur = append(cur, *e.Receipt)
			case e.Batch != nil:
				out.Batches = append(out.Batches, Logged{Batch: *e.Batch, Receipts: cur})
				cur = nil
			case e.Refusal != nil:
				out.Refusals = append(out.Refusals, *e.Refusal)
			}
			return nil
		})
		if err != nil {
			return Records{}, err
		}
	}
	out.Pending = cur
	return out, nil
}
