package apiserver

import (
	"bytes"
	"context"
	"fmt"
	"io"
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

// LogRequest asks a node for the logs of some of its depots.
type LogRequest struct {
	// Depots maps depot IDs to the prefix of their lines.
	Depots map[string]string `json:"depots"`
	Tail   int               `json:"tail"`
	Follow bool              `json:"follow"`
	// Stream is stdout, stderr or all.
	Stream string `json:"stream"`
}

// WriteLogs tails the log files of the depots in req (found through paths) into w, each
// line whole and with its depot's prefix, until the files end or, with Follow, until ctx
// ends. Nodes serve their depots' logs to other nodes' APIs with it.
func WriteLogs(ctx context.Context, paths func(id string) (stdout, stderr string, ok bool), req LogRequest, w io.Writer) error {
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	for id, prefix := range req.Depots {
		stdout, stderr, ok := paths(id)
		if !ok {
			continue
		}
		for _, f := range []struct{ name, path string }{{"stdout", stdout}, {"stderr", stderr}} {
			if req.Stream != "" && req.Stream != "all" && req.Stream != f.name {
				continue
			}
			lw := &lineWriter{mu: &mu, w: w, prefix: prefix}
			g.Go(func() error {
				defer lw.flush()
				return logfile.Tail(gctx, f.path, req.Tail, req.Follow, lw)
			})
		}
	}
	return g.Wait()
}

// streamLogs streams the logs of depots, grouped by the node that runs them: this
// node's from their files, the others' through their nodes over the mesh.
func (s *Server) streamLogs(ctx context.Context, w http.ResponseWriter, byNode map[string]map[string]string, p logParams) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	out := newFlushWriter(w)
	var mu sync.Mutex
	me := s.b.Status().Node
	g, gctx := errgroup.WithContext(ctx)
	for node, depots := range byNode {
		req := LogRequest{Depots: depots, Tail: p.tail, Follow: p.follow, Stream: p.stream}
		lw := &lineWriter{mu: &mu, w: out}
		g.Go(func() error {
			defer lw.flush()
			if node == me {
				return WriteLogs(gctx, s.b.LogPaths, req, lw)
			}
			if err := s.b.RemoteLogs(gctx, node, req, lw); err != nil && gctx.Err() == nil {
				lw.Write([]byte(fmt.Sprintf("qnet: logs of node %s unavailable: %v\n", node, err)))
			}
			return nil
		})
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
	me := s.b.Status().Node
	if _, _, here := s.b.LogPaths(id); !ok && !here {
		return notFound("depot %q not found (qnet get depots lists them)", id)
	}
	node := me
	if ok {
		node = pl.Node
	}
	return s.streamLogs(r.Context(), w, map[string]map[string]string{node: {id: ""}}, p)
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
	ps, err := s.b.Store().Placements(func(pl *state.Placement) bool { return pl.Service == name })
	if err != nil {
		return err
	}
	byNode := map[string]map[string]string{}
	add := func(pl state.Placement, prefix string) {
		if byNode[pl.Node] == nil {
			byNode[pl.Node] = map[string]string{}
		}
		byNode[pl.Node][pl.ID] = prefix
	}
	if depot := r.URL.Query().Get("depot"); depot != "" {
		for _, pl := range ps {
			if pl.ID == depot {
				add(pl, "")
				return s.streamLogs(r.Context(), w, byNode, p)
			}
		}
		return notFound("service %s has no depot %q", name, depot)
	}
	for _, pl := range ps {
		add(pl, "["+pl.ID+"] ")
	}
	return s.streamLogs(r.Context(), w, byNode, p)
}
