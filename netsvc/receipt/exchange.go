package receipt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"qnet.dev/qnet/identity"
)

// DefaultMaxSkew is how far apart the ends' open and close times may be for the
// acceptor to co-sign the dialer's: clock skew between nodes plus the stream's own
// latency.
const DefaultMaxSkew = time.Minute

// Config is one end's part in the receipts of the flows it carries with one peer.
type Config struct {
	// Self is this node's ID; Key its signing key (read it from identity.Current
	// when the stream starts, so a rotated key is used from then on).
	Self string
	Key  *identity.Key
	// Peer is the other end's node ID and PeerKey its public key, both as the
	// tunnel's handshake proved them: a view is accepted only under that key.
	Peer    string
	PeerKey identity.PublicKey
	// MaxSkew bounds the difference of the ends' times (DefaultMaxSkew when 0).
	MaxSkew time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Format1 makes the flows this end dials speak HELLO version 1: SHA-256, and
	// receipts of format 1, as a peer from before receipts named their hash needs
	// (where DefaultHash is SHA-256, flows are dialed so anyway). An acceptor follows
	// the dialer's HELLO whatever this says.
	Format1 bool
}

// Validate reports what is missing or wrong in the config.
func (c *Config) Validate() error {
	switch {
	case c.Key == nil:
		return errors.New("receipt config: Key is required (this node's signing key)")
	case c.MaxSkew < 0:
		return fmt.Errorf("receipt config: MaxSkew %s is negative; use 0 for the default %s", c.MaxSkew, DefaultMaxSkew)
	}
	if err := checkName("receipt config: Self", c.Self, false); err != nil {
		return err
	}
	if err := checkName("receipt config: Peer", c.Peer, false); err != nil {
		return err
	}
	if c.Self == c.Peer {
		return fmt.Errorf("receipt config: Self and Peer are the same node %q", c.Self)
	}
	if err := c.PeerKey.Check(); err != nil {
		return fmt.Errorf("receipt config: PeerKey: %w", err)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.MaxSkew == 0 {
		c.MaxSkew = DefaultMaxSkew
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// now is the config's clock, without a monotonic reading and in UTC, as a receipt
// holds times.
func (c *Config) now() time.Time { return c.Now().Round(0).UTC() }

// Exchange runs the receipt exchange of one flow over rw: a control stream, or the
// trailer of a data stream both of whose directions have ended. The dialer sends its
// signed view first and the acceptor answers with its own (see the package comment).
// mine is this end's view, in the dialer's perspective; From and To must be cfg's
// Self and Peer in the order side implies.
//
// Exchange returns a receipt to keep in every case but a bad argument: complete when
// the ends agreed, else one-sided with a Dispute, together with an error wrapping
// ErrDisputed (the views differ) or the I/O or protocol failure. When ctx ends first
// and rw has SetDeadline, the exchange is cut short and the receipt is one-sided.
func Exchange(ctx context.Context, rw io.ReadWriter, side Side, mine View, cfg Config) (Receipt, error) {
	if err := cfg.Validate(); err != nil {
		return Receipt{}, err
	}
	cfg = cfg.withDefaults()
	if err := checkEnds(side, &mine, &cfg); err != nil {
		return Receipt{}, err
	}
	stop := watch(ctx, rw)
	defer stop()
	r, err := exchange(rw, rw, side, mine, &cfg)
	return r, ctxErr(ctx, err)
}

// checkEnds checks that the view names this node and its peer as side says.
func checkEnds(side Side, v *View, cfg *Config) error {
	if !side.valid() {
		return fmt.Errorf("receipt exchange: %v is not a side (want Dialer or Acceptor)", side)
	}
	if err := v.Check(); err != nil {
		return fmt.Errorf("receipt exchange: own view: %w", err)
	}
	self, peer := v.From, v.To
	if side == Acceptor {
		self, peer = v.To, v.From
	}
	if self != cfg.Self || peer != cfg.Peer {
		return fmt.Errorf("receipt exchange: own view as %s names %s as this node and %s as the peer; config says %s and %s",
			side, self, peer, cfg.Self, cfg.Peer)
	}
	return nil
}

type deadliner interface{ SetDeadline(time.Time) error }

// watch cuts the I/O on rw short when ctx ends, by moving its deadline to the past.
// The returned stop must be called when the I/O is over.
func watch(ctx context.Context, rw any) (stop func() bool) {
	d, ok := rw.(deadliner)
	if !ok {
		return func() bool { return true }
	}
	return context.AfterFunc(ctx, func() { d.SetDeadline(time.Unix(1, 0)) })
}

// ctxErr puts the context's error in front of err when the context ended, since it is
// then the cause of whatever deadline error err holds.
func ctxErr(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		return fmt.Errorf("%w: %w", context.Cause(ctx), err)
	}
	return err
}

// exchange is Exchange over an already checked view and config. It reads from r
// exactly the frames it needs, so r may be a buffered reader that holds more.
func exchange(r io.Reader, w io.Writer, side Side, mine View, cfg *Config) (Receipt, error) {
	peerSide := 3 - side
	single := func(v View, sig *identity.Signature, s Side) Receipt {
		rc := Receipt{View: v}
		if s == Dialer {
			rc.FromSig = sig
		} else {
			rc.ToSig = sig
		}
		return rc
	}
	sign := func(v *View) (*identity.Signature, error) {
		s, err := cfg.Key.Sign(identity.DomainReceipt, v.canonical())
		if err != nil {
			return nil, fmt.Errorf("flow %s: sign receipt: %w", v.Flow, err)
		}
		return &s, nil
	}
	oneSided := func(v View, sig *identity.Signature, reason string, peer *Receipt) Receipt {
		rc := single(v, sig, side)
		rc.Dispute = &Dispute{Reason: reason, Peer: peer}
		return rc
	}
	send := func(v View, sig *identity.Signature) error {
		body, err := json.Marshal(single(v, sig, side))
		if err != nil {
			return fmt.Errorf("encode view: %w", err)
		}
		if _, err := w.Write(appendFrame(make([]byte, 0, headerLen+len(body)), frameView, body)); err != nil {
			return fmt.Errorf("send view: %w", err)
		}
		return nil
	}
	recv := func() (Receipt, error) {
		h, body, err := readFrame(r)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return Receipt{}, fmt.Errorf("read the %s's view: %w", peerSide, err)
		}
		if h.typ != frameView {
			return Receipt{}, fmt.Errorf("%w: %s frame where the %s's VIEW belongs", ErrProtocol, frameName(h.typ), peerSide)
		}
		theirs, err := decodeView(body, peerSide)
		if err != nil {
			return Receipt{}, err
		}
		if theirs.Flow != mine.Flow || theirs.From != mine.From || theirs.To != mine.To {
			return Receipt{}, fmt.Errorf("%w: the %s's view is of flow %s from %s to %s, this one of flow %s from %s to %s",
				ErrProtocol, peerSide, theirs.Flow, theirs.From, theirs.To, mine.Flow, mine.From, mine.To)
		}
		if err := VerifySide(theirs, peerSide, cfg.PeerKey); err != nil {
			return Receipt{}, err
		}
		return theirs, nil
	}

	if side == Dialer {
		sig, err := sign(&mine)
		if err != nil {
			return Receipt{}, err
		}
		if err := send(mine, sig); err != nil {
			return oneSided(mine, sig, "exchange failed: "+err.Error(), nil), fmt.Errorf("flow %s: %w", mine.Flow, err)
		}
		theirs, err := recv()
		if err != nil {
			return oneSided(mine, sig, "exchange failed: "+err.Error(), nil), fmt.Errorf("flow %s: %w", mine.Flow, err)
		}
		if d := compare(&mine, &theirs.View, 0); !d.none() {
			return oneSided(mine, sig, d.String(), &theirs), fmt.Errorf("flow %s: %w: %s", mine.Flow, ErrDisputed, d)
		}
		return Receipt{View: mine, FromSig: sig, ToSig: theirs.ToSig}, nil
	}

	// Acceptor: take the dialer's times where they are within the skew of ours, so a
	// dispute is about what truly differs; co-sign the dialer's view when nothing does.
	theirs, rerr := recv()
	final := mine
	var d difference
	if rerr == nil {
		if final.Opened.Sub(theirs.Opened).Abs() <= cfg.MaxSkew {
			final.Opened = theirs.Opened
		}
		if final.Closed.Sub(theirs.Closed).Abs() <= cfg.MaxSkew {
			final.Closed = theirs.Closed
		}
		if final.Closed.Before(final.Opened) { // adopting one time but not the other
			final.Opened, final.Closed = mine.Opened, mine.Closed
		}
		d = compare(&theirs.View, &final, 0)
	}
	sig, err := sign(&final)
	if err != nil {
		return Receipt{}, err
	}
	serr := send(final, sig)
	if rerr == nil && d.none() {
		rc := Receipt{View: final, FromSig: theirs.FromSig, ToSig: sig}
		if serr != nil {
			return rc, fmt.Errorf("flow %s: receipt complete here, but the dialer did not get it: %w", mine.Flow, serr)
		}
		return rc, nil
	}
	if rerr != nil {
		return oneSided(final, sig, "exchange failed: "+rerr.Error(), nil), fmt.Errorf("flow %s: %w", mine.Flow, errors.Join(rerr, serr))
	}
	return oneSided(final, sig, d.String(), &theirs), fmt.Errorf("flow %s: %w: %s", mine.Flow, ErrDisputed, d)
}
