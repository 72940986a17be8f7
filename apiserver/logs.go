package apiserver

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"sync"

	"golang.org/x/sync/errgroup"

	"qnet.dev/qnet/logfile"
	"qnet.dev/qnet/state"
)

// logParams are the query parameters of the log endpoints.
type logParams struct {
	follow bool
	tail   int
	stream string // stdout, stderr or all
}

func parseLogParams(r *http.Request) (logParams, error) {
	p := logParams{tail: -1, stream: "all"}
	var err error
	if p.follow, err = boolParam(r, "follow"); err != nil {
		return p, err
	}
	if v := r.URL.Query().Get("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < -1 {
			return p, badRequest("query parameter tail=%q: want a number of lines (-1 for all)", v)
		}
		p.tail = n
	}
	switch v := r.URL.Query().Get("stream"); v {
	case "", "all":
	case "stdout", "stderr":
		p.stream = v
	default:
		return p, badRequest("query parameter stream=%q: want stdout, stderr or all", v)
	}
	return p, nil
}

// lineWriter writes whole lines, each with a prefix, to a shared writer, so the lines of
// several streams interleave but never break.
type lineWriter struct {
	mu     *sync.Mutex
	w      interface{ Write([]byte) (int, error) }
	prefix string
	buf    []byte
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		if err := l.emit(l.buf[:i+1]); err != nil {
			return 0, err
		}
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}

func (l *lineWriter) emit(line []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]byte, 0, len(l.prefix)+len(line))
	out = append(append(out, l.prefix...), line...)
	_, err := l.w.Write(out)
	return err
}

// flush writes a last line that had no newline.
func (l *lineWriter) flush() {
	if len(l.buf) > 0 {
		l.emit(append(l.buf, '\n'))
		l.buf = nil
	}
}

// streamLogs tails the log files of depots into w, one prefix per depot.
func (s *Server) streamLogs(ctx context.Context, w http.ResponseWriter, depots map[string]string, p logParams) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	out := newFlushWriter(w)
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	for id, prefix := range depots {
		stdout, stderr, ok := s.b.LogPaths(id)
		if !ok {
			continue
		}
		for _, f := range []struct{ name, path string }{{"stdout", stdout}, {"stderr", stderr}} {
			if p.stream != "all" && p.stream != f.name {
				continue
			}
			lw := &lineWriter{mu: &mu, w: out, prefix: prefix}
			g.Go(func() error {
				defer lw.flush()
				return logfile.Tail(gctx, f.path, p.tail, p.follow, lw)
			})
		}
	}
	if err := g.Wait(); err != nil && ctx.Err() == nil {
		s.log.Warn("log stream ended", "err", err)
	}
	return nil
}

func (s *Server) depotLogs(w http.ResponseWriter, r *http.Request) error {
	p, err := parseLogParams(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	pl, ok, err := s.b.Store().Placement(id)
	if err != nil {
		return err
	}
	if _, _, here := s.b.LogPaths(id); !ok && !here {
		return notFound("depot %q not found (qnet get depots lists them)", id)
	}
	if ok && pl.Node != s.b.Status().Node {
		return httpError{http.StatusMisdirectedRequest, "depot " + id + " runs on node " + pl.Node + "; ask that node's API for its logs", nil}
	}
	return s.streamLogs(r.Context(), w, map[string]string{id: ""}, p)
}

func (s *Server) serviceLogs(w http.ResponseWriter, r *http.Request) error {
	p, err := parseLogParams(r)
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	if _, err := s.serviceRecord(name); err != nil {
		return err
	}
	me := s.b.Status().Node
	ps, err := s.b.Store().Placements(func(pl *state.Placement) bool { return pl.Service == name && pl.Node == me })
	if err != nil {
		return err
	}
	if depot := r.URL.Query().Get("depot"); depot != "" {
		for _, pl := range ps {
			if pl.ID == depot {
				return s.streamLogs(r.Context(), w, map[string]string{depot: ""}, p)
			}
		}
		return notFound("service %s has no depot %q on this node", name, depot)
	}
	depots := map[string]string{}
	for _, pl := range ps {
		depots[pl.ID] = "[" + pl.ID + "] "
	}
	return s.streamLogs(r.Context(), w, depots, p)
}
