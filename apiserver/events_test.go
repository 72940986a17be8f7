package apiserver

import (
	"fmt"
	"slices"
	"testing"

	"qnet.dev/qnet/state"
)

func newTestLog(n int) *EventLog {
	return &EventLog{ring: make([]state.Event, n), waiters: map[chan state.Event]string{}}
}

func ev(h uint64, svc string) state.Event {
	return state.Event{Height: h, Kind: "service.applied", Service: svc, Message: fmt.Sprint(h)}
}

func heights(evs []state.Event) []uint64 {
	var hs []uint64
	for _, e := range evs {
		hs = append(hs, e.Height)
	}
	return hs
}

// TestEventLogRing checks the ring keeps the latest events, oldest first, per service.
func TestEventLogRing(t *testing.T) {
	l := newTestLog(4)
	if got := l.Recent("", 10); len(got) != 0 {
		t.Fatalf("empty log: %v", got)
	}
	l.add([]state.Event{ev(1, "a"), ev(2, "b")})
	if got := heights(l.Recent("", 10)); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("before wrapping: %v", got)
	}
	l.add([]state.Event{ev(3, "a"), ev(4, "b"), ev(5, "a"), ev(6, "a")})
	cases := []struct {
		service string
		n       int
		want    []uint64
	}{
		{"", 10, []uint64{3, 4, 5, 6}},
		{"", 2, []uint64{5, 6}},
		{"a", 10, []uint64{3, 5, 6}},
		{"a", 1, []uint64{6}},
		{"b", 10, []uint64{4}},
		{"c", 10, nil},
		{"", 0, nil},
	}
	for _, c := range cases {
		if got := heights(l.Recent(c.service, c.n)); !slices.Equal(got, c.want) {
			t.Errorf("Recent(%q, %d) = %v, want %v", c.service, c.n, got, c.want)
		}
	}
}

// TestEventLogWatch checks a watcher gets the recent events and then each new one of
// its service exactly once, and that a slow watcher loses events rather than stall the
// state.
func TestEventLogWatch(t *testing.T) {
	l := newTestLog(100)
	l.add([]state.Event{ev(1, "a"), ev(2, "b")})
	recent, ch, stop := l.watch("a", 10)
	if got := heights(recent); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("recent of a: %v", got)
	}
	l.add([]state.Event{ev(3, "b"), ev(4, "a")})
	if e := <-ch; e.Height != 4 {
		t.Fatalf("watched event %+v, want height 4", e)
	}
	select {
	case e := <-ch:
		t.Fatalf("second event %+v", e)
	default:
	}
	// Nobody reads: add must not block, and the channel holds what fits.
	var many []state.Event
	for h := range uint64(1000) {
		many = append(many, ev(10+h, "a"))
	}
	l.add(many)
	if len(ch) != cap(ch) {
		t.Fatalf("channel holds %d of %d", len(ch), cap(ch))
	}
	stop()
	for len(ch) > 0 {
		<-ch
	}
	l.add([]state.Event{ev(5000, "a")})
	if len(ch) != 0 {
		t.Fatal("a stopped watcher still gets events")
	}
}
