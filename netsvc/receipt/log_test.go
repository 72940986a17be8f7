package receipt

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// receiptsOf makes n complete receipts of flows between node-a and node-b, starting
// at flow number from.
func receiptsOf(t *testing.T, from, n int) []Receipt {
	var rs []Receipt
	for i := range n {
		rs = append(rs, complete(t, testView(flowID(from+i), "node-a", "node-b", int64(i), int64(2*i))))
	}
	return rs
}

func appendAll(t *testing.T, l *Log, rs []Receipt) {
	t.Helper()
	for _, r := range rs {
		if err := l.Append(r); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLogCommitReopenRead(t *testing.T) {
	dir := t.TempDir()
	l, err := OpenLog(dir, "node-a", DefaultLogOptions())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Commit(); !errors.Is(err, ErrNothingToCommit) {
		t.Fatalf("commit of nothing: %v", err)
	}
	first := receiptsOf(t, 0, 3)
	appendAll(t, l, first)
	b1, err := l.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if b1.Seq != 1 || b1.Count != 3 || b1.Node != "node-a" {
		t.Fatalf("batch %+v", b1)
	}
	second := receiptsOf(t, 3, 2)
	appendAll(t, l, second)
	rf := Refusal{Node: "node-a", FromNode: "node-b", ToService: "admin", At: t0, Reason: "not allowed"}
	if err := l.AppendRefusal(rf); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// After a restart the uncommitted receipts are still pending, and seal as batch 2.
	l, err = OpenLog(dir, "node-a", DefaultLogOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Pending() != 2 {
		t.Fatalf("pending after reopen: %d, want 2", l.Pending())
	}
	b2, err := l.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if b2.Seq != 2 || b2.Root != Root(second) {
		t.Fatalf("batch 2: %+v", b2)
	}
	rec, err := l.Records()
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Batches) != 2 || len(rec.Pending) != 0 || len(rec.Refusals) != 1 || rec.Refusals[0].Reason != "not allowed" {
		t.Fatalf("records: %d batches, %d pending, %d refusals", len(rec.Batches), len(rec.Pending), len(rec.Refusals))
	}
	for i, want := range []Batch{b1, b2} {
		if err := VerifyBatch(want, rec.Batches[i].Receipts); err != nil {
			t.Errorf("batch %d read back: %v", i+1, err)
		}
	}
	// What the log holds passes an audit against the committed roots.
	rep := Audit(Input{Keys: publicKeys(), Nodes: map[string]Records{"node-a": rec}, Committed: []Batch{b1, b2}})
	for _, f := range rep.Findings {
		if f.Kind != KindMissing { // node-b's log is not in this audit
			t.Errorf("finding %+v", f)
		}
	}
}

func TestLogRotation(t *testing.T) {
	dir := t.TempDir()
	opts := LogOptions{MaxFileBytes: 4096, MaxFiles: 3, Sync: SyncAlways}
	l, err := OpenLog(dir, "node-a", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var batches []Batch
	for i := range 10 { // each receipt line is ~9 KB: every commit ends a file
		appendAll(t, l, receiptsOf(t, 2*i, 2))
		b, err := l.Commit()
		if err != nil {
			t.Fatal(err)
		}
		batches = append(batches, b)
	}
	appendAll(t, l, receiptsOf(t, 100, 1))
	nums, err := logFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(nums) != opts.MaxFiles {
		t.Fatalf("%d files kept, want %d", len(nums), opts.MaxFiles)
	}
	rec, err := ReadLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The kept files hold whole batches: the newest ones, each verifying.
	if len(rec.Batches) != opts.MaxFiles-1 || len(rec.Pending) != 1 {
		t.Fatalf("%d batches and %d pending read back", len(rec.Batches), len(rec.Pending))
	}
	for _, lb := range rec.Batches {
		want := batches[lb.Batch.Seq-1]
		if err := VerifyBatch(want, lb.Receipts); err != nil {
			t.Errorf("batch %d: %v", lb.Batch.Seq, err)
		}
	}
	if last := rec.Batches[len(rec.Batches)-1].Batch.Seq; last != 10 {
		t.Errorf("newest batch read back is %d, want 10", last)
	}
}

func TestLogTornTail(t *testing.T) {
	dir := t.TempDir()
	l, err := OpenLog(dir, "node-a", DefaultLogOptions())
	if err != nil {
		t.Fatal(err)
	}
	rs := receiptsOf(t, 0, 2)
	appendAll(t, l, rs)
	l.Close()
	path := filepath.Join(dir, logFileName(1))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"receipt":{"flow":"00`) // a crash mid-write
	f.Close()

	rec, err := ReadLog(dir)
	if err != nil || len(rec.Pending) != 2 {
		t.Fatalf("read with a torn tail: %v, %d pending", err, len(rec.Pending))
	}
	l, err = OpenLog(dir, "node-a", DefaultLogOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	appendAll(t, l, receiptsOf(t, 2, 1))
	b, err := l.Commit()
	if err != nil {
		t.Fatal(err)
	}
	rec, err = ReadLog(dir)
	if err != nil {
		t.Fatalf("after repair: %v", err)
	}
	if b.Count != 3 || len(rec.Batches) != 1 || VerifyBatch(b, rec.Batches[0].Receipts) != nil {
		t.Fatalf("after repair: batch %+v, %d batches", b, len(rec.Batches))
	}
}

func TestLogCorruptLine(t *testing.T) {
	dir := t.TempDir()
	l, err := OpenLog(dir, "node-a", DefaultLogOptions())
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, l, receiptsOf(t, 0, 1))
	l.Close()
	path := filepath.Join(dir, logFileName(1))
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString("{\"receipt\":{},\"batch\":{}}\n")
	f.Close()
	for name, err := range map[string]error{
		"ReadLog": func() error { _, err := ReadLog(dir); return err }(),
		"OpenLog": func() error { _, err := OpenLog(dir, "node-a", DefaultLogOptions()); return err }(),
	} {
		if err == nil || !strings.Contains(err.Error(), logFileName(1)+":2") || !strings.Contains(err.Error(), "holds 2") {
			t.Errorf("%s: got %v, want an error naming %s:2", name, err, logFileName(1))
		}
	}
}

func TestLogRefuses(t *testing.T) {
	l, err := OpenLog(t.TempDir(), "node-a", DefaultLogOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	other := complete(t, testView(flowID(1), "node-b", "node-c", 1, 1))
	if err := l.Append(other); err == nil || !strings.Contains(err.Error(), "between node-b and node-c") {
		t.Errorf("receipt of another node's flow: %v", err)
	}
	v := testView(flowID(2), "node-a", "node-b", 1, 1)
	if err := l.Append(oneSided(t, v, Acceptor, nil)); err == nil || !strings.Contains(err.Error(), "lacks this node's signature") {
		t.Errorf("receipt without this node's signature: %v", err)
	}
	if err := l.Append(Receipt{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty receipt: %v", err)
	}
	if err := l.AppendRefusal(Refusal{Node: "node-b"}); err == nil {
		t.Error("a refusal by another node was kept")
	}
	for name, o := range map[string]LogOptions{
		"tiny files": {MaxFileBytes: 10, MaxFiles: 3},
		"one file":   {MaxFileBytes: 1 << 20, MaxFiles: 1},
		"bad sync":   {MaxFileBytes: 1 << 20, MaxFiles: 3, Sync: 7},
	} {
		if _, err := OpenLog(t.TempDir(), "node-a", o); err == nil {
			t.Errorf("%s: options accepted", name)
		}
	}
}
