package proxy

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"

	"qnet.dev/qnet/netsvc"
)

// Key names one endpoint for the balancer and the proxy's books. The address is part
// of it: a depot that restarts on another host port is a new process, and what was
// learnt about the old one no longer holds.
type Key struct {
	Service string
	Port    string
	Depot   string
	Addr    netip.AddrPort
}

// KeyOf returns the key of an endpoint.
func KeyOf(e netsvc.Endpoint) Key {
	return Key{Service: e.Service, Port: e.Port, Depot: e.Depot, Addr: e.Addr}
}

// String returns service/port@depot (addr), for logs.
func (k Key) String() string {
	return fmt.Sprintf("%s/%s@%s (%s)", k.Service, k.Port, k.Depot, k.Addr)
}

// BalancerConfig tunes a Balancer. Its zero value is usable: every zero field takes the
// default that DefaultBalancerConfig shows.
type BalancerConfig struct {
	// Rand is the source of the random choices; nil means a randomly seeded one. Tests
	// pass a fixed seed so that the picks repeat.
	Rand rand.Source
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Alpha is the weight in (0, 1] of a new latency sample in the moving average.
	Alpha float64
	// Decay is how fast a latency estimate that is not refreshed fades toward zero
	// (it shrinks by a factor e every Decay). Without it an endpoint that was once slow
	// would never be picked again and so never be seen to have recovered.
	Decay time.Duration
	// Penalty is how long an endpoint is set aside after a failed dial; it doubles
	// with each further failure in a row up to MaxPenalty, and a success clears it.
	Penalty    time.Duration
	MaxPenalty time.Duration
}

// DefaultBalancerConfig returns the defaults of a Balancer.
func DefaultBalancerConfig() BalancerConfig {
	return BalancerConfig{
		Now:        time.Now,
		Alpha:      0.3,
		Decay:      10 * time.Second,
		Penalty:    time.Second,
		MaxPenalty: 30 * time.Second,
	}
}

// Validate reports the fields that are out of range; zero fields are valid (they take
// the default).
func (c BalancerConfig) Validate() error {
	var errs []error
	if c.Alpha < 0 || c.Alpha > 1 || math.IsNaN(c.Alpha) {
		errs = append(errs, fmt.Errorf("Alpha is %v: want a weight in (0, 1] such as 0.3, or 0 for the default", c.Alpha))
	}
	if c.Decay < 0 {
		errs = append(errs, fmt.Errorf("Decay is %s: want a positive duration such as 10s, or 0 for the default", c.Decay))
	}
	if c.Penalty < 0 {
		errs = append(errs, fmt.Errorf("Penalty is %s: want a positive duration such as 1s, or 0 for the default", c.Penalty))
	}
	if c.MaxPenalty < 0 {
		errs = append(errs, fmt.Errorf("MaxPenalty is %s: want a positive duration such as 30s, or 0 for the default", c.MaxPenalty))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("balancer config: %w", err)
	}
	return nil
}

func (c BalancerConfig) withDefaults() BalancerConfig {
	d := DefaultBalancerConfig()
	if c.Now == nil {
		c.Now = d.Now
	}
	if c.Alpha == 0 {
		c.Alpha = d.Alpha
	}
	if c.Decay == 0 {
		c.Decay = d.Decay
	}
	if c.Penalty == 0 {
		c.Penalty = d.Penalty
	}
	if c.MaxPenalty == 0 {
		c.MaxPenalty = max(d.MaxPenalty, c.Penalty)
	}
	if c.Rand == nil {
		c.Rand = rand.NewPCG(rand.Uint64(), rand.Uint64())
	}
	return c
}

// loadFloor is added to every latency estimate before it is weighed by load, so that
// the number of open connections still counts when latencies are too small to tell
// apart (loopback dials take tens of microseconds).
const loadFloor = 250 * time.Microsecond

// Balancer chooses an endpoint for each new connection: local endpoints before remote
// ones, healthy ones before those set aside after a failed dial, and among the
// endpoints left the better of two picked at random (power of two choices), where
// better is a lower moving average of the time to connect times (open connections+1).
// It does no I/O: the caller reports dials (Observe) and connections (Begin, End).
// A Balancer is safe for concurrent use.
type Balancer struct {
	cfg BalancerConfig

	mu  sync.Mutex
	rnd *rand.Rand
	eps map[Key]*endpointState
}

// endpointState is what the balancer knows about one endpoint.
type endpointState struct {
	latency float64 // moving average of dial times, in nanoseconds; valid if sampled
	sampled bool
	at      time.Time // when latency was last updated

	active          int
	total, failures uint64

	streak int       // failed dials in a row
	until  time.Time // end of the current penalty
}

// EndpointStats is what a Balancer knows about one endpoint.
type EndpointStats struct {
	Key Key
	// Active is the number of open connections, Total the number ever opened.
	Active int
	Total  uint64
	// Latency is the moving average of the time to connect; 0 before the first dial.
	Latency time.Duration
	// Failures counts failed dials; PenaltyUntil is when the current penalty ends
	// (zero when there is none).
	Failures     uint64
	PenaltyUntil time.Time
}

// NewBalancer returns a balancer that knows nothing yet.
func NewBalancer(cfg BalancerConfig) (*Balancer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Balancer{cfg: cfg, rnd: rand.New(cfg.Rand), eps: map[Key]*endpointState{}}, nil
}

// now returns the balancer's clock, which the proxy also uses to time dials.
func (b *Balancer) now() time.Time { return b.cfg.Now() }

// tier ranks an endpoint whose state is st: healthy local, healthy remote, penalised
// local, penalised remote. A local endpoint is preferred because it costs no tunnel
// and no bytes between nodes; a healthy remote one beats a local one that just failed.
func tier(e netsvc.Endpoint, st *endpointState, now time.Time) int {
	t := 0
	if !e.Local {
		t = 1
	}
	if st != nil && now.Before(st.until) {
		t += 2
	}
	return t
}

// estimate returns the latency estimate of st at now, faded by the time since it was
// last refreshed; ok is false for an endpoint never dialled.
func (b *Balancer) estimate(st *endpointState, now time.Time) (float64, bool) {
	if st == nil || !st.sampled {
		return 0, false
	}
	idle := now.Sub(st.at)
	if idle <= 0 {
		return st.latency, true
	}
	return st.latency * math.Exp(-float64(idle)/float64(b.cfg.Decay)), true
}

// choice is a candidate of Pick with its state (nil when the balancer has none).
type choice struct {
	i  int
	st *endpointState
}

// Pick chooses one of the candidates; it reports false when there is none. Candidates
// that are not Ready are never chosen.
func (b *Balancer) Pick(candidates []netsvc.Endpoint) (netsvc.Endpoint, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.cfg.Now()

	// The candidates of the best tier, and the mean latency of those already
	// measured, which stands in for the ones not yet measured (so a new endpoint is
	// neither shunned nor flooded).
	var buf [16]choice
	group := buf[:0]
	best := 4
	var sum float64
	var known int
	for i, e := range candidates {
		if !e.Ready {
			continue
		}
		st := b.eps[KeyOf(e)]
		t := tier(e, st, now)
		if t > best {
			continue
		}
		if t < best {
			best, group, sum, known = t, group[:0], 0, 0
		}
		group = append(group, choice{i, st})
		if lat, ok := b.estimate(st, now); ok {
			sum += lat
			known++
		}
	}
	n := len(group)
	if n == 0 {
		return netsvc.Endpoint{}, false
	}
	mean := 0.0
	if known > 0 {
		mean = sum / float64(known)
	}
	i := b.rnd.IntN(n)
	if n == 1 {
		return candidates[group[i].i], true
	}
	j := b.rnd.IntN(n - 1)
	if j >= i {
		j++
	}
	ci, cj := group[i], group[j]
	if b.cost(cj.st, now, mean) < b.cost(ci.st, now, mean) {
		return candidates[cj.i], true
	}
	return candidates[ci.i], true
}

// cost is the score that power of two choices compares, lower being better: the
// latency estimate (mean for an endpoint never dialled) times the open connections+1.
func (b *Balancer) cost(st *endpointState, now time.Time, mean float64) float64 {
	lat, ok := b.estimate(st, now)
	if !ok {
		lat = mean
	}
	active := 0
	if st != nil {
		active = st.active
	}
	return (lat + float64(loadFloor)) * float64(active+1)
}

func (b *Balancer) state(e netsvc.Endpoint) *endpointState {
	k := KeyOf(e)
	st := b.eps[k]
	if st == nil {
		st = &endpointState{}
		b.eps[k] = st
	}
	return st
}

// Observe records a dial to e that took latency and ended with err. A failed dial sets
// e aside for a penalty that grows with each failure in a row; a success ends it and
// updates the moving average.
func (b *Balancer) Observe(e netsvc.Endpoint, latency time.Duration, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.cfg.Now()
	st := b.state(e)
	if err != nil {
		st.failures++
		st.streak++
		pen := b.cfg.Penalty
		for i := 1; i < st.streak && pen < b.cfg.MaxPenalty; i++ {
			pen *= 2
		}
		st.until = now.Add(min(pen, b.cfg.MaxPenalty))
		return
	}
	st.streak, st.until = 0, time.Time{}
	sample := float64(max(latency, 0))
	if !st.sampled {
		st.latency, st.sampled, st.at = sample, true, now
		return
	}
	// A stale average says little about the endpoint now, so a sample after a long
	// silence weighs more than Alpha.
	w := b.cfg.Alpha
	if idle := now.Sub(st.at); idle > 0 {
		w = max(w, 1-math.Exp(-float64(idle)/float64(b.cfg.Decay)))
	}
	st.latency += w * (sample - st.latency)
	st.at = now
}

// Begin records that a connection to e opened.
func (b *Balancer) Begin(e netsvc.Endpoint) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.state(e)
	st.active++
	st.total++
}

// End records that a connection to e, counted by Begin, closed.
func (b *Balancer) End(e netsvc.Endpoint) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if st := b.eps[KeyOf(e)]; st != nil && st.active > 0 {
		st.active--
	}
}

// Prune forgets the endpoints that are not among current and have no open connection,
// so that what the balancer holds stays bounded as replicas come and go.
func (b *Balancer) Prune(current []netsvc.Endpoint) {
	keep := make(map[Key]bool, len(current))
	for _, e := range current {
		keep[KeyOf(e)] = true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, st := range b.eps {
		if !keep[k] && st.active == 0 {
			delete(b.eps, k)
		}
	}
}

// Stats returns what the balancer knows about each endpoint, ordered by key.
func (b *Balancer) Stats() []EndpointStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]EndpointStats, 0, len(b.eps))
	for k, st := range b.eps {
		out = append(out, EndpointStats{
			Key:          k,
			Active:       st.active,
			Total:        st.total,
			Latency:      time.Duration(st.latency),
			Failures:     st.failures,
			PenaltyUntil: st.until,
		})
	}
	slices.SortFunc(out, func(a, b EndpointStats) int {
		return cmp.Or(
			cmp.Compare(a.Key.Service, b.Key.Service),
			cmp.Compare(a.Key.Port, b.Key.Port),
			cmp.Compare(a.Key.Depot, b.Key.Depot),
			a.Key.Addr.Compare(b.Key.Addr),
		)
	})
	return out
}
