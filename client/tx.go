package client

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"qnet.dev/qnet/api"
	"qnet.dev/qnet/identity"
	"qnet.dev/qnet/jointoken"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/manifest"
	"qnet.dev/qnet/state"
)

// Event is a change in the network's state.
type Event = state.Event

// TxLifetime is how long a signed transaction stays valid.
const TxLifetime = 10 * time.Minute

func (c *Client) operatorKey() (*identity.Key, error) {
	c.keyOnce.Do(func() {
		if c.keyPath == "" {
			c.keyErr = errors.New("the context names no operator key (operatorKey), so transactions cannot be signed")
			return
		}
		c.key, c.keyErr = identity.Load(c.keyPath)
	})
	return c.key, c.keyErr
}

// Sign builds and signs a transaction for the node's network with the operator's key.
func (c *Client) Sign(ctx context.Context, typ ledger.TxType, payload any) (*ledger.Tx, error) {
	key, err := c.operatorKey()
	if err != nil {
		return nil, err
	}
	st, err := c.Status(ctx)
	if err != nil {
		return nil, err
	}
	network, err := ledger.ParseHash(st.NetworkID)
	if err != nil {
		return nil, fmt.Errorf("node's network id: %w", err)
	}
	t, err := ledger.NewTx(typ, network, payload, time.Now().Add(TxLifetime))
	if err != nil {
		return nil, err
	}
	return t, t.Sign(key)
}

// Submit sends signed transactions and returns their results in order. An error is
// returned only when the request as a whole failed.
func (c *Client) Submit(ctx context.Context, txs ...*ledger.Tx) ([]api.TxResult, error) {
	var resp api.SubmitResponse
	if err := c.do(ctx, http.MethodPost, "/txs", nil, api.SubmitRequest{Txs: txs}, &resp, http.StatusUnprocessableEntity); err != nil {
		return nil, err
	}
	if len(resp.Results) != len(txs) {
		return nil, fmt.Errorf("node answered %d results for %d transactions", len(resp.Results), len(txs))
	}
	return resp.Results, nil
}

// submitOne signs one transaction of type typ with the operator's key and submits it;
// a transaction the network refuses is an error holding the network's reason.
func (c *Client) submitOne(ctx context.Context, typ ledger.TxType, payload any) (api.TxResult, error) {
	t, err := c.Sign(ctx, typ, payload)
	if err != nil {
		return api.TxResult{}, err
	}
	res, err := c.Submit(ctx, t)
	if err != nil {
		return api.TxResult{}, err
	}
	if res[0].Error != "" {
		return res[0], errors.New(res[0].Error)
	}
	return res[0], nil
}

// ApplyResult says what an apply did to one service.
type ApplyResult struct {
	Name string
	// Action is "created", "configured" (new revision) or "unchanged".
	Action   string
	Revision uint64
	TxID     string
	Height   uint64
}

// Apply defaults and validates each manifest, signs a service.apply transaction for
// each and submits them together. The error lists every service that failed.
func (c *Client) Apply(ctx context.Context, svcs []*manifest.Service) ([]ApplyResult, error) {
	before := map[string]uint64{}
	current, err := c.Services(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range current {
		before[s.Name] = s.Revision
	}
	txs := make([]*ledger.Tx, len(svcs))
	var inputs inputNames
	for i, s := range svcs {
		if err := c.resolveDepots(ctx, s); err != nil {
			return nil, fmt.Errorf("service %s: %w", s.Metadata.Name, err)
		}
		s.Default()
		if errs := s.Validate(); len(errs) > 0 {
			return nil, fmt.Errorf("service %s: %w", s.Metadata.Name, errs)
		}
		if err := c.checkInputs(ctx, s, &inputs); err != nil {
			return nil, fmt.Errorf("service %s: %w", s.Metadata.Name, err)
		}
		if txs[i], err = c.Sign(ctx, ledger.TxServiceApply, ledger.ServiceApply{Service: s}); err != nil {
			return nil, err
		}
	}
	results, err := c.Submit(ctx, txs...)
	if err != nil {
		return nil, err
	}
	out := make([]ApplyResult, len(svcs))
	var errs []error
	for i, r := range results {
		name := svcs[i].Metadata.Name
		if r.Error != "" {
			errs = append(errs, fmt.Errorf("service %s: %s", name, r.Error))
			continue
		}
		detail, err := c.Service(ctx, name)
		if err != nil {
			errs = append(errs, fmt.Errorf("service %s: %w", name, err))
			continue
		}
		res := ApplyResult{Name: name, Revision: detail.Revision, TxID: r.ID, Height: r.Height}
		switch prev, existed := before[name]; {
		case !existed:
			res.Action = "created"
		case prev == detail.Revision:
			res.Action = "unchanged"
		default:
			res.Action = "configured"
		}
		out[i] = res
	}
	return out, errors.Join(errs...)
}

// Delete removes a service and its depots.
func (c *Client) Delete(ctx context.Context, name string) (api.TxResult, error) {
	return c.submitOne(ctx, ledger.TxServiceDelete, ledger.ServiceDelete{Name: name})
}

// Errors WaitReady wraps when it stops early because waiting longer cannot help; test
// with errors.Is.
var (
	// ErrUnschedulable: the scheduler could not place every replica of the service, and
	// its reason held across two views a tick apart.
	ErrUnschedulable = errors.New("replicas cannot be placed")
	// ErrDepotsFailing: every depot of the current revision has exited for good or
	// keeps failing (GiveUpRestarts restarts or more).
	ErrDepotsFailing = errors.New("every depot of the current revision is failing or has exited")
)

// GiveUpRestarts is how many restarts of a failing depot WaitReady waits through before
// it takes the failure as lasting.
const GiveUpRestarts = 3

// readyTick is how often WaitReady looks again when no event wakes it. It is also how
// long an unschedulable reason must hold before WaitReady believes it: right after a
// new revision is applied the reason of the previous one may still show until the
// controller has looked again, which takes it well under a tick.
const readyTick = time.Second

// WaitReady waits until the service's current revision has all its replicas ready,
// calling progress with each new view. It stops early, with an error, when ctx ends,
// when the replicas cannot be placed (ErrUnschedulable), or when every depot of the
// current revision has exited or keeps failing (ErrDepotsFailing); the error then holds
// the scheduler's or the depots' reasons.
func (c *Client) WaitReady(ctx context.Context, name string, progress func(*api.ServiceDetail)) error {
	var w readyWatch
	noView := func(error) error { return fmt.Errorf("service %s: %w", name, ctx.Err()) }
	return c.watchService(ctx, name, noView, func(d *api.ServiceDetail) (bool, error) {
		if progress != nil {
			progress(d)
		}
		if d.Ready >= d.Desired && d.Placed == d.Desired && countCurrent(d) == d.Desired {
			return true, nil
		}
		if err := w.check(d, time.Now()); err != nil {
			return true, fmt.Errorf("service %s will not become ready: %w", name, err)
		}
		return false, nil
	})
}

// watchService reads the service and hands each view to step, and reads it again each
// time an event about the service arrives or readyTick passes, until step is done or
// fails, or ctx ends. Events only wake it early: every view is read afresh, so a missed
// or coalesced event costs at most a tick. When ctx ends after a view was read, the
// error says how many replicas that view had ready; a read that fails once ctx has ended
// before any view was read is handed to noView for the error to return.
func (c *Client) watchService(ctx context.Context, name string, noView func(readErr error) error, step func(*api.ServiceDetail) (done bool, err error)) error {
	events := make(chan struct{}, 1)
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- c.Events(ectx, name, true, func(Event) error {
			select {
			case events <- struct{}{}:
			default:
			}
			return nil
		})
	}()
	defer func() { cancel(); <-done }()
	tick := time.NewTicker(readyTick)
	defer tick.Stop()
	var last *api.ServiceDetail
	ended := func() error {
		return fmt.Errorf("service %s: %d/%d replicas ready: %w", name, last.Ready, last.Desired, ctx.Err())
	}
	for {
		d, err := c.Service(ctx, name)
		if err != nil {
			switch {
			case ctx.Err() == nil:
				return err
			case last == nil:
				return noView(err)
			}
			return ended()
		}
		last = d
		if done, err := step(d); done || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ended()
		case <-events:
		case <-tick.C:
		}
	}
}

// readyWatch remembers what WaitReady saw, to tell a service that cannot become ready
// from one on its way.
type readyWatch struct {
	// The unschedulable reason last seen, of which revision, and since when.
	revision uint64
	reason   string
	since    time.Time
}

// check returns an error when view d, seen at now, shows the service cannot become
// ready by waiting. It is pure but for what it remembers of earlier views.
func (w *readyWatch) check(d *api.ServiceDetail, now time.Time) error {
	switch {
	case d.Unschedulable == "":
		*w = readyWatch{}
	case d.Unschedulable != w.reason || d.Revision != w.revision:
		*w = readyWatch{revision: d.Revision, reason: d.Unschedulable, since: now}
	case now.Sub(w.since) >= readyTick:
		return fmt.Errorf("%w: %s", ErrUnschedulable, d.Unschedulable)
	}

	var lines []string
	for _, dep := range d.Depots {
		if dep.Revision != d.Revision {
			continue
		}
		st := dep.Status
		switch {
		case st.State == ledger.DepotExited:
			reason := st.Reason
			if reason == "" && st.ExitCode != nil {
				reason = fmt.Sprintf("exited with code %d", *st.ExitCode)
			}
			lines = append(lines, fmt.Sprintf("depot %s is not restarted (restart policy %s): %s", dep.ID, restartPolicy(d), orNone(reason)))
		case st.State == ledger.DepotFailing && st.Restarts >= GiveUpRestarts:
			lines = append(lines, fmt.Sprintf("depot %s is failing after %d restarts: %s", dep.ID, st.Restarts, orNone(st.Reason)))
		default:
			return nil // this one may still come up
		}
	}
	if len(lines) == 0 {
		return nil
	}
	return fmt.Errorf("%w (revision %d):\n  %s", ErrDepotsFailing, d.Revision, strings.Join(lines, "\n  "))
}

func restartPolicy(d *api.ServiceDetail) string {
	if d.Spec == nil || d.Spec.Spec.Restart.Policy == "" {
		return string(manifest.DefaultRestartPolicy)
	}
	return string(d.Spec.Spec.Restart.Policy)
}

func orNone(reason string) string {
	if reason == "" {
		return "no reason given"
	}
	return reason
}

// countCurrent counts depots of the service, of any revision, still placed.
func countCurrent(d *api.ServiceDetail) int { return len(d.Depots) }

// CreateToken makes a join token for the node this client talks to: a fresh secret,
// whose hash a token.create transaction (signed by the operator) records with the
// token's expiry and number of uses. The token string is returned once; the ledger
// never holds the secret.
func (c *Client) CreateToken(ctx context.Context, ttl time.Duration, uses int) (string, *api.Token, error) {
	st, err := c.Status(ctx)
	if err != nil {
		return "", nil, err
	}
	network, err := ledger.ParseHash(st.NetworkID)
	if err != nil {
		return "", nil, fmt.Errorf("node's network id: %w", err)
	}
	fpb, err := hex.DecodeString(st.Fingerprint)
	if err != nil || len(fpb) != 32 {
		return "", nil, fmt.Errorf("node's key fingerprint %q is not 32 bytes of hex", st.Fingerprint)
	}
	var fp [32]byte
	copy(fp[:], fpb)
	tok, err := jointoken.New(network, st.MeshAddr, fp)
	if err != nil {
		return "", nil, err
	}
	sum := tok.SecretHash()
	p := ledger.TokenCreate{ID: tok.ID(), SecretHash: hex.EncodeToString(sum[:]), Expires: time.Now().Add(ttl).UTC(), Uses: uses}
	if _, err := c.submitOne(ctx, ledger.TxTokenCreate, p); err != nil {
		return "", nil, err
	}
	return tok.String(), &api.Token{ID: p.ID, Expires: p.Expires, UsesLeft: uses, CreatedBy: ""}, nil
}

// Tokens lists the join tokens (never their secrets).
func (c *Client) Tokens(ctx context.Context) ([]api.Token, error) {
	var out []api.Token
	return out, c.do(ctx, http.MethodGet, "/tokens", nil, nil, &out)
}

// RemoveNode revokes a node: its keys are refused from the next block on and its
// tunnels close.
func (c *Client) RemoveNode(ctx context.Context, nodeID string) (api.TxResult, error) {
	return c.submitOne(ctx, ledger.TxNodeRemove, ledger.NodeRemove{Node: nodeID})
}

// RotateKeys asks the node this client talks to to replace its keys.
func (c *Client) RotateKeys(ctx context.Context) (*api.RotateResult, error) {
	var r api.RotateResult
	return &r, c.do(ctx, http.MethodPost, "/node/rotate-keys", nil, nil, &r)
}
