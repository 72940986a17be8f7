package depots

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"qnet.dev/qnet/driver"
	"qnet.dev/qnet/driver/internal/exit"
)

// fakeHandle is a handle whose depot ends when the test says.
type fakeHandle struct {
	*Depot
	dropped bool
}

func newFake(id, dir string) *fakeHandle {
	return &fakeHandle{Depot: NewDepot(driver.Spec{ID: id, Command: "x"}, dir)}
}

func (h *fakeHandle) PID() int                   { return 1 }
func (h *fakeHandle) StartedAt() time.Time       { return time.Time{} }
func (h *fakeHandle) Signal(os.Signal) error     { return nil }
func (h *fakeHandle) Limits() driver.LimitReport { return driver.LimitReport{} }
func (h *fakeHandle) end()                       { h.Set(exit.Code(0)) }
func (h *fakeHandle) Stop(context.Context, time.Duration) (driver.ExitStatus, error) {
	h.end()
	st, _ := h.Status()
	return st, nil
}

func newTable(t *testing.T) *Table[*fakeHandle] {
	t.Helper()
	tb, err := New(filepath.Join(t.TempDir(), "depots"), func(h *fakeHandle) { h.dropped = true })
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func TestDepot(t *testing.T) {
	t.Parallel()
	h := newFake("web-1", "/r/web-1")
	if h.ID() != "web-1" || h.Spec().Command != "x" || h.Dir() != "/r/web-1" {
		t.Errorf("depot %s %+v %s", h.ID(), h.Spec(), h.Dir())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if _, err := h.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `"web-1"`) {
		t.Errorf("Wait on a running depot = %v", err)
	}
	h.end()
	if st, err := h.Wait(context.Background()); err != nil || st.Reason != "exited with code 0" {
		t.Errorf("Wait on an ended depot = %+v, %v", st, err)
	}
}

// TestClaim: one Start per ID; a restart of an ended depot resets it first; a directory
// of an earlier agent is reset only when stale says nothing of it runs.
func TestClaim(t *testing.T) {
	t.Parallel()
	tb := newTable(t)
	resets := 0
	reset := func(*fakeHandle) error { resets++; return nil }
	never := func() bool { t.Error("stale asked for a directory the table made"); return false }

	fresh, err := tb.Claim("web-1", reset, never)
	if err != nil || !fresh {
		t.Fatalf("first Claim = %v, %v; want a fresh directory", fresh, err)
	}
	if fi, err := os.Stat(tb.Dir("web-1")); err != nil || !fi.IsDir() {
		t.Fatalf("Claim made no directory: %v", err)
	}
	if _, err := tb.Claim("web-1", reset, func() bool { return true }); !errors.Is(err, driver.ErrExists) {
		t.Errorf("Claim while starting = %v, want ErrExists", err)
	}
	h := newFake("web-1", tb.Dir("web-1"))
	tb.Started("web-1", h, nil)
	if _, err := tb.Claim("web-1", reset, never); !errors.Is(err, driver.ErrExists) {
		t.Errorf("Claim while running = %v, want ErrExists", err)
	}
	h.end()
	if fresh, err := tb.Claim("web-1", reset, never); err != nil || fresh || resets != 1 || !h.dropped {
		t.Errorf("Claim of an ended depot = %v, %v (%d resets, dropped %v); want a reset and the old handle dropped", fresh, err, resets, h.dropped)
	}
	tb.Started("web-1", nil, errors.New("start failed"))
	if got := tb.Handles(); len(got) != 0 {
		t.Errorf("a failed start left handles %v", got)
	}

	// An earlier agent's directory: kept while something of it runs, reset when stale.
	os.Mkdir(tb.Dir("old-1"), 0o700)
	if _, err := tb.Claim("old-1", reset, func() bool { return false }); !errors.Is(err, driver.ErrExists) {
		t.Errorf("Claim of a running earlier depot = %v, want ErrExists", err)
	}
	if _, err := tb.Claim("old-1", reset, nil); !errors.Is(err, driver.ErrExists) {
		t.Errorf("Claim with stale nil = %v, want ErrExists", err)
	}
	if fresh, err := tb.Claim("old-1", reset, func() bool { return true }); err != nil || fresh || resets != 2 {
		t.Errorf("Claim of a stale directory = %v, %v (%d resets)", fresh, err, resets)
	}
	tb.Started("old-1", nil, errors.New("start failed"))

	// A reset that fails fails the start, and the handle stays.
	h2 := newFake("web-2", tb.Dir("web-2"))
	tb.Claim("web-2", reset, nil)
	tb.Started("web-2", h2, nil)
	h2.end()
	if _, err := tb.Claim("web-2", func(*fakeHandle) error { return fs.ErrPermission }, nil); !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), `start depot "web-2"`) {
		t.Errorf("Claim with a failing reset = %v", err)
	}
	if h2.dropped || len(tb.Handles()) != 1 {
		t.Error("a failed reset dropped the handle")
	}
}

// TestClaimRace: of many Starts of one ID at once, exactly one wins.
func TestClaimRace(t *testing.T) {
	t.Parallel()
	tb := newTable(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for range 8 {
		wg.Go(func() {
			if _, err := tb.Claim("race", func(*fakeHandle) error { return nil }, func() bool { return true }); err == nil {
				mu.Lock()
				won++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if won != 1 {
		t.Errorf("%d Claims won, want 1", won)
	}
}

func TestRecover(t *testing.T) {
	t.Parallel()
	tb := newTable(t)
	for _, id := range []string{"a", "b", "broken"} {
		os.Mkdir(tb.Dir(id), 0o700)
	}
	os.Mkdir(tb.Dir("Not-An-ID"), 0o700)
	os.WriteFile(tb.Dir("file"), nil, 0o600)
	tb.Started("a", newFake("a", tb.Dir("a")), nil)           // tracked
	if _, err := tb.Claim("starting", nil, nil); err != nil { // being started
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	var asked []string
	find := func(id string) (*fakeHandle, error) {
		asked = append(asked, id)
		if id == "broken" {
			return nil, errors.New("no record")
		}
		return newFake(id, tb.Dir(id)), nil
	}
	hs, err := tb.Recover(context.Background(), find, log)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, h := range hs {
		ids = append(ids, h.ID())
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"a", "b"}) || !slices.Equal(asked, []string{"b", "broken"}) {
		t.Errorf("Recover returned %v, asked find for %v; want a and b, asking for b and broken", ids, asked)
	}
	if !strings.Contains(logs.String(), "depot not recovered") || !strings.Contains(logs.String(), "broken") {
		t.Errorf("the depot not recovered was not logged: %s", logs.String())
	}
	// Again: the same handles, and find is asked only for what is still not tracked.
	asked = nil
	again, _ := tb.Recover(context.Background(), find, log)
	if len(again) != 2 || !slices.Equal(asked, []string{"broken"}) {
		t.Errorf("second Recover: %d handles, asked for %v", len(again), asked)
	}
	for _, h := range again {
		if h.ID() == "b" && h != hs[slices.IndexFunc(hs, func(x driver.Handle) bool { return x.ID() == "b" })] {
			t.Error("second Recover made a new handle for b")
		}
	}

	// A Recover whose context ended stops at the first failure.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tb.Recover(ctx, find, log); !errors.Is(err, context.Canceled) {
		t.Errorf("Recover with an ended context = %v", err)
	}
}

// TestRecoverConcurrent: two Recovers finding one depot at once return one handle; the
// other is dropped.
func TestRecoverConcurrent(t *testing.T) {
	t.Parallel()
	tb := newTable(t)
	os.Mkdir(tb.Dir("a"), 0o700)
	var mu sync.Mutex
	var made []*fakeHandle
	gate := make(chan struct{})
	find := func(id string) (*fakeHandle, error) {
		h := newFake(id, tb.Dir(id))
		mu.Lock()
		made = append(made, h)
		n := len(made)
		mu.Unlock()
		if n == 1 {
			<-gate // the first waits until the second has found it too
		} else {
			close(gate)
		}
		return h, nil
	}
	var wg sync.WaitGroup
	results := make([][]driver.Handle, 2)
	for i := range results {
		wg.Go(func() { results[i], _ = tb.Recover(context.Background(), find, slog.New(slog.DiscardHandler)) })
	}
	wg.Wait()
	if len(made) != 2 || results[0][0] != results[1][0] {
		t.Fatalf("made %d handles; Recovers returned %v and %v", len(made), results[0], results[1])
	}
	if made[0].dropped == made[1].dropped {
		t.Errorf("dropped: %v and %v; want exactly the one not kept", made[0].dropped, made[1].dropped)
	}
}

func TestRemove(t *testing.T) {
	t.Parallel()
	tb := newTable(t)
	purged := ""
	purge := func(h *fakeHandle, tracked bool) error {
		purged = "untracked"
		if tracked {
			purged = "tracked " + h.ID()
		}
		return os.RemoveAll(tb.Dir(h.ID()))
	}
	for _, id := range []string{"", "../x", "a/b"} {
		if err := tb.Remove(id, purge); !errors.Is(err, driver.ErrNotFound) {
			t.Errorf("Remove(%q) = %v, want ErrNotFound", id, err)
		}
	}
	if err := tb.Remove("none", purge); !errors.Is(err, driver.ErrNotFound) || purged != "" {
		t.Errorf("Remove of no depot = %v (purged %q), want ErrNotFound", err, purged)
	}
	tb.Claim("web-1", nil, nil)
	if err := tb.Remove("web-1", purge); !errors.Is(err, driver.ErrRunning) {
		t.Errorf("Remove while starting = %v, want ErrRunning", err)
	}
	h := newFake("web-1", tb.Dir("web-1"))
	tb.Started("web-1", h, nil)
	if err := tb.Remove("web-1", purge); !errors.Is(err, driver.ErrRunning) || purged != "" {
		t.Errorf("Remove while running = %v (purged %q), want ErrRunning", err, purged)
	}
	h.end()
	if err := tb.Remove("web-1", purge); err != nil || purged != "tracked web-1" || !h.dropped || len(tb.Handles()) != 0 {
		t.Errorf("Remove of an ended depot = %v, purged %q, dropped %v", err, purged, h.dropped)
	}
	if _, err := os.Stat(tb.Dir("web-1")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("directory left: %v", err)
	}
	// An earlier agent's depot: purge decides, and its error says why.
	os.Mkdir(tb.Dir("old-1"), 0o700)
	refuse := func(*fakeHandle, bool) error { return driver.ErrRunning }
	if err := tb.Remove("old-1", refuse); !errors.Is(err, driver.ErrRunning) || !strings.Contains(err.Error(), `remove depot "old-1"`) {
		t.Errorf("Remove refused by purge = %v", err)
	}
}

func TestClear(t *testing.T) {
	t.Parallel()
	tb := newTable(t)
	if err := tb.Clear("gone", func(string) bool { return false }); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Clear of a missing directory = %v", err)
	}
	dir := tb.Dir("web-1")
	os.MkdirAll(filepath.Join(dir, "data", "x"), 0o700)
	for _, name := range []string{"stdout.log", "stdout.log.1", "state.json", "exit.json"} {
		os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600)
	}
	keep := func(name string) bool { return name == "data" || strings.HasPrefix(name, "stdout.log") }
	if err := tb.Clear("web-1", keep); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if !slices.Equal(left, []string{"data", "stdout.log", "stdout.log.1"}) {
		t.Errorf("left %v", left)
	}
}
