package apiserver

import (
	"encoding/json"
	"net/http"
	"sync"

	"qnet.dev/qnet/state"
)

// EventLog keeps the latest events of a node's state and fans new ones out to streams.
type EventLog struct {
	mu      sync.Mutex
	ring    []state.Event
	next    int
	full    bool
	waiters map[chan state.Event]string // channel -> service filter
	cancel  func()
}

// NewEventLog subscribes to st and keeps the last n events.
func NewEventLog(st *state.Store, n int) *EventLog {
	l := &EventLog{ring: make([]state.Event, n), waiters: map[chan state.Event]string{}}
	l.cancel = st.Subscribe(l.add)
	return l
}

// Close unsubscribes.
func (l *EventLog) Close() { l.cancel() }

func (l *EventLog) add(evs []state.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range evs {
		l.ring[l.next] = e
		l.next = (l.next + 1) % len(l.ring)
		l.full = l.full || l.next == 0
		for ch, svc := range l.waiters {
			if svc != "" && svc != e.Service {
				continue
			}
			select {
			case ch <- e:
			default: // a reader this slow misses events rather than stall the state
			}
		}
	}
}

// Recent returns up to n of the latest events, oldest first, of one service or of all
// when service is "".
func (l *EventLog) Recent(service string, n int) []state.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.recent(service, n)
}

func (l *EventLog) recent(service string, n int) []state.Event {
	var all []state.Event
	if l.full {
		all = append(all, l.ring[l.next:]...)
	}
	all = append(all, l.ring[:l.next]...)
	var out []state.Event
	for i := len(all) - 1; i >= 0 && len(out) < n; i-- {
		if service == "" || all[i].Service == service {
			out = append(out, all[i])
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// watch returns up to n recent events and a channel of the events after them. Both are
// taken under one lock, so no event is missed or sent twice between the two.
func (l *EventLog) watch(service string, n int) ([]state.Event, chan state.Event, func()) {
	ch := make(chan state.Event, 256)
	l.mu.Lock()
	l.waiters[ch] = service
	recent := l.recent(service, n)
	l.mu.Unlock()
	return recent, ch, func() {
		l.mu.Lock()
		delete(l.waiters, ch)
		l.mu.Unlock()
	}
}

// recentEvents is how many past events an event stream starts with.
const recentEvents = 200

// eventStream writes events as JSON lines: the recent ones, then, with follow=true, new
// ones as they happen until the client goes away.
func (s *Server) eventStream(w http.ResponseWriter, r *http.Request) error {
	follow, err := boolParam(r, "follow")
	if err != nil {
		return err
	}
	service := r.URL.Query().Get("service")
	var (
		recent []state.Event
		ch     chan state.Event
	)
	if follow {
		var stop func()
		recent, ch, stop = s.events.watch(service, recentEvents)
		defer stop()
	} else {
		recent = s.events.Recent(service, recentEvents)
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	out := newFlushWriter(w)
	enc := json.NewEncoder(out)
	for _, e := range recent {
		if err := enc.Encode(e); err != nil {
			return nil
		}
	}
	if !follow {
		return nil
	}
	for {
		select {
		case <-r.Context().Done():
			return nil
		case e := <-ch:
			if err := enc.Encode(e); err != nil {
				return nil
			}
		}
	}
}
