package tunnel

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
)

func TestStreamsBothWays(t *testing.T) {
	t.Parallel()
	dcfg, lcfg := twoNodes(t, nil)
	d, l, _ := pair(t, dcfg, lcfg)
	if id, key := d.Peer(); id != testKey(t, 1).ID() || !key.Equal(testKey(t, 1).Public()) || !d.Registered() {
		t.Fatalf("dialer sees peer %s (registered %v), want %s", id, d.Registered(), testKey(t, 1).ID())
	}
	if id, _ := l.Peer(); id != testKey(t, 0).ID() || !l.Registered() {
		t.Fatalf("listener sees peer %s (registered %v), want %s", id, l.Registered(), testKey(t, 0).ID())
	}
	echo(t, d)
	echo(t, l)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 10 {
		for _, tun := range []*Tunnel{d, l} {
			wg.Go(func() {
				errs <- roundTrip(t, tun, strings.Repeat("x", 1+i*7000))
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if s := d.Stats(); s.BytesSent == 0 || s.BytesReceived == 0 || s.Rekeys != 0 {
		t.Fatalf("dialer stats %+v", s)
	}
	if d.Epoch() != 0 || d.Err() != nil {
		t.Fatalf("epoch %d, err %v", d.Epoch(), d.Err())
	}
}

func TestCloseIsImmediateAndReported(t *testing.T) {
	t.Parallel()
	dcfg, lcfg := twoNodes(t, nil)
	d, l, _ := pair(t, dcfg, lcfg)
	echo(t, l)
	s, err := d.Open(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	readErr := make(chan error, 1)
	go func() {
		_, err := s.Read(make([]byte, 1))
		readErr <- err
	}()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.Done():
	default:
		t.Fatal("Done not closed after Close returned")
	}
	if !errors.Is(d.Err(), ErrClosed) {
		t.Fatalf("Err = %v, want ErrClosed", d.Err())
	}
	if err := <-readErr; err == nil {
		t.Fatal("a stream read survived Close")
	}
	if _, err := d.Open(ctxT(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Open after Close: %v, want ErrClosed", err)
	}
	select {
	case <-l.Done():
	case <-ctxT(t).Done():
		t.Fatal("the peer's tunnel did not end")
	}
	if !errors.Is(l.Err(), ErrPeerClosed) {
		t.Fatalf("peer's Err = %v, want ErrPeerClosed", l.Err())
	}
	if _, err := l.Accept(ctxT(t)); err == nil {
		t.Fatal("Accept on an ended tunnel succeeded")
	}
}

func TestListenerCloseEndsItsTunnels(t *testing.T) {
	t.Parallel()
	dcfg, lcfg := twoNodes(t, nil)
	d, l, ln := pair(t, dcfg, lcfg)
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(l.Err(), ErrClosed) {
		t.Fatalf("accepted tunnel: Err = %v, want ErrClosed", l.Err())
	}
	<-d.Done()
	if _, err := ln.Accept(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
}

func TestOpenHonoursContext(t *testing.T) {
	t.Parallel()
	dcfg, lcfg := twoNodes(t, nil)
	d, _, _ := pair(t, dcfg, lcfg)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.Open(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Open with a canceled context: %v", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	go cancel()
	if _, err := d.Accept(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Accept: %v", err)
	}
}

func TestStreamEOF(t *testing.T) {
	t.Parallel()
	dcfg, lcfg := twoNodes(t, nil)
	d, l, _ := pair(t, dcfg, lcfg)
	done := make(chan error, 1)
	go func() {
		s, err := l.Accept(ctxT(t))
		if err != nil {
			done <- err
			return
		}
		b, err := io.ReadAll(s)
		if err == nil && string(b) != "hello" {
			err = errors.New("got " + string(b))
		}
		done <- err
	}()
	s, err := d.Open(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(s, "hello")
	s.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
