package proxy

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"qnet.dev/qnet/netsvc"
)

// clock is a fake clock the test moves by hand; it is safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newClock() *clock { return &clock{t: time.Unix(1e9, 0)} }

// ep returns a ready endpoint of web/http.
func ep(depot string, local bool) netsvc.Endpoint {
	port := uint16(1000 + len(depot))
	for _, r := range depot {
		port += uint16(r)
	}
	return netsvc.Endpoint{Service: "web", Port: "http", Depot: depot, Node: "n-" + depot, Local: local, Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), Ready: true}
}

func testBalancer(t *testing.T, c *clock) *Balancer {
	t.Helper()
	return mustBalancer(t, BalancerConfig{Rand: rand.NewPCG(3, 4), Now: c.now})
}

// picks counts which depots n picks choose; with hold, each pick stays open (Begin).
func picks(t *testing.T, b *Balancer, cands []netsvc.Endpoint, n int, hold bool) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		e, ok := b.Pick(cands)
		if !ok {
			t.Fatal("Pick found nothing among ready candidates")
		}
		got[e.Depot]++
		if hold {
			b.Begin(e)
		}
	}
	return got
}

func TestBalancerConfigValidate(t *testing.T) {
	tests := []struct {
		cfg  BalancerConfig
		want string
	}{
		{BalancerConfig{}, ""},
		{DefaultBalancerConfig(), ""},
		{BalancerConfig{Alpha: 1.5}, "Alpha is 1.5"},
		{BalancerConfig{Alpha: -0.1}, "Alpha is -0.1"},
		{BalancerConfig{Decay: -time.Second}, "Decay is -1s"},
		{BalancerConfig{Penalty: -time.Second}, "Penalty is -1s"},
		{BalancerConfig{MaxPenalty: -time.Second}, "MaxPenalty is -1s"},
	}
	for _, tt := range tests {
		_, err := NewBalancer(tt.cfg)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("NewBalancer(%+v): %v", tt.cfg, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("NewBalancer(%+v): error %v, want one containing %q", tt.cfg, err, tt.want)
		}
	}
}

func TestPickNothing(t *testing.T) {
	b := testBalancer(t, newClock())
	if _, ok := b.Pick(nil); ok {
		t.Error("Pick(nil) found an endpoint")
	}
	unready := ep("a", true)
	unready.Ready = false
	if _, ok := b.Pick([]netsvc.Endpoint{unready}); ok {
		t.Error("Pick chose an endpoint that is not ready")
	}
	if e, ok := b.Pick([]netsvc.Endpoint{unready, ep("b", false)}); !ok || e.Depot != "b" {
		t.Errorf("Pick = %v %v, want the only ready endpoint b", e.Depot, ok)
	}
}

func TestPickLocalFirst(t *testing.T) {
	b := testBalancer(t, newClock())
	cands := []netsvc.Endpoint{ep("r1", false), ep("l1", true), ep("r2", false), ep("l2", true)}
	got := picks(t, b, cands, 200, true)
	if got["r1"]+got["r2"] != 0 {
		t.Fatalf("remote endpoints picked while local ones are ready: %v", got)
	}
	if got["l1"] < 80 || got["l2"] < 80 {
		t.Fatalf("local endpoints not shared: %v", got)
	}
}

func TestPickSpreadsByLoad(t *testing.T) {
	b := testBalancer(t, newClock())
	cands := []netsvc.Endpoint{ep("a", true), ep("b", true), ep("c", true)}
	for _, e := range cands {
		b.Observe(e, time.Millisecond, nil)
	}
	got := picks(t, b, cands, 300, true)
	for _, e := range cands {
		if got[e.Depot] < 90 || got[e.Depot] > 110 {
			t.Fatalf("equal endpoints got %v of 300 held connections, want about 100 each", got)
		}
	}
	// Connections that end free their endpoint: after a's close, a is the least
	// loaded and wins whenever it is drawn.
	a := cands[0]
	for range got["a"] {
		b.End(a)
	}
	got = picks(t, b, cands, 30, true)
	if got["a"] < 15 {
		t.Fatalf("the idle endpoint got %d of 30 picks: %v", got["a"], got)
	}
}

func TestPickSlowGetsFewer(t *testing.T) {
	c := newClock()
	b := testBalancer(t, c)
	fast1, fast2, slow := ep("fast1", true), ep("fast2", true), ep("slow", true)
	cands := []netsvc.Endpoint{fast1, slow, fast2}
	got := map[string]int{}
	for range 300 {
		e, _ := b.Pick(cands)
		got[e.Depot]++
		lat := time.Millisecond
		if e == slow {
			lat = 20 * time.Millisecond
		}
		c.advance(time.Millisecond)
		b.Observe(e, lat, nil)
	}
	if got["slow"] > 5 {
		t.Fatalf("the slow endpoint got %d of 300 picks: %v", got["slow"], got)
	}
	// With enough connections open on the fast ones, the slow one is worth it.
	got = picks(t, b, cands, 300, true)
	if got["slow"] == 0 || got["slow"] > got["fast1"] || got["slow"] > got["fast2"] {
		t.Fatalf("under load: %v, want the slow endpoint to take some but the fewest", got)
	}
}

func TestObserveMovingAverage(t *testing.T) {
	c := newClock()
	b := mustBalancer(t, BalancerConfig{Rand: rand.NewPCG(1, 1), Now: c.now, Alpha: 0.5, Decay: time.Hour})
	e := ep("a", true)
	b.Observe(e, 10*time.Millisecond, nil)
	if got := b.Stats()[0].Latency; got != 10*time.Millisecond {
		t.Fatalf("first sample: latency %s, want 10ms", got)
	}
	b.Observe(e, 20*time.Millisecond, nil)
	if got := b.Stats()[0].Latency; got != 15*time.Millisecond {
		t.Fatalf("second sample: latency %s, want 15ms (alpha 0.5)", got)
	}
	// After a long silence the new sample counts for nearly all.
	c.advance(10 * time.Hour)
	b.Observe(e, 100*time.Millisecond, nil)
	if got := b.Stats()[0].Latency; got < 99*time.Millisecond {
		t.Fatalf("sample after a long silence: latency %s, want about 100ms", got)
	}
}

func TestPenalty(t *testing.T) {
	c := newClock()
	b := mustBalancer(t, BalancerConfig{Rand: rand.NewPCG(5, 6), Now: c.now, Penalty: time.Second, MaxPenalty: 3 * time.Second})
	bad, good := ep("bad", true), ep("good", true)
	cands := []netsvc.Endpoint{bad, good}
	refused := errors.New("connection refused")

	b.Observe(bad, 0, refused)
	if got := picks(t, b, cands, 50, false); got["bad"] != 0 {
		t.Fatalf("a penalised endpoint was picked: %v", got)
	}
	st := b.Stats()[0]
	if st.Key.Depot != "bad" || st.Failures != 1 || !st.PenaltyUntil.Equal(c.now().Add(time.Second)) {
		t.Fatalf("stats %+v, want 1 failure and a 1s penalty", st)
	}
	// When every candidate is penalised the least bad is still tried: the catalog
	// says they are ready.
	if e, ok := b.Pick([]netsvc.Endpoint{bad}); !ok || e != bad {
		t.Fatal("a lone penalised endpoint was not picked")
	}
	// A penalised local endpoint yields to a healthy remote one.
	remote := ep("remote", false)
	if got := picks(t, b, []netsvc.Endpoint{bad, remote}, 20, false); got["remote"] != 20 {
		t.Fatalf("picks %v, want the healthy remote endpoint over the failing local one", got)
	}

	// The penalty doubles with each failure in a row, up to MaxPenalty.
	for _, want := range []time.Duration{2 * time.Second, 3 * time.Second, 3 * time.Second} {
		b.Observe(bad, 0, refused)
		if got := b.Stats()[0].PenaltyUntil.Sub(c.now()); got != want {
			t.Fatalf("penalty %s, want %s", got, want)
		}
	}

	// After the penalty the endpoint is picked again, and a success clears its record.
	c.advance(3 * time.Second)
	if got := picks(t, b, cands, 50, false); got["bad"] == 0 {
		t.Fatalf("the endpoint is still shunned after its penalty: %v", got)
	}
	b.Observe(bad, time.Millisecond, nil)
	b.Observe(bad, 0, refused)
	if got := b.Stats()[0].PenaltyUntil.Sub(c.now()); got != time.Second {
		t.Fatalf("penalty after a success then a failure is %s, want 1s", got)
	}
}

func TestSlowEndpointProbedAgain(t *testing.T) {
	c := newClock()
	b := testBalancer(t, c) // Decay 10s
	fast, slow, fast2 := ep("fast", true), ep("slow", true), ep("fast2", true)
	cands := []netsvc.Endpoint{fast, slow, fast2}
	b.Observe(slow, 500*time.Millisecond, nil)
	b.Observe(fast, time.Millisecond, nil)
	b.Observe(fast2, time.Millisecond, nil)
	// The fast ones stay busy and fresh; the slow one is not picked, so its estimate
	// fades until it is worth a try again, which is how a recovered endpoint is found.
	tried := false
	for range 120 {
		c.advance(time.Second)
		b.Observe(fast, time.Millisecond, nil)
		b.Observe(fast2, time.Millisecond, nil)
		if e, _ := b.Pick(cands); e == slow {
			tried = true
			break
		}
	}
	if !tried {
		t.Fatal("a once slow endpoint was never tried again in two minutes")
	}
}

func TestNewEndpointGetsShare(t *testing.T) {
	c := newClock()
	b := testBalancer(t, c)
	a, bb, n := ep("a", true), ep("b", true), ep("new", true)
	b.Observe(a, time.Millisecond, nil)
	b.Observe(bb, 3*time.Millisecond, nil)
	got := picks(t, b, []netsvc.Endpoint{a, bb, n}, 60, true)
	if got["new"] < 10 {
		t.Fatalf("a new endpoint got %d of 60 picks: %v", got["new"], got)
	}
}

func TestPickDeterministic(t *testing.T) {
	cands := []netsvc.Endpoint{ep("a", true), ep("b", true), ep("c", true), ep("d", true)}
	run := func() string {
		c := newClock()
		b := testBalancer(t, c)
		var s strings.Builder
		for i := range 100 {
			e, _ := b.Pick(cands)
			b.Observe(e, time.Duration(i%7)*time.Millisecond, nil)
			if i%3 == 0 {
				b.Begin(e)
			}
			fmt.Fprint(&s, e.Depot)
		}
		return s.String()
	}
	if a, b := run(), run(); a != b {
		t.Fatalf("same seed, different picks:\n%s\n%s", a, b)
	}
}

func TestBeginEndPrune(t *testing.T) {
	b := testBalancer(t, newClock())
	a, gone, busy := ep("a", true), ep("gone", true), ep("busy", true)
	b.Begin(a)
	b.End(a)
	b.End(a) // an extra End must not go below zero
	b.Begin(busy)
	b.Observe(gone, time.Millisecond, nil)
	b.End(ep("never", true))
	b.Prune([]netsvc.Endpoint{a})
	var depots []string
	for _, s := range b.Stats() {
		depots = append(depots, fmt.Sprintf("%s:%d/%d", s.Key.Depot, s.Active, s.Total))
	}
	if got, want := strings.Join(depots, " "), "a:0/1 busy:1/1"; got != want {
		t.Fatalf("after Prune: %s, want %s (gone forgotten, busy kept while open)", got, want)
	}
}

// TestDefaultClock checks the balancer on the real clock source: its penalties end as
// time passes (run in a synctest bubble, where time is fake).
func TestDefaultClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustBalancer(t, BalancerConfig{Rand: rand.NewPCG(1, 1)})
		bad, good := ep("bad", true), ep("good", true)
		b.Observe(bad, 0, errors.New("refused"))
		if got := picks(t, b, []netsvc.Endpoint{bad, good}, 20, false); got["bad"] != 0 {
			t.Fatalf("penalised endpoint picked: %v", got)
		}
		time.Sleep(DefaultBalancerConfig().Penalty) // fake time in the bubble
		if got := picks(t, b, []netsvc.Endpoint{bad, good}, 20, false); got["bad"] == 0 {
			t.Fatalf("penalty did not end: %v", got)
		}
	})
}

func BenchmarkPick(b *testing.B) {
	bal, err := NewBalancer(BalancerConfig{Rand: rand.NewPCG(1, 1)})
	if err != nil {
		b.Fatal(err)
	}
	var cands []netsvc.Endpoint
	for i := range 10 {
		e := ep(fmt.Sprint("d", i), i < 3)
		bal.Observe(e, time.Duration(i)*time.Millisecond, nil)
		cands = append(cands, e)
	}
	b.ReportAllocs()
	for b.Loop() {
		bal.Pick(cands)
	}
}
