package tunnel

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"qnet.dev/qnet/internal/leakcheck"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"qnet.dev/qnet/identity"
)

// TestMain fails the run if goroutines of the package outlive the tests.
func TestMain(m *testing.M) { leakcheck.Main(m, "qnet/tunnel.", "yamux.") }

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond) // polling interval
	}
}

// logSink records log lines for assertions.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (s *logSink) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, string(p))
	if testing.Verbose() && os.Getenv("TUNNEL_TEST_LOG") != "" {
		os.Stderr.Write(p)
	}
	return len(p), nil
}

// has reports whether a line holds every part.
func (s *logSink) has(parts ...string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lines {
		ok := true
		for _, p := range parts {
			if !strings.Contains(l, p) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func (s *logSink) count(parts ...string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.lines {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			n++
		}
	}
	return n
}

// keys are generated once: ML-DSA key generation is the slow part of setting up.
var (
	keysOnce sync.Once
	keyPool  []*identity.Key
)

// testKey returns the i-th test key (0 to 7).
func testKey(t testing.TB, i int) *identity.Key {
	t.Helper()
	keysOnce.Do(func() {
		for range 8 {
			k, err := identity.Generate(true)
			if err != nil {
				panic(err)
			}
			keyPool = append(keyPool, k)
		}
	})
	return keyPool[i]
}

// peersOf returns a PeerSet registering the given keys under their IDs.
func peersOf(keys ...*identity.Key) *PeerSet {
	s := NewPeerSet()
	for _, k := range keys {
		s.Add(k.ID(), k.Public())
	}
	return s
}

func testConfig(key *identity.Key, peers Peers, log *logSink) Config {
	cfg := DefaultConfig()
	cfg.Key = key
	if peers != nil { // a nil *PeerSet must stay a nil interface
		cfg.Peers = peers
	}
	cfg.HandshakeTimeout = 5 * time.Second
	if log != nil {
		cfg.Logger = log.logger()
	} else {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

func listen(t testing.TB, cfg Config) *Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := Listen(cfg, ln)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// pair opens a tunnel from dcfg to a listener of lcfg and returns both ends.
func pair(t testing.TB, dcfg, lcfg Config) (d, l *Tunnel, ln *Listener) {
	t.Helper()
	ln = listen(t, lcfg)
	d, err := Dial(ctxT(t), dcfg, ln.Addr().String(), Expect{})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	l, err = ln.Accept(ctxT(t))
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return d, l, ln
}

// twoNodes returns configs of two registered nodes that know each other.
func twoNodes(t testing.TB, log *logSink) (dcfg, lcfg Config) {
	a, b := testKey(t, 0), testKey(t, 1)
	peers := peersOf(a, b)
	return testConfig(a, peers, log), testConfig(b, peers, log)
}

// echo serves streams of tun: each is copied back until its writer closes it.
func echo(t testing.TB, tun *Tunnel) {
	go func() {
		for {
			s, err := tun.Accept(context.Background())
			if err != nil {
				return
			}
			go func() {
				defer s.Close()
				io.Copy(s, s)
			}()
		}
	}()
}

// roundTrip opens a stream on tun, sends msg and checks it comes back.
func roundTrip(t testing.TB, tun *Tunnel, msg string) error {
	s, err := tun.Open(ctxT(t))
	if err != nil {
		return err
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(s, msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(s, got); err != nil {
		return err
	}
	if string(got) != msg {
		return fmt.Errorf("echo: got %q, want %q", got, msg)
	}
	return nil
}

// pump sends n pseudo-random bytes on w and returns their hash.
func pump(w io.Writer, n int64) ([32]byte, error) {
	h := sha256.New()
	buf := make([]byte, 64<<10)
	rand.Read(buf)
	for sent := int64(0); sent < n; {
		chunk := buf[:min(int64(len(buf)), n-sent)]
		chunk[0]++ // vary the data
		if _, err := w.Write(chunk); err != nil {
			return [32]byte{}, err
		}
		h.Write(chunk)
		sent += int64(len(chunk))
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum, nil
}

// drain reads r to EOF and returns the hash and count of what it read.
func drain(r io.Reader) ([32]byte, int64, error) {
	h := sha256.New()
	n, err := io.CopyBuffer(h, r, make([]byte, 64<<10))
	var sum [32]byte
	h.Sum(sum[:0])
	return sum, n, err
}
