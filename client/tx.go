package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"qnet.dev/qnet/api"
	"qnet.dev/qnet/identity"
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
	for i, s := range svcs {
		s.Default()
		if errs := s.Validate(); len(errs) > 0 {
			return nil, fmt.Errorf("service %s: %w", s.Metadata.Name, errs)
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
	t, err := c.Sign(ctx, ledger.TxServiceDelete, ledger.ServiceDelete{Name: name})
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

// WaitReady waits until the service's current revision has all its replicas ready,
// calling progress with each new view. It stops early, with an error, when ctx ends or
// the service cannot be placed.
func (c *Client) WaitReady(ctx context.Context, name string, progress func(*api.ServiceDetail)) error {
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
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		d, err := c.Service(ctx, name)
		if err != nil {
			return err
		}
		if progress != nil {
			progress(d)
		}
		if d.Ready >= d.Desired && d.Placed == d.Desired && countCurrent(d) == d.Desired {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("service %s: %d/%d replicas ready: %w", name, d.Ready, d.Desired, ctx.Err())
		case <-events:
		case <-tick.C:
		}
	}
}

// countCurrent counts depots of the service, of any revision, still placed.
func countCurrent(d *api.ServiceDetail) int { return len(d.Depots) }
